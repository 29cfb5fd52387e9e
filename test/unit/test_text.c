/*
 * test_text.c
 *	  Unit tests of the text featurizer: tokenizer rules (stop words,
 *	  stemming, attribute codes, UTF-8, separators, long and empty input),
 *	  TF-IDF values against numbers computed by hand, min_df / max_df
 *	  filtering, field weights, determinism and argument errors.
 */
#include "features/text.h"
#include "unit.h"

#include <string.h>

/* Terms of one tokenize call, joined by single spaces. */
typedef struct Terms
{
	char		buf[4096];
	size_t		used;
	int			count;
	size_t		max_len;
} Terms;

static void
terms_emit(void *arg, const char *term, size_t len)
{
	Terms	   *t = arg;

	t->count++;
	if (len > t->max_len)
		t->max_len = len;
	if (t->used + len + 2 >= sizeof(t->buf))
		return;
	if (t->used)
		t->buf[t->used++] = ' ';
	memcpy(t->buf + t->used, term, len);
	t->used += len;
	t->buf[t->used] = '\0';
}

static IsrfStatus
tokenize(IsrfEnv *env, const char *text, size_t len, Terms *t)
{
	memset(t, 0, sizeof(*t));
	return isrf_text_tokenize(env, "english", text, len, terms_emit, t);
}

#define TOKENS_ARE(env, text, expect) \
	do { \
		Terms		t_; \
		CHECK(tokenize((env), (text), strlen(text), &t_) == ISRF_OK); \
		CHECK_MSG(strcmp(t_.buf, (expect)) == 0, "\"%s\" -> \"%s\", expected \"%s\"", \
				  (text), t_.buf, (expect)); \
	} while (0)

/* The documented column of a term: xor-folded FNV-1a 64, masked. */
static int32_t
ref_column(const char *term, int32_t hash_dim)
{
	uint64_t	h = 14695981039346656037ULL;

	for (; *term; term++)
	{
		h ^= (unsigned char) *term;
		h *= 1099511628211ULL;
	}
	h ^= h >> 32;
	return (int32_t) (h & (uint64_t) (hash_dim - 1));
}

/* Value of column col in row r, or -1 when absent. */
static double
csr_get(const IsrfCsr *m, int32_t r, int32_t col)
{
	int32_t		p;

	for (p = m->rowptr[r]; p < m->rowptr[r + 1]; p++)
		if (m->col[p] == col)
			return m->val[p];
	return -1.0;
}

/* Rows well formed: columns ascending and in range, unit norm or empty. */
static bool
csr_rows_ok(const IsrfCsr *m)
{
	int32_t		r,
				p;

	if (m->rowptr[0] != 0 || m->rowptr[m->n_rows] != m->nnz)
		return false;
	for (r = 0; r < m->n_rows; r++)
	{
		double		ss = 0.0;

		for (p = m->rowptr[r]; p < m->rowptr[r + 1]; p++)
		{
			if (m->col[p] < 0 || m->col[p] >= m->n_cols)
				return false;
			if (p > m->rowptr[r] && m->col[p] <= m->col[p - 1])
				return false;
			ss += (double) m->val[p] * m->val[p];
		}
		if (m->rowptr[r + 1] > m->rowptr[r] && fabs(ss - 1.0) > 1e-5)
			return false;
	}
	return true;
}

