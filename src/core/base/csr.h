/*
 * base/csr.h
 *	  Host sparse matrices in compressed sparse row form.
 *
 * Indices are 32-bit (cuSPARSE-friendly); builders check that nnz fits.
 */
#ifndef ISRF_CSR_H
#define ISRF_CSR_H

#include "base/env.h"

typedef struct IsrfCsr
{
	int32_t		n_rows;
	int32_t		n_cols;
	int32_t		nnz;
	int32_t    *rowptr;			/* n_rows + 1 */
	int32_t    *col;			/* nnz, sorted ascending within a row */
	float	   *val;			/* nnz */
} IsrfCsr;

/* Allocate an n_rows x n_cols matrix with room for nnz entries. */
IsrfStatus	isrf_csr_alloc(IsrfEnv *env, int32_t n_rows, int32_t n_cols,
						   int64_t nnz, IsrfCsr *out);

void		isrf_csr_free(IsrfEnv *env, IsrfCsr *m);

/* Check sizes, row pointers and column indices (before any device sees them). */
IsrfStatus	isrf_csr_validate(IsrfEnv *env, const IsrfCsr *m);

/*
 * Build from coordinate triples (row, col, val).  Duplicate (row, col)
 * entries are summed; rows come out with ascending columns.
 */
IsrfStatus	isrf_csr_from_coo(IsrfEnv *env, int32_t n_rows, int32_t n_cols,
							  int64_t n, const int32_t *rows,
							  const int32_t *cols, const float *vals,
							  IsrfCsr *out);

/* Plain reference product Y[n_rows,d] = alpha*S*X + beta*Y (row-major). */
/*
 * Number the columns of m that hold a nonzero entry 0, 1, ... in column
 * order into map[m->n_cols] (-1: a column without one); their count.
 */
int32_t		isrf_csr_column_map(const IsrfCsr *m, int32_t *map);

void		isrf_csr_spmm_ref(const IsrfCsr *s, int d, float alpha,
							  const float *x, float beta, float *y);

#endif							/* ISRF_CSR_H */
