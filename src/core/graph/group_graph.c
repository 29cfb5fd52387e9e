/*
 * graph/group_graph.c
 *	  The group graph: blockwise top-K cosine neighbours on a backend, and
 *	  the symmetric normalised adjacency that LightGCN propagates over.
 *
 * Scores are produced a block of rows at a time (block x all^T with one
 * GEMM, then a row-wise top-k on the backend), so memory is O(block * n),
 * never O(n^2).  Users with a zero feature vector are left out of the
 * product altogether: a zero vector has no direction, and keeping it would
 * hand out cosine-0 "neighbours" chosen only by index.
 */
#include "graph/group_graph.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Score blocks of about this many bytes when the caller does not choose. */
#define KNN_BLOCK_BYTES ((size_t) 128 << 20)
#define KNN_BLOCK_MAX 4096

void
isrf_group_graph_config_default(IsrfGroupGraphConfig *cfg)
{
	cfg->k = 50;
	cfg->min_similarity = -INFINITY;
	cfg->block_rows = 0;
}

/* Rows per block: the caller's choice, else what fits the byte budget. */
static int32_t
knn_block_rows(const IsrfGroupGraphConfig *cfg, int32_t n)
{
	size_t		b;

	if (cfg->block_rows > 0)
		b = (size_t) cfg->block_rows;
	else
	{
		b = KNN_BLOCK_BYTES / ((size_t) (n > 0 ? n : 1) * sizeof(float));
		if (b > KNN_BLOCK_MAX)
			b = KNN_BLOCK_MAX;
		if (b < 1)
			b = 1;
	}
	if (b > (size_t) n)
		b = (size_t) n;
	return (int32_t) b;
}

