/*
 * features/stopwords.c
 *	  The embedded English stop-word list: the Snowball English list, with
 *	  contractions in the pieces the tokenizer cuts them into ("don't" ->
 *	  "don", since an apostrophe is not a word character), plus the fragments
 *	  NLTK adds for the same reason.  Words shorter than two bytes are left
 *	  out because the tokenizer drops them anyway.
 */
#include "features/stopwords.h"

#include <string.h>

/* Sorted in strcmp order: looked up by binary search. */
static const char *const text_english_stop[] = {
	"about", "above", "after", "again", "against", "ain", "all", "am", "an",
	"and", "any", "are", "aren", "as", "at", "be", "because", "been", "before",
	"being", "below", "between", "both", "but", "by", "can", "could", "couldn",
	"did", "didn", "do", "does", "doesn", "doing", "don", "down", "during",
	"each", "few", "for", "from", "further", "had", "hadn", "has", "hasn",
	"have", "haven", "having", "he", "her", "here", "hers", "herself", "him",
	"himself", "his", "how", "if", "in", "into", "is", "isn", "it", "its",
	"itself", "just", "ll", "ma", "me", "mightn", "more", "most", "mustn", "my",
	"myself", "needn", "no", "nor", "not", "now", "of", "off", "on", "once",
	"only", "or", "other", "ought", "our", "ours", "ourselves", "out", "over",
	"own", "re", "same", "shan", "she", "should", "shouldn", "so", "some",
	"such", "than", "that", "the", "their", "theirs", "them", "themselves",
	"then", "there", "these", "they", "this", "those", "through", "to", "too",
	"under", "until", "up", "ve", "very", "was", "wasn", "we", "were", "weren",
	"what", "when", "where", "which", "while", "who", "whom", "why", "will",
	"with", "won", "would", "wouldn", "you", "your", "yours", "yourself",
	"yourselves"
};

bool
isrf_text_is_stopword(const char *language, const char *word, size_t len)
{
	size_t		lo = 0,
				hi = sizeof(text_english_stop) / sizeof(text_english_stop[0]);

	if (strcmp(language, "english") != 0 && strcmp(language, "en") != 0 &&
		strcmp(language, "eng") != 0 && strcmp(language, "porter") != 0)
		return false;
	while (lo < hi)
	{
		size_t		mid = (lo + hi) / 2;
		const char *s = text_english_stop[mid];
		size_t		slen = strlen(s);
		int			c = memcmp(word, s, len < slen ? len : slen);

		if (c == 0)
			c = (len > slen) - (len < slen);
		if (c == 0)
			return true;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return false;
}
