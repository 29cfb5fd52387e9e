/*
 * compute/cpu_nn.c
 *	  The CPU backend's neural-network operations (the ABI 2 part of
 *	  backend.h): LayerNorm, GELU, dropout, attention softmax, softmax
 *	  cross-entropy, row gathers and scatters, AdamW and reductions.
 *
 * These plain loops are the reference that the CUDA kernels are compared
 * with (the test_parity_nn_* tests), so they are written for clarity and a fixed
 * order of operations: every reduction runs in ascending index order.
 * Matrix products go through the backend's own gemm.
 */
#include "compute/backend.h"
#include "nn/layers.h"

#include <math.h>
#include <string.h>

#define NN_GELU_K 0.7978845608028654f	/* sqrt(2 / pi) */
#define NN_GELU_C 0.044715f

/* Fail with ISRF_ERR_INVALID when a shape is negative. */
#define CPU_NN_SHAPE(be, ok, op) \
	do { if (!(ok)) return isrf_fail((be)->env, ISRF_ERR_INVALID, "%s: negative shape", (op)); } while (0)

static IsrfStatus
cpu_mem_zero(IsrfBackend *be, void *ptr, size_t bytes)
{
	(void) be;
	if (bytes)
		memset(ptr, 0, bytes);
	return ISRF_OK;
}

/* The grid of products, one gemm call each (the BLAS threads inside). */
static IsrfStatus
cpu_gemm_batched(IsrfBackend *be, bool ta, bool tb, int m, int n, int k, float alpha,
				 const float *a, int lda, size_t sao, size_t sai,
				 const float *b, int ldb, size_t sbo, size_t sbi,
				 float beta, float *c, int ldc, size_t sco, size_t sci,
				 int n_outer, int n_inner)
{
	int			o,
				i;

	CPU_NN_SHAPE(be, n_outer >= 0 && n_inner >= 0, "gemm_batched");
	for (o = 0; o < n_outer; o++)
		for (i = 0; i < n_inner; i++)
			ISRF_TRY(be->gemm(be, ta, tb, m, n, k, alpha,
							  a + o * sao + i * sai, lda, b + o * sbo + i * sbi, ldb,
							  beta, c + o * sco + i * sci, ldc));
	return ISRF_OK;
}

static IsrfStatus
cpu_rows_set(IsrfBackend *be, float *y, const float *row, int n, int d)
{
	int			i;

	CPU_NN_SHAPE(be, n >= 0 && d >= 0, "rows_set");
	for (i = 0; i < n; i++)
		memcpy(y + (size_t) i * d, row, sizeof(float) * d);
	return ISRF_OK;
}

static IsrfStatus
cpu_colsum_acc(IsrfBackend *be, float *acc, const float *x, int n, int d)
{
	int			i,
				j;

	CPU_NN_SHAPE(be, n >= 0 && d >= 0, "colsum_acc");
	for (i = 0; i < n; i++)
	{
		const float *xi = x + (size_t) i * d;

		for (j = 0; j < d; j++)
			acc[j] += xi[j];
	}
	return ISRF_OK;
}

static IsrfStatus
cpu_add(IsrfBackend *be, size_t n, const float *a, const float *b, float *out)
{
	size_t		i;

	(void) be;
	for (i = 0; i < n; i++)
		out[i] = a[i] + b[i];
	return ISRF_OK;
}

/* Row statistics in double: float32 sums of 1e4 entries lose digits. */
static IsrfStatus
cpu_layernorm_forward(IsrfBackend *be, float *out, float *mean, float *rstd,
					  const float *x, const float *w, const float *b, int n, int c)
{
	int			i,
				j;

	CPU_NN_SHAPE(be, n >= 0 && c > 0, "layernorm_forward");
	for (i = 0; i < n; i++)
	{
		const float *xi = x + (size_t) i * c;
		float	   *oi = out + (size_t) i * c;
		double		s = 0.0,
					v = 0.0;
		float		m,
					r;

		for (j = 0; j < c; j++)
			s += xi[j];
		m = (float) (s / c);
		for (j = 0; j < c; j++)
		{
			float		dxj = xi[j] - m;

			v += (double) dxj * dxj;
		}
		r = (float) (1.0 / sqrt(v / c + ISRF_NN_LN_EPS));
		for (j = 0; j < c; j++)
			oi[j] = (xi[j] - m) * r * w[j] + b[j];
		mean[i] = m;
		rstd[i] = r;
	}
	return ISRF_OK;
}

