/*
 * train.c
 *	  CALL isrf_train(dataset, config): load the dataset through SPI with the
 *	  caller's rights, run the engine's training pipeline, store the model
 *	  in the registry and deploy it.
 *
 * As a non-atomic procedure it commits a status row per stage, so other
 * sessions watch progress in isrf.models; each stage runs in a
 * subtransaction, so that on an error or a cancel the row can still be
 * marked failed or cancelled (and committed) before the error is re-thrown.
 * The previously deployed version stays deployed until the very end.  A
 * lock only this code can take keeps two sessions from training one model
 * at once, and rows a crashed session left 'training' are marked by the
 * next run.  Inside an explicit transaction block (atomic CALL) nothing is
 * committed and an error rolls everything back.  The catalogue is written
 * through the writers isrf._cat_train_*() (catalogue.c), as the role that
 * trains; whether the new version is deployed is the model's deploy policy
 * (isrf._cat_train_deploy).  On a hot standby or in a read-only transaction
 * nothing starts (25006).
 */
#include "postgres.h"

#include <math.h>

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "llm.h"
#include "pg_catalogue.h"
#include "pg_env.h"
#include "model_server.h"
#include "pg_spi.h"
#include "train/pipeline.h"

#define TRAIN_CHUNK_BYTES (1024 * 1024)

typedef struct TrainState
{
	bool		atomic;
	const char *model;
	int32		version;
	bool		in_subxact;
	MemoryContext outer_cxt;
	ResourceOwner outer_owner;
	double		t_start;
	int64		nonfinite_steps;	/* reported so far */
	IsrfPgEnv  *penv;
	bool		embeddings;		/* use_llm_embeddings (llm_embed.c) */
	bool		deployed;		/* the deploy policy let the version be deployed */
} TrainState;

/* Subtransactions around stages, as PL/pgSQL's exception blocks do it. */
static void
train_subxact_begin(TrainState *ts)
{
	if (ts->atomic)
		return;
	/* each commit starts a new transaction with a new resource owner */
	ts->outer_owner = CurrentResourceOwner;
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(ts->outer_cxt);
	ts->in_subxact = true;
}

static void
train_subxact_release(TrainState *ts)
{
	if (!ts->in_subxact)
		return;
	ReleaseCurrentSubTransaction();
	MemoryContextSwitchTo(ts->outer_cxt);
	CurrentResourceOwner = ts->outer_owner;
	ts->in_subxact = false;
}

/* Commit the work so far, in a non-atomic call. */
static void
train_commit(TrainState *ts)
{
	if (!ts->atomic)
	{
		SPI_commit();
		MemoryContextSwitchTo(ts->outer_cxt);
	}
}

static void
train_set_stage(TrainState *ts, const char *stage)
{
	isrf_catalogue_call("_cat_train_stage", 3, (Oid[]) {TEXTOID, INT4OID, TEXTOID},
						(Datum[]) {CStringGetTextDatum(ts->model), Int32GetDatum(ts->version),
						CStringGetTextDatum(stage)}, NULL, NULL);
}

/* Stage hook of the engine: record, commit, announce. */
static IsrfStatus
train_stage_hook(void *arg, const char *stage)
{
	TrainState *ts = arg;

	/*
	 * Everything that can be cancelled runs inside the subtransaction, so a
	 * cancel always finds the run's row to mark (train_guarded); only the
	 * commit itself runs outside it.
	 */
	train_set_stage(ts, stage);
	train_subxact_release(ts);
	train_commit(ts);
	train_subxact_begin(ts);
	ereport(NOTICE,
			(errmsg("isrf_train: model \"%s\" version %d: %s (%.1f s)",
					ts->model, ts->version, stage, isrf_now() - ts->t_start)));
	return ISRF_OK;
}

/*
 * Epoch hook of the engine: the epoch's figures into the version's row
 * (isrf.training_progress shows them), committed, and a NOTICE; a WARNING
 * when steps had to be skipped because their gradient was not finite.
 */
