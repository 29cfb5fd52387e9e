/*
 * recommend.c
 *	  The serving functions users call every day: isrf_recommend, isrf_rank,
 *	  isrf_recommend_items and isrf_evaluate.
 *
 * The deployed model is resolved through the catalogue on every call (with
 * the caller's row-level security) and served through the process's
 * serving session of that version (model_cache.c), so a retrained,
 * redeployed or dropped model is noticed by the next call with no manual
 * invalidation.  The user's history is read at the moment of the call from
 * the dataset's reviews table, with the caller's rights and in the caller's
 * snapshot (serving_call.c): an item bought a moment ago counts, also
 * inside the same transaction.  Scratch of a call lives in a memory
 * context of its own.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "eval/evaluate.h"
#include "model_cache.h"
#include "model_catalogue.h"
#include "model_server.h"
#include "pg_env.h"
#include "pg_spi.h"
#include "serve/serve.h"
#include "serving_call.h"

/* isrf.beam_width (isrf.c) */
extern int	isrf_beam_width_guc;

/*
 * Serve one request in this process: the answer for user (or -1) after
 * the history h, k items; fills res (palloc'd arrays).
 */
static void
recommend_in_process(IsrfServeSession *ss, int32 user, const IsrfPgHistory *h, int32 k,
					 IsrfRecResult *res)
{
	const IsrfModel *m = isrf_serve_session_model(ss);
	IsrfRecRequest req;
	IsrfPgEnv	penv;

	/* a k beyond the catalogue asks for everything there is */
	memset(&req, 0, sizeof(req));
	req.user = user;
	req.k = Min(k, Max(m->n_items, 1));
	req.beam_width = isrf_beam_width_guc;
	req.hist = h->items;
	req.len = h->len;
	res->items = palloc(sizeof(int32) * req.k);
	res->scores = palloc(sizeof(float) * req.k);
	res->count = 0;
	res->cold_start = false;
	isrf_pg_env_init(&penv, CurrentMemoryContext, DEBUG1);
	PG_TRY();
	{
		isrf_model_cache_check(&penv.env, isrf_serve_recommend(&penv.env, ss, 1, &req, res),
							   "recommendation failed");
	}
	PG_FINALLY();
	{
		isrf_pg_env_done(&penv);
	}
	PG_END_TRY();
}

/* Error unless k is positive. */
static int32
recommend_k(FunctionCallInfo fcinfo, int argno)
{
	int32		k;

	isrf_serving_require(fcinfo, argno, "k");
	k = PG_GETARG_INT32(argno);
	if (k <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("k must be positive, not %d", k)));
	return k;
}

/* One row of isrf_recommend. */
static void
recommend_emit(ReturnSetInfo *rsinfo, int32 rank, int64 item_id, float score, bool cold_start)
{
	Datum		v[4];
	bool		n[4] = {false, false, false, false};

	v[0] = Int32GetDatum(rank);
	v[1] = Int64GetDatum(item_id);
	v[2] = Float4GetDatum(score);
	v[3] = BoolGetDatum(cold_start);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
}

PG_FUNCTION_INFO_V1(isrf_recommend);

/*
 * isrf_recommend(user_id bigint, k int, model text DEFAULT NULL)
 *	  -> (rank int, item_id bigint, score real, cold_start boolean)
 */
