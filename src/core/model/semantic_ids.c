/*
 * model/semantic_ids.c
 *	  Semantic IDs: k-means on a compute backend, residual k-means over the
 *	  item features, and the de-dup level that makes every code unique.
 *
 * Distances are computed as one gemm per block of rows on augmented
 * matrices, X' = [x, 1] and C' = [2c, -||c||^2], so that X' C'^T holds
 * 2 x.c - ||c||^2 = ||x||^2 - dist^2; the nearest centroid is then the
 * row-wise top-1 of that block, taken on the backend too, and only the
 * winners travel back to the host.  Centroid sums and the residuals are
 * O(n d) host loops, light next to the O(n k d) distance products.
 */
#include "model/semantic_ids.h"
#include "model/beam_search.h"

#include <math.h>
#include <string.h>

#define SEMID_MAX_LEVELS 16

/* splitmix64: small, seedable and the same everywhere */
static uint64_t
semid_rng_next(uint64_t *state)
{
	uint64_t	z = (*state += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

/* uniform in [0, 1) with 53 bits */
static double
semid_rng_double(uint64_t *state)
{
	return (double) (semid_rng_next(state) >> 11) * (1.0 / 9007199254740992.0);
}

void
isrf_kmeans_config_default(IsrfKmeansConfig *cfg)
{
	cfg->max_iters = 50;
	cfg->tol = 1e-4;
	cfg->seed = 1;
	cfg->block_rows = 8192;
}

void
isrf_semid_config_default(IsrfSemIdConfig *cfg)
{
	cfg->levels = 3;
	cfg->codebook_size = 256;
	isrf_kmeans_config_default(&cfg->kmeans);
}

/* Working state of one k-means run; device pointers are backend memory. */
typedef struct SemidKm
{
	IsrfEnv    *env;
	IsrfBackend *be;
	const float *x;				/* host, n x dim */
	int32_t		n;
	int32_t		dim;
	int32_t		k;
	int32_t		block;
	double	   *xnorm;			/* host, n */
	float	   *ca_host;		/* host, k x (dim + 1) */
	float	   *dist;			/* host, n: squared distance to own centroid */
	int32_t    *blk_idx;		/* host, block */
	float	   *blk_val;		/* host, block */
	float	   *d_xa;			/* dev, n x (dim + 1) */
	float	   *d_ca;			/* dev, k x (dim + 1) */
	float	   *d_scores;		/* dev, block x k */
	int32_t    *d_idx;			/* dev, block */
	float	   *d_val;			/* dev, block */
} SemidKm;

static void
semid_km_release(SemidKm *km)
{
	IsrfBackend *be = km->be;

	isrf_free(km->env, km->xnorm);
	isrf_free(km->env, km->ca_host);
	isrf_free(km->env, km->dist);
	isrf_free(km->env, km->blk_idx);
	isrf_free(km->env, km->blk_val);
	be->mem_free(be, km->d_xa);
	be->mem_free(be, km->d_ca);
	be->mem_free(be, km->d_scores);
	be->mem_free(be, km->d_idx);
	be->mem_free(be, km->d_val);
}

/* Allocate the buffers and upload X' = [x, 1]. */
static IsrfStatus
semid_km_setup(SemidKm *km)
{
	IsrfEnv    *env = km->env;
	IsrfBackend *be = km->be;
	size_t		w = (size_t) km->dim + 1;
	float	   *xa_host;
	int32_t		i,
				j;
	IsrfStatus	st;

	km->xnorm = isrf_alloc(env, sizeof(double) * (size_t) km->n);
	km->ca_host = isrf_alloc(env, sizeof(float) * (size_t) km->k * w);
	km->dist = isrf_alloc(env, sizeof(float) * (size_t) km->n);
	km->blk_idx = isrf_alloc(env, sizeof(int32_t) * (size_t) km->block);
	km->blk_val = isrf_alloc(env, sizeof(float) * (size_t) km->block);
	if (!km->xnorm || !km->ca_host || !km->dist || !km->blk_idx || !km->blk_val)
		return ISRF_ERR_NOMEM;
	ISRF_TRY(be->mem_alloc(be, sizeof(float) * (size_t) km->n * w, (void **) &km->d_xa));
	ISRF_TRY(be->mem_alloc(be, sizeof(float) * (size_t) km->k * w, (void **) &km->d_ca));
	ISRF_TRY(be->mem_alloc(be, sizeof(float) * (size_t) km->block * km->k,
						   (void **) &km->d_scores));
	ISRF_TRY(be->mem_alloc(be, sizeof(int32_t) * (size_t) km->block, (void **) &km->d_idx));
	ISRF_TRY(be->mem_alloc(be, sizeof(float) * (size_t) km->block, (void **) &km->d_val));

	xa_host = isrf_alloc(env, sizeof(float) * (size_t) km->n * w);
	if (xa_host == NULL)
		return ISRF_ERR_NOMEM;
	for (i = 0; i < km->n; i++)
	{
		const float *xi = km->x + (size_t) i * km->dim;
		float	   *row = xa_host + (size_t) i * w;
		double		ss = 0.0;

		for (j = 0; j < km->dim; j++)
		{
			row[j] = xi[j];
			ss += (double) xi[j] * xi[j];
		}
		row[km->dim] = 1.0f;
		km->xnorm[i] = ss;
	}
	st = be->upload(be, km->d_xa, xa_host, sizeof(float) * (size_t) km->n * w);
	isrf_free(env, xa_host);
	return st;
}

/* Write C' = [2c, -||c||^2] for the centers and upload it. */
static IsrfStatus
semid_km_upload_centers(SemidKm *km, const float *centers)
{
	size_t		w = (size_t) km->dim + 1;
	int32_t		c,
				j;

	for (c = 0; c < km->k; c++)
	{
		const float *cc = centers + (size_t) c * km->dim;
		float	   *row = km->ca_host + (size_t) c * w;
		double		ss = 0.0;

		for (j = 0; j < km->dim; j++)
		{
			row[j] = 2.0f * cc[j];
			ss += (double) cc[j] * cc[j];
		}
		row[km->dim] = (float) -ss;
	}
	return km->be->upload(km->be, km->d_ca, km->ca_host, sizeof(float) * (size_t) km->k * w);
}

/*
 * Nearest centroid of every point (the centers must be uploaded): labels,
 * km->dist, and the inertia and number of labels that changed.
 */
static IsrfStatus
semid_km_assign(SemidKm *km, int32_t *labels, double *inertia, int64_t *changed)
{
	IsrfBackend *be = km->be;
	int			w = km->dim + 1;
	int32_t		r0,
				i;
	double		sum = 0.0;
	int64_t		ch = 0;

	for (r0 = 0; r0 < km->n; r0 += km->block)
	{
		int			m = km->n - r0 < km->block ? km->n - r0 : km->block;

		ISRF_TRY(be->gemm(be, false, true, m, km->k, w, 1.0f,
						  km->d_xa + (size_t) r0 * w, w, km->d_ca, w,
						  0.0f, km->d_scores, km->k));
		ISRF_TRY(be->topk_rows(be, m, km->k, km->d_scores, km->k, 1, false, 0,
							   km->d_idx, km->d_val));
		ISRF_TRY(be->download(be, km->blk_idx, km->d_idx, sizeof(int32_t) * (size_t) m));
		ISRF_TRY(be->download(be, km->blk_val, km->d_val, sizeof(float) * (size_t) m));
		for (i = 0; i < m; i++)
		{
			int32_t		lab = km->blk_idx[i];
			double		d;

			/* only NaN everywhere loses every comparison; inputs are checked */
			if (lab < 0 || lab >= km->k)
				return isrf_fail(km->env, ISRF_ERR_INTERNAL,
								 "k-means: no nearest centroid for point %d",
								 r0 + i);
			d = km->xnorm[r0 + i] - (double) km->blk_val[i];
			if (d < 0.0)
				d = 0.0;
			km->dist[r0 + i] = (float) d;
			sum += d;
			if (labels[r0 + i] != lab)
				ch++;
			labels[r0 + i] = lab;
		}
		ISRF_TRY(isrf_poll(km->env));
	}
	*inertia = sum;
	*changed = ch;
	return ISRF_OK;
}

/*
 * k-means++ seeding: the first center uniformly, each next one with
 * probability proportional to the squared distance to the nearest center
 * chosen so far.  Distances to a new center come from one gemm against
 * X'; when every point already sits on a center (fewer distinct points
 * than k), the lowest-index point not yet taken is used.
 */
static IsrfStatus
semid_km_seed(SemidKm *km, uint64_t seed, float *centers)
{
	IsrfEnv    *env = km->env;
	IsrfBackend *be = km->be;
	int			w = km->dim + 1;
	uint64_t	rng = seed;
	float	   *d2 = km->dist;
	float	   *dots;
	float	   *d_dots = NULL;
	bool	   *taken;
	int32_t		c,
				i,
				pick;
	IsrfStatus	st = ISRF_OK;

	dots = isrf_alloc(env, sizeof(float) * (size_t) km->n);
	taken = isrf_calloc(env, (size_t) km->n, sizeof(bool));
	if (dots == NULL || taken == NULL)
	{
		st = ISRF_ERR_NOMEM;
		goto done;
	}
	st = be->mem_alloc(be, sizeof(float) * (size_t) km->n, (void **) &d_dots);
	if (st != ISRF_OK)
		goto done;

	pick = (int32_t) (semid_rng_next(&rng) % (uint64_t) km->n);
	for (c = 0; c < km->k; c++)
	{
		const float *xp;
		double		cn = 0.0;
		int			j;

		if (c > 0)
		{
			double		total = 0.0,
						u,
						cum = 0.0;

			for (i = 0; i < km->n; i++)
				total += d2[i];
			pick = -1;
			if (total > 0.0)
			{
				u = semid_rng_double(&rng) * total;
				for (i = 0; i < km->n; i++)
				{
					if (d2[i] <= 0.0f)
						continue;
					cum += d2[i];
					pick = i;	/* the last positive one absorbs rounding */
					if (cum > u)
						break;
				}
			}
			if (pick < 0)
			{
				for (i = 0; i < km->n && taken[i]; i++)
					;
				pick = i < km->n ? i : 0;
			}
		}
		taken[pick] = true;
		xp = km->x + (size_t) pick * km->dim;
		memcpy(centers + (size_t) c * km->dim, xp, sizeof(float) * (size_t) km->dim);
		if (c == km->k - 1)
			break;

		/* dots = X' [x_pick, 0]^T: the (dim+1)th column of C' is 1 * 0 */
		for (j = 0; j < km->dim; j++)
		{
			km->ca_host[j] = xp[j];
			cn += (double) xp[j] * xp[j];
		}
		km->ca_host[km->dim] = 0.0f;
		st = be->upload(be, km->d_ca, km->ca_host, sizeof(float) * (size_t) w);
		if (st == ISRF_OK)
			st = be->gemm(be, false, true, km->n, 1, w, 1.0f, km->d_xa, w,
						  km->d_ca, w, 0.0f, d_dots, 1);
		if (st == ISRF_OK)
			st = be->download(be, dots, d_dots, sizeof(float) * (size_t) km->n);
		if (st != ISRF_OK)
			goto done;
		for (i = 0; i < km->n; i++)
		{
			double		d = km->xnorm[i] - 2.0 * dots[i] + cn;
			float		df = d > 0.0 ? (float) d : 0.0f;

			if (taken[i])
				df = 0.0f;
			if (c == 0 || df < d2[i])
				d2[i] = df;
		}
		if ((c & 15) == 15 && (st = isrf_poll(env)) != ISRF_OK)
			goto done;
	}
done:
	be->mem_free(be, d_dots);
	isrf_free(env, dots);
	isrf_free(env, taken);
	return st;
}

/*
 * Lloyd update: centers become the means of their points.  An empty
 * cluster takes the point farthest from its centroid (ties: lower index)
 * among clusters of two or more; when every such point sits on its
 * centroid there is nothing to split and the cluster stays empty.
 */
static IsrfStatus
semid_km_update(SemidKm *km, int32_t *labels, float *centers, double *sums,
				int32_t *counts, int32_t *reseeded)
{
	int32_t		n = km->n,
				dim = km->dim,
				k = km->k;
	int32_t		i,
				j,
				c;

	memset(sums, 0, sizeof(double) * (size_t) k * dim);
	memset(counts, 0, sizeof(int32_t) * (size_t) k);
	for (i = 0; i < n; i++)
	{
		const float *xi = km->x + (size_t) i * dim;
		double	   *s = sums + (size_t) labels[i] * dim;

		for (j = 0; j < dim; j++)
			s[j] += xi[j];
		counts[labels[i]]++;
	}
	for (c = 0; c < k; c++)
	{
		int32_t		far = -1;
		const float *xf;
		double	   *s;

		if (counts[c] > 0)
			continue;
		for (i = 0; i < n; i++)
			if (counts[labels[i]] > 1 && km->dist[i] > 0.0f &&
				(far < 0 || km->dist[i] > km->dist[far]))
				far = i;
		if (far < 0)
			continue;
		xf = km->x + (size_t) far * dim;
		s = sums + (size_t) labels[far] * dim;
		for (j = 0; j < dim; j++)
			s[j] -= xf[j];
		counts[labels[far]]--;
		s = sums + (size_t) c * dim;
		for (j = 0; j < dim; j++)
			s[j] = xf[j];
		counts[c] = 1;
		labels[far] = c;
		km->dist[far] = 0.0f;
		(*reseeded)++;
	}
	for (c = 0; c < k; c++)
	{
		const double *s = sums + (size_t) c * dim;
		float	   *cc = centers + (size_t) c * dim;

		if (counts[c] == 0)
			continue;
		for (j = 0; j < dim; j++)
			cc[j] = (float) (s[j] / counts[c]);
	}
	return ISRF_OK;
}

/* Reject NaN and infinity: they would poison every distance. */
static IsrfStatus
semid_check_finite(IsrfEnv *env, const char *what, const float *x, int32_t n,
				   int32_t dim)
{
	size_t		i,
				total = (size_t) n * dim;

	for (i = 0; i < total; i++)
		if (!isfinite(x[i]))
			return isrf_fail(env, ISRF_ERR_INVALID,
							 "%s: row %zu, column %zu is not a finite number",
							 what, i / (size_t) dim, i % (size_t) dim);
	return ISRF_OK;
}

IsrfStatus
isrf_kmeans(IsrfEnv *env, IsrfBackend *be, const float *x, int32_t n,
			int32_t dim, int32_t k, const IsrfKmeansConfig *cfg,
			const float *init, float *centers, int32_t *labels,
			IsrfKmeansStats *stats)
{
	SemidKm		km;
	double	   *sums = NULL;
	int32_t    *counts = NULL;
	double		inertia = 0.0,
				prev = 0.0;
	int64_t		changed = 0;
	int32_t		it,
				reseeded = 0,
				c;
	bool		converged = false;
	IsrfStatus	st;

	if (n < 1 || dim < 1)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "k-means needs at least one point of at least one dimension (got %d x %d)",
						 n, dim);
	if (k < 1 || k > n)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "k-means: cluster count %d must be between 1 and the number of points %d",
						 k, n);
	if (cfg->max_iters < 0 || !(cfg->tol >= 0.0))
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "k-means: max_iters %d and tol %g must not be negative",
						 cfg->max_iters, cfg->tol);
	ISRF_TRY(semid_check_finite(env, "k-means input", x, n, dim));
	if (init)
		ISRF_TRY(semid_check_finite(env, "k-means initial centroids", init, k, dim));

	memset(&km, 0, sizeof(km));
	km.env = env;
	km.be = be;
	km.x = x;
	km.n = n;
	km.dim = dim;
	km.k = k;
	km.block = cfg->block_rows > 0 ? cfg->block_rows : 8192;
	if (km.block > n)
		km.block = n;

	st = semid_km_setup(&km);
	if (st != ISRF_OK)
		goto done;
	sums = isrf_alloc(env, sizeof(double) * (size_t) k * dim);
	counts = isrf_alloc(env, sizeof(int32_t) * (size_t) k);
	if (sums == NULL || counts == NULL)
	{
		st = ISRF_ERR_NOMEM;
		goto done;
	}

	if (init)
		memcpy(centers, init, sizeof(float) * (size_t) k * dim);
	else if ((st = semid_km_seed(&km, cfg->seed, centers)) != ISRF_OK)
		goto done;

	for (c = 0; c < n; c++)
		labels[c] = -1;
	for (it = 0;; it++)
	{
		if ((st = semid_km_upload_centers(&km, centers)) != ISRF_OK ||
			(st = semid_km_assign(&km, labels, &inertia, &changed)) != ISRF_OK)
			goto done;
		if (it > 0 && (changed == 0 || prev - inertia <= cfg->tol * prev))
		{
			converged = true;
			break;
		}
		if (it == cfg->max_iters)
			break;
		prev = inertia;
		if ((st = semid_km_update(&km, labels, centers, sums, counts, &reseeded)) != ISRF_OK ||
			(st = isrf_poll(env)) != ISRF_OK)
			goto done;
	}

	if (stats)
	{
		stats->iterations = it;
		stats->converged = converged;
		stats->inertia = inertia;
		stats->reseeded = reseeded;
		memset(counts, 0, sizeof(int32_t) * (size_t) k);
		for (c = 0; c < n; c++)
			counts[labels[c]]++;
		stats->used = 0;
		for (c = 0; c < k; c++)
			stats->used += counts[c] > 0;
	}
