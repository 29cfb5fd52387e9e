/*
 * test_semantic_features.c
 *	  Unit tests of the semantic-feature pipeline: one shared space for items
 *	  and described users (a user whose description equals an item's text
 *	  gets that item's feature), history means over TRAIN items only, zero
 *	  rows for items without text, counts of unknown pieces, the switch for
 *	  user text, and precomputed embeddings with missing rows.
 */
#include "features/semantic_features.h"
#include "unit.h"

#include <string.h>

#define N_ROWS 10

static const int64_t row_user[N_ROWS] = {1, 1, 1, 1, 2, 2, 3, 3, 3, 4};
static const int64_t row_item[N_ROWS] = {10, 20, 30, 40, 50, 60, 10, 50, 60, 80};
static const double row_order[N_ROWS] = {1, 2, 3, 4, 1, 2, 1, 2, 3, 1};
static const int64_t catalogue[] = {10, 20, 30, 40, 50, 60, 70, 80};

#define PIECE(i, s) {i, s, sizeof(s) - 1, 1.0f}
static const IsrfTextPiece item_text[] = {
	PIECE(10, "red apple fruit"),
	PIECE(20, "green apple fruit"),
	PIECE(30, "blue ocean water"),
	PIECE(40, "deep ocean fish"),
	PIECE(50, "fast car engine"),
	PIECE(60, "slow car wheel"),
	PIECE(70, "guitar music song"),
	PIECE(999, "unknown item text"),
};
static const IsrfTextPiece user_text[] = {
	PIECE(3, "guitar music song"),
	PIECE(999, "unknown user text"),
};

static void
make_corpus(IsrfCorpus *c)
{
	memset(c, 0, sizeof(*c));
	c->rows.n = N_ROWS;
	c->rows.user_id = row_user;
	c->rows.item_id = row_item;
	c->rows.order = row_order;
	c->catalogue_ids = catalogue;
	c->n_catalogue = 8;
	c->item_text = item_text;
	c->n_item_text = 8;
	c->user_text = user_text;
	c->n_user_text = 2;
}

static bool
row_is_zero(const float *r, int d)
{
	int			j;

	for (j = 0; j < d; j++)
		if (r[j] != 0.0f)
			return false;
	return true;
}

/* largest |a - (b + c) / 2| */
static double
mean2_diff(const float *a, const float *b, const float *c, int d)
{
	double		w = 0;
	int			j;

	for (j = 0; j < d; j++)
		if (fabs(a[j] - (b[j] + c[j]) / 2.0) > w)
			w = fabs(a[j] - (b[j] + c[j]) / 2.0);
	return w;
}

