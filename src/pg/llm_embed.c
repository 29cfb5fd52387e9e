/*
 * llm_embed.c
 *	  Embeddings from the LLM endpoint as the semantic features of training
 *	  (isrf_train's use_llm_embeddings), through a cache.
 *
 * The cache, isrf.llm_embeddings, is keyed by the calling role, the
 * embedding model and the SHA-256 of the UTF-8 text, so retraining sends
 * nothing for texts embedded before, and one role never reads another's.
 * It is written only through the catalogue writer
 * isrf._cat_llm_embeddings_put (catalogue.c's gate), for the calling role.
 * Cache rows are written as each request comes back; the caller's
 * checkpoint callback (a commit, in a non-atomic CALL) runs every few
 * seconds, so a training run that fails or is cancelled later keeps what
 * it fetched.  Any text that cannot be embedded after the client's retries
 * is an error: training on features that silently lack some items would
 * be worse than not training.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "llm.h"
#include "pg_catalogue.h"
#include "pg_spi.h"

#define EMBED_LOOKUP_CHUNK 1000
#define EMBED_CHECKPOINT_S 2.0

typedef struct EmbedState
{
	const char *model;
	char	  **texts;
	int64		n;
	float	  **vec;			/* per text, NULL until known */
	int			dim;			/* 0 until the first vector */
	MemoryContext cxt;
} EmbedState;

/* One embeddings request: texts [first, first + count). */
typedef struct EmbedBatch
{
	LlmCall		call;
	int64	   *index;			/* text indexes */
	int			count;
} EmbedBatch;

/* Keep a vector of text i, checking its dimension against the others. */
static void
embed_keep(EmbedState *st, int64 i, const float *v, int dim)
{
	if (dim < 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("an embedding of model \"%s\" has no dimensions", st->model)));
	if (st->dim == 0)
		st->dim = dim;
	if (dim != st->dim)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("embeddings of model \"%s\" have %d and %d dimensions", st->model, st->dim, dim),
				 errhint("Cached embeddings may come from another model of the same name: SELECT isrf.drop_llm_embeddings('%s').",
						 st->model)));
	st->vec[i] = MemoryContextAlloc(st->cxt, sizeof(float) * dim);
	memcpy(st->vec[i], v, sizeof(float) * dim);
}

/* Texts [from, to) found in the cache. */
static int64
embed_lookup(EmbedState *st, int64 from, int64 to)
{
	Datum	   *d = palloc(sizeof(Datum) * (to - from));
	ArrayType  *arr;
	int64		i,
				found = 0;
	uint64		r;

	for (i = from; i < to; i++)
		d[i - from] = CStringGetTextDatum(st->texts[i]);
	arr = construct_array(d, (int) (to - from), TEXTOID, -1, false, TYPALIGN_INT);
	(void) isrf_spi_select("SELECT t.i, c.embedding FROM unnest($2::text[]) WITH ORDINALITY AS t(txt, i)"
						   " JOIN isrf.llm_embeddings c ON c.owner = current_user AND c.model = $1"
						   " AND c.hash = sha256(convert_to(t.txt, 'UTF8'))",
						   2, (Oid[]) {TEXTOID, TEXTARRAYOID},
						   (Datum[]) {CStringGetTextDatum(st->model), PointerGetDatum(arr)}, NULL);
	for (r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		int64		at = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull));
		ArrayType  *a = DatumGetArrayTypeP(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2, &isnull));

		if (ARR_NDIM(a) != 1 || ARR_HASNULL(a) || ARR_ELEMTYPE(a) != FLOAT4OID)
			continue;			/* not ours to trust: fetch it again */
		embed_keep(st, from + at - 1, (float *) ARR_DATA_PTR(a), ArrayGetNItems(1, ARR_DIMS(a)));
		found++;
	}
	SPI_freetuptable(SPI_tuptable);
	pfree(arr);
	pfree(d);
	return found;
}

/* Cache (one writer call per batch) and keep the vectors of a batch that came back. */
static void
embed_store(EmbedState *st, EmbedBatch *b)
{
	size_t		n = (size_t) b->count * b->call.dim;
	Datum	   *texts = palloc(sizeof(Datum) * b->count);
	Datum	   *elems = palloc(sizeof(Datum) * (n + 1));
	size_t		x;
	int			k;

	for (k = 0; k < b->count; k++)
	{
		embed_keep(st, b->index[k], b->call.vectors + (size_t) k * b->call.dim, b->call.dim);
		texts[k] = CStringGetTextDatum(st->texts[b->index[k]]);
	}
	for (x = 0; x < n; x++)
		elems[x] = Float4GetDatum(b->call.vectors[x]);
	(void) isrf_catalogue_call("_cat_llm_embeddings_put", 4, (Oid[]) {TEXTOID, TEXTARRAYOID, INT4OID, FLOAT4ARRAYOID},
							   (Datum[]) {CStringGetTextDatum(st->model),
								   PointerGetDatum(construct_array(texts, b->count, TEXTOID, -1, false, TYPALIGN_INT)),
								   Int32GetDatum(b->call.dim),
							   PointerGetDatum(construct_array(elems, (int) n, FLOAT4OID, sizeof(float4), true, TYPALIGN_INT))},
							   NULL, NULL);
	for (k = 0; k < b->count; k++)
		pfree(DatumGetPointer(texts[k]));
	pfree(texts);
	pfree(elems);
	pfree(b->call.vectors);
	b->call.vectors = NULL;
}

