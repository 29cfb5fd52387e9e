/*
 * test_semantic_ids.c
 *	  Unit tests of k-means and semantic IDs: a hand-checked case, a plain
 *	  double-precision Lloyd reference, empty-cluster re-seeding, residual
 *	  k-means codes (nearest centroids, residual energy, unique codes with
 *	  the de-dup level, all-zero items), determinism, and the code trie.
 */
#include "model/semantic_ids.h"
#include "unit.h"

#include <string.h>

/* Plain Lloyd in double from given centroids, re-seeding like the engine. */
static int
ref_lloyd(const float *x, int n, int dim, int k, const float *init, int max_iters,
		  double *centers, int *labels)
{
	double	   *dist = malloc(sizeof(double) * n);
	double	   *sums = malloc(sizeof(double) * k * dim);
	int		   *counts = malloc(sizeof(int) * k);
	int			it,
				i,
				j,
				c;

	for (i = 0; i < k * dim; i++)
		centers[i] = init[i];
	for (i = 0; i < n; i++)
		labels[i] = -1;
	for (it = 0;; it++)
	{
		int			changed = 0;

		for (i = 0; i < n; i++)
		{
			int			best = -1;
			double		bd = 0.0;

			for (c = 0; c < k; c++)
			{
				double		d = 0.0;

				for (j = 0; j < dim; j++)
				{
					double		t = x[i * dim + j] - centers[c * dim + j];

					d += t * t;
				}
				if (best < 0 || d < bd)
				{
					best = c;
					bd = d;
				}
			}
			changed += labels[i] != best;
			labels[i] = best;
			dist[i] = bd;
		}
		if ((it > 0 && changed == 0) || it == max_iters)
			break;
		memset(sums, 0, sizeof(double) * k * dim);
		memset(counts, 0, sizeof(int) * k);
		for (i = 0; i < n; i++)
		{
			for (j = 0; j < dim; j++)
				sums[labels[i] * dim + j] += x[i * dim + j];
			counts[labels[i]]++;
		}
		for (c = 0; c < k; c++)
		{
			int			far = -1;

			if (counts[c] > 0)
				continue;
			for (i = 0; i < n; i++)
				if (counts[labels[i]] > 1 && dist[i] > 0 && (far < 0 || dist[i] > dist[far]))
					far = i;
			if (far < 0)
				continue;
			for (j = 0; j < dim; j++)
			{
				sums[labels[far] * dim + j] -= x[far * dim + j];
				sums[c * dim + j] = x[far * dim + j];
			}
			counts[labels[far]]--;
			counts[c] = 1;
			labels[far] = c;
			dist[far] = 0;
		}
		for (c = 0; c < k; c++)
			if (counts[c] > 0)
				for (j = 0; j < dim; j++)
					centers[c * dim + j] = sums[c * dim + j] / counts[c];
	}
	free(dist);
	free(sums);
	free(counts);
	return it;
}

/* Two obvious groups of three points: the answer is known by hand. */
static void
test_kmeans_hand(IsrfEnv *env, IsrfBackend *be)
{
	const float x[] = {0, 0, 0, 1, 1, 0, 10, 10, 10, 11, 11, 10};
	const float init[] = {0, 0, 0, 1};
	float		c[4];
	int32_t		lab[6];
	IsrfKmeansConfig cfg;
	IsrfKmeansStats ks;
	int			i;

	isrf_kmeans_config_default(&cfg);
	cfg.tol = 0.0;
	CHECK(isrf_kmeans(env, be, x, 6, 2, 2, &cfg, init, c, lab, &ks) == ISRF_OK);
	for (i = 0; i < 6; i++)
		CHECK_MSG(lab[i] == (i < 3 ? 0 : 1), "point %d label %d", i, lab[i]);
	CHECK_NEAR(c[0], 1.0 / 3, 1e-6);
	CHECK_NEAR(c[1], 1.0 / 3, 1e-6);
	CHECK_NEAR(c[2], 31.0 / 3, 1e-5);
	CHECK_NEAR(c[3], 31.0 / 3, 1e-5);
	CHECK(ks.converged);
	CHECK(ks.iterations == 2);
	CHECK(ks.used == 2);
	/* inertia: each group 2/3 + 2/3 + 2/3 ... exactly 4/3 per group */
	CHECK_NEAR(ks.inertia, 8.0 / 3, 1e-4);

	/* k-means++ on the same points finds the same split */
	CHECK(isrf_kmeans(env, be, x, 6, 2, 2, &cfg, NULL, c, lab, &ks) == ISRF_OK);
	CHECK(lab[0] == lab[1] && lab[1] == lab[2] && lab[3] == lab[4] &&
		  lab[4] == lab[5] && lab[0] != lab[3]);
	CHECK_NEAR(ks.inertia, 8.0 / 3, 1e-4);
}