done:
	isrf_free(env, sums);
	isrf_free(env, counts);
	semid_km_release(&km);
	return st;
}

/* Stable merge sort of item indices by their first `width` codes. */
void
isrf_sort_by_code(int32_t *idx, int32_t *tmp, int32_t n, const int32_t *codes,
				  int32_t stride, int32_t width)
{
	int32_t		run,
				lo;

	for (run = 1; run < n; run *= 2)
	{
		for (lo = 0; lo < n; lo += 2 * run)
		{
			int32_t		mid = lo + run < n ? lo + run : n,
						hi = lo + 2 * run < n ? lo + 2 * run : n,
						a = lo,
						b = mid,
						o = lo;

			while (a < mid && b < hi)
			{
				const int32_t *ca = codes + (size_t) idx[a] * stride;
				const int32_t *cb = codes + (size_t) idx[b] * stride;
				int32_t		t = 0;

				while (t < width && ca[t] == cb[t])
					t++;
				if (t < width && cb[t] < ca[t])
					tmp[o++] = idx[b++];
				else
					tmp[o++] = idx[a++];
			}
			while (a < mid)
				tmp[o++] = idx[a++];
			while (b < hi)
				tmp[o++] = idx[b++];
		}
		memcpy(idx, tmp, sizeof(int32_t) * (size_t) n);
	}
}