void
isrf_llm_require_embedding_model(void)
{
	if (isrf_llm_embedding_model_guc == NULL || isrf_llm_embedding_model_guc[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("isrf.llm_embedding_model is not set"),
				 errhint("use_llm_embeddings asks the LLM endpoint for embeddings: SET isrf.llm_embedding_model = '...'.")));
}

float *
isrf_llm_embed(char **texts, int64 n, MemoryContext cxt, void (*checkpoint) (void *arg),
			   void *arg, LlmEmbedReport *report)
{
	EmbedState	st;
	LlmSettings s;
	LlmClient  *client;
	int64	   *missing;
	int64		n_missing = 0,
				next = 0,
				i;
	int			batch = Max(1, isrf_llm_embedding_batch_guc);
	int			in_flight = 0;
	double		last_checkpoint = llm_now();
	float	   *out;
	MemoryContext old;

	memset(report, 0, sizeof(*report));
	isrf_llm_require_embedding_model();
	memset(&st, 0, sizeof(st));
	st.model = MemoryContextStrdup(cxt, isrf_llm_embedding_model_guc);
	st.texts = texts;
	st.n = n;
	st.cxt = cxt;
	st.vec = MemoryContextAllocHuge(cxt, sizeof(float *) * (n + 1));
	memset(st.vec, 0, sizeof(float *) * (n + 1));

	/* what the cache has */
	for (i = 0; i < n; i += EMBED_LOOKUP_CHUNK)
	{
		report->cached += embed_lookup(&st, i, Min(n, i + EMBED_LOOKUP_CHUNK));
		CHECK_FOR_INTERRUPTS();
	}
	missing = MemoryContextAllocHuge(cxt, sizeof(int64) * (n + 1));
	for (i = 0; i < n; i++)
		if (st.vec[i] == NULL)
			missing[n_missing++] = i;

	/* the rest from the endpoint, a batch per request, a few in flight */
	llm_settings_from_gucs(&s);
	client = n_missing > 0 ? llm_client_create(&s, cxt) : NULL;
	while (next < n_missing || in_flight > 0)
	{
		List	   *done;
		ListCell   *lc;

		while (next < n_missing && in_flight < 2 * s.concurrency)
		{
			EmbedBatch *b;
			const char **bt;
			int			k;

			old = MemoryContextSwitchTo(cxt);
			b = palloc0(sizeof(EmbedBatch));
			b->count = (int) Min((int64) batch, n_missing - next);
			b->index = palloc(sizeof(int64) * b->count);
			bt = palloc(sizeof(char *) * b->count);
			for (k = 0; k < b->count; k++)
			{
				b->index[k] = missing[next + k];
				bt[k] = texts[b->index[k]];
			}
			b->call.kind = LLM_CALL_EMBED;
			b->call.n_inputs = b->count;
			b->call.arg = b;
			b->call.body = llm_embed_body(st.model, bt, b->count);
			pfree(bt);
			MemoryContextSwitchTo(old);
			next += b->count;
			llm_client_submit(client, &b->call);
			in_flight++;
		}
		CHECK_FOR_INTERRUPTS();
		done = llm_client_step(client, 100);
		foreach(lc, done)
		{
			EmbedBatch *b = ((LlmCall *) lfirst(lc))->arg;

			in_flight--;
			if (!b->call.ok)
				ereport(ERROR,
						(errcode(ERRCODE_CONNECTION_FAILURE),
						 errmsg("could not embed %d texts with model \"%s\" after %d attempts: %s",
								b->count, st.model, b->call.attempts, b->call.error),
						 errhint("Check isrf.llm_endpoint and the model; embeddings fetched so far are cached.")));
			embed_store(&st, b);
			report->fetched += b->count;
			pfree(b->call.body);
			pfree(b->index);
			pfree(b);
		}
		list_free(done);
		if (checkpoint && llm_now() - last_checkpoint >= EMBED_CHECKPOINT_S)
		{
			checkpoint(arg);
			last_checkpoint = llm_now();
		}
	}
	if (client)
	{
		report->requests = llm_client_stats(client)->requests;
		report->failed_attempts = llm_client_stats(client)->failed_attempts;
		llm_client_destroy(client);
	}

	report->dim = st.dim;
	out = MemoryContextAllocHuge(cxt, sizeof(float) * ((size_t) n * Max(st.dim, 1) + 1));
	for (i = 0; i < n; i++)
	{
		memcpy(out + (size_t) i * st.dim, st.vec[i], sizeof(float) * st.dim);
		pfree(st.vec[i]);
	}
	pfree(st.vec);
	pfree(missing);
	return out;
}