static void
test_tokenizer(IsrfEnv *env)
{
	Terms		t;
	char	   *big;
	size_t		i,
				n;
	static const char *stop =
		"I me my myself we our ours ourselves you your yours yourself "
		"yourselves he him his himself she her hers herself it its itself "
		"they them their theirs themselves what which who whom this that "
		"these those am is are was were be been being have has had having "
		"do does did doing a an the and but if or because as until while of "
		"at by for with about against between into through during before "
		"after above below to from up down in out on off over under again "
		"further then once here there when where why how all any both each "
		"few more most other some such no nor not only own same so than too "
		"very can will just don't should now aren't couldn't didn't doesn't "
		"hadn't hasn't haven't isn't mightn't mustn't needn't shan't "
		"shouldn't wasn't weren't won't wouldn't would could ought I'll "
		"you've we're";

	/* stop words go, stems agree, case folds */
	TOKENS_ARE(env, "The cats are RUNNING and the dog runs", "cat run dog run");
	TOKENS_ARE(env, stop, "");
	/* attribute codes and digits survive; one-byte tokens go */
	TOKENS_ARE(env, "a173 a1 a162 x 7 e55", "a173 a1 a162 e55");
	/* punctuation separates */
	TOKENS_ARE(env, "nail-polish,shimmer;(glitter)", "nail polish shimmer glitter");
	/* UTF-8 words stay whole, typographic punctuation separates */
	TOKENS_ARE(env, "日本語", "日本語");
	TOKENS_ARE(env, "don’t stop—go…now «vite»", "stop go vite");
	CHECK(tokenize(env, "naïve", strlen("naïve"), &t) == ISRF_OK);
	CHECK_MSG(t.count == 1 && strncmp(t.buf, "na\xc3\xaf", 4) == 0, "naïve -> %s", t.buf);
	/* empty, NULL with zero length, not NUL-terminated */
	TOKENS_ARE(env, "", "");
	CHECK(tokenize(env, NULL, 0, &t) == ISRF_OK && t.count == 0);
	CHECK(tokenize(env, "running shoes", 7, &t) == ISRF_OK);
	CHECK_MSG(strcmp(t.buf, "run") == 0, "prefix -> %s", t.buf);
	/* separators only */
	TOKENS_ARE(env, " \t\n.,;!?\xc2\xa0\xe2\x80\x94", "");

	/* a long word is cut at 64 bytes, on a character boundary */
	big = malloc(4096);
	memset(big, 'q', 100);
	CHECK(tokenize(env, big, 100, &t) == ISRF_OK);
	CHECK_MSG(t.count == 1 && t.max_len <= 64, "count %d len %zu", t.count, t.max_len);
	for (i = 0; i < 41; i++)
		memcpy(big + 2 * i + 1, "\xc3\xa9", 2);	/* "q" then 41 x é */
	CHECK(tokenize(env, big, 83, &t) == ISRF_OK);
	CHECK_MSG(t.count == 1 && t.max_len == 63, "cut len %zu", t.max_len);
	CHECK((unsigned char) t.buf[t.used - 1] == 0xa9);
	free(big);

	/* a very long text: 3 MB, every word counted */
	n = 3 * 1024 * 1024 / 8;
	big = malloc(n * 8);
	for (i = 0; i < n; i++)
		memcpy(big + i * 8, "shimmer ", 8);
	memset(&t, 0, sizeof(t));
	CHECK(isrf_text_tokenize(env, "english", big, n * 8, terms_emit, &t) == ISRF_OK);
	CHECK_MSG((size_t) t.count == n, "%d terms of %zu", t.count, n);
	free(big);

	/* another language stems its own way; unknown ones are named */
	memset(&t, 0, sizeof(t));
	CHECK(isrf_text_tokenize(env, "french", "chanteuses", 10, terms_emit, &t) == ISRF_OK);
	CHECK_MSG(strcmp(t.buf, "chanteux") == 0 || strcmp(t.buf, "chanteus") == 0 ||
			  strlen(t.buf) < 10, "french -> %s", t.buf);
	CHECK(isrf_text_tokenize(env, "klingon", "qapla", 5, terms_emit, &t) == ISRF_ERR_INVALID);
	CHECK_MSG(strstr(env->errmsg, "klingon") != NULL, "%s", env->errmsg);
}

/* Featurize docs[] (NULL = no text) with cfg; each string is one piece. */
static IsrfStatus
featurize(IsrfEnv *env, const IsrfTextConfig *cfg, const char *const *docs,
		  int n, IsrfCsr *out)
{
	IsrfTextFeaturizer *f;
	int			d;
	IsrfStatus	st;

	ISRF_TRY(isrf_text_begin(env, cfg, n, &f));
	for (d = 0; d < n; d++)
		if (docs[d] && (st = isrf_text_add(f, d, docs[d], strlen(docs[d]), 1.0f)) != ISRF_OK)
		{
			isrf_text_abort(f);
			return st;
		}
	return isrf_text_finish(f, out);
}

