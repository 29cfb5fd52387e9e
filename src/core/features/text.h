/*
 * features/text.h
 *	  The built-in text featurizer: tokenize, drop stop words, stem with the
 *	  Snowball stemmers (libstemmer), and weight hashed terms by TF-IDF.  One
 *	  implementation serves the extension and the standalone driver, so both
 *	  compute the same features.  No downloaded weights.
 */
#ifndef ISRF_TEXT_H
#define ISRF_TEXT_H

#include "base/csr.h"

typedef struct IsrfTextConfig
{
	int32_t		hash_dim;		/* hashed vocabulary size, power of two (default 1<<18) */
	const char *language;		/* Snowball language (default "english") */
	int32_t		min_df;			/* drop terms in fewer documents (default 2) */
	float		max_df_ratio;	/* drop terms in more than this share (default 0.5) */
} IsrfTextConfig;

/* Defaults above. */
void		isrf_text_config_default(IsrfTextConfig *cfg);

typedef struct IsrfTextFeaturizer IsrfTextFeaturizer;

/* Start a corpus of n_docs documents (one per item or user). */
IsrfStatus	isrf_text_begin(IsrfEnv *env, const IsrfTextConfig *cfg, int32_t n_docs,
							IsrfTextFeaturizer **out);

/*
 * Add a piece of text (one column's value, UTF-8, not necessarily
 * NUL-terminated) to document doc, with a field weight (1.0 normally).
 * A document may receive any number of pieces, in any order.
 */
IsrfStatus	isrf_text_add(IsrfTextFeaturizer *f, int32_t doc, const char *text,
						  size_t len, float weight);

/*
 * Finish: out becomes n_docs x hash_dim, each row an L2-normalised TF-IDF
 * vector (sublinear tf, smoothed idf).  Documents with no surviving term
 * have empty rows.  Frees the featurizer.
 */
IsrfStatus	isrf_text_finish(IsrfTextFeaturizer *f, IsrfCsr *out);

/* Release a featurizer without finishing (error paths). */
void		isrf_text_abort(IsrfTextFeaturizer *f);

/*
 * Tokenize one string into stemmed, stop-word-filtered terms; calls emit for
 * each term.  Exposed for tests and for explaining features.
 */
IsrfStatus	isrf_text_tokenize(IsrfEnv *env, const char *language, const char *text,
							   size_t len,
							   void (*emit) (void *arg, const char *term, size_t len),
							   void *arg);

#endif							/* ISRF_TEXT_H */