static IsrfStatus
train_epoch_hook(void *arg, const IsrfEpochReport *r)
{
	TrainState *ts = arg;
	char		progress[512];
	int			off;

	/*
	 * the keys of every report, then the phase's: the refit has no validation
	 * figures, the weights' choice no loss or epoch time (NULL in the view);
	 * nor has JSON a non-finite number
	 */
	off = snprintf(progress, sizeof(progress),
				   "{\"phase\": \"%s\", \"epoch\": %d, \"epochs\": %d, \"best_epoch\": %d,"
				   " \"train_seconds\": %.3f, \"eta_seconds\": %.1f, \"nonfinite_steps\": %lld",
				   r->weights ? "weights" : r->refit ? "refit" : "fit", r->epoch, r->epochs,
				   r->best_epoch, r->elapsed, r->eta, (long long) r->nonfinite_steps);
	if (!r->weights && isfinite(r->loss))
		off += snprintf(progress + off, sizeof(progress) - off,
						", \"loss\": %.6g, \"epoch_seconds\": %.3f", r->loss, r->seconds);
	if (!r->refit && isfinite(r->val_hr10) && isfinite(r->val_ndcg10))
		off += snprintf(progress + off, sizeof(progress) - off,
						", \"val_hr10\": %.6g, \"val_ndcg10\": %.6g", r->val_hr10, r->val_ndcg10);
	snprintf(progress + off, sizeof(progress) - off, "}");
	/* as in train_stage_hook: only the commit outside the subtransaction */
	isrf_catalogue_call("_cat_train_progress", 3, (Oid[]) {TEXTOID, INT4OID, JSONBOID},
						(Datum[]) {CStringGetTextDatum(ts->model), Int32GetDatum(ts->version),
						DirectFunctionCall1(jsonb_in, CStringGetDatum(progress))}, NULL, NULL);
	train_subxact_release(ts);
	train_commit(ts);
	train_subxact_begin(ts);
	if (r->weights)
		ereport(NOTICE,
				(errmsg("isrf_train: model \"%s\" version %d: %d epochs run, epoch %d kept (validation HR@10 %.4f NDCG@10 %.4f); choosing the ranking score's weights on validation, %.1f s",
						ts->model, ts->version, r->epoch, r->best_epoch, r->val_hr10, r->val_ndcg10,
						isrf_now() - ts->t_start)));
	else if (r->refit)
		ereport(NOTICE,
				(errmsg("isrf_train: model \"%s\" version %d: refit epoch %d of %d on whole histories, loss %.4f, %.1f s, about %.0f s left",
						ts->model, ts->version, r->epoch, r->epochs, r->loss,
						isrf_now() - ts->t_start, r->eta)));
	else
		ereport(NOTICE,
				(errmsg("isrf_train: model \"%s\" version %d: epoch %d of %d, loss %.4f, validation HR@10 %.4f NDCG@10 %.4f, %.1f s, about %.0f s of epochs left at most",
						ts->model, ts->version, r->epoch, r->epochs, r->loss, r->val_hr10,
						r->val_ndcg10, isrf_now() - ts->t_start, r->eta)));
	if (r->nonfinite_steps > ts->nonfinite_steps)
		ereport(WARNING,
				(errmsg("isrf_train: model \"%s\" version %d: %lld training steps skipped so far because their gradient was not finite",
						ts->model, ts->version, (long long) r->nonfinite_steps),
				 errhint("A lower lr or a clip may help; the count is in isrf.models.metrics.")));
	ts->nonfinite_steps = r->nonfinite_steps;
	return ISRF_OK;
}

/*
 * Parse the config object: every key through the engine's table of keys
 * (train/config.h), validated as a whole; "model" names the model.  Values
 * must be scalars.
 */
static char *
train_parse_config(Jsonb *config, IsrfTrainConfig *cfg, IsrfEnv *env)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *model = NULL;
	char	   *key = NULL;
	int			n = 0,
				cap = 16;
	const char **keys = palloc(sizeof(char *) * cap);
	const char **values = palloc(sizeof(char *) * cap);

	if (!JB_ROOT_IS_OBJECT(config) || JB_ROOT_IS_SCALAR(config))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("config must be a JSON object"),
				 errhint("For example: '{\"group_k\": 50, \"dm\": 128}'.")));
	it = JsonbIteratorInit(&config->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *value;

		if (tok == WJB_KEY)
		{
			key = pnstrdup(v.val.string.val, v.val.string.len);
			continue;
		}
		if (tok != WJB_VALUE)
			continue;
		switch (v.type)
		{
			case jbvString:
				value = pnstrdup(v.val.string.val, v.val.string.len);
				break;
			case jbvNumeric:
				value = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v.val.numeric)));
				break;
			case jbvBool:
				value = pstrdup(v.val.boolean ? "true" : "false");
				break;
			default:
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("config key \"%s\" must be a string, number or boolean", key)));
		}
		if (strcmp(key, "model") == 0)
		{
			if (v.type != jbvString)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("config key \"model\" must be a string")));
			model = value;
		}
		if (n == cap)
		{
			cap *= 2;
			keys = repalloc(keys, sizeof(char *) * cap);
			values = repalloc(values, sizeof(char *) * cap);
		}
		keys[n] = key;
		values[n] = value;
		n++;
	}
	isrf_pg_check(env, isrf_train_config_parse(env, n, keys, values, cfg), NULL);
	return model;
}