/* An empty cluster takes the farthest point: 1-D, known answer. */
static void
test_kmeans_reseed(IsrfEnv *env, IsrfBackend *be)
{
	const float x[] = {0, 1, 2, 10, 11, 12};
	const float init[] = {0, 1000};
	float		c[2];
	int32_t		lab[6];
	IsrfKmeansConfig cfg;
	IsrfKmeansStats ks;

	isrf_kmeans_config_default(&cfg);
	cfg.tol = 0.0;
	CHECK(isrf_kmeans(env, be, x, 6, 1, 2, &cfg, init, c, lab, &ks) == ISRF_OK);
	CHECK(ks.reseeded == 1);
	CHECK_NEAR(c[0], 1.0, 1e-6);
	CHECK_NEAR(c[1], 11.0, 1e-6);
	CHECK(lab[0] == 0 && lab[2] == 0 && lab[3] == 1 && lab[5] == 1);
	CHECK(ks.used == 2);

	/* fewer distinct points than clusters: still terminates, no error */
	{
		const float dup[] = {3, 3, 3, 3, 7, 7};
		float		c3[3];

		CHECK(isrf_kmeans(env, be, dup, 6, 1, 3, &cfg, NULL, c3, lab, &ks) == ISRF_OK);
		CHECK(ks.used == 2);
		CHECK(lab[0] == lab[3] && lab[4] == lab[5] && lab[0] != lab[4]);
	}
}

/* Against the double-precision reference, from the same starting centroids. */
static void
test_kmeans_reference(IsrfEnv *env, IsrfBackend *be)
{
	unsigned long long seed = 7;
	int			n = 400,
				dim = 8,
				k = 9,
				i,
				j,
				mism = 0;
	float	   *x = malloc(sizeof(float) * n * dim);
	float	   *c = malloc(sizeof(float) * k * dim);
	double	   *rc = malloc(sizeof(double) * k * dim);
	int32_t    *lab = malloc(sizeof(int32_t) * n);
	int		   *rlab = malloc(sizeof(int) * n);
	IsrfKmeansConfig cfg;
	IsrfKmeansStats ks;
	int			rit;
	double		worst = 0.0;

	/* loose blobs around 5 centres, so clusters are not trivial */
	for (i = 0; i < n; i++)
		for (j = 0; j < dim; j++)
			x[i * dim + j] = 3.0f * (float) ((i % 5) == j % 5) + unit_rand_uniform(&seed);
	isrf_kmeans_config_default(&cfg);
	cfg.tol = 0.0;
	cfg.max_iters = 100;
	cfg.block_rows = 64;		/* several blocks */
	CHECK(isrf_kmeans(env, be, x, n, dim, k, &cfg, x, c, lab, &ks) == ISRF_OK);
	rit = ref_lloyd(x, n, dim, k, x, 100, rc, rlab);
	for (i = 0; i < n; i++)
		mism += lab[i] != rlab[i];
	for (i = 0; i < k * dim; i++)
		if (fabs(c[i] - rc[i]) > worst)
			worst = fabs(c[i] - rc[i]);
	CHECK_MSG(mism == 0, "%d labels differ from the reference", mism);
	CHECK_MSG(worst < 1e-4, "centroids differ by %g", worst);
	CHECK_MSG(ks.iterations == rit, "iterations %d vs %d", ks.iterations, rit);
	CHECK(ks.converged);

	/* k-means++: every label is the nearest returned centroid */
	cfg.seed = 99;
	CHECK(isrf_kmeans(env, be, x, n, dim, k, &cfg, NULL, c, lab, &ks) == ISRF_OK);
	mism = 0;
	for (i = 0; i < n; i++)
	{
		double		own = 0.0,
					best = 1e300;
		int			cc;

		for (cc = 0; cc < k; cc++)
		{
			double		d = 0.0;

			for (j = 0; j < dim; j++)
				d += (x[i * dim + j] - c[cc * dim + j]) * (double) (x[i * dim + j] - c[cc * dim + j]);
			if (d < best)
				best = d;
			if (cc == lab[i])
				own = d;
		}
		mism += own > best + 1e-4;
	}
	CHECK_MSG(mism == 0, "%d points not at their nearest centroid", mism);
	CHECK(ks.used == k);

	/* and the same k-means++ run again is bitwise the same */
	{
		float	   *c2 = malloc(sizeof(float) * k * dim);
		int32_t    *lab2 = malloc(sizeof(int32_t) * n);

		CHECK(isrf_kmeans(env, be, x, n, dim, k, &cfg, NULL, c2, lab2, NULL) == ISRF_OK);
		CHECK(memcmp(c, c2, sizeof(float) * k * dim) == 0);
		CHECK(memcmp(lab, lab2, sizeof(int32_t) * n) == 0);
		free(c2);
		free(lab2);
	}
	free(x);
	free(c);
	free(rc);
	free(lab);
	free(rlab);
}