/*
 * The de-dup level: items sharing an L-level code get 0, 1, 2, ... in
 * order of item index (the sort is stable), and the statistics.
 */
static IsrfStatus
semid_dedup(IsrfEnv *env, IsrfSemIds *s)
{
	int32_t		n = s->n_items,
				L = s->levels,
				stride = L + 1;
	int32_t    *idx,
			   *tmp;
	int32_t		i,
				start;

	idx = isrf_alloc(env, sizeof(int32_t) * (size_t) n);
	tmp = isrf_alloc(env, sizeof(int32_t) * (size_t) n);
	if (idx == NULL || tmp == NULL)
	{
		isrf_free(env, idx);
		isrf_free(env, tmp);
		return ISRF_ERR_NOMEM;
	}
	for (i = 0; i < n; i++)
		idx[i] = i;
	isrf_sort_by_code(idx, tmp, n, s->codes, stride, L);

	s->n_prefixes = 0;
	s->max_collisions = 0;
	s->n_collided = 0;
	for (start = 0; start < n;)
	{
		const int32_t *c0 = s->codes + (size_t) idx[start] * stride;
		int32_t		end = start + 1;

		while (end < n &&
			   memcmp(s->codes + (size_t) idx[end] * stride, c0,
					  sizeof(int32_t) * (size_t) L) == 0)
			end++;
		for (i = start; i < end; i++)
			s->codes[(size_t) idx[i] * stride + L] = i - start;
		s->n_prefixes++;
		if (end - start > s->max_collisions)
			s->max_collisions = end - start;
		if (end - start > 1)
			s->n_collided += end - start;
		start = end;
	}
	s->codebook_sizes[L] = s->max_collisions;
	isrf_free(env, idx);
	isrf_free(env, tmp);
	return ISRF_OK;
}

