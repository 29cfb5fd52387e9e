/*
 * model/semantic_ids.h
 *	  Semantic IDs for items: residual k-means (RQ-KMeans) over the item
 *	  semantic features, plus a de-duplication level, so that every item has
 *	  a unique short code that the generative head predicts token by token.
 *
 * Level 1 clusters the features, level 2 clusters what level 1 left over
 * (x minus its level-1 centroid), and so on for L levels.  Items that end
 * with the same L-level code get one more code, 0, 1, 2, ... in order of
 * item index (the de-dup level), whose codebook size is the largest number
 * of items sharing an L-level code.  Codes therefore have L + 1 columns.
 *
 * Items with all-zero features (no text) still get codes: identical
 * vectors always fall into the same clusters, so they share one L-level
 * code and are told apart only by the de-dup code.  Many such items make
 * the de-dup codebook large; give them features where that matters.
 *
 * Distances go through the backend's gemm and top-k (||x||^2 - 2 x.c +
 * ||c||^2, argmin taken as argmax of 2 x.c - ||c||^2), so the clustering
 * runs on the GPU where there is one; centroid sums are light host loops.
 */
#ifndef ISRF_SEMID_H
#define ISRF_SEMID_H

#include "compute/backend.h"
#include "model/beam_search.h"

typedef struct IsrfKmeansConfig
{
	int32_t		max_iters;		/* Lloyd updates at most (default 50) */
	double		tol;			/* stop when inertia falls by less than this
								 * share (default 1e-4) */
	uint64_t	seed;			/* k-means++ seeding (default 1) */
	int32_t		block_rows;		/* rows per distance block (default 8192) */
} IsrfKmeansConfig;

typedef struct IsrfKmeansStats
{
	int32_t		iterations;		/* Lloyd updates done */
	bool		converged;		/* stopped by no change or by tol */
	double		inertia;		/* sum of squared distances at the end */
	int32_t		reseeded;		/* empty clusters re-seeded, over all updates */
	int32_t		used;			/* clusters with at least one point at the end */
} IsrfKmeansStats;

void		isrf_kmeans_config_default(IsrfKmeansConfig *cfg);

/*
 * k-means of the rows of x (n x dim, host) into k clusters.  init (k x dim,
 * host) gives the starting centroids, or NULL for k-means++ seeding with
 * cfg->seed.  centers (k x dim) and labels (n) are host outputs; labels are
 * the nearest centroid of the returned centers (ties: lower cluster).  An
 * empty cluster is re-seeded with the point farthest from its centroid
 * (ties: lower index) taken from a cluster of two or more.  stats may be
 * NULL.  Requires 1 <= k <= n.
 */
IsrfStatus	isrf_kmeans(IsrfEnv *env, IsrfBackend *be, const float *x,
						int32_t n, int32_t dim, int32_t k,
						const IsrfKmeansConfig *cfg, const float *init,
						float *centers, int32_t *labels, IsrfKmeansStats *stats);

typedef struct IsrfSemIdConfig
{
	int32_t		levels;			/* residual k-means levels L (default 3) */
	int32_t		codebook_size;	/* clusters per level (default 256), capped
								 * by the number of items */
	IsrfKmeansConfig kmeans;	/* per level; level l seeds with seed + l */
} IsrfSemIdConfig;

void		isrf_semid_config_default(IsrfSemIdConfig *cfg);

typedef struct IsrfSemIds
{
	int32_t		n_items;
	int32_t		dim;
	int32_t		levels;			/* L; codes have L + 1 columns */
	int32_t    *codebook_sizes; /* L + 1 entries; the last is the de-dup size */
	float	   *codebooks;		/* level l: codebook_sizes[l] x dim, levels
								 * one after another (L levels, no de-dup) */
	int32_t    *codes;			/* n_items x (L + 1), row-major */

	/* statistics */
	int32_t		n_prefixes;		/* distinct L-level codes */
	int32_t		max_collisions; /* largest group sharing an L-level code */
	int32_t		n_collided;		/* items whose L-level code is shared */
	int32_t		n_zero_items;	/* items with all-zero features */
	double	   *inertia;		/* L entries: residual energy after level l */
	int32_t    *used;			/* L entries: clusters in use at level l */
} IsrfSemIds;

/*
 * Build semantic IDs for n_items items of dim features (x, host,
 * row-major).  out is filled with memory from env; release it with
 * isrf_semid_free.  Deterministic given cfg (on one backend).
 */
IsrfStatus	isrf_semid_build(IsrfEnv *env, IsrfBackend *be, const float *x,
							 int32_t n_items, int32_t dim,
							 const IsrfSemIdConfig *cfg, IsrfSemIds *out);

/* Release what isrf_semid_build filled; safe on a zeroed struct. */
void		isrf_semid_free(IsrfEnv *env, IsrfSemIds *s);

/* Offset of level l's codebook in s->codebooks, in floats. */
size_t		isrf_semid_codebook_offset(const IsrfSemIds *s, int32_t level);

/* The trie of valid codes (L + 1 levels) over the items of s. */
IsrfStatus	isrf_semid_trie(IsrfEnv *env, const IsrfSemIds *s, IsrfTrie *out);

#endif							/* ISRF_SEMID_H */