static IsrfStatus
cpu_layernorm_backward(IsrfBackend *be, float *dx, float *dw, float *db,
					   const float *dout, const float *x, const float *w,
					   const float *mean, const float *rstd, int n, int c)
{
	int			i,
				j;

	CPU_NN_SHAPE(be, n >= 0 && c > 0, "layernorm_backward");
	for (i = 0; i < n; i++)
	{
		const float *xi = x + (size_t) i * c;
		const float *gi = dout + (size_t) i * c;
		float		m = mean[i],
					r = rstd[i];
		float		sum_g = 0.0f,
					sum_gx = 0.0f;

		/* d(norm) = dout * w; dx = r * (dnorm - mean(dnorm) - xhat * mean(dnorm * xhat)) */
		for (j = 0; j < c; j++)
		{
			float		xhat = (xi[j] - m) * r;
			float		dn = gi[j] * w[j];

			sum_g += dn;
			sum_gx += dn * xhat;
		}
		sum_g /= c;
		sum_gx /= c;
		for (j = 0; j < c; j++)
		{
			float		xhat = (xi[j] - m) * r;

			if (db)
				db[j] += gi[j];
			if (dw)
				dw[j] += gi[j] * xhat;
			if (dx)
				dx[(size_t) i * c + j] += r * (gi[j] * w[j] - sum_g - xhat * sum_gx);
		}
	}
	return ISRF_OK;
}

/*
 * tanh for the GELU hot loops: libm's tanhf took half the time of a
 * training step.  tanh(u) = sign(u) (1 - e) / (1 + e) with e = exp(-2|u|),
 * and exp on [-87, 0] by the 1.5 * 2^23 rounding trick, a Cody-Waite split
 * of ln 2 and a degree-6 polynomial (relative error below 3e-7; absolute
 * error of tanh below 2e-7).  No libm call, so results do not depend on the
 * libm version.  It is written four lanes at a time with GCC vector
 * extensions (plain SSE2 at -O2, where the auto-vectoriser gives up); the
 * scalar tail does the same operations in the same order.
 */
typedef float NnV4f __attribute__((vector_size(16)));
typedef uint32_t NnV4u __attribute__((vector_size(16)));
typedef int32_t NnV4i __attribute__((vector_size(16)));

#define NN_EXP_SHIFTER 12582912.0f	/* 1.5 * 2^23 */
#define NN_EXP_LOWEST 0xC2AE0000u	/* bits of -87.0f */
#define NN_EXP_POLY(r) \
	(1.0f + (r) * (1.0f + (r) * (0.5f + (r) * (0.166666672f + (r) * (0.0416666418f + \
	 (r) * (0.00833336543f + (r) * 0.00138882315f))))))

static inline NnV4f
nn_tanh4(NnV4f u)
{
	NnV4u		ub,
				sign,
				xb,
				tb,
				m;
	NnV4f		x,
				t,
				k,
				r,
				p,
				scale,
				e,
				res;
	NnV4i		ki;

	memcpy(&ub, &u, sizeof(ub));
	sign = ub & 0x80000000u;
	ub &= 0x7fffffffu;
	memcpy(&x, &ub, sizeof(x));
	x = x * -2.0f;
	/* x <= 0, so a larger bit pattern is a more negative number */
	memcpy(&xb, &x, sizeof(xb));
	m = (NnV4u) (xb < NN_EXP_LOWEST);
	xb = (xb & m) | (NN_EXP_LOWEST & ~m);
	memcpy(&x, &xb, sizeof(x));
	t = x * 1.44269504f + NN_EXP_SHIFTER;
	k = t - NN_EXP_SHIFTER;
	memcpy(&tb, &t, sizeof(tb));
	ki = (NnV4i) (tb - 0x4B400000u);
	r = x - k * 0.693145752f;
	r = r - k * 1.42860677e-6f;
	p = NN_EXP_POLY(r);
	tb = (NnV4u) ((ki + 127) << 23);
	memcpy(&scale, &tb, sizeof(scale));
	e = p * scale;
	res = (1.0f - e) / (1.0f + e);
	memcpy(&ub, &res, sizeof(ub));
	ub |= sign;
	memcpy(&res, &ub, sizeof(res));
	return res;
}

