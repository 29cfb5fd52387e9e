/*
 * test_hostile.c
 *	  Hostile input that fuzzing (test/fuzz, bench/fuzz.sh) found to break
 *	  the engine, one case per finding, each fixed at its root: models whose
 *	  checksums are right but whose structure is not, handed to the model
 *	  reader (which must refuse them as corrupt) and to serving.
 */
#include "base/csr.h"
#include "model/model.h"
#include "model/model_file.h"
#include "serve/serve.h"
#include "support/model_edit.h"
#include "unit.h"

#include <stddef.h>
#include <string.h>

#define TAG_GPTR ISRF_TAG('G', 'P', 'T', 'R')
#define TAG_CONFIG ISRF_TAG('C', 'O', 'N', 'F')
#define TAG_GHDR ISRF_TAG('G', 'H', 'D', 'R')
#define TAG_TSIZ ISRF_TAG('T', 'S', 'I', 'Z')
#define TAG_TPTR ISRF_TAG('T', 'P', 'T', 'R')
#define TAG_TCOL ISRF_TAG('T', 'C', 'O', 'L')
#define TAG_TVAL ISRF_TAG('T', 'V', 'A', 'L')

static IsrfEnv env;
static IsrfBackend *be;
static uint8_t *model_buf[2];	/* [generative] */
static size_t model_len[2];

/* Edit a copy of a small model's sections; load the result into *out. */
static IsrfStatus
load_edited(bool generative, void (*edit) (IsrfTestSections *s), IsrfModel *out)
{
	IsrfTestSections s;
	uint8_t    *buf;
	size_t		len;
	IsrfStatus	st;

	CHECK(isrf_test_sections_split(&env, model_buf[generative], model_len[generative], &s) == ISRF_OK);
	edit(&s);
	CHECK(isrf_test_sections_join(&env, &s, &buf, &len) == ISRF_OK);
	isrf_test_sections_free(&s);
	st = isrf_model_load(&env, buf, len, out);
	isrf_free(&env, buf);
	return st;
}

/* The int32 array of a section. */
static int32_t *
section_i32(IsrfTestSections *s, uint32_t tag)
{
	IsrfTestSection *sec = isrf_test_section(s, tag);

	CHECK(sec != NULL);
	return (int32_t *) sec->data;
}

/*
 * A group graph whose second row pointer runs past nnz and the last comes
 * back to it: the check read the columns of row 0 past the end before it
 * saw the pointers out of order (heap overflow in isrf_csr_validate).
 */
static void
edit_group_pointer_past_nnz(IsrfTestSections *s)
{
	int32_t    *ptr = section_i32(s, TAG_GPTR);

	ptr[1] = ptr[40] + 1000;	/* 40 users: ptr[40] = nnz */
}

static void
csr_pointers_checked_first(void)
{
	int32_t		rowptr[3] = {0, 5, 2};
	int32_t		col[8] = {0, 1, -7, -7, -7, -7, -7, -7};
	float		val[8] = {0};
	IsrfCsr		m = {2, 2, 2, rowptr, col, val};
	IsrfModel	model;

	CHECK(isrf_csr_validate(&env, &m) == ISRF_ERR_INVALID);
	CHECK_MSG(strstr(env.errmsg, "row pointer") != NULL, "%s", env.errmsg);	/* not a column read past nnz */
	CHECK(load_edited(false, edit_group_pointer_past_nnz, &model) == ISRF_ERR_CORRUPT);
	CHECK_MSG(strstr(env.errmsg, "group graph") != NULL, "%s", env.errmsg);
}

/*
 * Set key's line of a text section ("key=value" lines) to value; the line
 * must be there.
 */