static void
test_tfidf_values(IsrfEnv *env)
{
	static const char *const docs[] = {
		"Cats running cats", "cat dogs", "dog bird", "the and of"
	};
	IsrfTextConfig cfg;
	IsrfCsr		m;
	int32_t		dim = 1024;
	int32_t		c_cat = ref_column("cat", dim),
				c_run = ref_column("run", dim),
				c_dog = ref_column("dog", dim),
				c_bird = ref_column("bird", dim);

	/* the four terms must not collide for the test to mean anything */
	CHECK(c_cat != c_run && c_cat != c_dog && c_cat != c_bird &&
		  c_run != c_dog && c_run != c_bird && c_dog != c_bird);

	isrf_text_config_default(&cfg);
	CHECK(cfg.hash_dim == 1 << 18 && cfg.min_df == 2 && cfg.max_df_ratio == 0.5f &&
		  strcmp(cfg.language, "english") == 0);
	cfg.hash_dim = dim;
	cfg.min_df = 1;
	cfg.max_df_ratio = 1.0f;
	CHECK(featurize(env, &cfg, docs, 4, &m) == ISRF_OK);
	CHECK(m.n_rows == 4 && m.n_cols == dim && m.nnz == 6);
	CHECK(csr_rows_ok(&m));

	/*
	 * N = 4; df cat 2, run 1, dog 2, bird 1; idf = ln(5/(1+df)) + 1.
	 * doc 0: cat tf 2 -> (1 + ln 2) * idf(cat), run 1 * idf(run), normalised.
	 */
	CHECK_NEAR(csr_get(&m, 0, c_cat), 0.800337, 2e-6);
	CHECK_NEAR(csr_get(&m, 0, c_run), 0.599550, 2e-6);
	CHECK_NEAR(csr_get(&m, 1, c_cat), 0.707107, 2e-6);
	CHECK_NEAR(csr_get(&m, 1, c_dog), 0.707107, 2e-6);
	CHECK_NEAR(csr_get(&m, 2, c_dog), 0.619130, 2e-6);
	CHECK_NEAR(csr_get(&m, 2, c_bird), 0.785288, 2e-6);
	/* only stop words: an empty row */
	CHECK(m.rowptr[3] == m.rowptr[4]);
	isrf_csr_free(env, &m);
}