/* Copy a text Datum into engine memory. */
static IsrfTextPiece
train_piece(IsrfEnv *env, int64 id, Datum d)
{
	text	   *t = DatumGetTextPP(d);
	size_t		len = VARSIZE_ANY_EXHDR(t);
	char	   *buf = isrf_alloc(env, len + 1);
	IsrfTextPiece p;

	if (buf == NULL)
		isrf_pg_raise(env, NULL);
	memcpy(buf, VARDATA_ANY(t), len);
	buf[len] = '\0';
	p.id = id;
	p.text = buf;
	p.len = len;
	p.weight = 1.0f;
	return p;
}

/* Growable arrays in engine memory (the engine's own allocator). */
static void *
train_grow(IsrfEnv *env, void *old, size_t elem, int64 *cap, int64 need)
{
	void	   *p;
	int64		n = *cap ? *cap : 1024;

	if (need <= *cap)
		return old;
	while (n < need)
		n *= 2;
	p = isrf_alloc(env, (size_t) n * elem);
	if (p == NULL)
		isrf_pg_raise(env, NULL);
	if (old)
	{
		memcpy(p, old, (size_t) (*cap) * elem);
		isrf_free(env, old);
	}
	*cap = n;
	return p;
}

/* Text pieces as they are loaded (one array per kind). */
typedef struct TrainPieces
{
	IsrfEnv    *env;
	IsrfTextPiece *v;
	int64		n,
				cap;
} TrainPieces;

typedef struct TrainLoad
{
	IsrfEnv    *env;
	int64_t    *users,
			   *items;
	double	   *order;
	int64		n_rows,
				cap_rows;
	int64_t    *catalogue;
	int64		n_catalogue,
				cap_catalogue;
	TrainPieces item_text,
				user_text;
	int64_t    *emb_ids;		/* precomputed item embeddings */
	float	   *emb;
	int64		n_emb,
				cap_emb_ids,
				cap_emb;
	int32		emb_dim;
} TrainLoad;

static void
train_take_interactions(void *arg, SPITupleTable *tt, uint64 n)
{
	TrainLoad  *l = arg;
	uint64		i;
	int64		cap;

	cap = l->cap_rows;
	l->users = train_grow(l->env, l->users, sizeof(int64_t), &cap, l->n_rows + n);
	cap = l->cap_rows;
	l->items = train_grow(l->env, l->items, sizeof(int64_t), &cap, l->n_rows + n);
	cap = l->cap_rows;
	l->order = train_grow(l->env, l->order, sizeof(double), &cap, l->n_rows + n);
	l->cap_rows = cap;
	for (i = 0; i < n; i++)
	{
		bool		isnull;

		l->users[l->n_rows] = DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull));
		l->items[l->n_rows] = DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 2, &isnull));
		l->order[l->n_rows] = (double) DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 3, &isnull));
		l->n_rows++;
	}
}

static void
train_take_catalogue(void *arg, SPITupleTable *tt, uint64 n)
{
	TrainLoad  *l = arg;
	uint64		i;

	l->catalogue = train_grow(l->env, l->catalogue, sizeof(int64_t), &l->cap_catalogue, l->n_catalogue + n);
	for (i = 0; i < n; i++)
	{
		bool		isnull;

		l->catalogue[l->n_catalogue++] = DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull));
	}
}

/* Rows (id, real[]) of isrf._embedding_sql: one dimension, no NULLs, one length. */
static void
train_take_embeddings(void *arg, SPITupleTable *tt, uint64 n)
{
	TrainLoad  *l = arg;
	uint64		i;

	for (i = 0; i < n; i++)
	{
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull));
		ArrayType  *a = DatumGetArrayTypeP(SPI_getbinval(tt->vals[i], tt->tupdesc, 2, &isnull));
		int			len = ArrayGetNItems(ARR_NDIM(a), ARR_DIMS(a));

		if (ARR_NDIM(a) != 1 || ARR_HASNULL(a) || len < 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the embedding of item %lld must be a one-dimensional array without NULLs",
							(long long) id)));
		if (l->emb_dim == 0)
			l->emb_dim = len;
		if (len != l->emb_dim)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the embedding of item %lld has %d dimensions, other items have %d",
							(long long) id, len, l->emb_dim)));
		l->emb_ids = train_grow(l->env, l->emb_ids, sizeof(int64_t), &l->cap_emb_ids, l->n_emb + 1);
		l->emb = train_grow(l->env, l->emb, sizeof(float) * l->emb_dim, &l->cap_emb, l->n_emb + 1);
		l->emb_ids[l->n_emb] = id;
		memcpy(l->emb + (size_t) l->n_emb * l->emb_dim, ARR_DATA_PTR(a), sizeof(float) * l->emb_dim);
		l->n_emb++;
	}
}