static inline float
nn_tanh1(float u)
{
	uint32_t	ub,
				sign,
				xb,
				tb;
	float		x,
				t,
				k,
				r,
				p,
				scale,
				e,
				res;
	int32_t		ki;

	memcpy(&ub, &u, sizeof(ub));
	sign = ub & 0x80000000u;
	ub &= 0x7fffffffu;
	memcpy(&x, &ub, sizeof(x));
	x = x * -2.0f;
	memcpy(&xb, &x, sizeof(xb));
	xb = xb < NN_EXP_LOWEST ? xb : NN_EXP_LOWEST;
	memcpy(&x, &xb, sizeof(x));
	t = x * 1.44269504f + NN_EXP_SHIFTER;
	k = t - NN_EXP_SHIFTER;
	memcpy(&tb, &t, sizeof(tb));
	ki = (int32_t) (tb - 0x4B400000u);
	r = x - k * 0.693145752f;
	r = r - k * 1.42860677e-6f;
	p = NN_EXP_POLY(r);
	tb = (uint32_t) (ki + 127) << 23;
	memcpy(&scale, &tb, sizeof(scale));
	e = p * scale;
	res = (1.0f - e) / (1.0f + e);
	memcpy(&ub, &res, sizeof(ub));
	ub |= sign;
	memcpy(&res, &ub, sizeof(res));
	return res;
}

static IsrfStatus
cpu_gelu_forward(IsrfBackend *be, float *out, const float *x, size_t n)
{
	size_t		i = 0;

	(void) be;

	for (; i + 4 <= n; i += 4)
	{
		NnV4f		xi,
					u,
					o;

		memcpy(&xi, x + i, sizeof(xi));
		u = NN_GELU_K * (xi + NN_GELU_C * xi * xi * xi);
		o = 0.5f * xi * (1.0f + nn_tanh4(u));
		memcpy(out + i, &o, sizeof(o));
	}
	for (; i < n; i++)
	{
		float		xi = x[i];
		float		u = NN_GELU_K * (xi + NN_GELU_C * xi * xi * xi);

		out[i] = 0.5f * xi * (1.0f + nn_tanh1(u));
	}
	return ISRF_OK;
}

static IsrfStatus
cpu_gelu_backward(IsrfBackend *be, float *dx, const float *x, const float *dout,
				  size_t n)
{
	size_t		i = 0;

	(void) be;

	for (; i + 4 <= n; i += 4)
	{
		NnV4f		xi,
					u,
					th,
					du,
					g,
					d,
					acc;

		memcpy(&xi, x + i, sizeof(xi));
		memcpy(&d, dout + i, sizeof(d));
		memcpy(&acc, dx + i, sizeof(acc));
		u = NN_GELU_K * (xi + NN_GELU_C * xi * xi * xi);
		th = nn_tanh4(u);
		du = NN_GELU_K * (1.0f + 3.0f * NN_GELU_C * xi * xi);
		g = 0.5f * (1.0f + th) + 0.5f * xi * (1.0f - th * th) * du;
		acc += g * d;
		memcpy(dx + i, &acc, sizeof(acc));
	}
	for (; i < n; i++)
	{
		float		xi = x[i];
		float		u = NN_GELU_K * (xi + NN_GELU_C * xi * xi * xi);
		float		th = nn_tanh1(u);
		float		du = NN_GELU_K * (1.0f + 3.0f * NN_GELU_C * xi * xi);
		float		g = 0.5f * (1.0f + th) + 0.5f * xi * (1.0f - th * th) * du;

		dx[i] += g * dout[i];
	}
	return ISRF_OK;
}

/* Keep threshold on 24-bit uniforms: element kept when its draw >= thr. */
static inline uint32_t
cpu_dropout_threshold(float p)
{
	return (uint32_t) ((double) p * 16777216.0);
}

/* The 24-bit draw of element i of the dropout stream keyed by seed. */
static inline uint32_t
cpu_dropout_draw(uint64_t seed, size_t i)
{
	return (uint32_t) (isrf_nn_stream(seed, i) >> 40);
}

static IsrfStatus
cpu_dropout_forward(IsrfBackend *be, float *out, const float *x, size_t n, float p,
					uint64_t seed)
{
	uint32_t	thr = cpu_dropout_threshold(p);
	float		scale = 1.0f / (1.0f - p);
	size_t		i;

	if (!(p >= 0.0f && p < 1.0f))
		return isrf_fail(be->env, ISRF_ERR_INVALID, "dropout: p must be in [0, 1) (got %g)", (double) p);
	if (p == 0.0f)
	{
		if (out != x && n)
			memcpy(out, x, sizeof(float) * n);
		return ISRF_OK;
	}
	for (i = 0; i < n; i++)
		out[i] = cpu_dropout_draw(seed, i) >= thr ? x[i] * scale : 0.0f;
	return ISRF_OK;
}

