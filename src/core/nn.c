/*
 * nn.c
 *	  Forward and backward passes of the neural-network layers (see nn.h):
 *	  matrix products on the backend's gemm, the rest as plain loops.
 */
#include "nn.h"

#include <math.h>
#include <string.h>

#define NN_GOLDEN 0x9E3779B97F4A7C15ULL
#define NN_GELU_K 0.7978845608028654f	/* sqrt(2 / pi) */
#define NN_GELU_C 0.044715f
#define NN_L2_EPS 1e-12f

bool
isrf_nn_backend_host_ok(const IsrfBackend *be)
{
	return be != NULL && be->name != NULL && strcmp(be->name, "cpu") == 0;
}

uint64_t
isrf_nn_hash64(uint64_t x)
{
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
	return x ^ (x >> 31);
}

uint64_t
isrf_nn_key(uint64_t seed, uint64_t a, uint64_t b)
{
	return isrf_nn_hash64(isrf_nn_hash64(seed + NN_GOLDEN * (a + 1)) + NN_GOLDEN * (b + 1));
}

/* Element i of the counter-based stream keyed by seed (splitmix64 order). */
static inline uint64_t
nn_stream(uint64_t seed, uint64_t i)
{
	return isrf_nn_hash64(seed + NN_GOLDEN * (i + 1));
}

