/*
 * features/text.c
 *	  The built-in text featurizer: UTF-8 tokenizer, stop words, Snowball
 *	  stemming (libstemmer), hashed terms and TF-IDF rows.
 *
 * The definitions here are part of the product's contract, since the
 * extension and the standalone driver must compute identical features:
 *
 * Tokens.  Word characters are ASCII letters and digits and every byte >=
 * 0x80, so UTF-8 words stay whole and attribute codes such as "a173" survive;
 * ASCII letters are lower-cased (other scripts are left as they are).  The
 * exceptions among non-ASCII characters are separators: Latin-1 punctuation
 * and symbols (U+00A0..U+00BF except the letter-like ª ² ³ µ ¹ º ¼ ½ ¾, and
 * × ÷), the General Punctuation block (U+2000..U+206F: typographic spaces,
 * dashes, quotes such as the apostrophe ’, bullets, ellipsis), the
 * ideographic space, comma and full stop (U+3000..U+3002) and the BOM.
 * Tokens shorter than 2 bytes are dropped; tokens longer than 64 bytes are
 * cut to 64 bytes at a character boundary.
 *
 * Terms.  Tokens that are stop words (text_stopwords.c) are dropped, the rest
 * are stemmed with the Snowball stemmer of the configured language.
 *
 * Hashing.  A term's column is FNV-1a 64-bit over its bytes (offset basis
 * 14695981039346656037, prime 1099511628211), xor-folded (h ^ (h >> 32)) and
 * masked to hash_dim - 1.
 *
 * Weights.  tf is the sum of the field weights of a term's occurrences in a
 * document (one per occurrence with weight 1.0); its sublinear form is
 * 1 + ln(tf) for tf > 1 and tf itself below (the two meet smoothly at 1, and
 * a light field never weighs negative).  idf = ln((1 + N) / (1 + df)) + 1
 * with N = n_docs and df the number of documents holding the term.  Terms
 * with df < min_df or df > max_df_ratio * N are dropped.  Each row is scaled
 * to unit L2 norm.
 *
 * Memory: one hash_dim accumulator, plus one (doc, column, weight) triple
 * per distinct term of each piece, so it grows with the corpus.
 */
#include "features/text.h"
#include "features/stopwords.h"

#include <libstemmer.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEXT_MAX_TOKEN 64
#define TEXT_MIN_TOKEN 2
#define TEXT_MAX_HASH_DIM (1 << 26)
#define TEXT_POLL_PIECES 4096
#define TEXT_POLL_DOCS 4096
#define TEXT_POLL_BYTES (1 << 20)

#define TEXT_FNV_OFFSET UINT64_C(14695981039346656037)
#define TEXT_FNV_PRIME UINT64_C(1099511628211)

/* Receives each term; returns non-OK to stop the scan. */
typedef IsrfStatus (*TextSink) (void *arg, const char *term, size_t len);

typedef struct TextTriple
{
	int32_t		doc;
	int32_t		col;
	float		val;
} TextTriple;

struct IsrfTextFeaturizer
{
	IsrfEnv    *env;
	int32_t		hash_dim;
	int32_t		min_df;
	float		max_df_ratio;
	char		language[64];
	int32_t		n_docs;
	struct sb_stemmer *stemmer;

	/* per-piece accumulator: acc[col] and the columns touched so far */
	float	   *acc;
	int32_t    *touched;
	size_t		n_touched;
	size_t		cap_touched;
	float		piece_weight;

	TextTriple *trip;
	size_t		n_trip;
	size_t		cap_trip;
	int64_t		n_pieces;
};

void
isrf_text_config_default(IsrfTextConfig *cfg)
{
	cfg->hash_dim = 1 << 18;
	cfg->language = "english";
	cfg->min_df = 2;
	cfg->max_df_ratio = 0.5f;
}

/* The documented term hash: xor-folded FNV-1a 64 masked to hash_dim. */
static inline int32_t
text_hash_column(const char *term, size_t len, int32_t hash_dim)
{
	uint64_t	h = TEXT_FNV_OFFSET;
	size_t		i;

	for (i = 0; i < len; i++)
	{
		h ^= (unsigned char) term[i];
		h *= TEXT_FNV_PRIME;
	}
	h ^= h >> 32;
	return (int32_t) (h & (uint64_t) (hash_dim - 1));
}

