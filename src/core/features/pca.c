/*
 * features/pca.c
 *	  Randomized PCA (Halko, Martinsson and Tropp 2011, algorithms 4.4 and
 *	  5.1) of a sparse or dense feature matrix X (n rows x m columns), with
 *	  mean-centering kept implicit: every product with the centred matrix
 *	  Xc = X - 1 mu^T is taken as X*B - 1 (mu^T B) or X^T*Q - mu (1^T Q), so a
 *	  sparse TF-IDF matrix never becomes dense.
 *
 * With l = k + oversample directions:
 *	  Y = Xc Omega (Omega Gaussian, from the seed), Q = orth(Y)
 *	  power_iters times: Z = orth(Xc^T Q), Q = orth(Xc Z)
 *	  Z = Xc^T Q (= B^T with B = Q^T Xc), Qz = orth(Z), R = Qz^T Z,
 *	  R R^T = U S^2 U^T on the host, components V = Qz U[:, :k],
 *	  scores Xc V, explained variances S^2 / (n - 1).
 * Taking the small SVD through R (l x l, accurate to float rounding of
 * ||Z||) rather than through Z^T Z keeps weak components from losing half
 * their digits.
 *
 * Every product with an n- or m-sized operand runs on the backend (spmm for
 * the sparse X and its transpose, gemm for the rest), so the same code runs
 * on the GPU; only l x l problems are solved on the host, in double.
 *
 * orth() is Gram-Schmidt in the metric of the Gram matrix G = A^T A (l x l,
 * on the device): A T with T upper triangular, done twice (CholeskyQR2).
 * A column whose remaining norm^2 falls below PCA_RANK_TOL of the largest
 * column norm^2 is numerically dependent and becomes exactly zero, so a
 * matrix of rank r < k gives r components and zero columns after them.
 *
 * Dense input is centred explicitly as it is uploaded (it is on the host
 * anyway); the implicit form then subtracts a zero mean.
 *
 * Sparse input: columns with no entry (most of a hashed vocabulary) are
 * dropped before anything else; they carry no variance and would only make
 * the m x l buffers large.
 */
#include "features/pca.h"

#include <math.h>
#include <string.h>

/*
 * Relative norm^2 (or variance, against the first component) below which a
 * direction counts as numerically absent.  It sits at float32 rounding
 * (2^-23 ~ 1.2e-7): anything weaker is noise of the float products, anything
 * stronger is kept however weak.
 */
#define PCA_RANK_TOL 1e-7
#define PCA_MAX_K 4096
#define PCA_MAX_OVERSAMPLE 1024
#define PCA_MAX_POWER_ITERS 100
#define PCA_JACOBI_SWEEPS 60
#define PCA_DENSE_SLICE 4096
#define PCA_TWO_PI 6.283185307179586476925

void
isrf_pca_config_default(IsrfPcaConfig *cfg)
{
	cfg->k = 128;
	cfg->oversample = 10;
	cfg->power_iters = 4;
	cfg->seed = 1;
}

/* The centred operator Xc and the device buffers of one run. */
typedef struct PcaRun
{
	IsrfEnv    *env;
	IsrfBackend *be;
	int			n;				/* rows */
	int			m;				/* columns (after dropping empty ones) */
	int			l;				/* sketch width */
	int			k;				/* output width */

	IsrfDevCsr *x;				/* sparse: X and X^T */
	IsrfDevCsr *xt;
	float	   *xd;				/* dense: X (n x m) */

	float	   *mu;				/* column means (m) */
	float	   *ones;			/* max(n, m) ones */
	float	   *row;			/* 1 x max(l, k) scratch */
	float	   *y;				/* n x l */
	float	   *ytmp;			/* n x l */
	float	   *za;				/* m x l */
	float	   *zb;				/* m x l */
	float	   *ztmp;			/* m x l */
	float	   *g;				/* l x l */
	float	   *t;				/* l x max(l, k) */
	float	   *v;				/* m x k */
	float	   *s;				/* n x k */

	double	   *hg;				/* host l x l work */
	double	   *ht;
	double	   *hw;
	float	   *hf;				/* host l x max(l, k) floats */
} PcaRun;