size_t
isrf_semid_codebook_offset(const IsrfSemIds *s, int32_t level)
{
	size_t		off = 0;
	int32_t		l;

	for (l = 0; l < level && l < s->levels; l++)
		off += (size_t) s->codebook_sizes[l] * s->dim;
	return off;
}

void
isrf_semid_free(IsrfEnv *env, IsrfSemIds *s)
{
	isrf_free(env, s->codebook_sizes);
	isrf_free(env, s->codebooks);
	isrf_free(env, s->codes);
	isrf_free(env, s->inertia);
	isrf_free(env, s->used);
	memset(s, 0, sizeof(*s));
}

/* The levels of residual k-means; s is allocated, residual holds x. */
static IsrfStatus
semid_levels(IsrfEnv *env, IsrfBackend *be, const IsrfSemIdConfig *cfg,
			 IsrfSemIds *s, float *residual, int32_t *labels)
{
	int32_t		n = s->n_items,
				dim = s->dim,
				L = s->levels;
	int32_t		l,
				i,
				j;

	for (l = 0; l < L; l++)
	{
		IsrfKmeansConfig kc = cfg->kmeans;
		IsrfKmeansStats ks;
		float	   *cb = s->codebooks + isrf_semid_codebook_offset(s, l);
		double		energy = 0.0;
		double		t0 = isrf_now();

		kc.seed = cfg->kmeans.seed + (uint64_t) l;
		ISRF_TRY(isrf_kmeans(env, be, residual, n, dim, s->codebook_sizes[l], &kc,
							 NULL, cb, labels, &ks));
		for (i = 0; i < n; i++)
		{
			float	   *r = residual + (size_t) i * dim;
			const float *c = cb + (size_t) labels[i] * dim;

			s->codes[(size_t) i * (L + 1) + l] = labels[i];
			for (j = 0; j < dim; j++)
			{
				r[j] -= c[j];
				energy += (double) r[j] * r[j];
			}
		}
		s->inertia[l] = energy;
		s->used[l] = ks.used;
		isrf_log(env, "semantic ids: level %d: %d of %d codes used, %d iterations%s, residual energy %.6g (%.2f s)",
				 l + 1, ks.used, s->codebook_sizes[l], ks.iterations,
				 ks.converged ? "" : " (not converged)", energy,
				 isrf_now() - t0);
	}
	return ISRF_OK;
}