Datum
isrf_recommend(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	IsrfServingCall call;
	IsrfServeSession *ss;
	const IsrfModel *m;
	IsrfPgHistory h;
	IsrfRecResult res;
	int64		user_id;
	int32		k,
				i;

	isrf_serving_require(fcinfo, 0, "user_id");
	user_id = PG_GETARG_INT64(0);
	k = recommend_k(fcinfo, 1);
	InitMaterializedSRF(fcinfo, 0);
	isrf_serving_call_begin(fcinfo, 2, true, user_id, &call);

	/*
	 * The model server answers, where there is one and the request fits its
	 * slots; when it cannot, isrf.server_fallback may let this session answer.
	 */
	if (isrf_server_available() && k <= ISRF_SERVER_MAX_K && call.n_hist <= ISRF_SERVER_MAX_HIST)
	{
		int64	   *ids = palloc(sizeof(int64) * k);
		float	   *sc = palloc(sizeof(float) * k);
		int32		count;
		bool		cold;

		if (isrf_server_recommend(call.src.name, call.src.version, call.src.created_at, user_id, k,
								  isrf_beam_width_guc, call.hist_ids, call.n_hist, ids, sc, &count, &cold))
		{
			for (i = 0; i < count; i++)
				recommend_emit(rsinfo, i + 1, ids[i], sc[i], cold);
			return (Datum) 0;
		}
	}
	ss = isrf_serving_call_session(&call);
	m = isrf_serve_session_model(ss);
	isrf_serving_call_history(&call, m, &h);
	recommend_in_process(ss, isrf_model_user_index(m, user_id), &h, k, &res);
	for (i = 0; i < res.count; i++)
		recommend_emit(rsinfo, i + 1, m->item_ids[res.items[i]], res.scores[i], res.cold_start);
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(isrf_recommend_items);

/*
 * isrf_recommend_items(items bigint[], k int, model text DEFAULT NULL)
 *	  -> (rank int, item_id bigint, score real)
 *
 * The next items after an ordered list of items (an anonymous session, a
 * basket), the listed items excluded.  A repeated item counts once, at its
 * first place; items the model does not know are skipped and counted in a
 * NOTICE; a list with no known item gets the most popular items.
 */
Datum
isrf_recommend_items(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	IsrfServingCall call;
	IsrfServeSession *ss;
	const IsrfModel *m;
	IsrfPgHistory h;
	IsrfRecResult res;
	ArrayType  *arr;
	Datum	   *elems;
	bool	   *nulls;
	int64	   *ids;
	int			n,
				n_ids = 0,
				i,
				j;
	int32		k;

	isrf_serving_require(fcinfo, 0, "items");
	k = recommend_k(fcinfo, 1);
	arr = PG_GETARG_ARRAYTYPE_P(0);
	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("items must be a one-dimensional array")));
	deconstruct_array(arr, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &elems, &nulls, &n);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("items must not be empty"),
				 errhint("Recommendations for no history at all are the most popular items.")));
	ids = palloc(sizeof(int64) * n);
	for (i = 0; i < n; i++)
	{
		bool		dup = false;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("items must not contain NULL (element %d)", i + 1)));
		for (j = 0; j < n_ids && !dup; j++)
			dup = ids[j] == DatumGetInt64(elems[i]);
		if (!dup)
			ids[n_ids++] = DatumGetInt64(elems[i]);
	}
	InitMaterializedSRF(fcinfo, 0);
	isrf_serving_call_begin(fcinfo, 2, false, 0, &call);
	ss = isrf_serving_call_session(&call);
	m = isrf_serve_session_model(ss);
	isrf_pg_history_map(ids, n_ids, m, &h);
	if (h.unknown > 0)
		ereport(NOTICE,
				(errmsg("%d of the %d items are not in model \"%s\" version %d and were skipped",
						h.unknown, n_ids, call.src.name, call.src.version),
				 errhint("Items added to the catalogue after training are known from the next training on.")));
	recommend_in_process(ss, -1, &h, k, &res);
	for (i = 0; i < res.count; i++)
	{
		Datum		v[3];
		bool		nl[3] = {false, false, false};

		v[0] = Int32GetDatum(i + 1);
		v[1] = Int64GetDatum(m->item_ids[res.items[i]]);
		v[2] = Float4GetDatum(res.scores[i]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, nl);
	}
	return (Datum) 0;
}

typedef struct RankedCandidate
{
	int64		item_id;
	float		score;
	bool		known;
	int			input_pos;
} RankedCandidate;

/* Best first; unknown items last in input order; ties by item id. */
static int
recommend_rank_cmp(const void *a, const void *b)
{
	const RankedCandidate *x = a,
			   *y = b;

	if (x->known != y->known)
		return x->known ? -1 : 1;
	if (!x->known)
		return x->input_pos - y->input_pos;
	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return (x->item_id > y->item_id) - (x->item_id < y->item_id);
}

static int
recommend_int64_cmp(const void *a, const void *b)
{
	int64		x = *(const int64 *) a,
				y = *(const int64 *) b;

	return (x > y) - (x < y);
}

PG_FUNCTION_INFO_V1(isrf_rank);

/*
 * isrf_rank(user_id bigint, candidates bigint[], model text DEFAULT NULL)
 *	  -> (rank int, item_id bigint, score real)
 */