static void
test_kmeans_errors(IsrfEnv *env, IsrfBackend *be)
{
	float		x[] = {0, 1, 2, NAN};
	float		c[4];
	int32_t		lab[4];
	IsrfKmeansConfig cfg;

	isrf_kmeans_config_default(&cfg);
	CHECK(isrf_kmeans(env, be, x, 4, 1, 5, &cfg, NULL, c, lab, NULL) == ISRF_ERR_INVALID);
	CHECK(strstr(env->errmsg, "5") != NULL);
	CHECK(isrf_kmeans(env, be, x, 4, 1, 2, &cfg, NULL, c, lab, NULL) == ISRF_ERR_INVALID);
	CHECK_MSG(strstr(env->errmsg, "row 3") != NULL, "%s", env->errmsg);
}

/* Residual k-means: codes, residual energy, uniqueness, zero items. */
static void
test_semid_build(IsrfEnv *env, IsrfBackend *be)
{
	unsigned long long seed = 11;
	int			n = 1500,
				dim = 12,
				n_zero = 5,
				i,
				j,
				l;
	float	   *x = malloc(sizeof(float) * n * dim);
	float	   *res = malloc(sizeof(float) * n * dim);
	IsrfSemIdConfig cfg;
	IsrfSemIds	s,
				s2;
	IsrfTrie	trie;
	int			bad_near = 0,
				bad_range = 0,
				L;

	for (i = 0; i < n * dim; i++)
		x[i] = unit_rand_uniform(&seed);
	/* items 100, 400, 800, 1200, 1499 have no features */
	{
		const int	zeros[] = {100, 400, 800, 1200, 1499};

		for (i = 0; i < n_zero; i++)
			memset(x + zeros[i] * dim, 0, sizeof(float) * dim);
	}
	isrf_semid_config_default(&cfg);
	cfg.levels = 3;
	cfg.codebook_size = 8;
	L = cfg.levels;
	CHECK(isrf_semid_build(env, be, x, n, dim, &cfg, &s) == ISRF_OK);
	CHECK(s.levels == 3 && s.n_items == n && s.dim == dim);
	CHECK(s.n_zero_items == n_zero);
	for (l = 0; l < L; l++)
		CHECK(s.codebook_sizes[l] == 8);

	/* every level's code is the nearest centroid of that level's residual */
	memcpy(res, x, sizeof(float) * n * dim);
	for (l = 0; l < L; l++)
	{
		const float *cb = s.codebooks + isrf_semid_codebook_offset(&s, l);
		double		energy = 0.0;

		for (i = 0; i < n; i++)
		{
			int			code = s.codes[i * (L + 1) + l],
						cc;
			double		own = 0.0,
						best = 1e300;

			if (code < 0 || code >= s.codebook_sizes[l])
			{
				bad_range++;
				continue;
			}
			for (cc = 0; cc < s.codebook_sizes[l]; cc++)
			{
				double		d = 0.0;

				for (j = 0; j < dim; j++)
				{
					double		t = res[i * dim + j] - cb[cc * dim + j];

					d += t * t;
				}
				if (d < best)
					best = d;
				if (cc == code)
					own = d;
			}
			bad_near += own > best + 1e-4;
			for (j = 0; j < dim; j++)
			{
				res[i * dim + j] -= cb[code * dim + j];
				energy += (double) res[i * dim + j] * res[i * dim + j];
			}
		}
		CHECK_MSG(fabs(energy - s.inertia[l]) <= 1e-6 * (1 + energy),
				  "level %d energy %g vs %g", l, energy, s.inertia[l]);
		if (l > 0)
			CHECK(s.inertia[l] < s.inertia[l - 1]);
	}
	CHECK(bad_range == 0);
	CHECK_MSG(bad_near == 0, "%d codes are not the nearest centroid", bad_near);

	/* de-dup: full codes unique, groups numbered 0.. by item index */
	{
		int			max_group = 0,
					collided = 0,
					prefixes = 0,
					dup_full = 0,
					bad_order = 0;

		for (i = 0; i < n; i++)
		{
			int			group = 0,
						first = 1;

			for (j = 0; j < n; j++)
			{
				if (memcmp(s.codes + i * (L + 1), s.codes + j * (L + 1), sizeof(int32_t) * L) != 0)
					continue;
				group++;
				if (j < i)
					first = 0;
				if (j != i && s.codes[i * (L + 1) + L] == s.codes[j * (L + 1) + L])
					dup_full++;
				if (j < i && s.codes[j * (L + 1) + L] >= s.codes[i * (L + 1) + L])
					bad_order++;
			}
			if (group > max_group)
				max_group = group;
			collided += group > 1;
			prefixes += first;
		}
		CHECK(dup_full == 0);
		CHECK(bad_order == 0);
		CHECK(s.max_collisions == max_group);
		CHECK(s.codebook_sizes[L] == max_group);
		CHECK(s.n_collided == collided);
		CHECK(s.n_prefixes == prefixes);
		printf("  semid 1500x12, 3x8: %d prefixes, %d collided, max group %d\n",
			   prefixes, collided, max_group);
	}
	/* the no-feature items share a prefix and get de-dup codes 0..4 */
	{
		const int	zeros[] = {100, 400, 800, 1200, 1499};

		for (i = 0; i < n_zero; i++)
		{
			CHECK(memcmp(s.codes + zeros[0] * (L + 1), s.codes + zeros[i] * (L + 1),
						 sizeof(int32_t) * L) == 0);
		}
		/* other items may share their prefix and come first in index order */
		for (i = 1; i < n_zero; i++)
			CHECK(s.codes[zeros[i] * (L + 1) + L] > s.codes[zeros[i - 1] * (L + 1) + L]);
	}

	/* deterministic */
	CHECK(isrf_semid_build(env, be, x, n, dim, &cfg, &s2) == ISRF_OK);
	CHECK(memcmp(s.codes, s2.codes, sizeof(int32_t) * n * (L + 1)) == 0);
	CHECK(memcmp(s.codebooks, s2.codebooks, sizeof(float) * L * 8 * dim) == 0);
	isrf_semid_free(env, &s2);
	/* a different seed gives different codes */
	cfg.kmeans.seed = 12345;
	CHECK(isrf_semid_build(env, be, x, n, dim, &cfg, &s2) == ISRF_OK);
	CHECK(memcmp(s.codes, s2.codes, sizeof(int32_t) * n * (L + 1)) != 0);
	isrf_semid_free(env, &s2);

	/* the trie holds exactly the items */
	CHECK(isrf_semid_trie(env, &s, &trie) == ISRF_OK);
	CHECK(trie.levels == L + 1 && trie.n_items == n);
	CHECK(trie.n_leaves[0] == n);
	CHECK(trie.level_start[L + 2] - trie.level_start[L + 1] == n);
	{
		int			miss = 0;
		int32_t		probe[4];

		for (i = 0; i < n; i++)
			miss += isrf_trie_lookup(&trie, s.codes + i * (L + 1)) != i;
		CHECK_MSG(miss == 0, "%d items not found by their code", miss);
		memcpy(probe, s.codes, sizeof(probe));
		probe[L] = s.codebook_sizes[L] - 1 + 1;
		CHECK(isrf_trie_lookup(&trie, probe) == -1);
	}
	isrf_trie_free(env, &trie);
	isrf_semid_free(env, &s);
	free(x);
	free(res);
}