IsrfStatus
isrf_group_graph_build(IsrfEnv *env, IsrfBackend *be, const float *x, int32_t n,
			   int32_t d, const IsrfGroupGraphConfig *cfg, IsrfCsr *out)
{
	IsrfStatus	st = ISRF_OK;
	int32_t    *map = NULL;		/* compact index -> user */
	float	   *stage = NULL;
	float	   *dx = NULL,
			   *dscore = NULL,
			   *dval = NULL;
	int32_t    *didx = NULL;
	float	   *hval = NULL;
	int32_t    *hidx = NULL;
	int32_t		nz = 0,
				k,
				block,
				i;
	int64_t		cap;
	int32_t		w = 0;

	memset(out, 0, sizeof(*out));
	if (n < 0 || d < 1)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "kNN: bad feature matrix shape %d x %d", n, d);
	if (cfg->k < 0)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "kNN: number of neighbours must not be negative (got %d)", cfg->k);
	if (isnan(cfg->min_similarity))
		return isrf_fail(env, ISRF_ERR_INVALID, "kNN: similarity threshold is NaN");

	/* which users have a direction at all; reject NaN/inf outright */
	map = isrf_alloc(env, sizeof(int32_t) * ((size_t) n + 1));
	if (map == NULL)
		return ISRF_ERR_NOMEM;
	for (i = 0; i < n; i++)
	{
		const float *row = x + (size_t) i * d;
		bool		nonzero = false;
		int32_t		j;

		for (j = 0; j < d; j++)
		{
			if (!isfinite(row[j]))
			{
				isrf_free(env, map);
				return isrf_fail(env, ISRF_ERR_INVALID,
								 "kNN: feature %d of user row %d is not finite", j, i);
			}
			if (row[j] != 0.0f)
				nonzero = true;
		}
		if (nonzero)
			map[nz++] = i;
	}

	k = cfg->k;
	if (k > nz - 1)
		k = nz > 0 ? nz - 1 : 0;
	cap = (int64_t) nz * k;
	st = isrf_csr_alloc(env, n, n, cap, out);
	if (st != ISRF_OK)
		goto done;
	if (k == 0)
	{
		out->nnz = 0;			/* rowptr is all zeros already */
		goto done;
	}

	/* compact the users with features into backend memory and normalise */
	st = be->mem_alloc(be, sizeof(float) * (size_t) nz * d, (void **) &dx);
	if (st != ISRF_OK)
		goto done;
	if (nz == n)
		st = be->upload(be, dx, x, sizeof(float) * (size_t) n * d);
	else
	{
		stage = isrf_alloc(env, sizeof(float) * (size_t) nz * d);
		if (stage == NULL)
		{
			st = ISRF_ERR_NOMEM;
			goto done;
		}
		for (i = 0; i < nz; i++)
			memcpy(stage + (size_t) i * d, x + (size_t) map[i] * d, sizeof(float) * d);
		st = be->upload(be, dx, stage, sizeof(float) * (size_t) nz * d);
		isrf_free(env, stage);
		stage = NULL;
	}
	if (st != ISRF_OK)
		goto done;
	if ((st = be->row_normalize(be, nz, d, dx)) != ISRF_OK)
		goto done;

	block = knn_block_rows(cfg, nz);
	if ((st = be->mem_alloc(be, sizeof(float) * (size_t) block * nz, (void **) &dscore)) != ISRF_OK ||
		(st = be->mem_alloc(be, sizeof(float) * (size_t) block * k, (void **) &dval)) != ISRF_OK ||
		(st = be->mem_alloc(be, sizeof(int32_t) * (size_t) block * k, (void **) &didx)) != ISRF_OK)
		goto done;
	hval = isrf_alloc(env, sizeof(float) * (size_t) block * k);
	hidx = isrf_alloc(env, sizeof(int32_t) * (size_t) block * k);
	if (hval == NULL || hidx == NULL)
	{
		st = ISRF_ERR_NOMEM;
		goto done;
	}

	/*
	 * Row pointers are filled for compact rows as they come; users without
	 * features sit between them with empty rows, so walk users in order.
	 */
	{
		int32_t		next_user = 0;
		int32_t		r0;

		for (r0 = 0; r0 < nz; r0 += block)
		{
			int32_t		m = (nz - r0 < block) ? nz - r0 : block;
			int32_t		r;

			if ((st = isrf_poll(env)) != ISRF_OK)
				goto done;
			st = be->gemm(be, false, true, m, nz, d, 1.0f,
						  dx + (size_t) r0 * d, d, dx, d, 0.0f, dscore, nz);
			if (st != ISRF_OK)
				goto done;
			st = be->topk_rows(be, m, nz, dscore, nz, k, true, r0, didx, dval);
			if (st != ISRF_OK)
				goto done;
			if ((st = be->download(be, hidx, didx, sizeof(int32_t) * (size_t) m * k)) != ISRF_OK ||
				(st = be->download(be, hval, dval, sizeof(float) * (size_t) m * k)) != ISRF_OK)
				goto done;
			for (r = 0; r < m; r++)
			{
				int32_t		user = map[r0 + r];
				int32_t		j;

				while (next_user <= user)
					out->rowptr[next_user++] = w;
				for (j = 0; j < k; j++)
				{
					int32_t		c = hidx[(size_t) r * k + j];
					float		v = hval[(size_t) r * k + j];

					/* sorted descending: the first miss ends the row */
					if (c < 0 || c >= nz || !(v >= cfg->min_similarity))
						break;
					out->col[w] = map[c];
					out->val[w] = v;
					w++;
				}
			}
		}
		while (next_user <= n)
			out->rowptr[next_user++] = w;
	}
	out->nnz = w;

done:
	if (dx)
		be->mem_free(be, dx);
	if (dscore)
		be->mem_free(be, dscore);
	if (dval)
		be->mem_free(be, dval);
	if (didx)
		be->mem_free(be, didx);
	isrf_free(env, hval);
	isrf_free(env, hidx);
	isrf_free(env, stage);
	isrf_free(env, map);
	if (st != ISRF_OK)
		isrf_csr_free(env, out);
	return st;
}

typedef struct KnnEdge
{
	int32_t		col;
	float		val;
} KnnEdge;

static int
knn_edge_cmp(const void *a, const void *b)
{
	int32_t		ca = ((const KnnEdge *) a)->col,
				cb = ((const KnnEdge *) b)->col;

	return (ca > cb) - (ca < cb);
}