/* Rows (id, field, value) of isrf._text_sql, into a TrainPieces. */
static void
train_take_text(void *arg, SPITupleTable *tt, uint64 n)
{
	TrainPieces *p = arg;
	uint64		i;

	p->v = train_grow(p->env, p->v, sizeof(IsrfTextPiece), &p->cap, p->n + n);
	for (i = 0; i < n; i++)
	{
		bool		n1,
					n2;
		int64		id = DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &n1));
		Datum		d = SPI_getbinval(tt->vals[i], tt->tupdesc, 3, &n2);

		p->v[p->n++] = train_piece(p->env, id, d);
	}
}

/* Commit the work so far in a non-atomic call: what is cached stays cached. */
static void
train_checkpoint(void *arg)
{
	TrainState *ts = arg;

	train_subxact_release(ts);
	train_commit(ts);
	train_subxact_begin(ts);
}

/* Text pieces by id, then by content. */
static int
train_piece_cmp(const void *a, const void *b)
{
	const IsrfTextPiece *x = a;
	const IsrfTextPiece *y = b;
	int			c;

	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	c = memcmp(x->text, y->text, Min(x->len, y->len));
	if (c != 0)
		return c;
	return (x->len > y->len) - (x->len < y->len);
}

/*
 * One text per id: its pieces sorted and joined by newlines, so that the
 * text -- and the cache key, its hash -- does not depend on the order the
 * rows were read in.  Returns how many ids; ids and texts are in cxt.
 */
static int64
train_join_pieces(const TrainPieces *p, MemoryContext cxt, int64_t **ids, char ***texts)
{
	IsrfTextPiece *sorted = MemoryContextAllocHuge(cxt, sizeof(IsrfTextPiece) * (p->n + 1));
	int64		n = 0,
				i = 0;

	if (p->n > 0)
		memcpy(sorted, p->v, sizeof(IsrfTextPiece) * p->n);
	qsort(sorted, p->n, sizeof(IsrfTextPiece), train_piece_cmp);
	*ids = MemoryContextAllocHuge(cxt, sizeof(int64_t) * (p->n + 1));
	*texts = MemoryContextAllocHuge(cxt, sizeof(char *) * (p->n + 1));
	while (i < p->n)
	{
		StringInfoData b;
		MemoryContext old = MemoryContextSwitchTo(cxt);
		int64		j;

		initStringInfo(&b);
		MemoryContextSwitchTo(old);
		for (j = i; j < p->n && sorted[j].id == sorted[i].id; j++)
		{
			if (b.len > 0)
				appendStringInfoChar(&b, '\n');
			appendBinaryStringInfo(&b, sorted[j].text, (int) sorted[j].len);
		}
		(*ids)[n] = sorted[i].id;
		(*texts)[n] = b.data;
		n++;
		i = j;
	}
	pfree(sorted);
	return n;
}

/*
 * use_llm_embeddings: the item texts (catalogue text and item
 * descriptions) and the user descriptions embedded by the LLM endpoint,
 * through the cache, in place of the text featurizer.
 */
static void
train_embed(TrainState *ts, const IsrfTrainConfig *cfg, TrainLoad *load, IsrfCorpus *corpus)
{
	MemoryContext cxt = ts->penv->mcxt;
	int64_t    *ids;
	char	  **texts;
	int64		n,
				n_users = 0;
	LlmEmbedReport ri,
				ru;

	train_stage_hook(ts, "embeddings");
	if (load->n_emb > 0)
		ereport(NOTICE,
				(errmsg("isrf_train: model \"%s\" version %d: the endpoint's embeddings replace the real[] column of the items table",
						ts->model, ts->version)));
	n = train_join_pieces(&load->item_text, cxt, &ids, &texts);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("dataset of model \"%s\" has no item text to embed", ts->model),
				 errhint("use_llm_embeddings embeds the text columns of the items and item description tables.")));
	corpus->embeddings = isrf_llm_embed(texts, n, cxt, train_checkpoint, ts, &ri);
	corpus->embedding_ids = ids;
	corpus->n_embeddings = n;
	corpus->embedding_dim = ri.dim;
	memset(&ru, 0, sizeof(ru));
	if (cfg->use_user_text && load->user_text.n > 0)
	{
		n_users = train_join_pieces(&load->user_text, cxt, &ids, &texts);
		corpus->user_embeddings = isrf_llm_embed(texts, n_users, cxt, train_checkpoint, ts, &ru);
		corpus->user_embedding_ids = ids;
		corpus->n_user_embeddings = n_users;
		if (ru.dim != ri.dim)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("user embeddings have %d dimensions, item embeddings %d", ru.dim, ri.dim)));
	}
	ereport(NOTICE,
			(errmsg("isrf_train: model \"%s\" version %d: %lld item and %lld user embeddings of dimension %d (%lld from the cache, %lld fetched in %lld requests, %lld failed attempts)",
					ts->model, ts->version, (long long) n, (long long) n_users, ri.dim,
					(long long) (ri.cached + ru.cached), (long long) (ri.fetched + ru.fetched),
					(long long) (ri.requests + ru.requests),
					(long long) (ri.failed_attempts + ru.failed_attempts))));
}

