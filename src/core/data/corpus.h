/*
 * data/corpus.h
 *	  Everything the engine reads from a data set, in one place: interaction
 *	  rows, the catalogue's item ids, and pieces of item and user text keyed by
 *	  external id.  The PostgreSQL glue fills it from SPI, the standalone
 *	  driver from CSV files (datadir.h); the engine never knows which.
 */
#ifndef ISRF_CORPUS_H
#define ISRF_CORPUS_H

#include "data/dataset.h"

/* One text value (one column of one row) about an item or a user. */
typedef struct IsrfTextPiece
{
	int64_t		id;				/* external item or user id */
	const char *text;			/* UTF-8, not necessarily NUL-terminated */
	size_t		len;
	float		weight;			/* field weight, 1.0 normally */
} IsrfTextPiece;

typedef struct IsrfCorpus
{
	IsrfInteractions rows;
	const int64_t *catalogue_ids;	/* items table ids; NULL when absent */
	int64_t		n_catalogue;
	const IsrfTextPiece *item_text; /* catalogue text and LLM item descriptions */
	int64_t		n_item_text;
	const IsrfTextPiece *user_text; /* LLM user descriptions */
	int64_t		n_user_text;

	/*
	 * Precomputed item embeddings (a real[] column of the items table), used
	 * in place of the text featurizer when present: row r is the embedding
	 * of item embedding_ids[r].
	 */
	const int64_t *embedding_ids;
	const float *embeddings;	/* [n_embeddings x embedding_dim] */
	int64_t		n_embeddings;
	int32_t		embedding_dim;

	/*
	 * Embeddings of user descriptions in the same space (same model, same
	 * embedding_dim), used with the item embeddings only: row r is the
	 * embedding of user user_embedding_ids[r].
	 */
	const int64_t *user_embedding_ids;
	const float *user_embeddings;	/* [n_user_embeddings x embedding_dim] */
	int64_t		n_user_embeddings;
} IsrfCorpus;

#endif							/* ISRF_CORPUS_H */
