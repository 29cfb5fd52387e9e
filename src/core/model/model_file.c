/*
 * model/model_file.c
 *	  Writing and validating the model container (see model_io.h).
 */
#include "model/model_file.h"

#include <string.h>

#define MODEL_MAGIC "ISRFMODL"
#define MODEL_HEADER_BYTES 32	/* magic 8, version 4, count 4, total 8, crc 4, pad 4 */
#define MODEL_ENTRY_BYTES 32
#define MODEL_ALIGN 64
#define MODEL_MAX_SECTIONS 4096

typedef struct ModelSection
{
	uint32_t	tag;
	uint32_t	type;
	uint8_t    *data;
	size_t		bytes;
} ModelSection;

struct IsrfModelWriter
{
	IsrfEnv    *env;
	ModelSection *sections;
	uint32_t	n;
	uint32_t	cap;
};

static uint32_t crc32c_table[256];
static bool crc32c_ready = false;

static void
model_crc_init(void)
{
	uint32_t	i,
				j;

	for (i = 0; i < 256; i++)
	{
		uint32_t	c = i;

		for (j = 0; j < 8; j++)
			c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
		crc32c_table[i] = c;
	}
	crc32c_ready = true;
}

uint32_t
isrf_crc32c(uint32_t crc, const void *data, size_t len)
{
	const uint8_t *p = data;

	if (!crc32c_ready)
		model_crc_init();
	crc = ~crc;
	while (len--)
		crc = crc32c_table[(crc ^ *p++) & 0xFF] ^ (crc >> 8);
	return ~crc;
}

static void
model_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t) v;
	p[1] = (uint8_t) (v >> 8);
	p[2] = (uint8_t) (v >> 16);
	p[3] = (uint8_t) (v >> 24);
}

static void
model_put64(uint8_t *p, uint64_t v)
{
	model_put32(p, (uint32_t) v);
	model_put32(p + 4, (uint32_t) (v >> 32));
}

static uint32_t
model_get32(const uint8_t *p)
{
	return (uint32_t) p[0] | ((uint32_t) p[1] << 8) | ((uint32_t) p[2] << 16) | ((uint32_t) p[3] << 24);
}

static uint64_t
model_get64(const uint8_t *p)
{
	return (uint64_t) model_get32(p) | ((uint64_t) model_get32(p + 4) << 32);
}

/* CRC of the header fields and the section table. */
static uint32_t
model_header_crc(const uint8_t *buf, uint32_t n)
{
	uint32_t	crc = isrf_crc32c(0, buf, 24);

	return isrf_crc32c(crc, buf + MODEL_HEADER_BYTES, (size_t) n * MODEL_ENTRY_BYTES);
}

static void
model_tag_name(uint32_t tag, char out[5])
{
	int			i;

	for (i = 0; i < 4; i++)
	{
		char		c = (char) ((tag >> (8 * i)) & 0xFF);

		out[i] = (c >= 32 && c < 127) ? c : '?';
	}
	out[4] = '\0';
}

IsrfStatus
isrf_model_writer_begin(IsrfEnv *env, IsrfModelWriter **out)
{
	IsrfModelWriter *w = isrf_calloc(env, 1, sizeof(IsrfModelWriter));

	if (w == NULL)
		return ISRF_ERR_NOMEM;
	w->env = env;
	*out = w;
	return ISRF_OK;
}

IsrfStatus
isrf_model_writer_add(IsrfModelWriter *w, uint32_t tag, IsrfElemType type,
					  const void *data, size_t bytes)
{
	uint32_t	i;

	for (i = 0; i < w->n; i++)
		if (w->sections[i].tag == tag)
		{
			char		name[5];

			model_tag_name(tag, name);
			return isrf_fail(w->env, ISRF_ERR_INTERNAL, "model section \"%s\" written twice", name);
		}
	if (w->n == MODEL_MAX_SECTIONS)
		return isrf_fail(w->env, ISRF_ERR_INTERNAL, "too many model sections");
	if (w->n == w->cap)
	{
		uint32_t	cap = w->cap ? w->cap * 2 : 16;
		ModelSection *s = isrf_calloc(w->env, cap, sizeof(ModelSection));

		if (s == NULL)
			return ISRF_ERR_NOMEM;
		if (w->n)
			memcpy(s, w->sections, sizeof(ModelSection) * w->n);
		isrf_free(w->env, w->sections);
		w->sections = s;
		w->cap = cap;
	}
	w->sections[w->n].data = isrf_alloc(w->env, bytes ? bytes : 1);
	if (w->sections[w->n].data == NULL)
		return ISRF_ERR_NOMEM;
	if (bytes)
		memcpy(w->sections[w->n].data, data, bytes);
	w->sections[w->n].tag = tag;
	w->sections[w->n].type = (uint32_t) type;
	w->sections[w->n].bytes = bytes;
	w->n++;
	return ISRF_OK;
}