static void
test_text(IsrfEnv *env, IsrfBackend *be, const IsrfCorpus *c, const IsrfDataset *ds)
{
	IsrfSemanticConfig cfg;
	IsrfSemantic s,
				s2;
	int			dm = 4;
	int32_t		i10 = isrf_dataset_item_index(ds, 10),
				i20 = isrf_dataset_item_index(ds, 20),
				i30 = isrf_dataset_item_index(ds, 30),
				i40 = isrf_dataset_item_index(ds, 40),
				i70 = isrf_dataset_item_index(ds, 70),
				i80 = isrf_dataset_item_index(ds, 80);
	int32_t		u1 = isrf_dataset_user_index(ds, 1),
				u3 = isrf_dataset_user_index(ds, 3),
				u4 = isrf_dataset_user_index(ds, 4);

	isrf_semantic_config_default(&cfg);
	CHECK(cfg.dm == 128 && cfg.use_user_text);
	cfg.dm = dm;
	cfg.text.min_df = 1;		/* tiny corpus: keep every term */
	cfg.text.max_df_ratio = 1.0f;
	CHECK(isrf_semantic_build(env, be, c, ds, &cfg, &s) == ISRF_OK);
	CHECK(s.n_items == 8 && s.n_users == 4 && s.dm == dm);
	CHECK(s.n_items_with_text == 7);
	CHECK(s.n_users_with_description == 1);
	CHECK(s.n_users_from_history == 2);
	CHECK(s.n_users_without == 1);
	CHECK(s.n_unknown_item_text == 1 && s.n_unknown_user_text == 1);
	CHECK(s.explained > 0);

	/* items without text have no feature; others do */
	CHECK(row_is_zero(s.item + (size_t) i80 * dm, dm));
	CHECK(!row_is_zero(s.item + (size_t) i10 * dm, dm));

	/*
	 * the items' TF-IDF rows: one per item, of unit length where there is
	 * text, empty where there is none; columns ascending within a row and
	 * renumbered to the ones used (every column of 0..n_cols-1 is)
	 */
	{
		const IsrfCsr *t = &s.item_text;
		bool	   *used;
		int32_t		r,
					p,
					n_used = 0;

		CHECK(t->rowptr != NULL && t->n_rows == 8 && t->nnz > 0 && t->n_cols > 0 &&
			  t->n_cols <= cfg.text.hash_dim && isrf_csr_validate(env, t) == ISRF_OK);
		used = calloc(t->n_cols, sizeof(bool));
		for (r = 0; r < 8; r++)
		{
			double		ss = 0.0;

			for (p = t->rowptr[r]; p < t->rowptr[r + 1]; p++)
			{
				ss += (double) t->val[p] * t->val[p];
				CHECK(p == t->rowptr[r] || t->col[p] > t->col[p - 1]);
				if (!used[t->col[p]])
					n_used++;
				used[t->col[p]] = true;
			}
			CHECK_MSG(r == i80 ? ss == 0.0 : fabs(ss - 1.0) < 1e-5, "item row %d: squared length %g", r, ss);
		}
		CHECK(n_used == t->n_cols);
		free(used);
	}

	/* one space: identical text gives the identical feature */
	CHECK(s.user_source[u3] == ISRF_USER_FEATURE_DESCRIPTION);
	CHECK(unit_max_abs_diff(s.user + (size_t) u3 * dm, s.item + (size_t) i70 * dm, dm) < 1e-6);

	/* history mean over train items 10 and 20 only, never 30 (valid) or 40 (test) */
	CHECK(s.user_source[u1] == ISRF_USER_FEATURE_HISTORY);
	CHECK_MSG(mean2_diff(s.user + (size_t) u1 * dm, s.item + (size_t) i10 * dm,
						 s.item + (size_t) i20 * dm, dm) < 1e-6, "user 1 is not the mean of its train items");
	CHECK(mean2_diff(s.user + (size_t) u1 * dm, s.item + (size_t) i30 * dm,
					 s.item + (size_t) i40 * dm, dm) > 1e-3);
	CHECK(s.user_source[u4] == ISRF_USER_FEATURE_NONE);
	CHECK(row_is_zero(s.user + (size_t) u4 * dm, dm));

	/* deterministic */
	CHECK(isrf_semantic_build(env, be, c, ds, &cfg, &s2) == ISRF_OK);
	CHECK(memcmp(s.item, s2.item, sizeof(float) * 8 * dm) == 0);
	CHECK(memcmp(s.user, s2.user, sizeof(float) * 4 * dm) == 0);
	isrf_semantic_free(env, &s2);

	/* user text switched off: user 3 falls back to its train item (10) */
	cfg.use_user_text = false;
	CHECK(isrf_semantic_build(env, be, c, ds, &cfg, &s2) == ISRF_OK);
	CHECK(s2.n_users_with_description == 0 && s2.n_users_from_history == 3);
	CHECK(s2.n_ignored_user_text == 1 && s2.n_unknown_user_text == 1);
	CHECK(s2.user_source[u3] == ISRF_USER_FEATURE_HISTORY);
	CHECK(unit_max_abs_diff(s2.user + (size_t) u3 * dm, s2.item + (size_t) i10 * dm, dm) < 1e-6);
	isrf_semantic_free(env, &s2);

	cfg.dm = 0;
	CHECK(isrf_semantic_build(env, be, c, ds, &cfg, &s2) == ISRF_ERR_INVALID);
	isrf_semantic_free(env, &s);
}

