/*
 * test/fuzz/fuzz_model_struct.c
 *	  libFuzzer harness: checksum-valid hostile models.  The input is a
 *	  program of edits applied to the sections of a valid model (byte 0
 *	  picks it: with or without a generative part); the edited sections are
 *	  written as a new container with fresh checksums, so that what is
 *	  exercised is isrf_model_load's structural checks (sizes, ranges,
 *	  orders, NaNs, missing or re-typed sections), then serving.
 *
 * Each edit is 8 bytes: kind, section, offset (16 bits, scaled into the
 * section), value (32 bits).
 */
#include "fuzz.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_file.h"
#include "support/model_edit.h"

static uint32_t
get32(const uint8_t *p)
{
	return (uint32_t) p[0] | ((uint32_t) p[1] << 8) | ((uint32_t) p[2] << 16) | ((uint32_t) p[3] << 24);
}

static void
put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

/* Apply one edit. */
static void
apply_edit(IsrfTestSection *secs, int n, const uint8_t *op, const IsrfModel *shape)
{
	static const int32_t special_int[] = {0, -1, 1, -2, INT32_MIN, INT32_MAX, 2, 3, 1000000};
	static const float special_float[] = {NAN, INFINITY, -INFINITY, 1e30f, -1e30f, 0.0f, -0.0f, 1e-40f, 1.0f};
	IsrfTestSection *s = &secs[op[1] % n];
	uint32_t	value = get32(op + 4);
	size_t		off = s->len ? ((size_t) (op[2] | (op[3] << 8)) * s->len) >> 16 : 0;
	size_t		off4 = off & ~(size_t) 3,
				off8 = off & ~(size_t) 7;
	int32_t		iv;

	switch (op[0] % 12)
	{
		case 0:					/* flip bits of a byte */
			if (off < s->len)
				s->data[off] ^= (uint8_t) (value | 1);
			break;
		case 1:					/* any int32 */
			if (off4 + 4 <= s->len)
				put32(s->data + off4, value);
			break;
		case 2:					/* a telling int32 */
			iv = special_int[value % (sizeof(special_int) / sizeof(special_int[0]))];
			if (value & 0x100)
				iv = (value & 0x200) ? shape->n_items + (int32_t) (value >> 12) % 3 - 1
					: shape->n_users + (int32_t) (value >> 12) % 3 - 1;
			if (off4 + 4 <= s->len)
				memcpy(s->data + off4, &iv, 4);
			break;
		case 3:					/* a telling float */
			if (off4 + 4 <= s->len)
				memcpy(s->data + off4, &special_float[value % (sizeof(special_float) / sizeof(special_float[0]))], 4);
			break;
		case 4:					/* nudge an int32 */
			if (off4 + 4 <= s->len)
			{
				memcpy(&iv, s->data + off4, 4);
				iv = (int32_t) ((uint32_t) iv + (uint32_t) (int32_t) (int8_t) value);
				memcpy(s->data + off4, &iv, 4);
			}
			break;
		case 5:					/* an int64: extreme, or its neighbour's (breaks orders) */
			if (off8 + 8 <= s->len)
			{
				int64_t		v = (value & 1) ? ((value & 2) ? INT64_MAX : INT64_MIN) : -(int64_t) (value >> 2);

				if ((value & 4) && off8 >= 8)
					memcpy(&v, s->data + off8 - 8, 8);
				memcpy(s->data + off8, &v, 8);
			}
			break;
		case 6:					/* shorten */
			isrf_test_section_resize(s, off);
			break;
		case 7:					/* lengthen by up to 64 zero bytes */
			isrf_test_section_resize(s, s->len + value % 65);
			break;
		case 8:					/* another element type */
			s->type = value % 5;
			break;
		case 9:					/* drop */
			s->dropped = true;
			break;
		case 10:				/* swap two int32s */
			{
				size_t		other = (((size_t) (value & 0xFFFF) * s->len) >> 16) & ~(size_t) 3;
				int32_t		a,
							b;

				if (off4 + 4 <= s->len && other + 4 <= s->len)
				{
					memcpy(&a, s->data + off4, 4);
					memcpy(&b, s->data + other, 4);
					memcpy(s->data + off4, &b, 4);
					memcpy(s->data + other, &a, 4);
				}
			}
			break;
		default:				/* another tag */
			s->tag = secs[value % n].tag ^ ((value & 0x10000) ? 0x20 : 0);
			break;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *seed;
	size_t		seed_len,
				len,
				i;
	IsrfTestSections secs;
	uint8_t    *buf;
	IsrfModel	m,
				shape;
	IsrfEnv    *env = fuzz_env();

	if (size < 1)
		return 0;
	fuzz_seed_model(data[0] & 1, &seed, &seed_len);
	if (isrf_model_load(env, seed, seed_len, &shape) != ISRF_OK ||
		isrf_test_sections_split(env, seed, seed_len, &secs) != ISRF_OK)
		abort();				/* the seed itself must load */
	for (i = 1; i + 8 <= size; i += 8)
		apply_edit(secs.s, secs.n, data + i, &shape);
	isrf_model_free(env, &shape);

	/* a duplicate tag: the writer refuses it */
	if (isrf_test_sections_join(env, &secs, &buf, &len) == ISRF_OK)
	{
		if (isrf_model_load(env, buf, len, &m) == ISRF_OK)
		{
			fuzz_serve(&m, isrf_crc32c(0, data, size));
			isrf_model_free(env, &m);
		}
		isrf_free(env, buf);
	}
	isrf_test_sections_free(&secs);
	return 0;
}