/* splitmix64: the seeded stream behind Omega. */
static inline uint64_t
pca_rand_next(uint64_t *state)
{
	uint64_t	z = (*state += UINT64_C(0x9E3779B97F4A7C15));

	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

/* Fill out[n] with standard normal numbers (Box-Muller) from state. */
static void
pca_gaussian(uint64_t *state, float *out, size_t n)
{
	size_t		i;

	for (i = 0; i < n; i += 2)
	{
		/* u1 in (0, 1] so the log is finite */
		double		u1 = ((double) (pca_rand_next(state) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
		double		u2 = (double) (pca_rand_next(state) >> 11) * (1.0 / 9007199254740992.0);
		double		r = sqrt(-2.0 * log(u1));

		out[i] = (float) (r * cos(PCA_TWO_PI * u2));
		if (i + 1 < n)
			out[i + 1] = (float) (r * sin(PCA_TWO_PI * u2));
	}
}

/* out[n x w] = Xc * b[m x w] */
static IsrfStatus
pca_mul(PcaRun *r, int w, const float *b, float *out)
{
	IsrfBackend *be = r->be;

	if (r->x)
		ISRF_TRY(be->spmm(be, r->x, w, 1.0f, b, 0.0f, out));
	else
		ISRF_TRY(be->gemm(be, false, false, r->n, w, r->m, 1.0f, r->xd, r->m,
						  b, w, 0.0f, out, w));
	/* minus 1 (mu^T b) */
	ISRF_TRY(be->gemm(be, false, false, 1, w, r->m, 1.0f, r->mu, r->m, b, w,
					  0.0f, r->row, w));
	return be->gemm(be, false, false, r->n, w, 1, -1.0f, r->ones, 1, r->row, w,
					1.0f, out, w);
}

/* out[m x w] = Xc^T * q[n x w] */
static IsrfStatus
pca_tmul(PcaRun *r, int w, const float *q, float *out)
{
	IsrfBackend *be = r->be;

	if (r->xt)
		ISRF_TRY(be->spmm(be, r->xt, w, 1.0f, q, 0.0f, out));
	else
		ISRF_TRY(be->gemm(be, true, false, r->m, w, r->n, 1.0f, r->xd, r->m,
						  q, w, 0.0f, out, w));
	/* minus mu (1^T q) */
	ISRF_TRY(be->gemm(be, false, false, 1, w, r->n, 1.0f, r->ones, r->n, q, w,
					  0.0f, r->row, w));
	return be->gemm(be, false, false, r->m, w, 1, -1.0f, r->mu, 1, r->row, w,
					1.0f, out, w);
}

/*
 * T (l x l, upper triangular, column j in t[a * l + j]) such that A T has
 * orthonormal or zero columns, given G = A^T A: classical Gram-Schmidt in
 * the G metric with every projection taken twice (CGS2).  u is l doubles of
 * scratch.
 */
static void
pca_gram_schmidt(const double *g, int l, double *t, double *u)
{
	double		maxdiag = 0.0;
	int			i,
				j,
				a,
				b;

	for (j = 0; j < l; j++)
		if (g[j * l + j] > maxdiag)
			maxdiag = g[j * l + j];
	memset(t, 0, sizeof(double) * (size_t) l * l);
	for (j = 0; j < l; j++)
	{
		int			pass;
		double		nrm2 = 0.0;

		t[j * l + j] = 1.0;
		for (pass = 0; pass < 3; pass++)
		{
			/* u = G t_j, over the rows where t_j can be nonzero */
			for (a = 0; a < l; a++)
			{
				double		sum = 0.0;

				for (b = 0; b <= j; b++)
					sum += g[a * l + b] * t[b * l + j];
				u[a] = sum;
			}
			if (pass == 2)
				break;
			/* t_j -= sum_i <t_i, t_j>_G t_i, all dots from the same t_j */
			for (i = 0; i < j; i++)
			{
				double		dot = 0.0;

				for (a = 0; a <= i; a++)
					dot += t[a * l + i] * u[a];
				/* keep the dot in the free slot below the diagonal */
				t[j * l + i] = dot;
			}
			for (i = 0; i < j; i++)
			{
				double		dot = t[j * l + i];

				t[j * l + i] = 0.0;
				if (dot != 0.0)
					for (a = 0; a <= i; a++)
						t[a * l + j] -= dot * t[a * l + i];
			}
		}
		for (a = 0; a <= j; a++)
			nrm2 += t[a * l + j] * u[a];
		if (!(nrm2 > PCA_RANK_TOL * maxdiag) || maxdiag <= 0.0)
			for (a = 0; a <= j; a++)
				t[a * l + j] = 0.0;
		else
		{
			double		inv = 1.0 / sqrt(nrm2);

			for (a = 0; a <= j; a++)
				t[a * l + j] *= inv;
		}
	}
}

/* Replace a (rows x l) by an orthonormal basis of its range; tmp is scratch. */
static IsrfStatus
pca_orth(PcaRun *r, int rows, float *a, float *tmp)
{
	IsrfBackend *be = r->be;
	int			l = r->l;
	size_t		ll = (size_t) l * l,
				i;
	int			pass;

	for (pass = 0; pass < 2; pass++)
	{
		float	   *src = pass == 0 ? a : tmp;
		float	   *dst = pass == 0 ? tmp : a;

		ISRF_TRY(be->gemm(be, true, false, l, l, rows, 1.0f, src, l, src, l,
						  0.0f, r->g, l));
		ISRF_TRY(be->download(be, r->hf, r->g, sizeof(float) * ll));
		for (i = 0; i < ll; i++)
			r->hg[i] = r->hf[i];
		pca_gram_schmidt(r->hg, l, r->ht, r->hw);
		for (i = 0; i < ll; i++)
			r->hf[i] = (float) r->ht[i];
		ISRF_TRY(be->upload(be, r->t, r->hf, sizeof(float) * ll));
		ISRF_TRY(be->gemm(be, false, false, rows, l, l, 1.0f, src, l, r->t, l,
						  0.0f, dst, l));
	}
	return ISRF_OK;
}

/*
 * Eigen-decomposition of the symmetric a (n x n, destroyed) by cyclic
 * Jacobi: eigenvalues w descending, eigenvectors in the columns of v.
 */
static IsrfStatus
pca_jacobi(IsrfEnv *env, double *a, int n, double *w, double *v)
{
	int			sweep,
				p,
				q,
				i;

	for (i = 0; i < n * n; i++)
		v[i] = 0.0;
	for (i = 0; i < n; i++)
		v[i * n + i] = 1.0;
	for (sweep = 0; sweep < PCA_JACOBI_SWEEPS; sweep++)
	{
		double		off = 0.0,
					diag = 0.0;

		for (p = 0; p < n; p++)
		{
			diag += a[p * n + p] * a[p * n + p];
			for (q = p + 1; q < n; q++)
				off += a[p * n + q] * a[p * n + q];
		}
		if (off <= 1e-30 * diag || off == 0.0)
			break;
		ISRF_TRY(isrf_poll(env));
		for (p = 0; p < n - 1; p++)
			for (q = p + 1; q < n; q++)
			{
				double		apq = a[p * n + q],
							theta,
							t,
							c,
							s;

				if (apq == 0.0)
					continue;
				theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
				t = (theta >= 0.0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1.0));
				c = 1.0 / sqrt(t * t + 1.0);
				s = t * c;
				for (i = 0; i < n; i++)
				{
					double		aip = a[i * n + p],
								aiq = a[i * n + q];

					a[i * n + p] = c * aip - s * aiq;
					a[i * n + q] = s * aip + c * aiq;
				}
				for (i = 0; i < n; i++)
				{
					double		api = a[p * n + i],
								aqi = a[q * n + i];

					a[p * n + i] = c * api - s * aqi;
					a[q * n + i] = s * api + c * aqi;
				}
				for (i = 0; i < n; i++)
				{
					double		vip = v[i * n + p],
								viq = v[i * n + q];

					v[i * n + p] = c * vip - s * viq;
					v[i * n + q] = s * vip + c * viq;
				}
			}
	}
	for (i = 0; i < n; i++)
		w[i] = a[i * n + i];
	/* selection sort, descending; equal values keep their order */
	for (p = 0; p < n; p++)
	{
		int			best = p;

		for (q = p + 1; q < n; q++)
			if (w[q] > w[best])
				best = q;
		if (best != p)
		{
			double		tw = w[p];

			w[p] = w[best];
			w[best] = tw;
			for (i = 0; i < n; i++)
			{
				double		tv = v[i * n + p];

				v[i * n + p] = v[i * n + best];
				v[i * n + best] = tv;
			}
		}
	}
	return ISRF_OK;
}

static IsrfStatus
pca_dev_alloc(PcaRun *r, size_t count, float **out)
{
	return r->be->mem_alloc(r->be, sizeof(float) * (count ? count : 1), (void **) out);
}

static void
pca_release(PcaRun *r)
{
	IsrfBackend *be = r->be;
	float	  **bufs[] = {&r->xd, &r->mu, &r->ones, &r->row, &r->y, &r->ytmp,
		&r->za, &r->zb, &r->ztmp, &r->g, &r->t, &r->v, &r->s};
	size_t		i;

	for (i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
	{
		if (*bufs[i])
			be->mem_free(be, *bufs[i]);
		*bufs[i] = NULL;
	}
	if (r->x)
		be->csr_destroy(be, r->x);
	if (r->xt)
		be->csr_destroy(be, r->xt);
	r->x = r->xt = NULL;
	isrf_free(r->env, r->hg);
	isrf_free(r->env, r->ht);
	isrf_free(r->env, r->hw);
	isrf_free(r->env, r->hf);
	r->hg = r->ht = r->hw = NULL;
	r->hf = NULL;
}

/*
 * The algorithm proper, once X (r->x/xt or r->xd) and mu are on the device.
 * Writes out[n x k] and explained[k].
 */
static IsrfStatus
pca_solve(PcaRun *r, uint64_t seed, int power_iters, float *out, float *explained)
{
	IsrfEnv    *env = r->env;
	IsrfBackend *be = r->be;
	int			n = r->n,
				m = r->m,
				l = r->l,
				k = r->k,
				kw = l > k ? l : k;
	size_t		ll = (size_t) l * l,
				i;
	uint64_t	state = seed;
	float	   *host;
	double		denom = n > 1 ? (double) (n - 1) : 1.0;
	int			it,
				j;

	ISRF_TRY(pca_dev_alloc(r, (size_t) (n > m ? n : m), &r->ones));
	ISRF_TRY(pca_dev_alloc(r, (size_t) kw, &r->row));
	ISRF_TRY(pca_dev_alloc(r, (size_t) n * l, &r->y));
	ISRF_TRY(pca_dev_alloc(r, (size_t) n * l, &r->ytmp));
	ISRF_TRY(pca_dev_alloc(r, (size_t) m * l, &r->za));
	ISRF_TRY(pca_dev_alloc(r, (size_t) m * l, &r->zb));
	ISRF_TRY(pca_dev_alloc(r, (size_t) m * l, &r->ztmp));
	ISRF_TRY(pca_dev_alloc(r, ll, &r->g));
	ISRF_TRY(pca_dev_alloc(r, (size_t) l * kw, &r->t));
	ISRF_TRY(pca_dev_alloc(r, (size_t) m * k, &r->v));
	ISRF_TRY(pca_dev_alloc(r, (size_t) n * k, &r->s));
	r->hg = isrf_calloc(env, ll, sizeof(double));
	r->ht = isrf_calloc(env, ll, sizeof(double));
	r->hw = isrf_calloc(env, (size_t) l, sizeof(double));
	r->hf = isrf_calloc(env, (size_t) l * kw, sizeof(float));
	if (!r->hg || !r->ht || !r->hw || !r->hf)
		return ISRF_ERR_NOMEM;

	/* ones, then Omega, staged through one host buffer */
	{
		size_t		big = (size_t) m * l > (size_t) (n > m ? n : m) ?
			(size_t) m * l : (size_t) (n > m ? n : m);

		host = isrf_alloc(env, sizeof(float) * big);
		if (host == NULL)
			return ISRF_ERR_NOMEM;
		for (i = 0; i < (size_t) (n > m ? n : m); i++)
			host[i] = 1.0f;
		if (be->upload(be, r->ones, host, sizeof(float) * (size_t) (n > m ? n : m)) != ISRF_OK)
		{
			isrf_free(env, host);
			return env->status;
		}
		pca_gaussian(&state, host, (size_t) m * l);
		if (be->upload(be, r->zb, host, sizeof(float) * (size_t) m * l) != ISRF_OK)
		{
			isrf_free(env, host);
			return env->status;
		}
		isrf_free(env, host);
	}

	/* range finder with subspace iteration */
	ISRF_TRY(pca_mul(r, l, r->zb, r->y));
	ISRF_TRY(pca_orth(r, n, r->y, r->ytmp));
	for (it = 0; it < power_iters; it++)
	{
		ISRF_TRY(isrf_poll(env));
		ISRF_TRY(pca_tmul(r, l, r->y, r->za));
		ISRF_TRY(pca_orth(r, m, r->za, r->ztmp));
		ISRF_TRY(pca_mul(r, l, r->za, r->y));
		ISRF_TRY(pca_orth(r, n, r->y, r->ytmp));
	}

	/* Z = Xc^T Q = B^T; Qz = orth(Z); R = Qz^T Z */
	ISRF_TRY(isrf_poll(env));
	ISRF_TRY(pca_tmul(r, l, r->y, r->zb));
	ISRF_TRY(be->axpby(be, (size_t) m * l, 1.0f, r->zb, 0.0f, r->za));
	ISRF_TRY(pca_orth(r, m, r->za, r->ztmp));
	ISRF_TRY(be->gemm(be, true, false, l, l, m, 1.0f, r->za, l, r->zb, l,
					  0.0f, r->g, l));
	ISRF_TRY(be->download(be, r->hf, r->g, sizeof(float) * ll));

	/* R R^T = U S^2 U^T, in double on the host */
	for (i = 0; i < (size_t) l; i++)
		for (j = 0; j < l; j++)
		{
			double		sum = 0.0;
			int			c;

			for (c = 0; c < l; c++)
				sum += (double) r->hf[i * l + c] * (double) r->hf[(size_t) j * l + c];
			r->hg[i * l + j] = sum;
		}
	ISRF_TRY(pca_jacobi(env, r->hg, l, r->hw, r->ht));

	/* W (l x k): the kept eigenvectors, zero beyond the numerical rank */
	memset(r->hf, 0, sizeof(float) * (size_t) l * k);
	for (j = 0; j < k; j++)
	{
		bool		keep = j < l && r->hw[0] > 0.0 && r->hw[j] > PCA_RANK_TOL * r->hw[0];

		if (explained)
			explained[j] = keep ? (float) (r->hw[j] / denom) : 0.0f;
		if (keep)
			for (i = 0; i < (size_t) l; i++)
				r->hf[i * k + j] = (float) r->ht[i * l + j];
	}
	ISRF_TRY(be->upload(be, r->t, r->hf, sizeof(float) * (size_t) l * k));
	ISRF_TRY(be->gemm(be, false, false, m, k, l, 1.0f, r->za, l, r->t, k,
					  0.0f, r->v, k));
	ISRF_TRY(pca_mul(r, k, r->v, r->s));
	ISRF_TRY(be->download(be, out, r->s, sizeof(float) * (size_t) n * k));
	ISRF_TRY(be->sync(be));

	/* signs: each component's largest-magnitude loading positive */
	host = isrf_alloc(env, sizeof(float) * (size_t) m * k);
	if (host == NULL)
		return ISRF_ERR_NOMEM;
	if (be->download(be, host, r->v, sizeof(float) * (size_t) m * k) != ISRF_OK)
	{
		isrf_free(env, host);
		return env->status;
	}
	for (j = 0; j < k; j++)
	{
		float		best = 0.0f;
		int			a;

		for (a = 0; a < m; a++)
			if (fabsf(host[(size_t) a * k + j]) > fabsf(best))
				best = host[(size_t) a * k + j];
		if (best < 0.0f)
			for (i = 0; i < (size_t) n; i++)
				out[i * k + j] = -out[i * k + j];
	}
	isrf_free(env, host);
	return ISRF_OK;
}

/* Check the configuration; sets *l and *k. */
static IsrfStatus
pca_check_config(IsrfEnv *env, const IsrfPcaConfig *cfg, int32_t n, int32_t m,
				 int *l, int *k)
{
	int64_t		want;

	if (cfg->k < 1 || cfg->k > PCA_MAX_K)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "PCA dimension k must be between 1 and %d, not %d",
						 PCA_MAX_K, cfg->k);
	if (cfg->oversample < 0 || cfg->oversample > PCA_MAX_OVERSAMPLE)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "PCA oversample must be between 0 and %d, not %d",
						 PCA_MAX_OVERSAMPLE, cfg->oversample);
	if (cfg->power_iters < 0 || cfg->power_iters > PCA_MAX_POWER_ITERS)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "PCA power_iters must be between 0 and %d, not %d",
						 PCA_MAX_POWER_ITERS, cfg->power_iters);
	if (n < 0 || m < 0)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "PCA input has a negative size (%d x %d)", n, m);
	want = (int64_t) cfg->k + cfg->oversample;
	if (want > n)
		want = n;
	if (want > m)
		want = m;
	*l = (int) want;
	*k = cfg->k;
	return ISRF_OK;
}

