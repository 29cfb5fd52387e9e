/*
 * features/stopwords.h
 *	  The embedded stop-word lists of the text featurizer.
 */
#ifndef ISRF_TEXT_STOPWORDS_H
#define ISRF_TEXT_STOPWORDS_H

#include <stdbool.h>
#include <stddef.h>

/*
 * True when the lower-cased token word[0..len) is a stop word of language.
 * Only "english" has a list (the Snowball English list, contractions split
 * at the apostrophe as the tokenizer splits them); other languages keep
 * every token.
 */
bool		isrf_text_is_stopword(const char *language, const char *word, size_t len);

#endif							/* ISRF_TEXT_STOPWORDS_H */
