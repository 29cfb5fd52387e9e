/*
 * train/pipeline.h
 *	  The training pipeline, stage by stage: split, semantic features, group
 *	  graph, LightGCN over both graphs.  One implementation serves the
 *	  extension (CALL isrf_train) and the standalone driver.
 */
#ifndef ISRF_PIPELINE_H
#define ISRF_PIPELINE_H

#include "compute/backend.h"
#include "data/corpus.h"
#include "model/model.h"
#include "train/config.h"

/* Called as each stage starts (stage name) and once at the end ("done"). */
typedef IsrfStatus (*IsrfStageHook) (void *arg, const char *stage);

/* What a caller watches training with; any member may be NULL. */
typedef struct IsrfTrainHooks
{
	IsrfStageHook stage;
	IsrfGenrecEpochHook epoch;	/* after each epoch of the generative model */
	void	   *arg;			/* passed to both */
} IsrfTrainHooks;

/* Run every stage over the corpus; the model owns all it returns. */
IsrfStatus	isrf_train(IsrfEnv *env, IsrfBackend *be, const IsrfCorpus *corpus,
					   const IsrfTrainConfig *cfg, const IsrfTrainHooks *hooks,
					   IsrfModel *out);

#endif							/* ISRF_PIPELINE_H */