/* Shared tail: run, release, and zero the output on failure. */
static IsrfStatus
pca_finish(PcaRun *r, const IsrfPcaConfig *cfg, float *out, float *explained)
{
	IsrfStatus	st = pca_solve(r, cfg->seed, cfg->power_iters, out, explained);

	pca_release(r);
	return st;
}

IsrfStatus
isrf_pca_sparse(IsrfEnv *env, IsrfBackend *be, const IsrfCsr *x,
				const IsrfPcaConfig *cfg, float *out, float *explained)
{
	PcaRun		r;
	int32_t    *colmap = NULL;
	double	   *sum = NULL;
	float	   *mu = NULL;
	IsrfCsr		xc,
				xt;
	int32_t		c,
				rr,
				m = 0;
	int32_t		p;
	IsrfStatus	st;

	memset(&r, 0, sizeof(r));
	memset(&xc, 0, sizeof(xc));
	memset(&xt, 0, sizeof(xt));
	ISRF_TRY(pca_check_config(env, cfg, x->n_rows, x->n_cols, &r.l, &r.k));
	memset(out, 0, sizeof(float) * (size_t) x->n_rows * cfg->k);
	if (explained)
		memset(explained, 0, sizeof(float) * (size_t) cfg->k);
	for (p = 0; p < x->nnz; p++)
		if (x->col[p] < 0 || x->col[p] >= x->n_cols || !isfinite(x->val[p]))
			return isrf_fail(env, ISRF_ERR_INVALID,
							 "PCA input entry %d has column %d (of %d) and value %g",
							 p, x->col[p], x->n_cols, (double) x->val[p]);

	/* keep only the columns that have an entry */
	colmap = isrf_calloc(env, (size_t) x->n_cols + 1, sizeof(int32_t));
	if (colmap == NULL)
		return ISRF_ERR_NOMEM;
	for (p = 0; p < x->nnz; p++)
		colmap[x->col[p]] = 1;
	for (c = 0; c < x->n_cols; c++)
		colmap[c] = colmap[c] ? m++ : -1;
	if (m < r.l)
		r.l = m;
	if (r.l == 0)
	{
		isrf_free(env, colmap);
		return ISRF_OK;
	}

	st = isrf_csr_alloc(env, x->n_rows, m, x->nnz, &xc);
	if (st == ISRF_OK)
		st = isrf_csr_alloc(env, m, x->n_rows, x->nnz, &xt);
	sum = st == ISRF_OK ? isrf_calloc(env, (size_t) m, sizeof(double)) : NULL;
	mu = sum ? isrf_calloc(env, (size_t) m, sizeof(float)) : NULL;
	if (st == ISRF_OK && mu == NULL)
		st = ISRF_ERR_NOMEM;
	if (st != ISRF_OK)
		goto done;

	/* compacted X, its transpose (rows ascending within each column), mu */
	memcpy(xc.rowptr, x->rowptr, sizeof(int32_t) * ((size_t) x->n_rows + 1));
	for (p = 0; p < x->nnz; p++)
	{
		xc.col[p] = colmap[x->col[p]];
		xc.val[p] = x->val[p];
		xt.rowptr[xc.col[p] + 1]++;
		sum[xc.col[p]] += x->val[p];
	}
	for (c = 0; c < m; c++)
	{
		xt.rowptr[c + 1] += xt.rowptr[c];
		mu[c] = (float) (sum[c] / (double) x->n_rows);
	}
	memcpy(colmap, xt.rowptr, sizeof(int32_t) * (size_t) m);
	for (rr = 0; rr < x->n_rows; rr++)
		for (p = xc.rowptr[rr]; p < xc.rowptr[rr + 1]; p++)
		{
			int32_t		pos = colmap[xc.col[p]]++;

			xt.col[pos] = rr;
			xt.val[pos] = xc.val[p];
		}

	r.env = env;
	r.be = be;
	r.n = x->n_rows;
	r.m = m;
	st = be->csr_create(be, &xc, &r.x);
	if (st == ISRF_OK)
		st = be->csr_create(be, &xt, &r.xt);
	if (st == ISRF_OK)
		st = pca_dev_alloc(&r, (size_t) m, &r.mu);
	if (st == ISRF_OK)
		st = be->upload(be, r.mu, mu, sizeof(float) * (size_t) m);
	/* the host copies are on the device now */
	isrf_csr_free(env, &xc);
	isrf_csr_free(env, &xt);
	isrf_free(env, sum);
	isrf_free(env, mu);
	isrf_free(env, colmap);
	sum = NULL;
	mu = NULL;
	colmap = NULL;
	if (st == ISRF_OK)
		st = pca_finish(&r, cfg, out, explained);
	else
		pca_release(&r);

done:
	isrf_csr_free(env, &xc);
	isrf_csr_free(env, &xt);
	isrf_free(env, sum);
	isrf_free(env, mu);
	isrf_free(env, colmap);
	if (st != ISRF_OK)
	{
		memset(out, 0, sizeof(float) * (size_t) x->n_rows * cfg->k);
		if (explained)
			memset(explained, 0, sizeof(float) * (size_t) cfg->k);
	}
	return st;
}