IsrfStatus
isrf_group_graph_normalize(IsrfEnv *env, const IsrfCsr *knn, IsrfCsr *out)
{
	int32_t		n = knn->n_rows;
	int64_t		total;
	int64_t    *start = NULL;
	int64_t    *fill = NULL;
	KnnEdge    *edges = NULL;
	float	   *dinv = NULL;
	IsrfStatus	st = ISRF_OK;
	int32_t		i;
	int64_t		p,
				w;

	memset(out, 0, sizeof(*out));
	if (knn->n_cols != n)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "group graph must be square, got %d x %d", n, knn->n_cols);
	for (p = 0; p < knn->nnz; p++)
		if (knn->col[p] < 0 || knn->col[p] >= n)
			return isrf_fail(env, ISRF_ERR_INVALID,
							 "group graph neighbour %d outside 0..%d", knn->col[p], n - 1);

	/* every edge in both directions plus one self-loop per user */
	total = 2 * (int64_t) knn->nnz + n;
	start = isrf_calloc(env, (size_t) n + 1, sizeof(int64_t));
	fill = isrf_calloc(env, (size_t) n + 1, sizeof(int64_t));
	edges = isrf_alloc(env, sizeof(KnnEdge) * (size_t) (total > 0 ? total : 1));
	dinv = isrf_alloc(env, sizeof(float) * ((size_t) n + 1));
	if (!start || !fill || !edges || !dinv)
	{
		st = ISRF_ERR_NOMEM;
		goto done;
	}
	for (i = 0; i < n; i++)
	{
		start[i + 1]++;
		for (p = knn->rowptr[i]; p < knn->rowptr[i + 1]; p++)
		{
			start[i + 1]++;
			start[knn->col[p] + 1]++;
		}
	}
	for (i = 0; i < n; i++)
		start[i + 1] += start[i];

#define KNN_PUT(r, c, v) \
	do { \
		KnnEdge	   *e_ = &edges[start[(r)] + fill[(r)]++]; \
		e_->col = (c); \
		e_->val = (v); \
	} while (0)

	for (i = 0; i < n; i++)
	{
		KNN_PUT(i, i, 1.0f);
		for (p = knn->rowptr[i]; p < knn->rowptr[i + 1]; p++)
		{
			int32_t		j = knn->col[p];
			float		v = knn->val[p] > 0.0f ? knn->val[p] : 0.0f;

			if (j == i)
				v = 0.0f;		/* a stray self-edge: the self-loop covers it */
			KNN_PUT(i, j, v);
			KNN_PUT(j, i, v);
		}
	}
#undef KNN_PUT

	/* sort each row by column, merge duplicates with max, drop zero weights */
	w = 0;
	for (i = 0; i < n; i++)
	{
		int64_t		lo = start[i],
					hi = start[i + 1],
					row_start = w;
		double		deg = 0.0;

		if ((i & 4095) == 0 && (st = isrf_poll(env)) != ISRF_OK)
			goto done;
		qsort(edges + lo, (size_t) (hi - lo), sizeof(KnnEdge), knn_edge_cmp);
		for (p = lo; p < hi; p++)
		{
			if (w > row_start && edges[w - 1].col == edges[p].col)
			{
				if (edges[p].val > edges[w - 1].val)
					edges[w - 1].val = edges[p].val;
			}
			else
				edges[w++] = edges[p];
		}
		/* compact away zero-weight edges (the self-loop is never zero) */
		{
			int64_t		r = row_start,
						q;

			for (q = row_start; q < w; q++)
				if (edges[q].val > 0.0f)
				{
					edges[r++] = edges[q];
					deg += edges[q].val;
				}
			w = r;
		}
		start[i] = row_start;
		dinv[i] = (float) (1.0 / sqrt(deg));
	}
	start[n] = w;

	st = isrf_csr_alloc(env, n, n, w, out);
	if (st != ISRF_OK)
		goto done;
	for (i = 0; i <= n; i++)
		out->rowptr[i] = (int32_t) start[i];
	for (i = 0; i < n; i++)
		for (p = start[i]; p < start[i + 1]; p++)
		{
			int32_t		j = edges[p].col;

			/* dinv[i] * dinv[j] is commutative, so out stays exactly symmetric */
			out->col[p] = j;
			out->val[p] = edges[p].val * (dinv[i] * dinv[j]);
		}

done:
	isrf_free(env, start);
	isrf_free(env, fill);
	isrf_free(env, edges);
	isrf_free(env, dinv);
	return st;
}
