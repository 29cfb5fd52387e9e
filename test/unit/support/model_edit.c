/*
 * test/unit/support/model_edit.c
 *	  Small trained models and their sections (see model_edit.h).
 */
#include "model_edit.h"

#include <stdlib.h>
#include <string.h>

#include "model/model_file.h"
#include "support/synth_corpus.h"
#include "train/pipeline.h"

IsrfStatus
isrf_test_small_model(IsrfEnv *env, IsrfBackend *be, bool generative, IsrfModel *out)
{
	static const char *const gen_keys[] = {"dm", "group_k", "d_model", "tf_layers", "n_heads",
	"batch_size", "semid_codebook", "semid_levels", "max_len", "epochs"};
	static const char *const gen_values[] = {"4", "4", "8", "1", "2", "16", "4", "2", "8", "1"};
	static const char *const plain_keys[] = {"dm", "group_k", "epochs"};
	static const char *const plain_values[] = {"4", "4", "0"};
	IsrfTestCorpus tc = {.sc = {40, 16, 2, 6, 3}};
	IsrfTrainConfig cfg;
	IsrfStatus	st;

	ISRF_TRY(isrf_test_corpus_build(env, &tc));
	st = generative ? isrf_train_config_parse(env, 10, gen_keys, gen_values, &cfg)
		: isrf_train_config_parse(env, 3, plain_keys, plain_values, &cfg);
	if (st == ISRF_OK)
		st = isrf_train(env, be, &tc.corpus, &cfg, NULL, out);
	isrf_test_corpus_free(env, &tc);
	return st;
}

static uint32_t
edit_get32(const uint8_t *p)
{
	return (uint32_t) p[0] | ((uint32_t) p[1] << 8) | ((uint32_t) p[2] << 16) | ((uint32_t) p[3] << 24);
}

static uint64_t
edit_get64(const uint8_t *p)
{
	return (uint64_t) edit_get32(p) | ((uint64_t) edit_get32(p + 4) << 32);
}

IsrfStatus
isrf_test_sections_split(IsrfEnv *env, const uint8_t *buf, size_t len, IsrfTestSections *out)
{
	IsrfModelReader r;
	uint32_t	i;

	memset(out, 0, sizeof(*out));
	ISRF_TRY(isrf_model_reader_open(env, buf, len, &r));
	if (r.n_sections > ISRF_TEST_MAX_SECTIONS)
		return isrf_fail(env, ISRF_ERR_INTERNAL, "model_edit: %u sections", r.n_sections);
	/* the table of model_file.h: 32-byte header, 32-byte entries */
	for (i = 0; i < r.n_sections; i++)
	{
		const uint8_t *e = buf + 32 + (size_t) i * 32;
		IsrfTestSection *s = &out->s[i];

		s->tag = edit_get32(e);
		s->type = edit_get32(e + 4);
		s->len = (size_t) edit_get64(e + 16);
		s->data = malloc(s->len + 1);
		if (s->data == NULL)
			return isrf_fail(env, ISRF_ERR_NOMEM, "model_edit: out of memory");
		memcpy(s->data, buf + edit_get64(e + 8), s->len);
		out->n++;
	}
	return ISRF_OK;
}

IsrfTestSection *
isrf_test_section(IsrfTestSections *s, uint32_t tag)
{
	int			i;

	for (i = 0; i < s->n; i++)
		if (s->s[i].tag == tag)
			return &s->s[i];
	return NULL;
}

void
isrf_test_section_resize(IsrfTestSection *s, size_t len)
{
	s->data = realloc(s->data, len + 1);
	if (len > s->len)
		memset(s->data + s->len, 0, len - s->len);
	s->len = len;
}

IsrfStatus
isrf_test_sections_join(IsrfEnv *env, const IsrfTestSections *s, uint8_t **buf, size_t *len)
{
	IsrfModelWriter *w;
	int			i;

	ISRF_TRY(isrf_model_writer_begin(env, &w));
	for (i = 0; i < s->n; i++)
	{
		IsrfStatus	st;

		if (s->s[i].dropped)
			continue;
		st = isrf_model_writer_add(w, s->s[i].tag, (IsrfElemType) s->s[i].type, s->s[i].data, s->s[i].len);
		if (st != ISRF_OK)
		{
			isrf_model_writer_abort(w);
			return st;
		}
	}
	return isrf_model_writer_finish(w, buf, len);
}

void
isrf_test_sections_free(IsrfTestSections *s)
{
	int			i;

	for (i = 0; i < s->n; i++)
		free(s->s[i].data);
	s->n = 0;
}
