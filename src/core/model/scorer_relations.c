/*
 * model/scorer_relations.c
 *	  The relations of candidates to a history (IsrfRelations, scorer.h):
 *	  the closest co-occurrence and the lexical cosines, inputs of the blend
 *	  network.
 *
 * A history is prepared once (isrf_scorer_relations_begin): the item-kNN
 * rows of its last ISRF_KNN_WINDOW items are walked into a catalogue-size
 * maximum, and the TF-IDF rows of its last ISRF_TEXT_WINDOW items are laid
 * out by column (a row per column any of them has, a float per window item,
 * and the profile's weight last), so that a candidate's cosines with every
 * window item and with the profile are one pass over the candidate's own
 * words.  The cost of a candidate is its number of words times the window.
 */
#include "model/scorer.h"

#include <math.h>
#include <string.h>

/* floats a column's row of lex_rows holds: the window items, then the profile */
#define REL_ROW (ISRF_TEXT_WINDOW + 1)

/* The scratch of a fitted scorer, allocated on first use. */
static IsrfStatus
rel_scratch(IsrfScorer *sc)
{
	IsrfEnv    *env = sc->env;

	if (sc->rel_knn == NULL || sc->rel_touch == NULL)
	{
		/* both or neither: a half-made pair would be read on the next call */
		isrf_free(env, sc->rel_knn);
		isrf_free(env, sc->rel_touch);
		sc->rel_knn = isrf_calloc(env, (size_t) sc->n_items + 1, sizeof(float));
		sc->rel_touch = isrf_alloc(env, (size_t) sc->n_items * 4 + 4);
		if (sc->rel_knn == NULL || sc->rel_touch == NULL)
		{
			isrf_free(env, sc->rel_knn);
			isrf_free(env, sc->rel_touch);
			sc->rel_knn = NULL;
			sc->rel_touch = NULL;
			return ISRF_ERR_NOMEM;
		}
	}
	if (sc->item_text != NULL && sc->lex_slot == NULL)
	{
		sc->lex_slot = isrf_alloc(env, (size_t) sc->item_text->n_cols * 4 + 4);
		if (sc->lex_slot == NULL)
			return ISRF_ERR_NOMEM;
		memset(sc->lex_slot, 0xff, (size_t) sc->item_text->n_cols * 4);	/* -1 */
	}
	return ISRF_OK;
}

/* Room for at least need column rows in lex_cols / lex_rows. */
static IsrfStatus
rel_reserve(IsrfScorer *sc, int32_t need)
{
	IsrfEnv    *env = sc->env;
	int32_t		cap = sc->lex_cap > 0 ? sc->lex_cap : 256;
	int32_t    *cols;
	float	   *rows;

	if (need <= sc->lex_cap)
		return ISRF_OK;
	while (cap < need)
		cap *= 2;
	cols = isrf_alloc(env, (size_t) cap * 4);
	rows = isrf_alloc(env, (size_t) cap * REL_ROW * 4);
	if (cols == NULL || rows == NULL)
	{
		isrf_free(env, cols);
		isrf_free(env, rows);
		return ISRF_ERR_NOMEM;
	}
	if (sc->n_lex_cols > 0)
	{
		memcpy(cols, sc->lex_cols, (size_t) sc->n_lex_cols * 4);
		memcpy(rows, sc->lex_rows, (size_t) sc->n_lex_cols * REL_ROW * 4);
	}
	isrf_free(env, sc->lex_cols);
	isrf_free(env, sc->lex_rows);
	sc->lex_cols = cols;
	sc->lex_rows = rows;
	sc->lex_cap = cap;
	return ISRF_OK;
}

/* knn_max of every item the last ISRF_KNN_WINDOW items of hist co-occur with, into rel_knn. */
static void
rel_knn_walk(IsrfScorer *sc, const int32_t *hist, int32_t len)
{
	const IsrfBaselines *b = &sc->prior;
	int32_t		k;

	for (k = len - 1; k >= 0 && k >= len - ISRF_KNN_WINDOW; k--)
	{
		int32_t		a = hist[k];
		int64_t		r;

		if (a < 0 || a >= sc->n_items || b->pop[a] <= 0)
			continue;
		for (r = b->co_ptr[a]; r < b->co_ptr[a + 1]; r++)
		{
			int32_t		x = b->co_col[r];
			float		v = (float) ((double) b->co_cnt[r] / sqrt((double) b->pop[a] * (double) b->pop[x]));

			/* listed once, when it first gets a (positive) value */
			if (v > sc->rel_knn[x])
			{
				if (sc->rel_knn[x] == 0.0f)
					sc->rel_touch[sc->n_rel_touch++] = x;
				sc->rel_knn[x] = v;
			}
		}
	}
}