/* The model's ordered histories with their split, as rows for analysts. */
static void
train_store_interactions(TrainState *ts, const IsrfModel *m)
{
	int64		n = m->seq_ptr[m->n_users],
				e = 0;
	Datum	   *uids = palloc(sizeof(Datum) * (n + 1)),
			   *iids = palloc(sizeof(Datum) * (n + 1)),
			   *pos = palloc(sizeof(Datum) * (n + 1)),
			   *split = palloc(sizeof(Datum) * (n + 1));
	Datum		names[3] = {CStringGetTextDatum("train"), CStringGetTextDatum("validation"),
	CStringGetTextDatum("test")};
	int32		u,
				p;

	for (u = 0; u < m->n_users; u++)
	{
		int32		len = m->seq_ptr[u + 1] - m->seq_ptr[u];

		for (p = 0; p < len; p++, e++)
		{
			uids[e] = Int64GetDatum(m->user_ids[u]);
			iids[e] = Int64GetDatum(m->item_ids[m->seq[m->seq_ptr[u] + p]]);
			pos[e] = Int32GetDatum(p + 1);
			split[e] = names[p < m->n_train[u] ? 0 : (p == len - 2 ? 1 : 2)];
		}
	}
	isrf_catalogue_call("_cat_train_interactions",
						6, (Oid[]) {TEXTOID, INT4OID, INT8ARRAYOID, INT8ARRAYOID, INT4ARRAYOID, TEXTARRAYOID},
						(Datum[]) {CStringGetTextDatum(ts->model), Int32GetDatum(ts->version),
							PointerGetDatum(construct_array(uids, (int) n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE)),
							PointerGetDatum(construct_array(iids, (int) n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE)),
							PointerGetDatum(construct_array(pos, (int) n, INT4OID, 4, true, TYPALIGN_INT)),
						PointerGetDatum(construct_array(split, (int) n, TEXTOID, -1, false, TYPALIGN_INT))}, NULL, NULL);
}

/* Store the serialized model in 1 MB chunks, the histories and the group graph as rows. */
static void
train_store(TrainState *ts, const IsrfModel *m, const uint8_t *buf, size_t len)
{
	size_t		off;
	int32		seq = 0;
	int64		n = m->group.nnz,
				e = 0;
	Datum	   *uids,
			   *nids,
			   *sims,
			   *ranks;
	int32		u,
				p;

	for (off = 0; off < len; off += TRAIN_CHUNK_BYTES)
	{
		size_t		sz = Min((size_t) TRAIN_CHUNK_BYTES, len - off);
		bytea	   *chunk = palloc(VARHDRSZ + sz);

		SET_VARSIZE(chunk, VARHDRSZ + sz);
		memcpy(VARDATA(chunk), buf + off, sz);
		isrf_catalogue_call("_cat_train_chunk", 4, (Oid[]) {TEXTOID, INT4OID, INT4OID, BYTEAOID},
							(Datum[]) {CStringGetTextDatum(ts->model), Int32GetDatum(ts->version),
							Int32GetDatum(seq++), PointerGetDatum(chunk)}, NULL, NULL);
		pfree(chunk);
		CHECK_FOR_INTERRUPTS();
	}

	train_store_interactions(ts, m);
	if (n == 0)
		return;
	uids = palloc(sizeof(Datum) * n);
	nids = palloc(sizeof(Datum) * n);
	sims = palloc(sizeof(Datum) * n);
	ranks = palloc(sizeof(Datum) * n);
	for (u = 0; u < m->n_users; u++)
		for (p = m->group.rowptr[u]; p < m->group.rowptr[u + 1]; p++, e++)
		{
			uids[e] = Int64GetDatum(m->user_ids[u]);
			nids[e] = Int64GetDatum(m->user_ids[m->group.col[p]]);
			sims[e] = Float4GetDatum(m->group.val[p]);
			ranks[e] = Int32GetDatum(p - m->group.rowptr[u] + 1);
		}
	isrf_catalogue_call("_cat_train_edges",
						6, (Oid[]) {TEXTOID, INT4OID, INT8ARRAYOID, INT8ARRAYOID, FLOAT4ARRAYOID, INT4ARRAYOID},
						(Datum[]) {CStringGetTextDatum(ts->model), Int32GetDatum(ts->version),
							PointerGetDatum(construct_array(uids, (int) n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE)),
							PointerGetDatum(construct_array(nids, (int) n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE)),
							PointerGetDatum(construct_array(sims, (int) n, FLOAT4OID, 4, true, TYPALIGN_INT)),
						PointerGetDatum(construct_array(ranks, (int) n, INT4OID, 4, true, TYPALIGN_INT))}, NULL, NULL);
}

