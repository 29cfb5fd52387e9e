/*
 * test/unit/support/synth_corpus.h
 *	  A training corpus from the synthetic generator (interactions ordered by
 *	  position, two text pieces per item), as the tests that train a model
 *	  need one: the unit tests and the fuzzing harnesses of test/fuzz.
 *	  Test code only, on malloc.
 */
#ifndef ISRF_SYNTH_CORPUS_H
#define ISRF_SYNTH_CORPUS_H

#include "data/corpus.h"
#include "data/synthetic.h"

typedef struct IsrfTestCorpus
{
	IsrfSynthConfig sc;			/* set by the caller */
	IsrfSynthData sd;
	IsrfCorpus	corpus;
	double	   *order;
	IsrfTextPiece *items;
	char		(*texts)[256];
} IsrfTestCorpus;

/* Generate t->sc's data and the corpus over it. */
IsrfStatus	isrf_test_corpus_build(IsrfEnv *env, IsrfTestCorpus *t);

void		isrf_test_corpus_free(IsrfEnv *env, IsrfTestCorpus *t);

#endif							/* ISRF_SYNTH_CORPUS_H */