/*
 * Length of the separator character starting at p (n bytes left), or 0 when
 * the byte there is a word character.
 */
static inline size_t
text_separator_len(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];

	if (c < 0x80)
		return ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
				(c >= '0' && c <= '9')) ? 0 : 1;
	if (c == 0xC2 && n >= 2 && p[1] >= 0xA0 && p[1] <= 0xBF)
	{
		switch (p[1])
		{
			case 0xAA:			/* ª */
			case 0xB2:			/* ² */
			case 0xB3:			/* ³ */
			case 0xB5:			/* µ */
			case 0xB9:			/* ¹ */
			case 0xBA:			/* º */
			case 0xBC:			/* ¼ */
			case 0xBD:			/* ½ */
			case 0xBE:			/* ¾ */
				return 0;
			default:
				return 2;
		}
	}
	if (c == 0xC3 && n >= 2 && (p[1] == 0x97 || p[1] == 0xB7))
		return 2;				/* × ÷ */
	if (c == 0xE2 && n >= 3 && (p[1] == 0x80 || p[1] == 0x81) &&
		p[2] >= 0x80 && p[2] <= 0xBF)
	{
		/* U+2000..U+206F: E2 80 80 .. E2 81 AF */
		if (p[1] == 0x80 || p[2] <= 0xAF)
			return 3;
	}
	if (c == 0xE3 && n >= 3 && p[1] == 0x80 && p[2] >= 0x80 && p[2] <= 0x82)
		return 3;				/* ideographic space, comma, full stop */
	if (c == 0xEF && n >= 3 && p[1] == 0xBB && p[2] == 0xBF)
		return 3;				/* byte order mark */
	return 0;
}

/*
 * Tokenize text, drop stop words, stem, and hand each term to sink.  Polls
 * every megabyte so that a huge text stays cancellable.
 */