static IsrfStatus
cpu_dropout_backward(IsrfBackend *be, float *dx, const float *dout, size_t n, float p,
					 uint64_t seed)
{
	uint32_t	thr = cpu_dropout_threshold(p);
	float		scale = 1.0f / (1.0f - p);
	size_t		i;

	if (!(p >= 0.0f && p < 1.0f))
		return isrf_fail(be->env, ISRF_ERR_INVALID, "dropout: p must be in [0, 1) (got %g)", (double) p);
	if (p == 0.0f)
	{
		for (i = 0; i < n; i++)
			dx[i] += dout[i];
		return ISRF_OK;
	}
	for (i = 0; i < n; i++)
		if (cpu_dropout_draw(seed, i) >= thr)
			dx[i] += dout[i] * scale;
	return ISRF_OK;
}

static IsrfStatus
cpu_attn_softmax_forward(IsrfBackend *be, float *s, const uint8_t *valid, int n_seq,
						 int n_heads, int t)
{
	int			q,
				h,
				i,
				j;

	CPU_NN_SHAPE(be, n_seq >= 0 && n_heads >= 0 && t >= 0, "attn_softmax_forward");
	for (q = 0; q < n_seq; q++)
	{
		const uint8_t *vq = valid ? valid + (size_t) q * t : NULL;

		for (h = 0; h < n_heads; h++)
		{
			float	   *m = s + ((size_t) q * n_heads + h) * t * t;

			for (i = 0; i < t; i++)
			{
				float	   *row = m + (size_t) i * t;
				float		mx = -INFINITY,
							sum = 0.0f,
							inv;

				if (vq && !vq[i])
				{
					memset(row, 0, sizeof(float) * t);
					continue;
				}
				for (j = 0; j <= i; j++)
					if ((!vq || vq[j]) && row[j] > mx)
						mx = row[j];
				for (j = 0; j <= i; j++)
				{
					if (!vq || vq[j])
					{
						row[j] = expf(row[j] - mx);
						sum += row[j];
					}
					else
						row[j] = 0.0f;
				}
				inv = 1.0f / sum;
				for (j = 0; j <= i; j++)
					row[j] *= inv;
				for (j = i + 1; j < t; j++)
					row[j] = 0.0f;
			}
		}
	}
	return ISRF_OK;
}

static IsrfStatus
cpu_attn_softmax_backward(IsrfBackend *be, float *ds, const float *p, int n_mat, int t)
{
	int			q,
				r,
				j;

	CPU_NN_SHAPE(be, n_mat >= 0 && t >= 0, "attn_softmax_backward");
	for (q = 0; q < n_mat; q++)
		for (r = 0; r < t; r++)
		{
			const float *pr = p + ((size_t) q * t + r) * t;
			float	   *dr = ds + ((size_t) q * t + r) * t;
			float		dot = 0.0f;

			for (j = 0; j <= r; j++)
				dot += pr[j] * dr[j];
			for (j = 0; j <= r; j++)
				dr[j] = pr[j] * (dr[j] - dot);
			for (j = r + 1; j < t; j++)
				dr[j] = 0.0f;
		}
	return ISRF_OK;
}

static IsrfStatus
cpu_softmax_ce(IsrfBackend *be, const float *logits, int ld, const int32_t *targets,
			   int n, int v, float grad_scale, float *row_loss, float *dlogits)
{
	int			i,
				j;

	CPU_NN_SHAPE(be, n >= 0 && v > 0 && ld >= v, "softmax_ce");
	for (i = 0; i < n; i++)
	{
		const float *li = logits + (size_t) i * ld;
		float	   *gi = dlogits ? dlogits + (size_t) i * ld : NULL;
		int32_t		y = targets[i];
		float		mx,
					sum = 0.0f,
					ly,
					inv;

		if (y < 0 || y >= v)
		{
			row_loss[i] = 0.0f;
			if (gi)
				memset(gi, 0, sizeof(float) * v);
			continue;
		}
		ly = li[y];
		mx = li[0];
		for (j = 1; j < v; j++)
			mx = li[j] > mx ? li[j] : mx;
		if (gi)
		{
			for (j = 0; j < v; j++)
			{
				float		e = expf(li[j] - mx);

				gi[j] = e;
				sum += e;
			}
			inv = grad_scale / sum;
			for (j = 0; j < v; j++)
				gi[j] *= inv;
			gi[y] -= grad_scale;
		}
		else
			for (j = 0; j < v; j++)
				sum += expf(li[j] - mx);
		row_loss[i] = logf(sum) + mx - ly;
	}
	return ISRF_OK;
}