/* The whole run after the status row exists; errors propagate. */
static void
train_run(TrainState *ts, const IsrfTrainConfig *cfg, const char *const queries[6])
{
	IsrfPgEnv  *penv = ts->penv;
	IsrfEnv    *env = &penv->env;
	TrainLoad	load;
	IsrfCorpus	corpus;
	IsrfModel	model;
	IsrfBackend *be;
	uint8_t    *buf;
	size_t		len;
	char		metrics[2048];
	char		desc[256];

	memset(&load, 0, sizeof(load));
	load.env = env;
	load.item_text.env = env;
	load.user_text.env = env;

	/* load with the caller's rights; the queries come from isrf._*_sql */
	isrf_spi_fetch(queries[0], train_take_interactions, &load);
	if (queries[1])
		isrf_spi_fetch(queries[1], train_take_catalogue, &load);
	if (queries[2])
		isrf_spi_fetch(queries[2], train_take_text, &load.item_text);
	if (queries[3])
		isrf_spi_fetch(queries[3], train_take_text, &load.item_text);
	if (queries[4])
		isrf_spi_fetch(queries[4], train_take_text, &load.user_text);
	if (queries[5])
		isrf_spi_fetch(queries[5], train_take_embeddings, &load);
	if (load.n_rows == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("dataset of model \"%s\" has no usable interactions", ts->model),
				 errhint("isrf.dataset_stats() shows which rows were skipped and why.")));
	ereport(NOTICE,
			(errmsg("isrf_train: model \"%s\" version %d: loaded %lld interactions, %lld catalogue items, %lld item and %lld user text values",
					ts->model, ts->version, (long long) load.n_rows, (long long) load.n_catalogue,
					(long long) load.item_text.n, (long long) load.user_text.n)));

	memset(&corpus, 0, sizeof(corpus));
	corpus.rows.n = load.n_rows;
	corpus.rows.user_id = load.users;
	corpus.rows.item_id = load.items;
	corpus.rows.order = load.order;
	corpus.catalogue_ids = load.catalogue;
	corpus.n_catalogue = load.n_catalogue;
	corpus.item_text = load.item_text.v;
	corpus.n_item_text = load.item_text.n;
	corpus.user_text = load.user_text.v;
	corpus.n_user_text = load.user_text.n;
	corpus.embedding_ids = load.emb_ids;
	corpus.embeddings = load.emb;
	corpus.n_embeddings = load.n_emb;
	corpus.embedding_dim = load.emb_dim;
	if (ts->embeddings)
		train_embed(ts, cfg, &load, &corpus);
	else if (load.n_emb > 0)
		ereport(NOTICE,
				(errmsg("isrf_train: model \"%s\" version %d: %lld precomputed item embeddings of dimension %d replace the text features",
						ts->model, ts->version, (long long) load.n_emb, load.emb_dim)));

	be = isrf_pg_backend_open(penv);
	PG_TRY();
	{
		isrf_pg_check(env, be->describe(be, desc, sizeof(desc)), NULL);
		ereport(NOTICE, (errmsg("isrf_train: model \"%s\" version %d: training on %s",
								ts->model, ts->version, desc)));
		isrf_pg_check(env, isrf_train(env, be, &corpus, cfg,
										  &(IsrfTrainHooks) {train_stage_hook, train_epoch_hook, ts},
										  &model),
					  "training failed");
	}
	PG_FINALLY();
	{
		isrf_backend_close(be);
	}
	PG_END_TRY();
	if (cfg->gen.epochs > 0 && model.genrec.params == NULL)
		ereport(NOTICE,
				(errmsg("isrf_train: model \"%s\" version %d: no user has two train interactions, so the generative model was not trained",
						ts->model, ts->version),
				 errdetail("The model recommends by popularity.")));

	isrf_pg_check(env, isrf_model_save(env, &model, &buf, &len), "could not serialize the model");
	train_set_stage(ts, "store");
	train_store(ts, &model, buf, len);

	/*
	 * deploy, as the model's deploy policy says (the writer says why not in
	 * a NOTICE): the previous version stays deployed until this moment
	 */
	isrf_model_stats_json(&model, metrics, sizeof(metrics));
	ts->deployed = DatumGetBool(isrf_catalogue_call("_cat_train_deploy", 5,
													(Oid[]) {TEXTOID, INT4OID, TEXTOID, INT8OID, FLOAT8OID},
													(Datum[]) {CStringGetTextDatum(ts->model), Int32GetDatum(ts->version),
														CStringGetTextDatum(metrics), Int64GetDatum((int64) len),
													Float8GetDatum(isrf_now() - ts->t_start)}, NULL, NULL));
	ereport(NOTICE,
			(errmsg("isrf_train: model \"%s\" version %d %s (%.1f s, %zu bytes)",
					ts->model, ts->version, ts->deployed ? "deployed" : "stored, not deployed",
					isrf_now() - ts->t_start, len)));
}