/* Fewer items than the codebook: the codebook shrinks to the item count. */
static void
test_semid_tiny(IsrfEnv *env, IsrfBackend *be)
{
	const float x[] = {1, 0, 0, 1, 1, 1};
	IsrfSemIdConfig cfg;
	IsrfSemIds	s;
	int			i;

	isrf_semid_config_default(&cfg);
	CHECK(isrf_semid_build(env, be, x, 3, 2, &cfg, &s) == ISRF_OK);
	CHECK(s.codebook_sizes[0] == 3 && s.codebook_sizes[2] == 3);
	CHECK(s.codebook_sizes[3] == 1);
	CHECK(s.n_prefixes == 3 && s.n_collided == 0);
	for (i = 0; i < 3; i++)
		CHECK(s.codes[i * 4 + 3] == 0);
	CHECK(s.codes[0] != s.codes[4] && s.codes[4] != s.codes[8] && s.codes[0] != s.codes[8]);
	isrf_semid_free(env, &s);

	cfg.levels = 0;
	CHECK(isrf_semid_build(env, be, x, 3, 2, &cfg, &s) == ISRF_ERR_INVALID);
	cfg.levels = 2;
	cfg.codebook_size = 0;
	CHECK(isrf_semid_build(env, be, x, 3, 2, &cfg, &s) == ISRF_ERR_INVALID);
	CHECK(strstr(env->errmsg, "codebook") != NULL);
}

int
main(void)
{
	IsrfEnv		env;
	IsrfBackend *be;

	isrf_env_init_malloc(&env);
	if (isrf_cpu_backend_create(&env, &be) != ISRF_OK)
	{
		fprintf(stderr, "no backend: %s\n", env.errmsg);
		return 1;
	}
	test_kmeans_hand(&env, be);
	test_kmeans_reseed(&env, be);
	test_kmeans_reference(&env, be);
	test_kmeans_errors(&env, be);
	test_semid_build(&env, be);
	test_semid_tiny(&env, be);
	isrf_backend_close(be);
	UNIT_END("test_semantic_ids");
}
