/*
 * graph/group_graph.h
 *	  The group graph: top-K cosine neighbours of every user over user feature
 *	  vectors, computed blockwise on a compute backend so that no N x N matrix
 *	  is ever held, and its symmetric normalisation for LightGCN.
 */
#ifndef ISRF_KNN_H
#define ISRF_KNN_H

#include "compute/backend.h"

typedef struct IsrfGroupGraphConfig
{
	int32_t		k;				/* neighbours per user (default 50) */

	/*
	 * Keep only neighbours whose cosine is >= min_similarity.  The default,
	 * -INFINITY, keeps the top K whatever their sign: a user whose best
	 * matches are negative or zero still gets K neighbours.
	 */
	float		min_similarity;

	/* Rows per score block; 0 (default) picks one of about 128 MiB. */
	int32_t		block_rows;
} IsrfGroupGraphConfig;

void		isrf_group_graph_config_default(IsrfGroupGraphConfig *cfg);

/*
 * Build the kNN graph of the rows of x (host, n x d, row-major).  out is an
 * n x n host CSR whose row i holds i's neighbours (never i itself) with
 * their cosine similarity, ORDERED BY SIMILARITY DESCENDING (ties: lower
 * index first) -- not by column as elsewhere; use isrf_group_graph_normalize before
 * handing it to a sparse product.  A row may hold fewer than K entries
 * (threshold, fewer than K other users with features).  Users whose feature
 * vector is zero get no neighbours and are nobody's neighbour.  Non-finite
 * features are an error.
 */
IsrfStatus	isrf_group_graph_build(IsrfEnv *env, IsrfBackend *be, const float *x,
						   int32_t n, int32_t d, const IsrfGroupGraphConfig *cfg,
						   IsrfCsr *out);

/*
 * LightGCN adjacency of a kNN graph: A = max(S, S^T) entrywise (an edge is
 * kept when either side chose it; both sides carry the same cosine up to
 * rounding, the larger wins so A is exactly symmetric), edge weights
 * clamped at zero (a negative similarity carries no weight: degrees must be
 * positive), self-loops of weight 1 added, then D^-1/2 A D^-1/2.  out is
 * n x n with columns ascending and exactly symmetric values.
 */
IsrfStatus	isrf_group_graph_normalize(IsrfEnv *env, const IsrfCsr *knn, IsrfCsr *out);

#endif							/* ISRF_KNN_H */