static void
test_weights_and_order(IsrfEnv *env)
{
	IsrfTextConfig cfg;
	IsrfTextFeaturizer *f;
	IsrfCsr		a,
				b;
	int32_t		dim = 1024;
	int32_t		c_cat = ref_column("cat", dim),
				c_run = ref_column("run", dim);

	isrf_text_config_default(&cfg);
	cfg.hash_dim = dim;
	cfg.min_df = 1;
	cfg.max_df_ratio = 1.0f;

	/* a: "cat" (weight 2) + "run"; "cat cat run" in two pieces; plus a
	 * third doc so that idf is not the same for every term */
	CHECK(isrf_text_begin(env, &cfg, 3, &f) == ISRF_OK);
	CHECK(isrf_text_add(f, 0, "cats", 4, 2.0f) == ISRF_OK);
	CHECK(isrf_text_add(f, 1, "cat", 3, 1.0f) == ISRF_OK);
	CHECK(isrf_text_add(f, 2, "run run", 7, 0.5f) == ISRF_OK);
	CHECK(isrf_text_add(f, 0, "running", 7, 1.0f) == ISRF_OK);
	CHECK(isrf_text_add(f, 1, "cat running", 11, 1.0f) == ISRF_OK);
	CHECK(isrf_text_add(f, 1, "ignored", 7, 0.0f) == ISRF_OK);
	CHECK(isrf_text_finish(f, &a) == ISRF_OK);
	CHECK(a.nnz == 5 && csr_rows_ok(&a));
	/* docs 0 and 1 have the same weighted counts: same rows */
	CHECK(a.rowptr[1] - a.rowptr[0] == 2 && a.rowptr[2] - a.rowptr[1] == 2);
	CHECK_NEAR(csr_get(&a, 0, c_cat), csr_get(&a, 1, c_cat), 1e-7);
	CHECK_NEAR(csr_get(&a, 0, c_run), csr_get(&a, 1, c_run), 1e-7);
	/* tf 2 -> 1 + ln 2 with idf(cat) = ln(4/3)+1, idf(run) = ln(4/4)+1 */
	{
		double		wc = (1.0 + log(2.0)) * (log(4.0 / 3.0) + 1.0),
					wr = 1.0;
		double		nrm = sqrt(wc * wc + wr * wr);

		CHECK_NEAR(csr_get(&a, 0, c_cat), wc / nrm, 2e-6);
		CHECK_NEAR(csr_get(&a, 0, c_run), wr / nrm, 2e-6);
	}
	CHECK_NEAR(csr_get(&a, 2, c_run), 1.0, 1e-6);

	/* the same pieces interleaved differently across documents: same bits */
	CHECK(isrf_text_begin(env, &cfg, 3, &f) == ISRF_OK);
	CHECK(isrf_text_add(f, 2, "run run", 7, 0.5f) == ISRF_OK);
	CHECK(isrf_text_add(f, 1, "cat", 3, 1.0f) == ISRF_OK);
	CHECK(isrf_text_add(f, 1, "cat running", 11, 1.0f) == ISRF_OK);
	CHECK(isrf_text_add(f, 0, "cats", 4, 2.0f) == ISRF_OK);
	CHECK(isrf_text_add(f, 0, "running", 7, 1.0f) == ISRF_OK);
	CHECK(isrf_text_finish(f, &b) == ISRF_OK);
	CHECK(a.nnz == b.nnz &&
		  memcmp(a.rowptr, b.rowptr, sizeof(int32_t) * 4) == 0 &&
		  memcmp(a.col, b.col, sizeof(int32_t) * (size_t) a.nnz) == 0 &&
		  memcmp(a.val, b.val, sizeof(float) * (size_t) a.nnz) == 0);
	isrf_csr_free(env, &a);
	isrf_csr_free(env, &b);
}

static void
test_df_filter(IsrfEnv *env)
{
	static const char *const docs[] = {
		"alpha beta gamma", "alpha beta", "alpha delta", "alpha epsilon", NULL
	};
	IsrfTextConfig cfg;
	IsrfCsr		m;
	int32_t		dim = 4096;
	Terms		t;

	CHECK(tokenize(env, "beta", 4, &t) == ISRF_OK && t.count == 1);
	isrf_text_config_default(&cfg);
	cfg.hash_dim = dim;

	/*
	 * N = 5: alpha df 4 > 0.5 * 5 goes, beta df 2 stays, df-1 terms go
	 * under min_df 2.
	 */
	CHECK(featurize(env, &cfg, docs, 5, &m) == ISRF_OK);
	CHECK_MSG(m.nnz == 2, "nnz %d", m.nnz);
	CHECK(m.nnz == 2 && m.col[0] == ref_column(t.buf, dim) && m.col[1] == m.col[0]);
	CHECK(m.nnz == 2 && m.val[0] == 1.0f && m.val[1] == 1.0f);
	CHECK(m.rowptr[1] == 1 && m.rowptr[2] == 2 && m.rowptr[5] == 2);
	isrf_csr_free(env, &m);

	/* beta at exactly the ratio stays (2 <= 0.4 * 5), below it goes */
	cfg.max_df_ratio = 0.4f;
	CHECK(featurize(env, &cfg, docs, 5, &m) == ISRF_OK && m.nnz == 2);
	isrf_csr_free(env, &m);
	cfg.max_df_ratio = 0.39f;
	CHECK(featurize(env, &cfg, docs, 5, &m) == ISRF_OK && m.nnz == 0);
	CHECK(m.n_rows == 5 && m.rowptr[5] == 0);
	isrf_csr_free(env, &m);

	/* min_df 1 and max_df 1: all 5 distinct terms, 9 entries */
	cfg.min_df = 1;
	cfg.max_df_ratio = 1.0f;
	CHECK(featurize(env, &cfg, docs, 5, &m) == ISRF_OK && m.nnz == 9);
	CHECK(csr_rows_ok(&m));
	isrf_csr_free(env, &m);

	/* an empty corpus and a corpus without text */
	CHECK(featurize(env, &cfg, docs, 0, &m) == ISRF_OK && m.n_rows == 0 && m.nnz == 0);
	isrf_csr_free(env, &m);
	CHECK(featurize(env, &cfg, docs + 4, 1, &m) == ISRF_OK && m.n_rows == 1 && m.nnz == 0);
	isrf_csr_free(env, &m);
}