Datum
isrf_rank(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	IsrfServingCall call;
	const IsrfModel *m;
	IsrfServeSession *ss;
	IsrfPgHistory h;
	ArrayType  *arr;
	Datum	   *elems;
	bool	   *nulls;
	int			n,
				i;
	int64	   *sorted;
	int32	   *cand;
	float	   *scores;
	RankedCandidate *ranked;
	IsrfPgEnv	penv;
	int32		user;

	isrf_serving_require(fcinfo, 0, "user_id");
	isrf_serving_require(fcinfo, 1, "candidates");
	arr = PG_GETARG_ARRAYTYPE_P(1);
	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("candidates must be a one-dimensional array")));
	deconstruct_array(arr, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &elems, &nulls, &n);
	InitMaterializedSRF(fcinfo, 0);
	if (n == 0)
		return (Datum) 0;

	sorted = palloc(sizeof(int64) * n);
	for (i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("candidates must not contain NULL (element %d)", i + 1)));
		sorted[i] = DatumGetInt64(elems[i]);
	}
	qsort(sorted, n, sizeof(int64), recommend_int64_cmp);
	for (i = 1; i < n; i++)
		if (sorted[i] == sorted[i - 1])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("candidate item %lld appears more than once", (long long) sorted[i])));

	isrf_serving_call_begin(fcinfo, 2, true, PG_GETARG_INT64(0), &call);
	ss = isrf_serving_call_session(&call);
	m = isrf_serve_session_model(ss);
	isrf_serving_call_history(&call, m, &h);
	user = isrf_model_user_index(m, PG_GETARG_INT64(0));
	cand = palloc(sizeof(int32) * n);
	scores = palloc(sizeof(float) * n);
	for (i = 0; i < n; i++)
		cand[i] = isrf_model_item_index(m, DatumGetInt64(elems[i]));

	isrf_pg_env_init(&penv, CurrentMemoryContext, DEBUG1);
	PG_TRY();
	{
		isrf_model_cache_check(&penv.env, isrf_serve_rank(&penv.env, ss, user, h.items, h.len, n, cand, scores),
							   "ranking failed");
	}
	PG_FINALLY();
	{
		isrf_pg_env_done(&penv);
	}
	PG_END_TRY();

	ranked = palloc(sizeof(RankedCandidate) * n);
	for (i = 0; i < n; i++)
	{
		ranked[i].item_id = DatumGetInt64(elems[i]);
		ranked[i].known = cand[i] >= 0 && !isnan(scores[i]);
		ranked[i].score = scores[i];
		ranked[i].input_pos = i;
	}
	qsort(ranked, n, sizeof(RankedCandidate), recommend_rank_cmp);
	for (i = 0; i < n; i++)
	{
		Datum		v[3];
		bool		nl[3] = {false, false, !ranked[i].known};

		v[0] = Int32GetDatum(i + 1);
		v[1] = Int64GetDatum(ranked[i].item_id);
		v[2] = Float4GetDatum(ranked[i].score);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, nl);
	}
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(isrf_evaluate);

/*
 * isrf_evaluate(model text DEFAULT NULL)
 *	  -> (task text, method text, hr_5 real, ndcg_5 real, hr_10 real, ndcg_10 real, users int)
 */
Datum
isrf_evaluate(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	IsrfServingCall call;
	IsrfServeSession *ss;
	IsrfServeSession *volatile es = NULL;
	IsrfPgEnv	penv;
	IsrfEvalOptions opt;
	IsrfEvalRow *rows = NULL;
	int32		n_rows = 0,
				i;

	InitMaterializedSRF(fcinfo, 0);
	isrf_serving_call_begin(fcinfo, 0, false, 0, &call);
	ss = isrf_serving_call_session(&call);
	memset(&opt, 0, sizeof(opt));
	opt.beam_width = isrf_beam_width_guc;	/* the lists isrf_recommend would serve */
	isrf_pg_env_init(&penv, CurrentMemoryContext, DEBUG1);
	PG_TRY();
	{
		const IsrfModel *m = isrf_serve_session_model(ss);

		/*
		 * A model refit on whole histories serves weights that saw the test
		 * items: it is evaluated with its train-split weights, in a session
		 * of its own.
		 */
		if (m->genrec.eval_params != NULL)
		{
			IsrfServeSession *e = NULL;
			IsrfStatus	st;

			HOLD_INTERRUPTS();
			st = isrf_serve_session_open_eval(&penv.env, isrf_serve_session_backend(ss), m, &e);
			RESUME_INTERRUPTS();
			es = e;
			isrf_model_cache_check(&penv.env, st, "could not prepare the model for evaluation");
		}
		isrf_model_cache_check(&penv.env, isrf_evaluate_model(&penv.env, es ? es : ss, &opt, &rows, &n_rows),
							   "evaluation failed");
		for (i = 0; i < n_rows; i++)
		{
			Datum		v[7];
			bool		nl[7] = {false};

			v[0] = CStringGetTextDatum(rows[i].task);
			v[1] = CStringGetTextDatum(rows[i].method);
			v[2] = Float4GetDatum((float4) rows[i].hr5);
			v[3] = Float4GetDatum((float4) rows[i].ndcg5);
			v[4] = Float4GetDatum((float4) rows[i].hr10);
			v[5] = Float4GetDatum((float4) rows[i].ndcg10);
			v[6] = Int32GetDatum(rows[i].users);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, nl);
		}
	}
	PG_FINALLY();
	{
		isrf_serve_session_close(es);
		isrf_pg_env_done(&penv);
	}
	PG_END_TRY();
	return (Datum) 0;
}