static IsrfStatus
text_scan(IsrfEnv *env, struct sb_stemmer *stemmer, const char *language,
		  const char *text, size_t len, TextSink sink, void *arg)
{
	const unsigned char *p = (const unsigned char *) text;
	size_t		i = 0;
	size_t		next_poll = TEXT_POLL_BYTES;
	char		tok[TEXT_MAX_TOKEN + 1];

	if (len > 0 && text == NULL)
		return isrf_fail(env, ISRF_ERR_INVALID, "text is NULL but its length is %zu", len);
	while (i < len)
	{
		size_t		tlen = 0;
		size_t		sep;
		const sb_symbol *stem;
		int			slen;

		if (i >= next_poll)
		{
			ISRF_TRY(isrf_poll(env));
			next_poll = i + TEXT_POLL_BYTES;
		}
		sep = text_separator_len(p + i, len - i);
		if (sep > 0)
		{
			i += sep;
			continue;
		}

		/* a word: copy it lower-cased, keeping at most TEXT_MAX_TOKEN bytes */
		{
			size_t		word0 = i;

			while (i < len && text_separator_len(p + i, len - i) == 0)
			{
				unsigned char c = p[i++];

				if (tlen < TEXT_MAX_TOKEN)
					tok[tlen++] = (char) ((c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c);
			}
			/* a cut inside a UTF-8 character drops the partial character */
			if (i - word0 > TEXT_MAX_TOKEN && (p[word0 + TEXT_MAX_TOKEN] & 0xC0) == 0x80)
			{
				while (tlen > 0 && ((unsigned char) tok[tlen - 1] & 0xC0) == 0x80)
					tlen--;
				if (tlen > 0 && (unsigned char) tok[tlen - 1] >= 0xC0)
					tlen--;
			}
		}
		if (tlen < TEXT_MIN_TOKEN)
			continue;
		if (isrf_text_is_stopword(language, tok, tlen))
			continue;
		stem = sb_stemmer_stem(stemmer, (const sb_symbol *) tok, (int) tlen);
		if (stem == NULL)
			return isrf_fail(env, ISRF_ERR_NOMEM, "out of memory in the Snowball stemmer");
		slen = sb_stemmer_length(stemmer);
		if (slen <= 0)
			continue;
		ISRF_TRY(sink(arg, (const char *) stem, (size_t) slen));
	}
	return ISRF_OK;
}

/* A stemmer for language, or ISRF_ERR_INVALID naming the language. */
static IsrfStatus
text_open_stemmer(IsrfEnv *env, const char *language, struct sb_stemmer **out)
{
	const char **names;
	char		known[256];
	size_t		used = 0;

	*out = NULL;
	if (language == NULL || language[0] == '\0')
		return isrf_fail(env, ISRF_ERR_INVALID, "text language must not be empty");
	*out = sb_stemmer_new(language, "UTF_8");
	if (*out != NULL)
		return ISRF_OK;

	known[0] = '\0';
	for (names = sb_stemmer_list(); *names != NULL && used < sizeof(known) - 1; names++)
	{
		int			w = snprintf(known + used, sizeof(known) - used, "%s%s",
								 used ? ", " : "", *names);

		if (w < 0)
			break;
		used += (size_t) w;
	}
	return isrf_fail(env, ISRF_ERR_INVALID,
					 "unknown text language \"%.64s\" (the Snowball stemmers know: %s)",
					 language, known);
}

typedef struct TextEmitArgs
{
	void		(*emit) (void *arg, const char *term, size_t len);
	void	   *arg;
} TextEmitArgs;

/* Adapts a public emit callback (NUL-terminated copy for convenience). */
static IsrfStatus
text_emit_sink(void *arg, const char *term, size_t len)
{
	TextEmitArgs *a = arg;
	char		buf[4 * TEXT_MAX_TOKEN + 1];

	if (len > sizeof(buf) - 1)
		len = sizeof(buf) - 1;
	memcpy(buf, term, len);
	buf[len] = '\0';
	a->emit(a->arg, buf, len);
	return ISRF_OK;
}

IsrfStatus
isrf_text_tokenize(IsrfEnv *env, const char *language, const char *text,
				   size_t len,
				   void (*emit) (void *arg, const char *term, size_t len),
				   void *arg)
{
	struct sb_stemmer *stemmer;
	TextEmitArgs a = {emit, arg};
	IsrfStatus	st;

	ISRF_TRY(text_open_stemmer(env, language, &stemmer));
	st = text_scan(env, stemmer, language, text, len, text_emit_sink, &a);
	sb_stemmer_delete(stemmer);
	return st;
}

/* Grow an array of elem-sized items to hold at least need (doubling). */
static IsrfStatus
text_grow(IsrfEnv *env, void **arr, size_t *cap, size_t need, size_t elem)
{
	size_t		ncap = *cap ? *cap : 256;
	void	   *n;

	if (need <= *cap)
		return ISRF_OK;
	while (ncap < need)
	{
		if (ncap > SIZE_MAX / 2 / elem)
			return isrf_fail(env, ISRF_ERR_NOMEM, "text featurizer buffer overflows");
		ncap *= 2;
	}
	n = isrf_calloc(env, ncap, elem);
	if (n == NULL)
		return ISRF_ERR_NOMEM;
	if (*cap)
		memcpy(n, *arr, *cap * elem);
	isrf_free(env, *arr);
	*arr = n;
	*cap = ncap;
	return ISRF_OK;
}

/* Sink of the featurizer: accumulate the piece's weighted counts. */
static IsrfStatus
text_feat_sink(void *arg, const char *term, size_t len)
{
	IsrfTextFeaturizer *f = arg;
	int32_t		col = text_hash_column(term, len, f->hash_dim);

	if (f->acc[col] == 0.0f)
	{
		if (f->n_touched == f->cap_touched)
			ISRF_TRY(text_grow(f->env, (void **) &f->touched, &f->cap_touched,
							   f->n_touched + 1, sizeof(int32_t)));
		f->touched[f->n_touched++] = col;
	}
	f->acc[col] += f->piece_weight;
	return ISRF_OK;
}

IsrfStatus
isrf_text_begin(IsrfEnv *env, const IsrfTextConfig *cfg, int32_t n_docs,
				IsrfTextFeaturizer **out)
{
	IsrfTextFeaturizer *f;
	IsrfStatus	st;

	*out = NULL;
	if (cfg->hash_dim < 2 || cfg->hash_dim > TEXT_MAX_HASH_DIM ||
		(cfg->hash_dim & (cfg->hash_dim - 1)) != 0)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "text hash_dim must be a power of two between 2 and %d, not %d",
						 TEXT_MAX_HASH_DIM, cfg->hash_dim);
	if (cfg->min_df < 1)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "text min_df must be at least 1, not %d", cfg->min_df);
	if (!(cfg->max_df_ratio > 0.0f && cfg->max_df_ratio <= 1.0f))
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "text max_df_ratio must be in (0, 1], not %g",
						 (double) cfg->max_df_ratio);
	if (n_docs < 0)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "text corpus size must not be negative, not %d", n_docs);
	if (cfg->language == NULL || strlen(cfg->language) >= sizeof(f->language))
		return isrf_fail(env, ISRF_ERR_INVALID, "unknown text language \"%.64s\"",
						 cfg->language ? cfg->language : "(null)");

	f = isrf_calloc(env, 1, sizeof(*f));
	if (f == NULL)
		return ISRF_ERR_NOMEM;
	f->env = env;
	f->hash_dim = cfg->hash_dim;
	f->min_df = cfg->min_df;
	f->max_df_ratio = cfg->max_df_ratio;
	strcpy(f->language, cfg->language);
	f->n_docs = n_docs;
	st = text_open_stemmer(env, cfg->language, &f->stemmer);
	if (st == ISRF_OK)
	{
		f->acc = isrf_calloc(env, (size_t) f->hash_dim, sizeof(float));
		if (f->acc == NULL)
			st = ISRF_ERR_NOMEM;
	}
	if (st != ISRF_OK)
	{
		isrf_text_abort(f);
		return st;
	}
	*out = f;
	return ISRF_OK;
}

