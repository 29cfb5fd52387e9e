/*
 * nn/layers.c
 *	  Forward and backward passes of the neural-network layers (see nn.h):
 *	  matrix products on the backend's gemm, the rest as plain loops.
 */
#include "nn/layers.h"

#include <math.h>
#include <string.h>

#define NN_GOLDEN 0x9E3779B97F4A7C15ULL
#define NN_L2_EPS 1e-12f

bool
isrf_nn_backend_host_ok(const IsrfBackend *be)
{
	return be != NULL && be->name != NULL && strcmp(be->name, "cpu") == 0;
}

uint64_t
isrf_nn_key(uint64_t seed, uint64_t a, uint64_t b)
{
	return isrf_nn_hash64(isrf_nn_hash64(seed + NN_GOLDEN * (a + 1)) + NN_GOLDEN * (b + 1));
}

void
isrf_nn_init_normal(float *w, size_t n, float std, uint64_t seed)
{
	size_t		i;

	for (i = 0; i < n; i++)
	{
		/* Box-Muller on two 53-bit uniforms; u1 in (0, 1] keeps log finite */
		double		u1 = ((isrf_nn_stream(seed, 2 * i) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
		double		u2 = (isrf_nn_stream(seed, 2 * i + 1) >> 11) * (1.0 / 9007199254740992.0);

		w[i] = (float) (std * sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
	}
}

/* ---- embedding ----------------------------------------------------------- */

IsrfStatus
isrf_nn_embedding_forward(IsrfBackend *be, float *out, const int32_t *ids, int n,
						  const float *table, int n_rows, int d)
{
	int			i;

	/* ids in host memory can be checked here; device ids were checked by the caller */
	if (isrf_nn_backend_host_ok(be))
		for (i = 0; i < n; i++)
			if (ids[i] >= n_rows)
				return isrf_fail(be->env, ISRF_ERR_INVALID,
								 "embedding id %d at position %d is out of range (table has %d rows)",
								 (int) ids[i], i, n_rows);
	return be->gather_rows(be, out, ids, n, table, d, false);
}

IsrfStatus
isrf_nn_embedding_backward(IsrfBackend *be, float *dtable, const int32_t *ids, int n,
						   const float *dout, int d)
{
	return be->scatter_add_rows(be, dtable, ids, n, dout, d);
}

/* ---- linear ----------------------------------------------------------- */

IsrfStatus
isrf_nn_linear_forward(IsrfBackend *be, float *y, const float *x, const float *w,
					   const float *b, int n, int in, int out)
{
	/* start from the bias rows and let gemm accumulate: one pass over y */
	if (b)
		ISRF_TRY(be->rows_set(be, y, b, n, out));
	return be->gemm(be, false, true, n, out, in, 1.0f, x, in, w, in,
					b ? 1.0f : 0.0f, y, out);
}

IsrfStatus
isrf_nn_linear_backward(IsrfBackend *be, float *dx, float *dw, float *db,
						const float *dy, const float *x, const float *w,
						int n, int in, int out)
{
	if (dx)
		ISRF_TRY(be->gemm(be, false, false, n, in, out, 1.0f, dy, out, w, in,
						  1.0f, dx, in));
	if (dw)
		ISRF_TRY(be->gemm(be, true, false, out, in, n, 1.0f, dy, out, x, in,
						  1.0f, dw, in));
	if (db)
		ISRF_TRY(be->colsum_acc(be, db, dy, n, out));
	return ISRF_OK;
}

/* ---- LayerNorm -------------------------------------------------------- */

IsrfStatus
isrf_nn_layernorm_forward(IsrfBackend *be, float *out, float *mean, float *rstd,
						  const float *x, const float *w, const float *b, int n, int c)
{
	return be->layernorm_forward(be, out, mean, rstd, x, w, b, n, c);
}

IsrfStatus
isrf_nn_layernorm_backward(IsrfBackend *be, float *dx, float *dw, float *db,
						   const float *dout, const float *x, const float *w,
						   const float *mean, const float *rstd, int n, int c)
{
	return be->layernorm_backward(be, dx, dw, db, dout, x, w, mean, rstd, n, c);
}

/* ---- GELU, residual, dropout ---------------------------------------------- */

IsrfStatus
isrf_nn_gelu_forward(IsrfBackend *be, float *out, const float *x, size_t n)
{
	return be->gelu_forward(be, out, x, n);
}

IsrfStatus
isrf_nn_gelu_backward(IsrfBackend *be, float *dx, const float *x, const float *dout, size_t n)
{
	return be->gelu_backward(be, dx, x, dout, n);
}

IsrfStatus
isrf_nn_residual_forward(IsrfBackend *be, float *out, const float *a, const float *b, size_t n)
{
	return be->add(be, n, a, b, out);
}

IsrfStatus
isrf_nn_accumulate(IsrfBackend *be, float *dst, const float *src, size_t n)
{
	return be->axpby(be, n, 1.0f, src, 1.0f, dst);
}

IsrfStatus
isrf_nn_dropout_forward(IsrfBackend *be, float *out, const float *x, size_t n, float p,
						uint64_t seed)
{
	return be->dropout_forward(be, out, x, n, p, seed);
}

IsrfStatus
isrf_nn_dropout_backward(IsrfBackend *be, float *dx, const float *dout, size_t n, float p,
						 uint64_t seed)
{
	return be->dropout_backward(be, dx, dout, n, p, seed);
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

IsrfStatus
isrf_nn_attention_forward(IsrfBackend *be, float *out, float *att,
						  const float *qkv, const uint8_t *valid,
						  int b, int t, int c, int n_heads)
{
	int			hs;
	size_t		tt = (size_t) t * t,
				q3 = (size_t) t * 3 * c;

	if (n_heads <= 0 || c % n_heads != 0)
		return isrf_fail(be->env, ISRF_ERR_INVALID,
						 "attention: width %d is not divisible by %d heads", c, n_heads);
	hs = c / n_heads;
	/* S = Q K^T / sqrt(hs) per (sequence, head); heads sit hs columns apart */
	ISRF_TRY(be->gemm_batched(be, false, true, t, t, hs, 1.0f / sqrtf((float) hs),
							  qkv, 3 * c, q3, hs, qkv + c, 3 * c, q3, hs,
							  0.0f, att, t, n_heads * tt, tt, b, n_heads));
	ISRF_TRY(be->attn_softmax_forward(be, att, valid, b, n_heads, t));
	/* Y = P V */
	return be->gemm_batched(be, false, false, t, hs, t, 1.0f,
							att, t, n_heads * tt, tt, qkv + 2 * c, 3 * c, q3, hs,
							0.0f, out, c, (size_t) t * c, hs, b, n_heads);
}

IsrfStatus
isrf_nn_attention_backward(IsrfBackend *be, float *dqkv, float *scratch,
						   const float *dout, const float *qkv, const float *att,
						   int b, int t, int c, int n_heads)
{
	int			hs;
	float		scale;
	size_t		tt = (size_t) t * t,
				q3 = (size_t) t * 3 * c,
				yc = (size_t) t * c;

	if (n_heads <= 0 || c % n_heads != 0)
		return isrf_fail(be->env, ISRF_ERR_INVALID,
						 "attention: width %d is not divisible by %d heads", c, n_heads);
	hs = c / n_heads;
	scale = 1.0f / sqrtf((float) hs);
	/* dP = dY V^T, dV += P^T dY */
	ISRF_TRY(be->gemm_batched(be, false, true, t, t, hs, 1.0f,
							  dout, c, yc, hs, qkv + 2 * c, 3 * c, q3, hs,
							  0.0f, scratch, t, n_heads * tt, tt, b, n_heads));
	ISRF_TRY(be->gemm_batched(be, true, false, t, hs, t, 1.0f,
							  att, t, n_heads * tt, tt, dout, c, yc, hs,
							  1.0f, dqkv + 2 * c, 3 * c, q3, hs, b, n_heads));
	/* softmax backward; masked entries have P = 0 and stay 0 */
	ISRF_TRY(be->attn_softmax_backward(be, scratch, att, b * n_heads, t));
	/* dQ += scale dS K, dK += scale dS^T Q */
	ISRF_TRY(be->gemm_batched(be, false, false, t, hs, t, scale,
							  scratch, t, n_heads * tt, tt, qkv + c, 3 * c, q3, hs,
							  1.0f, dqkv, 3 * c, q3, hs, b, n_heads));
	return be->gemm_batched(be, true, false, t, hs, t, scale,
							scratch, t, n_heads * tt, tt, qkv, 3 * c, q3, hs,
							1.0f, dqkv + c, 3 * c, q3, hs, b, n_heads);
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
