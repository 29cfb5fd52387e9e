/*
 * base/csr.c
 *	  Host CSR matrices: allocation, building from triples, and the plain
 *	  reference product that the backends are checked against.
 */
#include "base/csr.h"

#include <string.h>

IsrfStatus
isrf_csr_alloc(IsrfEnv *env, int32_t n_rows, int32_t n_cols, int64_t nnz,
			   IsrfCsr *out)
{
	memset(out, 0, sizeof(*out));
	if (n_rows < 0 || n_cols < 0 || nnz < 0)
		return isrf_fail(env, ISRF_ERR_INVALID, "negative sparse matrix size");
	if (nnz > INT32_MAX)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "sparse matrix has %lld entries, more than 2^31-1",
						 (long long) nnz);
	out->n_rows = n_rows;
	out->n_cols = n_cols;
	out->nnz = (int32_t) nnz;
	out->rowptr = isrf_calloc(env, (size_t) n_rows + 1, sizeof(int32_t));
	out->col = isrf_calloc(env, (size_t) nnz, sizeof(int32_t));
	out->val = isrf_calloc(env, (size_t) nnz, sizeof(float));
	if (!out->rowptr || !out->col || !out->val)
	{
		isrf_csr_free(env, out);
		return ISRF_ERR_NOMEM;
	}
	return ISRF_OK;
}

void
isrf_csr_free(IsrfEnv *env, IsrfCsr *m)
{
	isrf_free(env, m->rowptr);
	isrf_free(env, m->col);
	isrf_free(env, m->val);
	memset(m, 0, sizeof(*m));
}

IsrfStatus
isrf_csr_validate(IsrfEnv *env, const IsrfCsr *m)
{
	int32_t		r,
				p;

	if (m->n_rows < 0 || m->n_cols < 0 || m->nnz < 0)
		return isrf_fail(env, ISRF_ERR_INVALID, "sparse matrix has a negative size (%d x %d, nnz %d)",
						 m->n_rows, m->n_cols, m->nnz);
	if (m->rowptr[0] != 0 || m->rowptr[m->n_rows] != m->nnz)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "sparse matrix row pointers run from %d to %d, expected 0 to nnz=%d",
						 m->rowptr[0], m->rowptr[m->n_rows], m->nnz);
	/* every pointer in order and within nnz before a column is read */
	for (r = 0; r < m->n_rows; r++)
		if (m->rowptr[r + 1] < m->rowptr[r] || m->rowptr[r + 1] > m->nnz)
			return isrf_fail(env, ISRF_ERR_INVALID,
							 "sparse matrix row pointer %d of row %d is out of order or past nnz=%d",
							 m->rowptr[r + 1], r + 1, m->nnz);
	for (r = 0; r < m->n_rows; r++)
	{
		for (p = m->rowptr[r]; p < m->rowptr[r + 1]; p++)
			if (m->col[p] < 0 || m->col[p] >= m->n_cols)
				return isrf_fail(env, ISRF_ERR_INVALID, "sparse matrix column %d in row %d outside 0..%d",
								 m->col[p], r, m->n_cols - 1);
	}
	return ISRF_OK;
}

IsrfStatus
isrf_csr_from_coo(IsrfEnv *env, int32_t n_rows, int32_t n_cols, int64_t n,
				  const int32_t *rows, const int32_t *cols, const float *vals,
				  IsrfCsr *out)
{
	IsrfCsr		tmp;
	int32_t    *fill;
	int64_t		i;
	int32_t		r,
				w;

	for (i = 0; i < n; i++)
		if (rows[i] < 0 || rows[i] >= n_rows || cols[i] < 0 || cols[i] >= n_cols)
			return isrf_fail(env, ISRF_ERR_INVALID,
							 "sparse entry (%d, %d) outside %d x %d",
							 rows[i], cols[i], n_rows, n_cols);
	ISRF_TRY(isrf_csr_alloc(env, n_rows, n_cols, n, &tmp));
	fill = isrf_calloc(env, (size_t) n_rows + 1, sizeof(int32_t));
	if (!fill)
	{
		isrf_csr_free(env, &tmp);
		return ISRF_ERR_NOMEM;
	}
	for (i = 0; i < n; i++)
		tmp.rowptr[rows[i] + 1]++;
	for (r = 0; r < n_rows; r++)
		tmp.rowptr[r + 1] += tmp.rowptr[r];
	for (i = 0; i < n; i++)
	{
		int32_t		pos = tmp.rowptr[rows[i]] + fill[rows[i]]++;

		tmp.col[pos] = cols[i];
		tmp.val[pos] = vals ? vals[i] : 1.0f;
	}
	isrf_free(env, fill);

	/* sort each row by column (insertion sort: rows are short) and merge */
	w = 0;
	for (r = 0; r < n_rows; r++)
	{
		int32_t		lo = tmp.rowptr[r],
					hi = tmp.rowptr[r + 1],
					a,
					start = w;

		for (a = lo + 1; a < hi; a++)
		{
			int32_t		c = tmp.col[a];
			float		v = tmp.val[a];
			int32_t		b = a - 1;

			while (b >= lo && tmp.col[b] > c)
			{
				tmp.col[b + 1] = tmp.col[b];
				tmp.val[b + 1] = tmp.val[b];
				b--;
			}
			tmp.col[b + 1] = c;
			tmp.val[b + 1] = v;
		}
		for (a = lo; a < hi; a++)
		{
			if (w > start && tmp.col[w - 1] == tmp.col[a])
				tmp.val[w - 1] += tmp.val[a];
			else
			{
				tmp.col[w] = tmp.col[a];
				tmp.val[w] = tmp.val[a];
				w++;
			}
		}
		tmp.rowptr[r] = start;
	}
	tmp.rowptr[n_rows] = w;
	tmp.nnz = w;
	*out = tmp;
	return ISRF_OK;
}

int32_t
isrf_csr_column_map(const IsrfCsr *m, int32_t *map)
{
	int32_t		n = 0,
				p;

	for (p = 0; p < m->n_cols; p++)
		map[p] = -1;
	for (p = 0; p < m->nnz; p++)
		if (m->val[p] != 0.0f && m->col[p] >= 0 && m->col[p] < m->n_cols)
			map[m->col[p]] = 0;
	for (p = 0; p < m->n_cols; p++)
		if (map[p] == 0)
			map[p] = n++;
	return n;
}

void
isrf_csr_spmm_ref(const IsrfCsr *s, int d, float alpha, const float *x,
				  float beta, float *y)
{
	int32_t		r;

	for (r = 0; r < s->n_rows; r++)
	{
		float	   *yr = y + (size_t) r * d;
		int32_t		p;
		int			j;

		for (j = 0; j < d; j++)
			yr[j] = (beta == 0.0f) ? 0.0f : beta * yr[j];
		for (p = s->rowptr[r]; p < s->rowptr[r + 1]; p++)
		{
			const float *xr = x + (size_t) s->col[p] * d;
			float		w = alpha * s->val[p];

			for (j = 0; j < d; j++)
				yr[j] += w * xr[j];
		}
	}
}