IsrfStatus
isrf_text_add(IsrfTextFeaturizer *f, int32_t doc, const char *text, size_t len,
			  float weight)
{
	IsrfEnv    *env = f->env;
	IsrfStatus	st;
	size_t		i;

	if (doc < 0 || doc >= f->n_docs)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "text document %d outside a corpus of %d documents",
						 doc, f->n_docs);
	if (!(weight >= 0.0f) || isinf(weight))
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "text field weight must be finite and not negative, not %g",
						 (double) weight);
	if ((++f->n_pieces % TEXT_POLL_PIECES) == 0)
		ISRF_TRY(isrf_poll(env));
	if (weight == 0.0f || len == 0)
		return ISRF_OK;

	f->piece_weight = weight;
	f->n_touched = 0;
	st = text_scan(env, f->stemmer, f->language, text, len, text_feat_sink, f);
	if (st == ISRF_OK && f->n_touched > 0)
		st = text_grow(env, (void **) &f->trip, &f->cap_trip,
					   f->n_trip + f->n_touched, sizeof(TextTriple));
	for (i = 0; i < f->n_touched; i++)
	{
		int32_t		col = f->touched[i];

		if (st == ISRF_OK)
		{
			TextTriple *t = &f->trip[f->n_trip++];

			t->doc = doc;
			t->col = col;
			t->val = f->acc[col];
		}
		f->acc[col] = 0.0f;
	}
	f->n_touched = 0;
	return st;
}

static int
text_cmp_int32(const void *a, const void *b)
{
	int32_t		x = *(const int32_t *) a,
				y = *(const int32_t *) b;

	return (x > y) - (x < y);
}

/* Sublinear tf (see the file header). */
static inline double
text_sublinear(double tf)
{
	return tf > 1.0 ? 1.0 + log(tf) : tf;
}

/*
 * Group the triples by document (stable, so sums are taken in the order the
 * pieces arrived), merge each document's terms into ascending columns, and
 * count document frequencies.  Leaves start[d]..start[d+1] per document in
 * col/tf.
 */
static IsrfStatus
text_merge_docs(IsrfTextFeaturizer *f, size_t *start, int32_t *col, float *tf,
				int32_t *df)
{
	IsrfEnv    *env = f->env;
	size_t		i,
				w;
	int32_t		d;

	memset(start, 0, sizeof(size_t) * ((size_t) f->n_docs + 1));
	for (i = 0; i < f->n_trip; i++)
		start[f->trip[i].doc + 1]++;
	for (d = 0; d < f->n_docs; d++)
		start[d + 1] += start[d];
	/* place with start[d] as the fill cursor, then shift back */
	for (i = 0; i < f->n_trip; i++)
	{
		size_t		pos = start[f->trip[i].doc]++;

		col[pos] = f->trip[i].col;
		tf[pos] = f->trip[i].val;
	}
	for (d = f->n_docs; d > 0; d--)
		start[d] = start[d - 1];
	start[0] = 0;

	w = 0;
	for (d = 0; d < f->n_docs; d++)
	{
		size_t		lo = start[d],
					hi = start[d + 1];
		int32_t		n = 0,
					j;

		if (d % TEXT_POLL_DOCS == 0)
			ISRF_TRY(isrf_poll(env));
		for (i = lo; i < hi; i++)
		{
			if (f->acc[col[i]] == 0.0f)
				col[lo + n++] = col[i];	/* n <= i - lo: never overtakes */
			f->acc[col[i]] += tf[i];
		}
		qsort(col + lo, (size_t) n, sizeof(int32_t), text_cmp_int32);
		start[d] = w;
		for (j = 0; j < n; j++)
		{
			int32_t		c = col[lo + j];

			col[w] = c;
			tf[w] = f->acc[c];
			f->acc[c] = 0.0f;
			df[c]++;
			w++;
		}
	}
	start[f->n_docs] = w;
	return ISRF_OK;
}