IsrfStatus
isrf_pca_dense(IsrfEnv *env, IsrfBackend *be, const float *x,
			   int32_t n_rows, int32_t n_cols,
			   const IsrfPcaConfig *cfg, float *out, float *explained)
{
	PcaRun		r;
	double	   *sum;
	float	   *mu;
	size_t		i,
				total;
	int32_t		c;
	IsrfStatus	st;

	memset(&r, 0, sizeof(r));
	ISRF_TRY(pca_check_config(env, cfg, n_rows, n_cols, &r.l, &r.k));
	memset(out, 0, sizeof(float) * (size_t) n_rows * cfg->k);
	if (explained)
		memset(explained, 0, sizeof(float) * (size_t) cfg->k);
	if (r.l == 0)
		return ISRF_OK;
	total = (size_t) n_rows * n_cols;
	for (i = 0; i < total; i++)
		if (!isfinite(x[i]))
			return isrf_fail(env, ISRF_ERR_INVALID,
							 "PCA input row %zu column %zu is %g, not a finite number",
							 i / (size_t) n_cols, i % (size_t) n_cols, (double) x[i]);

	sum = isrf_calloc(env, (size_t) n_cols, sizeof(double));
	mu = sum ? isrf_calloc(env, (size_t) n_cols, sizeof(float)) : NULL;
	if (mu == NULL)
	{
		isrf_free(env, sum);
		return ISRF_ERR_NOMEM;
	}
	for (i = 0; i < (size_t) n_rows; i++)
		for (c = 0; c < n_cols; c++)
			sum[c] += x[i * (size_t) n_cols + c];
	for (c = 0; c < n_cols; c++)
		mu[c] = (float) (sum[c] / (double) n_rows);

	r.env = env;
	r.be = be;
	r.n = n_rows;
	r.m = n_cols;

	/*
	 * Dense input is on the host anyway, so it goes up already centred (in
	 * slices of rows through one staging buffer): that spares the implicit
	 * centering the cancellation it suffers when the means are large.  The
	 * device mu stays zero (mem_alloc zero-fills).
	 */
	st = pca_dev_alloc(&r, total, &r.xd);
	if (st == ISRF_OK)
		st = pca_dev_alloc(&r, (size_t) n_cols, &r.mu);
	if (st == ISRF_OK)
	{
		size_t		slice = (size_t) (n_rows < PCA_DENSE_SLICE ? n_rows : PCA_DENSE_SLICE);
		float	   *stage = isrf_alloc(env, sizeof(float) * slice * n_cols);
		size_t		r0;

		if (stage == NULL)
			st = ISRF_ERR_NOMEM;
		for (r0 = 0; st == ISRF_OK && r0 < (size_t) n_rows; r0 += slice)
		{
			size_t		rows = (size_t) n_rows - r0 < slice ? (size_t) n_rows - r0 : slice;

			for (i = 0; i < rows; i++)
				for (c = 0; c < n_cols; c++)
					stage[i * n_cols + c] = x[(r0 + i) * n_cols + c] - mu[c];
			st = be->upload(be, r.xd + r0 * n_cols, stage, sizeof(float) * rows * n_cols);
		}
		isrf_free(env, stage);
	}
	isrf_free(env, sum);
	isrf_free(env, mu);
	if (st == ISRF_OK)
		st = pca_finish(&r, cfg, out, explained);
	else
		pca_release(&r);
	if (st != ISRF_OK)
	{
		memset(out, 0, sizeof(float) * (size_t) n_rows * cfg->k);
		if (explained)
			memset(explained, 0, sizeof(float) * (size_t) cfg->k);
	}
	return st;
}