/* Mark the run's row after a failure; runs in a clean (top) transaction. */
static void
train_mark_failed(TrainState *ts, ErrorData *edata)
{
	const char *status = edata->sqlerrcode == ERRCODE_QUERY_CANCELED ? "cancelled" : "failed";

	isrf_catalogue_call("_cat_train_end", 4, (Oid[]) {TEXTOID, INT4OID, TEXTOID, TEXTOID},
						(Datum[]) {CStringGetTextDatum(ts->model), Int32GetDatum(ts->version),
							CStringGetTextDatum(status),
						CStringGetTextDatum(edata->message ? edata->message : "unknown error")}, NULL, NULL);
}

/* Have the model server load the version just deployed (and committed). */
static void
train_tell_server(TrainState *ts)
{
	TimestampTz created_at;

	created_at = DatumGetTimestampTz(isrf_spi_scalar("SELECT created_at FROM isrf.models WHERE name = $1 AND version = $2",
													 2, (Oid[]) {TEXTOID, INT4OID},
													 (Datum[]) {CStringGetTextDatum(ts->model), Int32GetDatum(ts->version)}));
	isrf_server_preload(ts->model, ts->version, created_at);
}

/*
 * Insert the version's row and run; on an error inside a stage, mark the
 * row failed or cancelled and commit that before re-throwing.
 */
static void
train_guarded(TrainState *ts, const IsrfTrainConfig *cfg, const char *const queries[6],
			  const char *dataset, const char *effective)
{
	/*
	 * marks rows a crashed or killed run left behind, inserts the new
	 * version's with the effective configuration (every key that has an
	 * effect) and the model's name
	 */
	ts->version = DatumGetInt32(isrf_catalogue_call("_cat_train_begin", 3, (Oid[]) {TEXTOID, TEXTOID, JSONBOID},
													(Datum[]) {CStringGetTextDatum(ts->model),
														CStringGetTextDatum(dataset),
													DirectFunctionCall1(jsonb_in, CStringGetDatum(effective))},
													NULL, NULL));
	train_commit(ts);
	ts->t_start = isrf_now();

	train_subxact_begin(ts);
	PG_TRY();
	{
		train_run(ts, cfg, queries);
		train_subxact_release(ts);
		train_commit(ts);
		if (!ts->atomic && ts->deployed)
			train_tell_server(ts);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(ts->outer_cxt);
		edata = CopyErrorData();
		if (!ts->in_subxact)
			PG_RE_THROW();
		/* back to a sound transaction: record why, keep it, re-throw */
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(ts->outer_cxt);
		CurrentResourceOwner = ts->outer_owner;
		ts->in_subxact = false;
		train_mark_failed(ts, edata);
		train_commit(ts);
		ReThrowError(edata);
	}
	PG_END_TRY();
}