IsrfStatus
isrf_text_finish(IsrfTextFeaturizer *f, IsrfCsr *out)
{
	IsrfEnv    *env = f->env;
	size_t	   *start = NULL;
	int32_t    *col = NULL;
	float	   *tf = NULL;
	int32_t    *df = NULL;
	float	   *idf = NULL;
	double		n = (double) f->n_docs;
	double		max_df = (double) f->max_df_ratio * n;
	size_t		nnz = 0,
				i;
	int32_t		d,
				c;
	IsrfStatus	st = ISRF_OK;

	memset(out, 0, sizeof(*out));
	start = isrf_calloc(env, (size_t) f->n_docs + 1, sizeof(size_t));
	col = isrf_calloc(env, f->n_trip, sizeof(int32_t));
	tf = isrf_calloc(env, f->n_trip, sizeof(float));
	df = isrf_calloc(env, (size_t) f->hash_dim, sizeof(int32_t));
	if (!start || !col || !tf || !df)
	{
		st = ISRF_ERR_NOMEM;
		goto done;
	}
	st = text_merge_docs(f, start, col, tf, df);
	if (st != ISRF_OK)
		goto done;

	/* the triples are no longer needed: give their memory back early */
	isrf_free(env, f->trip);
	f->trip = NULL;
	f->n_trip = f->cap_trip = 0;

	/* idf of kept columns, 0 for dropped ones (reuses the accumulator) */
	idf = f->acc;
	for (c = 0; c < f->hash_dim; c++)
		idf[c] = (df[c] >= f->min_df && (double) df[c] <= max_df) ?
			(float) (log((1.0 + n) / (1.0 + (double) df[c])) + 1.0) : 0.0f;
	for (i = 0; i < start[f->n_docs]; i++)
		if (idf[col[i]] != 0.0f)
			nnz++;
	st = isrf_csr_alloc(env, f->n_docs, f->hash_dim, (int64_t) nnz, out);
	if (st != ISRF_OK)
		goto done;

	nnz = 0;
	for (d = 0; d < f->n_docs; d++)
	{
		double		ss = 0.0,
					inv;

		if (d % TEXT_POLL_DOCS == 0 && (st = isrf_poll(env)) != ISRF_OK)
			goto done;
		for (i = start[d]; i < start[d + 1]; i++)
			if (idf[col[i]] != 0.0f)
			{
				double		v = text_sublinear((double) tf[i]) * (double) idf[col[i]];

				ss += v * v;
			}
		inv = ss > 0.0 ? 1.0 / sqrt(ss) : 0.0;
		for (i = start[d]; i < start[d + 1]; i++)
			if (idf[col[i]] != 0.0f)
			{
				out->col[nnz] = col[i];
				out->val[nnz] = (float) (text_sublinear((double) tf[i]) *
										 (double) idf[col[i]] * inv);
				nnz++;
			}
		out->rowptr[d + 1] = (int32_t) nnz;
	}

done:
	if (st != ISRF_OK)
		isrf_csr_free(env, out);
	isrf_free(env, start);
	isrf_free(env, col);
	isrf_free(env, tf);
	isrf_free(env, df);
	isrf_text_abort(f);
	return st;
}

void
isrf_text_abort(IsrfTextFeaturizer *f)
{
	IsrfEnv    *env;

	if (f == NULL)
		return;
	env = f->env;
	if (f->stemmer)
		sb_stemmer_delete(f->stemmer);
	isrf_free(env, f->acc);
	isrf_free(env, f->touched);
	isrf_free(env, f->trip);
	isrf_free(env, f);
}