void
isrf_nn_init_normal(float *w, size_t n, float std, uint64_t seed)
{
	size_t		i;

	for (i = 0; i < n; i++)
	{
		/* Box-Muller on two 53-bit uniforms; u1 in (0, 1] keeps log finite */
		double		u1 = ((nn_stream(seed, 2 * i) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
		double		u2 = (nn_stream(seed, 2 * i + 1) >> 11) * (1.0 / 9007199254740992.0);

		w[i] = (float) (std * sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
	}
}

/* ---- embedding ----------------------------------------------------------- */

IsrfStatus
isrf_nn_embedding_forward(IsrfEnv *env, float *out, const int32_t *ids, int n,
						  const float *table, int n_rows, int d)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		float	   *o = out + (size_t) i * d;

		if (ids[i] < 0)
			memset(o, 0, sizeof(float) * d);
		else if (ids[i] >= n_rows)
			return isrf_fail(env, ISRF_ERR_INVALID,
							 "embedding id %d at position %d is out of range (table has %d rows)",
							 (int) ids[i], i, n_rows);
		else
			memcpy(o, table + (size_t) ids[i] * d, sizeof(float) * d);
	}
	return ISRF_OK;
}

void
isrf_nn_embedding_backward(float *dtable, const int32_t *ids, int n,
						   const float *dout, int d)
{
	int			i,
				j;

	for (i = 0; i < n; i++)
	{
		float	   *g;
		const float *s = dout + (size_t) i * d;

		if (ids[i] < 0)
			continue;
		g = dtable + (size_t) ids[i] * d;
		for (j = 0; j < d; j++)
			g[j] += s[j];
	}
}

/* ---- linear ----------------------------------------------------------- */

IsrfStatus
isrf_nn_linear_forward(IsrfBackend *be, float *y, const float *x, const float *w,
					   const float *b, int n, int in, int out)
{
	int			i;

	/* start from the bias rows and let gemm accumulate: one pass over y */
	if (b)
		for (i = 0; i < n; i++)
			memcpy(y + (size_t) i * out, b, sizeof(float) * out);
	return be->gemm(be, false, true, n, out, in, 1.0f, x, in, w, in,
					b ? 1.0f : 0.0f, y, out);
}

IsrfStatus
isrf_nn_linear_backward(IsrfBackend *be, float *dx, float *dw, float *db,
						const float *dy, const float *x, const float *w,
						int n, int in, int out)
{
	int			i,
				j;

	if (dx)
		ISRF_TRY(be->gemm(be, false, false, n, in, out, 1.0f, dy, out, w, in,
						  1.0f, dx, in));
	if (dw)
		ISRF_TRY(be->gemm(be, true, false, out, in, n, 1.0f, dy, out, x, in,
						  1.0f, dw, in));
	if (db)
		for (i = 0; i < n; i++)
		{
			const float *dyi = dy + (size_t) i * out;

			for (j = 0; j < out; j++)
				db[j] += dyi[j];
		}
	return ISRF_OK;
}

/* ---- LayerNorm -------------------------------------------------------- */

void
isrf_nn_layernorm_forward(float *out, float *mean, float *rstd, const float *x,
						  const float *w, const float *b, int n, int c)
{
	int			i,
				j;

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
}

void
isrf_nn_layernorm_backward(float *dx, float *dw, float *db, const float *dout,
						   const float *x, const float *w, const float *mean,
						   const float *rstd, int n, int c)
{
	int			i,
				j;

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
}

/* ---- GELU ---------------------------------------------------------------- */

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

void
isrf_nn_gelu_forward(float *out, const float *x, size_t n)
{
	size_t		i = 0;

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
}

void
isrf_nn_gelu_backward(float *dx, const float *x, const float *dout, size_t n)
{
	size_t		i = 0;

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
}

/* ---- residual ------------------------------------------------------------ */

void
isrf_nn_residual_forward(float *out, const float *a, const float *b, size_t n)
{
	size_t		i;

	for (i = 0; i < n; i++)
		out[i] = a[i] + b[i];
}

void
isrf_nn_accumulate(float *dst, const float *src, size_t n)
{
	size_t		i;

	for (i = 0; i < n; i++)
		dst[i] += src[i];
}

/* ---- dropout -------------------------------------------------------------- */

/* Keep threshold on 24-bit uniforms: element kept when its draw >= thr. */
static inline uint32_t
nn_dropout_threshold(float p)
{
	return (uint32_t) ((double) p * 16777216.0);
}

void
isrf_nn_dropout_forward(float *out, const float *x, size_t n, float p, uint64_t seed)
{
	uint32_t	thr = nn_dropout_threshold(p);
	float		scale = 1.0f / (1.0f - p);
	size_t		i;

	if (p <= 0.0f)
	{
		if (out != x)
			memcpy(out, x, sizeof(float) * n);
		return;
	}
	for (i = 0; i < n; i++)
		out[i] = ((uint32_t) (nn_stream(seed, i) >> 40) >= thr) ? x[i] * scale : 0.0f;
}

void
isrf_nn_dropout_backward(float *dx, const float *dout, size_t n, float p, uint64_t seed)
{
	uint32_t	thr = nn_dropout_threshold(p);
	float		scale = 1.0f / (1.0f - p);
	size_t		i;

	if (p <= 0.0f)
	{
		isrf_nn_accumulate(dx, dout, n);
		return;
	}
	for (i = 0; i < n; i++)
		if ((uint32_t) (nn_stream(seed, i) >> 40) >= thr)
			dx[i] += dout[i] * scale;
}

/* ---- attention ------------------------------------------------------------ */

void
isrf_nn_mask_left_padded(uint8_t *valid, const int32_t *lens, int b, int t)
{
	int			i,
				j;

	for (i = 0; i < b; i++)
		for (j = 0; j < t; j++)
			valid[(size_t) i * t + j] = (j >= t - lens[i]) ? 1 : 0;
}

/* Masked causal softmax of the raw scores of one (sequence, head), in place. */
static void
nn_attention_softmax(float *s, const uint8_t *valid, int t)
{
	int			i,
				j;

	for (i = 0; i < t; i++)
	{
		float	   *row = s + (size_t) i * t;
		float		mx = -INFINITY,
					sum = 0.0f,
					inv;

		if (valid && !valid[i])
		{
			memset(row, 0, sizeof(float) * t);
			continue;
		}
		for (j = 0; j <= i; j++)
			if ((!valid || valid[j]) && row[j] > mx)
				mx = row[j];
		for (j = 0; j <= i; j++)
		{
			if (!valid || valid[j])
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

IsrfStatus
isrf_nn_attention_forward(IsrfBackend *be, float *out, float *att,
						  const float *qkv, const uint8_t *valid,
						  int b, int t, int c, int n_heads)
{
	int			hs = c / n_heads;
	float		scale = 1.0f / sqrtf((float) hs);
	int			i,
				h;

	if (n_heads <= 0 || c % n_heads != 0)
		return isrf_fail(be->env, ISRF_ERR_INVALID,
						 "attention: width %d is not divisible by %d heads", c, n_heads);
	for (i = 0; i < b; i++)
	{
		const float *q0 = qkv + (size_t) i * t * 3 * c;
		const uint8_t *vi = valid ? valid + (size_t) i * t : NULL;

		for (h = 0; h < n_heads; h++)
		{
			const float *q = q0 + h * hs;
			const float *k = q + c;
			const float *v = q + 2 * c;
			float	   *s = att + ((size_t) i * n_heads + h) * t * t;

			ISRF_TRY(be->gemm(be, false, true, t, t, hs, scale, q, 3 * c, k, 3 * c,
							  0.0f, s, t));
			nn_attention_softmax(s, vi, t);
			ISRF_TRY(be->gemm(be, false, false, t, hs, t, 1.0f, s, t, v, 3 * c,
							  0.0f, out + (size_t) i * t * c + h * hs, c));
		}
	}
	return ISRF_OK;
}

IsrfStatus
isrf_nn_attention_backward(IsrfBackend *be, float *dqkv, float *scratch,
						   const float *dout, const float *qkv, const float *att,
						   int b, int t, int c, int n_heads)
{
	int			hs = c / n_heads;
	float		scale = 1.0f / sqrtf((float) hs);
	int			i,
				h,
				r,
				j;

	if (n_heads <= 0 || c % n_heads != 0)
		return isrf_fail(be->env, ISRF_ERR_INVALID,
						 "attention: width %d is not divisible by %d heads", c, n_heads);
	for (i = 0; i < b; i++)
	{
		for (h = 0; h < n_heads; h++)
		{
			size_t		base = (size_t) i * t * 3 * c + h * hs;
			const float *q = qkv + base,
					   *k = q + c,
					   *v = q + 2 * c;
			float	   *dq = dqkv + base,
					   *dk = dq + c,
					   *dv = dq + 2 * c;
			const float *p = att + ((size_t) i * n_heads + h) * t * t;
			const float *dy = dout + (size_t) i * t * c + h * hs;
			float	   *ds = scratch;

			/* dP = dY V^T, dV += P^T dY */
			ISRF_TRY(be->gemm(be, false, true, t, t, hs, 1.0f, dy, c, v, 3 * c,
							  0.0f, ds, t));
			ISRF_TRY(be->gemm(be, true, false, t, hs, t, 1.0f, p, t, dy, c,
							  1.0f, dv, 3 * c));
			/* softmax backward; masked entries have P = 0 and stay 0 */
			for (r = 0; r < t; r++)
			{
				const float *pr = p + (size_t) r * t;
				float	   *dr = ds + (size_t) r * t;
				float		dot = 0.0f;

				for (j = 0; j <= r; j++)
					dot += pr[j] * dr[j];
				for (j = 0; j <= r; j++)
					dr[j] = pr[j] * (dr[j] - dot);
				for (j = r + 1; j < t; j++)
					dr[j] = 0.0f;
			}
			/* dQ += scale dS K, dK += scale dS^T Q */
			ISRF_TRY(be->gemm(be, false, false, t, hs, t, scale, ds, t, k, 3 * c,
							  1.0f, dq, 3 * c));
			ISRF_TRY(be->gemm(be, true, false, t, hs, t, scale, ds, t, q, 3 * c,
							  1.0f, dk, 3 * c));
		}
	}
	return ISRF_OK;
}

/* ---- softmax cross-entropy ----------------------------------------------- */

IsrfStatus
isrf_nn_softmax_ce(IsrfEnv *env, const float *logits, int ldl,
				   const int32_t *targets, int n, int v,
				   const uint8_t *cand, int cand_ld, float grad_scale,
				   float *loss, int *count, float *dlogits)
{
	int			i,
				j,
				cnt = 0;
	double		total = 0.0;
	float		gs;

	/* validate and count first: the gradient scale needs the count */
	for (i = 0; i < n; i++)
	{
		int32_t		y = targets[i];

		if (y < 0)
			continue;
		if (y >= v)
			return isrf_fail(env, ISRF_ERR_INVALID,
							 "cross-entropy target %d at row %d is out of range (%d classes)",
							 (int) y, i, v);
		if (cand && !cand[(size_t) i * cand_ld + y])
			return isrf_fail(env, ISRF_ERR_INVALID,
							 "cross-entropy target %d at row %d is not among the row's candidates",
							 (int) y, i);
		cnt++;
	}
	gs = cnt > 0 ? grad_scale / (float) cnt : 0.0f;
	for (i = 0; i < n; i++)
	{
		const float *li = logits + (size_t) i * ldl;
		const uint8_t *ci = cand ? cand + (size_t) i * cand_ld : NULL;
		float	   *gi = dlogits ? dlogits + (size_t) i * ldl : NULL;
		int32_t		y = targets[i];
		float		mx = -INFINITY,
					sum = 0.0f,
					ly;

		if (y < 0)
		{
			if (gi)
				memset(gi, 0, sizeof(float) * v);
			continue;
		}
		ly = li[y];
		for (j = 0; j < v; j++)
			if ((!ci || ci[j]) && li[j] > mx)
				mx = li[j];
		for (j = 0; j < v; j++)
			if (!ci || ci[j])
				sum += expf(li[j] - mx);
		total += (double) (logf(sum) + mx - ly);
		if (gi)
		{
			float		inv = 1.0f / sum;

			for (j = 0; j < v; j++)
				gi[j] = (!ci || ci[j]) ? expf(li[j] - mx) * inv * gs : 0.0f;
			gi[y] -= gs;
		}
	}
	*loss = cnt > 0 ? (float) (total / cnt) : 0.0f;
	if (count)
		*count = cnt;
	return ISRF_OK;
}

/* ---- L2 normalisation ------------------------------------------------------- */

void
isrf_nn_l2norm_forward(float *y, float *norms, const float *x, int n, int d)
{
	int			i,
				j;

	for (i = 0; i < n; i++)
	{
		const float *xi = x + (size_t) i * d;
		float	   *yi = y + (size_t) i * d;
		double		ss = 0.0;
		float		nr,
					inv;

		for (j = 0; j < d; j++)
			ss += (double) xi[j] * xi[j];
		nr = (float) sqrt(ss);
		if (nr < NN_L2_EPS)
			nr = NN_L2_EPS;
		inv = 1.0f / nr;
		for (j = 0; j < d; j++)
			yi[j] = xi[j] * inv;
		norms[i] = nr;
	}
}

void
isrf_nn_l2norm_backward(float *dx, const float *dy, const float *y,
						const float *norms, int n, int d)
{
	int			i,
				j;

	for (i = 0; i < n; i++)
	{
		const float *yi = y + (size_t) i * d;
		const float *gi = dy + (size_t) i * d;
		float	   *xi = dx + (size_t) i * d;
		float		dot = 0.0f,
					inv = 1.0f / norms[i];

		for (j = 0; j < d; j++)
			dot += yi[j] * gi[j];
		for (j = 0; j < d; j++)
			xi[j] += (gi[j] - yi[j] * dot) * inv;
	}
}

/* ---- InfoNCE --------------------------------------------------------------- */

IsrfStatus
isrf_nn_infonce(IsrfBackend *be, const float *a, const float *b, int n, int d,
				float tau, bool symmetric, float grad_scale, float *loss,
				float *da, float *db)
{
	IsrfEnv    *env = be->env;
	float	   *s = NULL;
	float	   *cmax,
			   *csum;
	double		lrow = 0.0,
				lcol = 0.0;
	float		wr = symmetric ? 0.5f : 1.0f;
	float		g = grad_scale / (float) n;
	int			i,
				j;
	IsrfStatus	st;

	if (n < 1 || d < 1)
		return isrf_fail(env, ISRF_ERR_INVALID, "InfoNCE needs at least one row (got %d x %d)", n, d);
	if (!(tau > 0.0f))
		return isrf_fail(env, ISRF_ERR_INVALID, "InfoNCE temperature must be positive (got %g)", (double) tau);
	ISRF_TRY(be->mem_alloc(be, sizeof(float) * ((size_t) n * n + 2 * (size_t) n), (void **) &s));
	cmax = s + (size_t) n * n;
	csum = cmax + n;

	st = be->gemm(be, false, true, n, n, d, 1.0f / tau, a, d, b, d, 0.0f, s, n);
	if (st != ISRF_OK)
		goto done;

	/* column statistics before the rows are overwritten with gradients */
	if (symmetric)
	{
		for (j = 0; j < n; j++)
		{
			cmax[j] = -INFINITY;
			csum[j] = 0.0f;
		}
		for (i = 0; i < n; i++)
			for (j = 0; j < n; j++)
				if (s[(size_t) i * n + j] > cmax[j])
					cmax[j] = s[(size_t) i * n + j];
		for (i = 0; i < n; i++)
			for (j = 0; j < n; j++)
				csum[j] += expf(s[(size_t) i * n + j] - cmax[j]);
		for (j = 0; j < n; j++)
			lcol += (double) (logf(csum[j]) + cmax[j] - s[(size_t) j * n + j]);
	}

	/* turn S into dL/dS in place */
	for (i = 0; i < n; i++)
	{
		float	   *row = s + (size_t) i * n;
		float		mx = -INFINITY,
					sum = 0.0f,
					inv;

		for (j = 0; j < n; j++)
			if (row[j] > mx)
				mx = row[j];
		for (j = 0; j < n; j++)
			sum += expf(row[j] - mx);
		lrow += (double) (logf(sum) + mx - row[i]);
		inv = 1.0f / sum;
		for (j = 0; j < n; j++)
		{
			float		grad = wr * expf(row[j] - mx) * inv;

			if (symmetric)
				grad += 0.5f * expf(row[j] - cmax[j]) / csum[j];
			row[j] = grad * g;
		}
		row[i] -= g;			/* wr + (symmetric ? 0.5 : 0) == 1 */
	}
	*loss = (float) ((symmetric ? 0.5 * (lrow + lcol) : lrow) / n);

	/* dA += dS B / tau, dB += dS^T A / tau */
	if (da)
	{
		st = be->gemm(be, false, false, n, d, n, 1.0f / tau, s, n, b, d, 1.0f, da, d);
		if (st != ISRF_OK)
			goto done;
	}
	if (db)
		st = be->gemm(be, true, false, n, d, n, 1.0f / tau, s, n, a, d, 1.0f, db, d);
done:
	be->mem_free(be, s);
	return st;
}
