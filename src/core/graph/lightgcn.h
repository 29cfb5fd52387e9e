/*
 * graph/lightgcn.h
 *	  LightGCN propagation over a symmetric normalised graph held on a
 *	  backend: the train user-item bipartite graph (explicit interests) or
 *	  the group graph (group interests), forward and backward.
 */
#ifndef ISRF_LIGHTGCN_H
#define ISRF_LIGHTGCN_H

#include "compute/backend.h"
#include "data/dataset.h"

/*
 * The symmetric normalised adjacency D^-1/2 A D^-1/2 of the train user-item
 * graph: (n_users + n_items) square, users first then items (item i is row
 * n_users + i), A[u, n_users+i] = 1 when i is among u's TRAIN items only.
 * No self-loops; a node without train edges has an empty row.
 */
IsrfStatus	isrf_lightgcn_bipartite(IsrfEnv *env, const IsrfDataset *ds, IsrfCsr *out);

/* Workspace for propagating n x d embeddings over one graph. */
typedef struct IsrfLightGcn
{
	IsrfBackend *be;
	const IsrfDevCsr *s;		/* symmetric, n x n; not owned */
	int32_t		n;
	int32_t		d;
	int32_t		layers;			/* L >= 0 */
	float	   *buf[2];			/* backend memory, n x d each */
} IsrfLightGcn;

/*
 * Prepare propagation over s (n x n, symmetric normalised, on be) for width
 * d and L layers.  The graph must outlive the workspace.
 */
IsrfStatus	isrf_lightgcn_init(IsrfEnv *env, IsrfBackend *be, const IsrfDevCsr *s,
							   int32_t n, int32_t d, int32_t layers,
							   IsrfLightGcn *out);

/*
 * out = mean(E0, S E0, ..., S^L E0); e0 and out are backend memory of n x d,
 * and must not overlap.
 */
IsrfStatus	isrf_lightgcn_forward(IsrfLightGcn *g, const float *e0, float *out);

/*
 * Gradient: d_e0 = mean over l of (S^T)^l d_out.  S is symmetric, so this is
 * the forward product again; d_e0 is overwritten (not accumulated).
 */
IsrfStatus	isrf_lightgcn_backward(IsrfLightGcn *g, const float *d_out, float *d_e0);

/* Release the workspace (not the graph). */
void		isrf_lightgcn_free(IsrfLightGcn *g);

#endif							/* ISRF_LIGHTGCN_H */
