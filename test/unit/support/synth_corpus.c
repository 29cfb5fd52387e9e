/*
 * test/unit/support/synth_corpus.c
 *	  A training corpus from the synthetic generator (see synth_corpus.h).
 */
#include "synth_corpus.h"

#include <stdlib.h>
#include <string.h>

IsrfStatus
isrf_test_corpus_build(IsrfEnv *env, IsrfTestCorpus *t)
{
	int64_t		i;

	ISRF_TRY(isrf_synth_generate(env, &t->sc, &t->sd));
	t->order = malloc(sizeof(double) * t->sd.n_rows);
	t->texts = malloc(sizeof(*t->texts) * t->sc.n_items * 2);
	t->items = malloc(sizeof(IsrfTextPiece) * t->sc.n_items * 2);
	if (t->order == NULL || t->texts == NULL || t->items == NULL)
		return isrf_fail(env, ISRF_ERR_NOMEM, "test corpus: out of memory");
	for (i = 0; i < t->sd.n_rows; i++)
		t->order[i] = t->sd.position[i];
	for (i = 0; i < t->sc.n_items; i++)
	{
		isrf_synth_item_text(&t->sc, &t->sd, (int32_t) i, 0, t->texts[2 * i], 256);
		isrf_synth_item_text(&t->sc, &t->sd, (int32_t) i, 2, t->texts[2 * i + 1], 256);
		t->items[2 * i] = (IsrfTextPiece) {i + 1, t->texts[2 * i], strlen(t->texts[2 * i]), 1.0f};
		t->items[2 * i + 1] = (IsrfTextPiece) {i + 1, t->texts[2 * i + 1], strlen(t->texts[2 * i + 1]), 1.0f};
	}
	memset(&t->corpus, 0, sizeof(t->corpus));
	t->corpus.rows.n = t->sd.n_rows;
	t->corpus.rows.user_id = t->sd.user_id;
	t->corpus.rows.item_id = t->sd.item_id;
	t->corpus.rows.order = t->order;
	t->corpus.item_text = t->items;
	t->corpus.n_item_text = t->sc.n_items * 2;
	return ISRF_OK;
}

void
isrf_test_corpus_free(IsrfEnv *env, IsrfTestCorpus *t)
{
	free(t->order);
	free(t->texts);
	free(t->items);
	isrf_synth_free(env, &t->sd);
}
