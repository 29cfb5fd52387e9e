/*
 * test_model_file.c
 *	  The model container: round trip, and every kind of damage (truncation,
 *	  a flipped byte anywhere: header, table, payload or padding; wrong
 *	  version, wrong sizes) is reported as corrupt, never read past the end.
 */
#include "model/model_file.h"
#include "unit.h"

#include <string.h>

#define TAG_A ISRF_TAG('A', 'A', 'A', 'A')
#define TAG_B ISRF_TAG('B', 'B', 'B', 'B')

int
main(void)
{
	IsrfEnv		env;
	IsrfModelWriter *w;
	IsrfModelReader r;
	uint8_t    *buf;
	size_t		len,
				bytes,
				i;
	const void *p;
	float		f[5] = {1, 2, 3, 4, 5};
	int64_t		ids[3] = {7, -1, INT64_MAX};
	int			corrupt_detected = 0,
				corrupt_tries = 0;

	isrf_env_init_malloc(&env);
	CHECK(isrf_crc32c(0, "123456789", 9) == 0xE3069283u);	/* the standard check value */

	CHECK(isrf_model_writer_begin(&env, &w) == ISRF_OK);
	CHECK(isrf_model_writer_add(w, TAG_A, ISRF_ELEM_F32, f, sizeof(f)) == ISRF_OK);
	CHECK(isrf_model_writer_add(w, TAG_B, ISRF_ELEM_I64, ids, sizeof(ids)) == ISRF_OK);
	CHECK(isrf_model_writer_add(w, TAG_A, ISRF_ELEM_F32, f, sizeof(f)) == ISRF_ERR_INTERNAL);
	CHECK(isrf_model_writer_finish(w, &buf, &len) == ISRF_OK);
	CHECK(len % 64 == 0);

	CHECK(isrf_model_reader_open(&env, buf, len, &r) == ISRF_OK);
	CHECK(isrf_model_reader_get(&env, &r, TAG_A, ISRF_ELEM_F32, sizeof(f), &p, &bytes) == ISRF_OK);
	CHECK(bytes == sizeof(f) && memcmp(p, f, sizeof(f)) == 0);
	CHECK(((uintptr_t) p - (uintptr_t) buf) % 64 == 0);
	CHECK(isrf_model_reader_get(&env, &r, TAG_B, ISRF_ELEM_I64, SIZE_MAX, &p, &bytes) == ISRF_OK);
	CHECK(memcmp(p, ids, sizeof(ids)) == 0);
	CHECK(isrf_model_reader_has(&r, TAG_B) && !isrf_model_reader_has(&r, ISRF_TAG('Z', 'Z', 'Z', 'Z')));
	CHECK(isrf_model_reader_get(&env, &r, TAG_B, ISRF_ELEM_F32, SIZE_MAX, &p, &bytes) == ISRF_ERR_CORRUPT);
	CHECK(isrf_model_reader_get(&env, &r, TAG_A, ISRF_ELEM_F32, 4, &p, &bytes) == ISRF_ERR_CORRUPT);
	CHECK(strstr(env.errmsg, "AAAA") != NULL);
	CHECK(isrf_model_reader_get(&env, &r, ISRF_TAG('Z', 'Z', 'Z', 'Z'), ISRF_ELEM_F32, SIZE_MAX, &p, &bytes) == ISRF_ERR_CORRUPT);

	/* every truncation is detected */
	for (i = 0; i < len; i += 7)
		CHECK_MSG(isrf_model_reader_open(&env, buf, i, &r) == ISRF_ERR_CORRUPT, "truncated to %zu", i);
	/*
	 * every single flipped byte is detected: in the header, the table or a
	 * payload by a checksum, in the padding (header, table, sections) as such
	 */
	for (i = 0; i < len; i++)
	{
		uint8_t		saved = buf[i];

		buf[i] ^= 0x5A;
		corrupt_tries++;
		if (isrf_model_reader_open(&env, buf, len, &r) == ISRF_ERR_CORRUPT)
			corrupt_detected++;
		else
			fprintf(stderr, "flip at %zu not detected\n", i);
		buf[i] = saved;
	}
	CHECK_MSG(corrupt_detected == corrupt_tries, "%d of %d flips detected", corrupt_detected, corrupt_tries);
	CHECK(isrf_model_reader_open(&env, buf, len, &r) == ISRF_OK);

	/* a newer format version is refused by name */
	buf[8] = ISRF_MODEL_FORMAT_VERSION + 1;
	CHECK(isrf_model_reader_open(&env, buf, len, &r) == ISRF_ERR_CORRUPT);
	CHECK(strstr(env.errmsg, "checksum") != NULL || strstr(env.errmsg, "version") != NULL);
	CHECK(isrf_model_reader_open(&env, (const uint8_t *) "garbage", 7, &r) == ISRF_ERR_CORRUPT);
	isrf_free(&env, buf);
	UNIT_END("test_model_file");
}
