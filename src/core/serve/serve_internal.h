/*
 * serve/serve_internal.h
 *	  The serving session's insides, shared by session.c and recommend.c.
 */
#ifndef ISRF_SERVE_INTERNAL_H
#define ISRF_SERVE_INTERNAL_H

#include "model/beam_search.h"
#include "serve/serve.h"

struct IsrfServeSession
{
	IsrfEnv    *env;			/* owns everything below */
	IsrfBackend *be;
	const IsrfModel *m;
	float	   *pop;			/* the cold-start answer: recent popularity */
	int32_t    *ord;			/* and its order (session.c) */
	IsrfGenrecData gd;			/* the genrec session points at it */
	IsrfGenrecSession *s;		/* weights on the device, item table, scorer;
								 * NULL without a generative model */
	IsrfTrie	trie;			/* valid codes, for the beam search */
	bool		have_trie;
	float	   *ufeat_n;		/* unit user features (serve/group.c), made on
								 * first use */
	IsrfScorer	scorer;			/* the score's terms fitted on every
								 * interaction (ISRF_SCOPE_ALL); the train
								 * split's is the genrec session's own */
};

#endif							/* ISRF_SERVE_INTERNAL_H */