static void
section_set_line(IsrfTestSections *s, uint32_t tag, const char *key, const char *value)
{
	IsrfTestSection *sec = isrf_test_section(s, tag);
	size_t		klen = strlen(key),
				p = 0,
				out_len = 0;
	char	   *out;
	bool		found = false;

	CHECK(sec != NULL);
	out = malloc(sec->len + strlen(value) + 2);
	while (p < sec->len)
	{
		size_t		e = p;

		while (e < sec->len && sec->data[e] != '\n')
			e++;
		if (e - p > klen && memcmp(sec->data + p, key, klen) == 0 && sec->data[p + klen] == '=')
		{
			out_len += sprintf(out + out_len, "%s=%s", key, value);
			found = true;
		}
		else
		{
			memcpy(out + out_len, sec->data + p, e - p);
			out_len += e - p;
		}
		if (e < sec->len)
			out[out_len++] = '\n';
		p = e + 1;
	}
	CHECK_MSG(found, "no line %s in the section", key);
	isrf_test_section_resize(sec, out_len);
	memcpy(sec->data, out, out_len);
	free(out);
}

/*
 * Switches of the stored configurations holding something other than true
 * or false (UndefinedBehaviorSanitizer once saw "load of value 100, which is
 * not a valid value for type _Bool" when serving read a binary struct),
 * numbers out of their key's range, and a generative header's number that
 * is not one: the stored configuration is read back through the table of
 * keys, with the checks CALL isrf_train makes, and the header field by field.
 */
static void
edit_config_switch(IsrfTestSections *s)
{
	section_set_line(s, TAG_CONFIG, "use_group", "100");
}

static void
edit_config_number(IsrfTestSections *s)
{
	section_set_line(s, TAG_CONFIG, "group_k", "-5");
}

static void
edit_generative_number(IsrfTestSections *s)
{
	section_set_line(s, TAG_GHDR, "levels", "3x");
}

/* a score weight and a code scale that are not finite */
static void
edit_generative_weight(IsrfTestSections *s)
{
	section_set_line(s, TAG_GHDR, "weight.recent_direct", "nan");
}

static void
edit_generative_scale(IsrfTestSections *s)
{
	section_set_line(s, TAG_GHDR, "scale.2", "-inf");
}

static void
stored_configuration_checked(void)
{
	IsrfModel	m;

	CHECK(load_edited(false, edit_config_switch, &m) == ISRF_ERR_CORRUPT);
	CHECK_MSG(strstr(env.errmsg, "use_group") != NULL, "%s", env.errmsg);
	CHECK(load_edited(true, edit_config_number, &m) == ISRF_ERR_CORRUPT);
	CHECK_MSG(strstr(env.errmsg, "group_k") != NULL, "%s", env.errmsg);
	CHECK(load_edited(true, edit_generative_number, &m) == ISRF_ERR_CORRUPT);
	CHECK_MSG(strstr(env.errmsg, "generative header is damaged") != NULL, "%s", env.errmsg);
	CHECK(load_edited(true, edit_generative_weight, &m) == ISRF_ERR_CORRUPT);
	CHECK_MSG(strstr(env.errmsg, "generative header is damaged") != NULL, "%s", env.errmsg);
	CHECK(load_edited(true, edit_generative_scale, &m) == ISRF_ERR_CORRUPT);
	CHECK_MSG(strstr(env.errmsg, "generative header is damaged") != NULL, "%s", env.errmsg);
}

/*
 * A beam wider than the catalogue left after the history, for several
 * requests at once: the beam search packs each request's results after the
 * ones before it, and serving read them at request * width, past what was
 * written (found by the fuzzing harness's small models; a batch of the
 * model server with isrf.beam_width = 200 on a small catalogue).
 */
