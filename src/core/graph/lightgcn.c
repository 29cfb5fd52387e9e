/*
 * graph/lightgcn.c
 *	  The bipartite train graph's normalised adjacency and LightGCN layer
 *	  propagation on a backend.
 *
 * LightGCN has no weights and no nonlinearity: the output is a fixed linear
 * map F(E0) = 1/(L+1) sum_l S^l E0, so its adjoint is the same sum over S^T,
 * which equals S for the symmetric normalisations we build.  Backward is
 * therefore the forward product applied to the incoming gradient.
 */
#include "graph/lightgcn.h"

#include <math.h>
#include <string.h>

IsrfStatus
isrf_lightgcn_bipartite(IsrfEnv *env, const IsrfDataset *ds, IsrfCsr *out)
{
	int64_t		n_nodes = (int64_t) ds->n_users + ds->n_items;
	int64_t		n_edges = 0,
				e = 0;
	int32_t    *rows = NULL,
			   *cols = NULL;
	IsrfStatus	st;
	int32_t		u,
				r;

	memset(out, 0, sizeof(*out));
	if (n_nodes > INT32_MAX)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "user-item graph has %lld nodes, more than 2^31-1",
						 (long long) n_nodes);
	for (u = 0; u < ds->n_users; u++)
		n_edges += ds->n_train[u];
	if (2 * n_edges > INT32_MAX)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "user-item graph has %lld train edges, too many for 32-bit indices",
						 (long long) n_edges);
	rows = isrf_alloc(env, sizeof(int32_t) * (size_t) (2 * n_edges + 1));
	cols = isrf_alloc(env, sizeof(int32_t) * (size_t) (2 * n_edges + 1));
	if (!rows || !cols)
	{
		isrf_free(env, rows);
		isrf_free(env, cols);
		return ISRF_ERR_NOMEM;
	}
	for (u = 0; u < ds->n_users; u++)
	{
		const int32_t *h = ds->seq + ds->seq_ptr[u];
		int32_t		t;

		for (t = 0; t < ds->n_train[u]; t++)
		{
			int32_t		node = ds->n_users + h[t];

			rows[e] = u;
			cols[e++] = node;
			rows[e] = node;
			cols[e++] = u;
		}
	}
	st = isrf_csr_from_coo(env, (int32_t) n_nodes, (int32_t) n_nodes, e, rows, cols,
						   NULL, out);
	isrf_free(env, rows);
	isrf_free(env, cols);
	if (st != ISRF_OK)
		return st;

	/*
	 * Degrees count distinct neighbours (a repeated pair would have been
	 * summed by the builder; the dataset de-duplicates, but be safe), and
	 * each weight is 1/sqrt(d_i d_j) as a commutative float product so the
	 * matrix is exactly symmetric.
	 */
	{
		float	   *dinv = isrf_alloc(env, sizeof(float) * ((size_t) n_nodes + 1));
		int32_t		p;

		if (dinv == NULL)
		{
			isrf_csr_free(env, out);
			return ISRF_ERR_NOMEM;
		}
		for (r = 0; r < out->n_rows; r++)
		{
			int32_t		deg = out->rowptr[r + 1] - out->rowptr[r];

			dinv[r] = deg > 0 ? (float) (1.0 / sqrt((double) deg)) : 0.0f;
		}
		for (r = 0; r < out->n_rows; r++)
			for (p = out->rowptr[r]; p < out->rowptr[r + 1]; p++)
				out->val[p] = dinv[r] * dinv[out->col[p]];
		isrf_free(env, dinv);
	}
	return ISRF_OK;
}

IsrfStatus
isrf_lightgcn_init(IsrfEnv *env, IsrfBackend *be, const IsrfDevCsr *s,
				   int32_t n, int32_t d, int32_t layers, IsrfLightGcn *out)
{
	size_t		bytes;
	int			i;

	memset(out, 0, sizeof(*out));
	if (n < 0 || d < 1 || layers < 0)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "LightGCN: bad shape %d x %d or layer count %d", n, d, layers);
	if (s == NULL && n > 0 && layers > 0)
		return isrf_fail(env, ISRF_ERR_INVALID, "LightGCN: no graph given");
	out->be = be;
	out->s = s;
	out->n = n;
	out->d = d;
	out->layers = layers;
	bytes = sizeof(float) * (size_t) n * d;
	for (i = 0; i < 2 && layers > 0; i++)
	{
		IsrfStatus	st = be->mem_alloc(be, bytes ? bytes : sizeof(float), (void **) &out->buf[i]);

		if (st != ISRF_OK)
		{
			isrf_lightgcn_free(out);
			return st;
		}
	}
	return ISRF_OK;
}

/* out = 1/(L+1) sum_{l=0..L} S^l x, ping-ponging between two buffers. */
static IsrfStatus
lightgcn_propagate(IsrfLightGcn *g, const float *x, float *out)
{
	IsrfBackend *be = g->be;
	size_t		len = (size_t) g->n * g->d;
	float		w = 1.0f / (float) (g->layers + 1);
	const float *prev = x;
	int			l;

	if ((uintptr_t) out < (uintptr_t) (x + len) && (uintptr_t) x < (uintptr_t) (out + len))
		return isrf_fail(be->env, ISRF_ERR_INVALID,
						 "LightGCN: input and output buffers overlap");
	if (len == 0)
		return ISRF_OK;
	ISRF_TRY(be->axpby(be, len, w, x, 0.0f, out));
	for (l = 1; l <= g->layers; l++)
	{
		float	   *next = g->buf[l & 1];

		ISRF_TRY(isrf_poll(be->env));
		ISRF_TRY(be->spmm(be, g->s, g->d, 1.0f, prev, 0.0f, next));
		ISRF_TRY(be->axpby(be, len, w, next, 1.0f, out));
		prev = next;
	}
	return ISRF_OK;
}

IsrfStatus
isrf_lightgcn_forward(IsrfLightGcn *g, const float *e0, float *out)
{
	return lightgcn_propagate(g, e0, out);
}

IsrfStatus
isrf_lightgcn_backward(IsrfLightGcn *g, const float *d_out, float *d_e0)
{
	return lightgcn_propagate(g, d_out, d_e0);
}

void
isrf_lightgcn_free(IsrfLightGcn *g)
{
	int			i;

	for (i = 0; i < 2; i++)
		if (g->buf[i])
			g->be->mem_free(g->be, g->buf[i]);
	memset(g, 0, sizeof(*g));
}