void
isrf_model_writer_abort(IsrfModelWriter *w)
{
	uint32_t	i;

	if (w == NULL)
		return;
	for (i = 0; i < w->n; i++)
		isrf_free(w->env, w->sections[i].data);
	isrf_free(w->env, w->sections);
	isrf_free(w->env, w);
}

static size_t
model_align(size_t x)
{
	return (x + MODEL_ALIGN - 1) & ~(size_t) (MODEL_ALIGN - 1);
}

IsrfStatus
isrf_model_writer_finish(IsrfModelWriter *w, uint8_t **buf, size_t *len)
{
	size_t		total = model_align(MODEL_HEADER_BYTES + (size_t) w->n * MODEL_ENTRY_BYTES);
	size_t		off;
	uint8_t    *out;
	uint32_t	i;

	for (i = 0; i < w->n; i++)
		total = model_align(total + w->sections[i].bytes);
	out = isrf_calloc(w->env, 1, total);
	if (out == NULL)
	{
		isrf_model_writer_abort(w);
		return ISRF_ERR_NOMEM;
	}
	memcpy(out, MODEL_MAGIC, 8);
	model_put32(out + 8, ISRF_MODEL_FORMAT_VERSION);
	model_put32(out + 12, w->n);
	model_put64(out + 16, total);
	off = model_align(MODEL_HEADER_BYTES + (size_t) w->n * MODEL_ENTRY_BYTES);
	for (i = 0; i < w->n; i++)
	{
		uint8_t    *e = out + MODEL_HEADER_BYTES + (size_t) i * MODEL_ENTRY_BYTES;
		ModelSection *s = &w->sections[i];

		model_put32(e, s->tag);
		model_put32(e + 4, s->type);
		model_put64(e + 8, off);
		model_put64(e + 16, s->bytes);
		model_put32(e + 24, isrf_crc32c(0, s->data, s->bytes));
		if (s->bytes)
			memcpy(out + off, s->data, s->bytes);
		off = model_align(off + s->bytes);
	}
	/* the header checksum covers the section table too (tags, types, offsets) */
	model_put32(out + 24, model_header_crc(out, w->n));
	isrf_model_writer_abort(w);
	*buf = out;
	*len = total;
	return ISRF_OK;
}

/* Whether buf[from .. to) is all zero. */
static bool
model_zero(const uint8_t *buf, size_t from, size_t to)
{
	for (; from < to; from++)
		if (buf[from] != 0)
			return false;
	return true;
}

