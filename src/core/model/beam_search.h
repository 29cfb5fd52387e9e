/*
 * model/beam_search.h
 *	  The trie of valid item codes and constrained beam search over it: the
 *	  serving path of the generative head, which decodes an item's semantic
 *	  ID token by token and may only follow codes that lead to a real item.
 *
 * The trie is flat arrays (no pointers), so it can be serialized or copied
 * as is.  Node 0 is the root; nodes are numbered depth by depth, and within
 * a depth in lexicographic order of their code prefix, so comparing two
 * node numbers of one depth compares their prefixes.  The children of a
 * node are contiguous and sorted by code.  Nodes at depth `levels` are
 * leaves, one per item.
 */
#ifndef ISRF_BEAM_H
#define ISRF_BEAM_H

#include "base/env.h"

typedef struct IsrfTrie
{
	int32_t		levels;			/* code length */
	int32_t		n_items;
	int32_t		n_nodes;
	int32_t    *codebook_sizes; /* levels entries */
	int32_t    *level_start;	/* levels + 2 entries: depth t is nodes
								 * [level_start[t], level_start[t + 1]) */
	int32_t    *parent;			/* n_nodes; root: -1 */
	int32_t    *first_child;	/* n_nodes; leaves: -1 */
	int32_t    *n_children;		/* n_nodes */
	int32_t    *code;			/* n_nodes: code on the edge from the
								 * parent; root: -1 */
	int32_t    *n_leaves;		/* n_nodes: items below (leaves: 1) */
	int32_t    *leaf_item;		/* leaves only: item of leaf
								 * level_start[levels] + i is leaf_item[i] */
	int32_t    *item_leaf;		/* n_items: the item's leaf node */
} IsrfTrie;

/*
 * Build the trie over codes (n_items x levels, row-major); item i's code is
 * row i.  Every code must be within [0, codebook_sizes[t]) and no two items
 * may share a full code.
 */
IsrfStatus	isrf_trie_build(IsrfEnv *env, const int32_t *codes, int32_t n_items,
							int32_t levels, const int32_t *codebook_sizes,
							IsrfTrie *out);

/* Release what isrf_trie_build filled; safe on a zeroed struct. */
void		isrf_trie_free(IsrfEnv *env, IsrfTrie *t);

/* The item whose full code is codes[0..levels), or -1 if none. */
int32_t		isrf_trie_lookup(const IsrfTrie *t, const int32_t *codes);

/*
 * The decoder step: for n_beams partial codes, fill the log-probabilities
 * of the next code.  level is the position being decoded (0 .. levels-1);
 * prefix_codes is n_beams x level (row-major, the codes chosen so far);
 * beam_request gives the request (index into the batch) of each beam, so
 * one call can serve several users; logp is n_beams x codebook_sizes[level]
 * (row-major) to be filled.  All host memory.  Beams come grouped by
 * request, best first within a request.  NaN counts as -infinity.
 */
typedef IsrfStatus (*IsrfBeamStep) (void *arg, int level, int n_beams,
									const int32_t *beam_request,
									const int32_t *prefix_codes, float *logp);

typedef struct IsrfBeamRequest
{
	const int32_t *exclude;		/* items to leave out (e.g. the history); any
								 * order, repeats allowed; may be NULL */
	int32_t		n_exclude;
	int32_t		n_results;		/* how many items wanted (N >= 0) */
} IsrfBeamRequest;

/*
 * Constrained beam search for n_requests requests at once.  At each level
 * every beam entry is extended by the children that exist in the trie and
 * still lead to an item that is not excluded for that request, scores add
 * up the step's log-probabilities, and each request keeps its best
 * max(beam_width, N) entries (ties: lower code first).
 *
 * Widening: the width is raised to N for a request that asks for more than
 * beam_width items, and subtrees whose items are all excluded are never
 * entered, so a request gets min(N, n_items - distinct excluded) items --
 * N whenever N <= n_items - excluded.  No item is returned twice.
 *
 * Results are written request after request: request r's go to
 * out_items/out_scores at offset n_results[0] + ... + n_results[r-1],
 * best first; out_counts[r] is how many were found, and the rest of its
 * slots get item -1 and score -infinity.
 */
IsrfStatus	isrf_beam_search(IsrfEnv *env, const IsrfTrie *trie, int32_t beam_width,
							 IsrfBeamStep step, void *arg,
							 int32_t n_requests, const IsrfBeamRequest *requests,
							 int32_t *out_items, float *out_scores,
							 int32_t *out_counts);

/*
 * Stable merge sort of item indices idx[0..n) by their codes (row i of codes
 * at codes + i * stride, compared on the first width entries); tmp has n
 * entries of scratch.  Shared by the semantic-ID de-dup and the trie.
 */
void		isrf_sort_by_code(int32_t *idx, int32_t *tmp, int32_t n, const int32_t *codes,
							  int32_t stride, int32_t width);

#endif							/* ISRF_BEAM_H */