static IsrfStatus
cpu_gather_rows(IsrfBackend *be, float *out, const int32_t *ids, int n, const float *table,
				int d, bool accumulate)
{
	int			i,
				j;

	CPU_NN_SHAPE(be, n >= 0 && d >= 0, "gather_rows");
	for (i = 0; i < n; i++)
	{
		float	   *o = out + (size_t) i * d;
		const float *src = ids[i] >= 0 ? table + (size_t) ids[i] * d : NULL;

		if (!accumulate)
		{
			if (src)
				memcpy(o, src, sizeof(float) * d);
			else
				memset(o, 0, sizeof(float) * d);
		}
		else if (src)
			for (j = 0; j < d; j++)
				o[j] += src[j];
	}
	return ISRF_OK;
}

static IsrfStatus
cpu_scatter_add_rows(IsrfBackend *be, float *table, const int32_t *ids, int n,
					 const float *src, int d)
{
	int			i,
				j;

	CPU_NN_SHAPE(be, n >= 0 && d >= 0, "scatter_add_rows");
	for (i = 0; i < n; i++)
	{
		float	   *g;
		const float *s = src + (size_t) i * d;

		if (ids[i] < 0)
			continue;
		g = table + (size_t) ids[i] * d;
		for (j = 0; j < d; j++)
			g[j] += s[j];
	}
	return ISRF_OK;
}

static IsrfStatus
cpu_mask_rows(IsrfBackend *be, float *x, const uint8_t *valid, int n, int d)
{
	int			i;

	CPU_NN_SHAPE(be, n >= 0 && d >= 0, "mask_rows");
	for (i = 0; i < n; i++)
		if (!valid[i])
			memset(x + (size_t) i * d, 0, sizeof(float) * d);
	return ISRF_OK;
}

static IsrfStatus
cpu_adamw_step(IsrfBackend *be, float *params, const float *grads, float *mv, float *vv,
			   const uint8_t *decay, size_t n, float lr, float b1, float b2, float eps,
			   float wd, float c1, float c2)
{
	float		lwd = lr * wd;
	size_t		i;

	(void) be;
	for (i = 0; i < n; i++)
	{
		float		g = grads[i];
		float		m = b1 * mv[i] + (1.0f - b1) * g;
		float		v = b2 * vv[i] + (1.0f - b2) * g * g;
		float		p = params[i];

		mv[i] = m;
		vv[i] = v;
		if (decay == NULL || decay[i])
			p -= lwd * p;
		params[i] = p - lr * (m * c1) / (sqrtf(v * c2) + eps);
	}
	return ISRF_OK;
}

static IsrfStatus
cpu_sumsq(IsrfBackend *be, const float *x, size_t n, double *out)
{
	double		s = 0.0;
	size_t		i;

	(void) be;
	for (i = 0; i < n; i++)
		s += (double) x[i] * x[i];
	*out = s;
	return ISRF_OK;
}

void
isrf_cpu_nn_install(IsrfBackend *be)
{
	be->mem_zero = cpu_mem_zero;
	be->gemm_batched = cpu_gemm_batched;
	be->rows_set = cpu_rows_set;
	be->colsum_acc = cpu_colsum_acc;
	be->add = cpu_add;
	be->layernorm_forward = cpu_layernorm_forward;
	be->layernorm_backward = cpu_layernorm_backward;
	be->gelu_forward = cpu_gelu_forward;
	be->gelu_backward = cpu_gelu_backward;
	be->dropout_forward = cpu_dropout_forward;
	be->dropout_backward = cpu_dropout_backward;
	be->attn_softmax_forward = cpu_attn_softmax_forward;
	be->attn_softmax_backward = cpu_attn_softmax_backward;
	be->softmax_ce = cpu_softmax_ce;
	be->gather_rows = cpu_gather_rows;
	be->scatter_add_rows = cpu_scatter_add_rows;
	be->mask_rows = cpu_mask_rows;
	be->adamw_step = cpu_adamw_step;
	be->sumsq = cpu_sumsq;
}