IsrfStatus
isrf_model_reader_open(IsrfEnv *env, const uint8_t *buf, size_t len, IsrfModelReader *r)
{
	uint32_t	version,
				n,
				i;
	uint64_t	total;
	size_t		pad_from,
				pad_to;

	memset(r, 0, sizeof(*r));
	if (len < MODEL_HEADER_BYTES || memcmp(buf, MODEL_MAGIC, 8) != 0)
		return isrf_fail(env, ISRF_ERR_CORRUPT, "model data is not an isrf model (bad magic, %zu bytes)", len);
	version = model_get32(buf + 8);
	if (version != ISRF_MODEL_FORMAT_VERSION)
		return isrf_fail(env, ISRF_ERR_CORRUPT,
						 "model format version %u is not supported (this build reads version %d)",
						 version, ISRF_MODEL_FORMAT_VERSION);
	n = model_get32(buf + 12);
	total = model_get64(buf + 16);
	if (total != len)
		return isrf_fail(env, ISRF_ERR_CORRUPT,
						 "model is truncated or padded: header says %llu bytes, found %zu",
						 (unsigned long long) total, len);
	if (n > MODEL_MAX_SECTIONS || MODEL_HEADER_BYTES + (size_t) n * MODEL_ENTRY_BYTES > len)
		return isrf_fail(env, ISRF_ERR_CORRUPT, "model section table is damaged (%u sections)", n);
	if (model_get32(buf + 24) != model_header_crc(buf, n))
		return isrf_fail(env, ISRF_ERR_CORRUPT, "model header checksum mismatch");

	/*
	 * The layout the writer makes and nothing else: sections in table order,
	 * each at the next aligned offset, every byte between them zero.  So
	 * every byte of a model is checked: by a checksum, or as padding.
	 */
	pad_from = 28;
	pad_to = 32;
	if (!model_zero(buf, pad_from, pad_to))
		return isrf_fail(env, ISRF_ERR_CORRUPT, "model header padding is damaged");
	pad_from = MODEL_HEADER_BYTES + (size_t) n * MODEL_ENTRY_BYTES;
	for (i = 0; i < n; i++)
	{
		const uint8_t *e = buf + MODEL_HEADER_BYTES + (size_t) i * MODEL_ENTRY_BYTES;
		uint64_t	off = model_get64(e + 8),
					bytes = model_get64(e + 16);
		char		name[5];

		model_tag_name(model_get32(e), name);
		if (off != model_align(pad_from) || off > len || bytes > len - off)
			return isrf_fail(env, ISRF_ERR_CORRUPT, "model section \"%s\" lies outside its place", name);
		if (!model_zero(buf, pad_from, (size_t) off))
			return isrf_fail(env, ISRF_ERR_CORRUPT, "model padding before section \"%s\" is damaged", name);
		if (model_get32(e + 24) != isrf_crc32c(0, buf + off, (size_t) bytes))
			return isrf_fail(env, ISRF_ERR_CORRUPT, "model section \"%s\" checksum mismatch", name);
		pad_from = (size_t) (off + bytes);
	}
	if (model_align(pad_from) != len || !model_zero(buf, pad_from, len))
		return isrf_fail(env, ISRF_ERR_CORRUPT, "model padding at the end is damaged");
	r->buf = buf;
	r->len = len;
	r->n_sections = n;
	return ISRF_OK;
}

/* Index of the section with this tag, or -1. */
static int64_t
model_find(const IsrfModelReader *r, uint32_t tag)
{
	uint32_t	i;

	for (i = 0; i < r->n_sections; i++)
		if (model_get32(r->buf + MODEL_HEADER_BYTES + (size_t) i * MODEL_ENTRY_BYTES) == tag)
			return i;
	return -1;
}

bool
isrf_model_reader_has(const IsrfModelReader *r, uint32_t tag)
{
	return model_find(r, tag) >= 0;
}

IsrfStatus
isrf_model_reader_get(IsrfEnv *env, const IsrfModelReader *r, uint32_t tag,
					  IsrfElemType type, size_t expect_bytes,
					  const void **data, size_t *bytes)
{
	int64_t		i = model_find(r, tag);
	const uint8_t *e;
	char		name[5];
	uint64_t	len;

	model_tag_name(tag, name);
	if (i < 0)
		return isrf_fail(env, ISRF_ERR_CORRUPT, "model has no section \"%s\"", name);
	e = r->buf + MODEL_HEADER_BYTES + (size_t) i * MODEL_ENTRY_BYTES;
	if (model_get32(e + 4) != (uint32_t) type)
		return isrf_fail(env, ISRF_ERR_CORRUPT, "model section \"%s\" has the wrong element type", name);
	len = model_get64(e + 16);
	if (expect_bytes != SIZE_MAX && len != expect_bytes)
		return isrf_fail(env, ISRF_ERR_CORRUPT, "model section \"%s\" has %llu bytes, expected %zu",
						 name, (unsigned long long) len, expect_bytes);
	*data = r->buf + model_get64(e + 8);
	if (bytes)
		*bytes = (size_t) len;
	return ISRF_OK;
}
