/*
 * analyst.c
 *	  The group functions analysts query: isrf_group_neighbours and
 *	  isrf_group_interests, from the user's history as it is now (read from
 *	  the dataset's reviews table with the caller's rights), so a user the
 *	  model has never seen has a group as soon as one of their items is
 *	  known.  The group graph the model was trained with stays queryable as
 *	  the view isrf.group_graph.
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"

#include "model_cache.h"
#include "pg_env.h"
#include "serving_call.h"

/* isrf_serve_group in a scratch memory context of its own. */
static void
analyst_find(IsrfServeSession *ss, int32 user, const IsrfPgHistory *h, int32 k, int32 *users,
			 float *sims, int32 *count)
{
	IsrfPgEnv	penv;

	isrf_pg_env_init(&penv, CurrentMemoryContext, DEBUG1);
	PG_TRY();
	{
		isrf_model_cache_check(&penv.env, isrf_serve_group(&penv.env, ss, user, h->items, h->len, k,
														   users, sims, count),
							   "finding the group failed");
	}
	PG_FINALLY();
	{
		isrf_pg_env_done(&penv);
	}
	PG_END_TRY();
}

/*
 * The group of user_id after its current history, its k best (k <= 0: as
 * many as the model's group graph gives each user); *count neighbours.
 */
static void
analyst_group(FunctionCallInfo fcinfo, int32 k_asked, IsrfServeSession **ss_out, IsrfPgHistory *h,
			  int32 **users, float **sims, int32 *count)
{
	int32		k = k_asked;
	IsrfServingCall call;
	IsrfServeSession *ss;
	const IsrfModel *m;
	int64		user_id = PG_GETARG_INT64(0);
	int32		user;

	isrf_serving_call_begin(fcinfo, 2, true, user_id, &call);
	ss = isrf_serving_call_session(&call);
	m = isrf_serve_session_model(ss);
	isrf_serving_call_history(&call, m, h);
	user = isrf_model_user_index(m, user_id);
	if (user < 0 && h->len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("user %lld has no interaction with an item of model \"%s\"",
						(long long) user_id, call.src.name),
				 errhint("A group is found from the items a user has touched.")));
	/* the group is the model's group_k most similar users, as the graph was built */
	if (k <= 0 || k > m->cfg.group_k)
		k = m->cfg.group_k > 0 ? m->cfg.group_k : 50;
	k = Min(k, Max(m->n_users, 1));
	*users = palloc(sizeof(int32) * k);
	*sims = palloc(sizeof(float) * k);
	analyst_find(ss, user, h, k, *users, *sims, count);
	*ss_out = ss;
}

/* Error unless k is given and positive. */
static int32
analyst_k(FunctionCallInfo fcinfo)
{
	int32		k;

	isrf_serving_require(fcinfo, 0, "user_id");
	isrf_serving_require(fcinfo, 1, "k");
	k = PG_GETARG_INT32(1);
	if (k <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("k must be positive, not %d", k)));
	return k;
}

PG_FUNCTION_INFO_V1(isrf_group_neighbours);

/*
 * isrf_group_neighbours(user_id bigint, k int, model text DEFAULT NULL)
 *	  -> (neighbour_id bigint, similarity real)
 */
Datum
isrf_group_neighbours(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	IsrfServeSession *ss;
	IsrfPgHistory h;
	int32	   *users;
	float	   *sims;
	int32		k = analyst_k(fcinfo),
				count,
				i;

	InitMaterializedSRF(fcinfo, 0);
	analyst_group(fcinfo, k, &ss, &h, &users, &sims, &count);
	for (i = 0; i < count; i++)
	{
		Datum		v[2];
		bool		n[2] = {false, false};

		v[0] = Int64GetDatum(isrf_serve_session_model(ss)->user_ids[users[i]]);
		v[1] = Float4GetDatum(sims[i]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
	}
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(isrf_group_interests);

/*
 * isrf_group_interests(user_id bigint, k int, model text DEFAULT NULL)
 *	  -> (item_id bigint, support int, score real)
 *
 * The group is the model's group_k most similar users (as the group graph
 * was built); its interests are the items they touched that the user has
 * not.
 */
Datum
isrf_group_interests(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	IsrfServeSession *ss;
	const IsrfModel *m;
	IsrfPgHistory h;
	IsrfPgEnv	penv;
	int32	   *users,
			   *items,
			   *support;
	float	   *sims,
			   *scores;
	int32		k = analyst_k(fcinfo),
				n_group,
				count,
				i;

	InitMaterializedSRF(fcinfo, 0);
	analyst_group(fcinfo, 0, &ss, &h, &users, &sims, &n_group);
	m = isrf_serve_session_model(ss);
	k = Min(k, Max(m->n_items, 1));
	items = palloc(sizeof(int32) * k);
	support = palloc(sizeof(int32) * k);
	scores = palloc(sizeof(float) * k);
	isrf_pg_env_init(&penv, CurrentMemoryContext, DEBUG1);
	PG_TRY();
	{
		isrf_model_cache_check(&penv.env, isrf_serve_group_interests(&penv.env, ss, n_group, users, sims,
																	 h.items, h.len, k, items, support,
																	 scores, &count),
							   "finding the group's interests failed");
	}
	PG_FINALLY();
	{
		isrf_pg_env_done(&penv);
	}
	PG_END_TRY();
	for (i = 0; i < count; i++)
	{
		Datum		v[3];
		bool		n[3] = {false, false, false};

		v[0] = Int64GetDatum(m->item_ids[items[i]]);
		v[1] = Int32GetDatum(support[i]);
		v[2] = Float4GetDatum(scores[i]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
	}
	return (Datum) 0;
}