static void
beam_wider_than_catalogue(void)
{
	IsrfModel	m;
	IsrfServeSession *ss;
	IsrfRecRequest req[3];
	IsrfRecResult res[3],
				one;
	int32_t		items[3][5],
				one_items[5];
	float		scores[3][5],
				one_scores[5];
	int			i;

	CHECK(isrf_model_load(&env, model_buf[1], model_len[1], &m) == ISRF_OK);
	m.genrec.weights.beam = 1.0f;	/* the beam's bonus counts in the answer */
	CHECK(isrf_serve_session_open(&env, be, &m, &ss) == ISRF_OK);
	for (i = 0; i < 3; i++)
	{
		req[i] = (IsrfRecRequest) {i * 7, 5, 200, NULL, 0};
		res[i] = (IsrfRecResult) {items[i], scores[i], 0, false};
	}
	CHECK_MSG(isrf_serve_recommend(&env, ss, 3, req, res) == ISRF_OK, "%s", env.errmsg);
	for (i = 0; i < 3; i++)
	{
		one = (IsrfRecResult) {one_items, one_scores, 0, false};
		CHECK(isrf_serve_recommend(&env, ss, 1, &req[i], &one) == ISRF_OK);
		CHECK_MSG(one.count == res[i].count && memcmp(one_items, items[i], sizeof(int32_t) * one.count) == 0,
				  "request %d answers in a batch as alone", i);
		CHECK_NEAR(one_scores[0], scores[i][0], 1e-4);
	}
	isrf_serve_session_close(ss);
	isrf_model_free(&env, &m);
}

/*
 * Every byte of a stored model matters: a flip anywhere (header, table,
 * payload, or the padding between sections, which no checksum covered) is
 * reported as corrupt (XX001 in SQL), for a model with and one without a
 * generative part.
 */
static void
every_byte_flip_detected(void)
{
	int			g;

	for (g = 0; g < 2; g++)
	{
		size_t		i,
					missed = 0;
		IsrfModel	m;

		for (i = 0; i < model_len[g]; i++)
		{
			model_buf[g][i] ^= 0x01;
			if (isrf_model_load(&env, model_buf[g], model_len[g], &m) == ISRF_OK)
			{
				if (missed++ < 5)
					fprintf(stderr, "flip at byte %zu of %zu not detected\n", i, model_len[g]);
				isrf_model_free(&env, &m);
			}
			model_buf[g][i] ^= 0x01;
		}
		CHECK_MSG(missed == 0, "%zu of %zu flips not detected", missed, model_len[g]);
	}
}

/*
 * The items' TF-IDF rows (the lexical relations' words) with a column past
 * the stored vocabulary, a non-finite weight, a vocabulary of no columns
 * or of more than the featurizer makes, row pointers out of order, or the
 * entries' section shorter than its count: each refused as damage before
 * serving reads a word.  Without the sections the model loads (a model of
 * an older build, or of embeddings) with no rows.
 */
static void
edit_text_column(IsrfTestSections *s)
{
	int32_t    *cols = section_i32(s, TAG_TCOL);

	cols[0] = section_i32(s, TAG_TSIZ)[0];
}

static void
edit_text_weight(IsrfTestSections *s)
{
	float	   *val = (float *) isrf_test_section(s, TAG_TVAL)->data;

	val[1] = NAN;
}

static void
edit_text_huge_weight(IsrfTestSections *s)
{
	float	   *val = (float *) isrf_test_section(s, TAG_TVAL)->data;

	val[2] = 1e30f;
}

static void
edit_text_no_columns(IsrfTestSections *s)
{
	section_i32(s, TAG_TSIZ)[0] = 0;
}

static void
edit_text_huge_vocabulary(IsrfTestSections *s)
{
	section_i32(s, TAG_TSIZ)[0] = INT32_MAX;
}

static void
edit_text_pointers(IsrfTestSections *s)
{
	int32_t    *ptr = section_i32(s, TAG_TPTR);

	ptr[2] = ptr[16] + 5;		/* 16 items: ptr[16] = nnz */
}

static void
edit_text_count(IsrfTestSections *s)
{
	section_i32(s, TAG_TSIZ)[1] += 1;
}