IsrfStatus
isrf_semid_build(IsrfEnv *env, IsrfBackend *be, const float *x, int32_t n_items,
				 int32_t dim, const IsrfSemIdConfig *cfg, IsrfSemIds *out)
{
	IsrfSemIds	s;
	float	   *residual = NULL;
	int32_t    *labels = NULL;
	int32_t		L = cfg->levels,
				k,
				l,
				i,
				j;
	IsrfStatus	st;

	memset(out, 0, sizeof(*out));
	if (n_items < 1 || dim < 1)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "semantic ids need at least one item with at least one feature (got %d x %d)",
						 n_items, dim);
	if (L < 1 || L > SEMID_MAX_LEVELS)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "semantic id levels must be between 1 and %d, not %d",
						 SEMID_MAX_LEVELS, L);
	if (cfg->codebook_size < 1)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "semantic id codebook size must be positive, not %d",
						 cfg->codebook_size);
	ISRF_TRY(semid_check_finite(env, "item features", x, n_items, dim));
	k = cfg->codebook_size < n_items ? cfg->codebook_size : n_items;

	memset(&s, 0, sizeof(s));
	s.n_items = n_items;
	s.dim = dim;
	s.levels = L;
	s.codebook_sizes = isrf_alloc(env, sizeof(int32_t) * (size_t) (L + 1));
	s.codebooks = isrf_alloc(env, sizeof(float) * (size_t) L * k * dim);
	s.codes = isrf_alloc(env, sizeof(int32_t) * (size_t) n_items * (L + 1));
	s.inertia = isrf_alloc(env, sizeof(double) * (size_t) L);
	s.used = isrf_alloc(env, sizeof(int32_t) * (size_t) L);
	residual = isrf_alloc(env, sizeof(float) * (size_t) n_items * dim);
	labels = isrf_alloc(env, sizeof(int32_t) * (size_t) n_items);
	if (!s.codebook_sizes || !s.codebooks || !s.codes || !s.inertia || !s.used ||
		!residual || !labels)
	{
		st = ISRF_ERR_NOMEM;
		goto fail;
	}
	for (l = 0; l < L; l++)
		s.codebook_sizes[l] = k;
	memcpy(residual, x, sizeof(float) * (size_t) n_items * dim);
	for (i = 0; i < n_items; i++)
	{
		const float *xi = x + (size_t) i * dim;

		for (j = 0; j < dim && xi[j] == 0.0f; j++)
			;
		s.n_zero_items += (j == dim);
	}

	if ((st = semid_levels(env, be, cfg, &s, residual, labels)) != ISRF_OK ||
		(st = semid_dedup(env, &s)) != ISRF_OK)
		goto fail;
	isrf_log(env, "semantic ids: %d items, %d distinct %d-level codes, %d items share one, largest group %d (de-dup codebook), %d items without features",
			 n_items, s.n_prefixes, L, s.n_collided, s.max_collisions,
			 s.n_zero_items);
	isrf_free(env, residual);
	isrf_free(env, labels);
	*out = s;
	return ISRF_OK;

fail:
	isrf_free(env, residual);
	isrf_free(env, labels);
	isrf_semid_free(env, &s);
	return st;
}

IsrfStatus
isrf_semid_trie(IsrfEnv *env, const IsrfSemIds *s, IsrfTrie *out)
{
	return isrf_trie_build(env, s->codes, s->n_items, s->levels + 1,
						   s->codebook_sizes, out);
}