/* Hold the model's training lock around the run; released whatever happens. */
static void
train_locked(TrainState *ts, const IsrfTrainConfig *cfg, const char *const queries[6],
			 const char *dataset, const char *effective)
{
	if (!isrf_model_lock(ts->model))
		ereport(ERROR,
				(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
				 errmsg("model \"%s\" is being trained by another session", ts->model),
				 errhint("isrf.training_progress shows its progress; wait for it or cancel it.")));
	PG_TRY();
	{
		train_guarded(ts, cfg, queries, dataset, effective);
	}
	PG_FINALLY();
	{
		isrf_model_unlock(ts->model);
	}
	PG_END_TRY();
}

/* Everything between argument parsing and cleanup. */
static void
train_main(TrainState *ts, IsrfPgEnv *penv, const char *dataset, Jsonb *config)
{
	IsrfTrainConfig cfg;
	const char *queries[6];
	char	   *model;
	char		effective[4096];
	SPITupleTable *tt;
	int			i;

	isrf_pg_check_name("dataset", dataset);
	isrf_train_config_default(&cfg);
	model = config ? train_parse_config(config, &cfg, &penv->env) : NULL;
	isrf_train_config_json(&cfg, effective, sizeof(effective));
	ts->embeddings = cfg.use_llm_embeddings;
	if (ts->embeddings)
		isrf_llm_require_embedding_model();	/* before anything is loaded */
	ts->model = MemoryContextStrdup(penv->mcxt, model ? model : dataset);
	isrf_pg_check_name("model", ts->model);

	SPI_connect_ext(ts->atomic ? 0 : SPI_OPT_NONATOMIC);
	ts->outer_cxt = CurrentMemoryContext;

	/* the dataset (errors name it) and the queries that read it */
	tt = isrf_spi_query("SELECT isrf._interactions_sql(d),"
						" CASE WHEN d.items IS NOT NULL THEN format('SELECT item_id::bigint FROM %s WHERE item_id IS NOT NULL', d.items) END,"
						" isrf._text_sql(d, 'items'), isrf._text_sql(d, 'item_descriptions'),"
						" isrf._text_sql(d, 'user_descriptions'), isrf._embedding_sql(d)"
						" FROM isrf._dataset($1) d",
						1, (Oid[]) {TEXTOID}, (Datum[]) {CStringGetTextDatum(dataset)}, NULL);
	for (i = 0; i < 6; i++)
	{
		char	   *q = SPI_getvalue(tt->vals[0], tt->tupdesc, i + 1);

		queries[i] = q ? MemoryContextStrdup(penv->mcxt, q) : NULL;
	}

	/* a model belongs to one dataset, and to its owner */
	isrf_catalogue_call("_cat_train_check", 2, (Oid[]) {TEXTOID, TEXTOID},
						(Datum[]) {CStringGetTextDatum(ts->model), CStringGetTextDatum(dataset)}, NULL, NULL);

	train_locked(ts, &cfg, queries, dataset, effective);
	SPI_finish();
}

/*
 * Training writes the catalogue: on a hot standby, or in a read-only
 * transaction, say so before any work (25006) rather than after loading
 * and training.
 */
static void
train_require_writable(void)
{
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot train a model on a hot standby"),
				 errdetail("Models are trained on the primary; a standby serves each version once it has replayed it."),
				 errhint("Run CALL isrf_train(...) on the primary.")));
	if (XactReadOnly)
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot train a model in a read-only transaction"),
				 errhint("Training stores and deploys a new version; run it in a read-write transaction.")));
}

PG_FUNCTION_INFO_V1(isrf_train_proc);

/*
 * CALL isrf_train(dataset text, config jsonb DEFAULT '{}')
 */
Datum
isrf_train_proc(PG_FUNCTION_ARGS)
{
	TrainState	ts;
	IsrfPgEnv	penv;
	char	   *dataset;
	Jsonb	   *config;

	memset(&ts, 0, sizeof(ts));
	train_require_writable();
	ts.atomic = !(fcinfo->context && IsA(fcinfo->context, CallContext) &&
				  !castNode(CallContext, fcinfo->context)->atomic);
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("dataset name must not be NULL")));
	config = PG_ARGISNULL(1) ? NULL : PG_GETARG_JSONB_P(1);

	/* engine memory outlives the per-stage commits; freed in PG_FINALLY */
	isrf_pg_env_init(&penv, TopMemoryContext, DEBUG1);
	ts.penv = &penv;
	PG_TRY();
	{
		dataset = MemoryContextStrdup(penv.mcxt, text_to_cstring(PG_GETARG_TEXT_PP(0)));
		train_main(&ts, &penv, dataset, config);
	}
	PG_FINALLY();
	{
		isrf_pg_env_done(&penv);
	}
	PG_END_TRY();
	PG_RETURN_VOID();
}
