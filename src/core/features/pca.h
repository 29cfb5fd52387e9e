/*
 * features/pca.h
 *	  Randomized PCA (Halko, Martinsson and Tropp) of item feature matrices,
 *	  on a compute backend, with mean-centering done implicitly so a sparse
 *	  TF-IDF matrix never becomes dense.
 */
#ifndef ISRF_PCA_H
#define ISRF_PCA_H

#include "compute/backend.h"

typedef struct IsrfPcaConfig
{
	int32_t		k;				/* output dimension d_m (default 128) */
	int32_t		oversample;		/* extra random directions (default 10) */
	int32_t		power_iters;	/* subspace iterations (default 4) */
	uint64_t	seed;			/* deterministic sketch (default 1) */
} IsrfPcaConfig;

void		isrf_pca_config_default(IsrfPcaConfig *cfg);

/*
 * Project the rows of sparse X (n_rows x n_cols) on its top k principal
 * components: out[n_rows x k] (host, row-major).  Component signs are fixed
 * (largest-magnitude loading positive) so results are reproducible.
 * explained (may be NULL) receives the k component variances.  When k
 * exceeds the rank available, the extra columns are zero.
 */
IsrfStatus	isrf_pca_sparse(IsrfEnv *env, IsrfBackend *be, const IsrfCsr *x,
							const IsrfPcaConfig *cfg, float *out, float *explained);

/* The same for a dense host matrix X[n_rows x n_cols] (precomputed embeddings). */
IsrfStatus	isrf_pca_dense(IsrfEnv *env, IsrfBackend *be, const float *x,
						   int32_t n_rows, int32_t n_cols,
						   const IsrfPcaConfig *cfg, float *out, float *explained);

#endif							/* ISRF_PCA_H */