/* The TF-IDF rows of the ISRF_TEXT_WINDOW most recent items of hist, by column, and their profile. */
static IsrfStatus
rel_lex_layout(IsrfScorer *sc, const int32_t *hist, int32_t len)
{
	const IsrfCsr *t = sc->item_text;
	double		w = 1.0,
				ss = 0.0;
	int32_t		k,
				p,
				c;

	for (k = len - 1; k >= 0 && k >= len - ISRF_TEXT_WINDOW; k--)
	{
		int32_t		it = hist[k],
					j = sc->n_lex_items;

		if (it < 0 || it >= sc->n_items)
			continue;
		for (p = t->rowptr[it]; p < t->rowptr[it + 1]; p++)
		{
			int32_t		col = t->col[p],
						s = sc->lex_slot[col];

			if (s < 0)
			{
				ISRF_TRY(rel_reserve(sc, sc->n_lex_cols + 1));
				s = sc->n_lex_cols++;
				sc->lex_slot[col] = s;
				sc->lex_cols[s] = col;
				memset(sc->lex_rows + (size_t) s * REL_ROW, 0, REL_ROW * 4);
			}
			sc->lex_rows[(size_t) s * REL_ROW + j] += t->val[p];
			sc->lex_rows[(size_t) s * REL_ROW + ISRF_TEXT_WINDOW] += (float) (w * t->val[p]);
		}
		sc->n_lex_items++;
		w *= ISRF_TEXT_DECAY;
	}
	for (c = 0; c < sc->n_lex_cols; c++)
	{
		double		v = sc->lex_rows[(size_t) c * REL_ROW + ISRF_TEXT_WINDOW];

		ss += v * v;
	}
	sc->lex_norm = sqrt(ss);
	return ISRF_OK;
}

IsrfStatus
isrf_scorer_relations_begin(IsrfScorer *sc, const int32_t *hist, int32_t len)
{
	IsrfStatus	st;

	isrf_scorer_relations_end(sc);
	ISRF_TRY(rel_scratch(sc));
	rel_knn_walk(sc, hist, len);
	if (sc->item_text != NULL && (st = rel_lex_layout(sc, hist, len)) != ISRF_OK)
	{
		isrf_scorer_relations_end(sc);
		return st;
	}
	return ISRF_OK;
}

void
isrf_scorer_relations_get(const IsrfScorer *sc, int32_t n, const int32_t *cand, const IsrfRelations *rel)
{
	const IsrfCsr *t = sc->item_text;
	int32_t		i,
				j,
				p;

	for (i = 0; i < n; i++)
	{
		int32_t		it = cand[i];
		double		acc[REL_ROW];
		double		best = 0.0;

		rel->knn_max[i] = rel->lex_profile[i] = rel->lex_last[i] = rel->lex_max[i] = 0.0f;
		if (it < 0 || it >= sc->n_items)
			continue;
		rel->knn_max[i] = sc->rel_knn != NULL ? sc->rel_knn[it] : 0.0f;
		if (t == NULL || sc->n_lex_items == 0)
			continue;
		memset(acc, 0, sizeof(acc));
		for (p = t->rowptr[it]; p < t->rowptr[it + 1]; p++)
		{
			int32_t		s = sc->lex_slot[t->col[p]];
			const float *row;

			if (s < 0)
				continue;
			row = sc->lex_rows + (size_t) s * REL_ROW;
			for (j = 0; j < sc->n_lex_items; j++)
				acc[j] += (double) t->val[p] * row[j];
			acc[ISRF_TEXT_WINDOW] += (double) t->val[p] * row[ISRF_TEXT_WINDOW];
		}
		for (j = 0; j < sc->n_lex_items; j++)
			if (acc[j] > best)
				best = acc[j];
		rel->lex_profile[i] = sc->lex_norm > 0.0 ? (float) (acc[ISRF_TEXT_WINDOW] / sc->lex_norm) : 0.0f;
		rel->lex_last[i] = (float) acc[0];
		rel->lex_max[i] = (float) best;
	}
}

void
isrf_scorer_relations_end(IsrfScorer *sc)
{
	int32_t		i;

	for (i = 0; i < sc->n_rel_touch; i++)
		sc->rel_knn[sc->rel_touch[i]] = 0.0f;
	sc->n_rel_touch = 0;
	for (i = 0; i < sc->n_lex_cols; i++)
		sc->lex_slot[sc->lex_cols[i]] = -1;
	sc->n_lex_cols = 0;
	sc->n_lex_items = 0;
	sc->lex_norm = 0.0;
}

IsrfStatus
isrf_scorer_relations(IsrfScorer *sc, const int32_t *hist, int32_t len, int32_t n, const int32_t *cand,
					  const IsrfRelations *rel)
{
	ISRF_TRY(isrf_scorer_relations_begin(sc, hist, len));
	isrf_scorer_relations_get(sc, n, cand, rel);
	isrf_scorer_relations_end(sc);
	return ISRF_OK;
}