static void
test_errors(IsrfEnv *env)
{
	IsrfTextConfig cfg;
	IsrfTextFeaturizer *f;

	isrf_text_config_default(&cfg);
	cfg.hash_dim = 1000;
	CHECK(isrf_text_begin(env, &cfg, 3, &f) == ISRF_ERR_INVALID && f == NULL);
	CHECK_MSG(strstr(env->errmsg, "1000") != NULL, "%s", env->errmsg);
	cfg.hash_dim = 1024;
	cfg.language = "elvish";
	CHECK(isrf_text_begin(env, &cfg, 3, &f) == ISRF_ERR_INVALID);
	CHECK_MSG(strstr(env->errmsg, "elvish") != NULL, "%s", env->errmsg);
	cfg.language = "english";
	cfg.max_df_ratio = 0.0f;
	CHECK(isrf_text_begin(env, &cfg, 3, &f) == ISRF_ERR_INVALID);
	cfg.max_df_ratio = 0.5f;
	cfg.min_df = 0;
	CHECK(isrf_text_begin(env, &cfg, 3, &f) == ISRF_ERR_INVALID);
	cfg.min_df = 1;
	CHECK(isrf_text_begin(env, &cfg, 3, &f) == ISRF_OK);
	CHECK(isrf_text_add(f, 3, "x", 1, 1.0f) == ISRF_ERR_INVALID);
	CHECK(isrf_text_add(f, -1, "x", 1, 1.0f) == ISRF_ERR_INVALID);
	CHECK(isrf_text_add(f, 0, "x", 1, -1.0f) == ISRF_ERR_INVALID);
	CHECK(isrf_text_add(f, 0, "x", 1, NAN) == ISRF_ERR_INVALID);
	CHECK(isrf_text_add(f, 0, NULL, 5, 1.0f) == ISRF_ERR_INVALID);
	isrf_text_abort(f);
	isrf_text_abort(NULL);
}

static bool test_cancel_now = false;

static bool
test_cancelled(void *ctx)
{
	(void) ctx;
	return test_cancel_now;
}

/* A cancel request reaches a featurizer fed many pieces. */
static void
test_cancel(IsrfEnv *env)
{
	IsrfTextConfig cfg;
	IsrfTextFeaturizer *f;
	IsrfStatus	st = ISRF_OK;
	int			i;

	isrf_text_config_default(&cfg);
	CHECK(isrf_text_begin(env, &cfg, 10, &f) == ISRF_OK);
	env->cancelled = test_cancelled;
	test_cancel_now = true;
	for (i = 0; i < 10000 && st == ISRF_OK; i++)
		st = isrf_text_add(f, i % 10, "word", 4, 1.0f);
	CHECK(st == ISRF_ERR_CANCELLED);
	env->cancelled = NULL;
	test_cancel_now = false;
	isrf_text_abort(f);
}

int
main(void)
{
	IsrfEnv		env;

	isrf_env_init_malloc(&env);
	test_tokenizer(&env);
	test_tfidf_values(&env);
	test_weights_and_order(&env);
	test_df_filter(&env);
	test_errors(&env);
	test_cancel(&env);
	UNIT_END("test_text");
}