static void
test_embeddings(IsrfEnv *env, IsrfBackend *be, const IsrfCorpus *c, const IsrfDataset *ds)
{
	/* rank-2 embeddings in 6 dimensions: a 2-d PCA keeps every distance */
	float		u[6] = {1, 2, 0, -1, 0.5f, 3},
				v[6] = {0, 1, -2, 1, 1, -0.5f};
	float		emb[8 * 6];
	unsigned long long seed = 3;
	IsrfSemanticConfig cfg;
	IsrfSemantic s;
	int			i,
				j,
				dm = 2;
	int32_t		i10 = isrf_dataset_item_index(ds, 10),
				i20 = isrf_dataset_item_index(ds, 20),
				i40 = isrf_dataset_item_index(ds, 40),
				u1 = isrf_dataset_user_index(ds, 1),
				u3 = isrf_dataset_user_index(ds, 3);
	double		worst = 0;

	for (i = 0; i < 8; i++)
	{
		float		a = 3 * unit_rand_uniform(&seed),
					b = 3 * unit_rand_uniform(&seed);

		for (j = 0; j < 6; j++)
			emb[i * 6 + j] = a * u[j] + b * v[j];
	}
	emb[i40 * 6 + 2] = NAN;		/* missing */

	isrf_semantic_config_default(&cfg);
	cfg.dm = dm;
	cfg.item_embeddings = emb;
	cfg.embedding_dim = 6;
	CHECK(isrf_semantic_build(env, be, c, ds, &cfg, &s) == ISRF_OK);
	CHECK(s.n_items_with_text == 7);
	CHECK(s.item_text.rowptr == NULL);	/* no words from embeddings */
	CHECK(row_is_zero(s.item + (size_t) i40 * dm, dm));
	for (i = 0; i < 8; i++)
		for (j = 0; j < 8; j++)
		{
			double		de = 0,
						dp = 0;
			int			q;

			if (i == i40 || j == i40)
				continue;
			for (q = 0; q < 6; q++)
				de += (double) (emb[i * 6 + q] - emb[j * 6 + q]) * (emb[i * 6 + q] - emb[j * 6 + q]);
			for (q = 0; q < dm; q++)
				dp += (double) (s.item[i * dm + q] - s.item[j * dm + q]) *
					(s.item[i * dm + q] - s.item[j * dm + q]);
			if (fabs(sqrt(de) - sqrt(dp)) > worst)
				worst = fabs(sqrt(de) - sqrt(dp));
		}
	CHECK_MSG(worst < 1e-3, "PCA of rank-2 embeddings changed a distance by %g", worst);
	/* user text cannot join an embedding space: everyone from history */
	CHECK(s.n_users_with_description == 0 && s.n_ignored_user_text == 1);
	CHECK(s.user_source[u3] == ISRF_USER_FEATURE_HISTORY);
	CHECK(mean2_diff(s.user + (size_t) u1 * dm, s.item + (size_t) i10 * dm,
					 s.item + (size_t) i20 * dm, dm) < 1e-5);
	isrf_semantic_free(env, &s);

	/* user embeddings in the same space join the PCA: u3's equals item 10's */
	{
		float	   *uemb = malloc(sizeof(float) * (size_t) ds->n_users * 6);

		for (i = 0; i < ds->n_users * 6; i++)
			uemb[i] = NAN;
		memcpy(uemb + (size_t) u3 * 6, emb + (size_t) i10 * 6, sizeof(float) * 6);
		cfg.user_embeddings = uemb;
		CHECK(isrf_semantic_build(env, be, c, ds, &cfg, &s) == ISRF_OK);
		CHECK(s.n_items_with_text == 7 && s.n_users_with_description == 1 && s.n_ignored_user_text == 0);
		CHECK(s.user_source[u3] == ISRF_USER_FEATURE_DESCRIPTION);
		CHECK(s.user_source[u1] == ISRF_USER_FEATURE_HISTORY);
		worst = 0;
		for (j = 0; j < dm; j++)
			worst = fmax(worst, fabs(s.user[(size_t) u3 * dm + j] - s.item[(size_t) i10 * dm + j]));
		CHECK_MSG(worst < 1e-4, "a user embedding equal to an item's got another feature (%g)", worst);
		isrf_semantic_free(env, &s);

		/* switched off, they are ignored like user text */
		cfg.use_user_text = false;
		CHECK(isrf_semantic_build(env, be, c, ds, &cfg, &s) == ISRF_OK);
		CHECK(s.n_users_with_description == 0 && s.user_source[u3] == ISRF_USER_FEATURE_HISTORY);
		isrf_semantic_free(env, &s);
		cfg.use_user_text = true;
		cfg.user_embeddings = NULL;
		free(uemb);
	}

	cfg.embedding_dim = 0;
	CHECK(isrf_semantic_build(env, be, c, ds, &cfg, &s) == ISRF_ERR_INVALID);
}

int
main(void)
{
	IsrfEnv		env;
	IsrfBackend *be;
	IsrfCorpus	c;
	IsrfDataset ds;

	isrf_env_init_malloc(&env);
	if (isrf_cpu_backend_create(&env, &be) != ISRF_OK)
		return 1;
	make_corpus(&c);
	if (isrf_dataset_build(&env, &c.rows, c.catalogue_ids, c.n_catalogue, &ds) != ISRF_OK)
	{
		fprintf(stderr, "dataset: %s\n", env.errmsg);
		return 1;
	}
	CHECK(ds.n_items == 8 && ds.n_users == 4);
	test_text(&env, be, &c, &ds);
	test_embeddings(&env, be, &c, &ds);
	isrf_dataset_free(&env, &ds);
	isrf_backend_close(be);
	UNIT_END("test_semantic_features");
}