static void
edit_text_dropped(IsrfTestSections *s)
{
	isrf_test_section(s, TAG_TSIZ)->dropped = true;
	isrf_test_section(s, TAG_TPTR)->dropped = true;
	isrf_test_section(s, TAG_TCOL)->dropped = true;
	isrf_test_section(s, TAG_TVAL)->dropped = true;
}

/* A model without item text opens and ranks. */
static void
item_text_absent_serves(IsrfModel *m)
{
	IsrfServeSession *ss;
	int32_t		cand[3] = {1, 2, 3};
	float		sc[3];

	CHECK(m->item_text.rowptr == NULL);
	CHECK_MSG(isrf_serve_session_open(&env, be, m, &ss) == ISRF_OK, "%s", env.errmsg);
	CHECK(isrf_serve_rank(&env, ss, 0, NULL, 0, 3, cand, sc) == ISRF_OK);
	isrf_serve_session_close(ss);
}

static void
item_text_checked(void)
{
	void		(*edits[]) (IsrfTestSections *) = {edit_text_column, edit_text_weight, edit_text_huge_weight,
		edit_text_no_columns,
		edit_text_huge_vocabulary, edit_text_pointers, edit_text_count};
	IsrfModel	m;
	size_t		i;

	CHECK(isrf_model_load(&env, model_buf[1], model_len[1], &m) == ISRF_OK);
	CHECK_MSG(m.item_text.rowptr != NULL && m.item_text.n_rows == 16 && m.item_text.nnz > 16,
			  "the small model has item text (%d rows, %d entries)", m.item_text.n_rows, m.item_text.nnz);
	isrf_model_free(&env, &m);
	for (i = 0; i < sizeof(edits) / sizeof(edits[0]); i++)
	{
		CHECK_MSG(load_edited(true, edits[i], &m) == ISRF_ERR_CORRUPT, "edit %zu loaded", i);
		CHECK_MSG(strstr(env.errmsg, "item text") != NULL || strstr(env.errmsg, "TCOL") != NULL ||
				  strstr(env.errmsg, "TVAL") != NULL, "edit %zu: %s", i, env.errmsg);
	}
	/* without the text: damage where word embeddings need it */
	CHECK(load_edited(true, edit_text_dropped, &m) == ISRF_ERR_CORRUPT);
	CHECK_MSG(strstr(env.errmsg, "item text") != NULL, "%s", env.errmsg);
	/* a model without text serves without it: one without a generative model ... */
	CHECK(load_edited(false, edit_text_dropped, &m) == ISRF_OK);
	CHECK(m.item_text.rowptr == NULL);
	item_text_absent_serves(&m);
	isrf_model_free(&env, &m);
	/* ... and one with it but without word embeddings (cut from the weights' end) */
	CHECK(isrf_model_load(&env, model_buf[1], model_len[1], &m) == ISRF_OK);
	CHECK(m.genrec.n_words > 0);
	m.genrec.n_params -= (size_t) m.genrec.n_words * m.genrec.cfg.d_model;
	m.genrec.n_words = 0;
	isrf_csr_free(&env, &m.item_text);
	item_text_absent_serves(&m);
	isrf_model_free(&env, &m);
}

int
main(void)
{
	IsrfModel	m;
	int			g;

	isrf_env_init_malloc(&env);
	CHECK(isrf_backend_open(&env, ISRF_DEVICE_CPU, NULL, &be) == ISRF_OK);
	for (g = 0; g < 2; g++)
	{
		CHECK(isrf_test_small_model(&env, be, g == 1, &m) == ISRF_OK);
		CHECK(isrf_model_save(&env, &m, &model_buf[g], &model_len[g]) == ISRF_OK);
		isrf_model_free(&env, &m);
	}

	csr_pointers_checked_first();
	stored_configuration_checked();
	every_byte_flip_detected();
	beam_wider_than_catalogue();
	item_text_checked();

	isrf_free(&env, model_buf[0]);
	isrf_free(&env, model_buf[1]);
	isrf_backend_close(be);
	UNIT_END("test_hostile");
}
