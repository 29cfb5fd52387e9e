/*
 * synthetic.c
 *	  SQL access to the synthetic data generator of src/core/synth.c: one
 *	  set-returning function per table (reviews, items, item descriptions,
 *	  user descriptions), all pure functions of their arguments.
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

#include "pg_env.h"
#include "data/synthetic.h"

typedef enum SynthTable
{
	SYNTH_REVIEWS,
	SYNTH_ITEMS,
	SYNTH_ITEM_DESCRIPTIONS,
	SYNTH_USERS
} SynthTable;

/* Read the five common arguments, refusing NULLs by name. */
static void
synthetic_config(FunctionCallInfo fcinfo, IsrfSynthConfig *cfg)
{
	static const char *const names[] = {"users", "items", "groups", "per_user", "seed"};
	int			i;

	for (i = 0; i < 5; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("argument \"%s\" must not be NULL", names[i])));
	cfg->n_users = PG_GETARG_INT32(0);
	cfg->n_items = PG_GETARG_INT32(1);
	cfg->n_groups = PG_GETARG_INT32(2);
	cfg->per_user = PG_GETARG_INT32(3);
	cfg->seed = (uint64_t) PG_GETARG_INT64(4);
}

static Datum
synthetic_rows(FunctionCallInfo fcinfo, SynthTable table)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	IsrfSynthConfig cfg;
	IsrfSynthData data;
	IsrfPgEnv	penv;
	char		buf[5][256];
	int64_t		r;

	synthetic_config(fcinfo, &cfg);
	InitMaterializedSRF(fcinfo, 0);
	isrf_pg_env_init(&penv, CurrentMemoryContext, DEBUG1);
	isrf_pg_check(&penv.env, isrf_synth_generate(&penv.env, &cfg, &data), NULL);

	switch (table)
	{
		case SYNTH_REVIEWS:
			for (r = 0; r < data.n_rows; r++)
			{
				Datum		v[3];
				bool		n[3] = {false, false, false};

				v[0] = Int64GetDatum(data.user_id[r]);
				v[1] = Int64GetDatum(data.item_id[r]);
				v[2] = Int32GetDatum(data.position[r]);
				tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
			}
			break;
		case SYNTH_ITEMS:
		case SYNTH_ITEM_DESCRIPTIONS:
			for (r = 0; r < cfg.n_items; r++)
			{
				Datum		v[4];
				bool		n[4] = {false, false, false, false};
				int			f;

				CHECK_FOR_INTERRUPTS();
				for (f = 0; f < 5; f++)
					isrf_synth_item_text(&cfg, &data, (int32_t) r, f, buf[f], sizeof(buf[f]));
				v[0] = Int64GetDatum(r + 1);
				if (table == SYNTH_ITEMS)
				{
					v[1] = CStringGetTextDatum(buf[0]);
					v[2] = CStringGetTextDatum(buf[1]);
					v[3] = Int32GetDatum(data.item_group[r]);
				}
				else
				{
					v[1] = CStringGetTextDatum(buf[2]);
					v[2] = CStringGetTextDatum(buf[3]);
					v[3] = CStringGetTextDatum(buf[4]);
				}
				tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
			}
			break;
		case SYNTH_USERS:
			for (r = 0; r < cfg.n_users; r++)
			{
				Datum		v[3];
				bool		n[3] = {false, false, false};

				CHECK_FOR_INTERRUPTS();
				isrf_synth_user_text(&cfg, &data, (int32_t) r, buf[0], sizeof(buf[0]));
				v[0] = Int64GetDatum(r + 1);
				v[1] = Int32GetDatum(data.user_group[r]);
				v[2] = CStringGetTextDatum(buf[0]);
				tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
			}
			break;
	}
	isrf_pg_env_done(&penv);
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(isrf_synthetic_reviews);
PG_FUNCTION_INFO_V1(isrf_synthetic_items);
PG_FUNCTION_INFO_V1(isrf_synthetic_item_descriptions);
PG_FUNCTION_INFO_V1(isrf_synthetic_users);

Datum
isrf_synthetic_reviews(PG_FUNCTION_ARGS)
{
	return synthetic_rows(fcinfo, SYNTH_REVIEWS);
}

Datum
isrf_synthetic_items(PG_FUNCTION_ARGS)
{
	return synthetic_rows(fcinfo, SYNTH_ITEMS);
}

Datum
isrf_synthetic_item_descriptions(PG_FUNCTION_ARGS)
{
	return synthetic_rows(fcinfo, SYNTH_ITEM_DESCRIPTIONS);
}

Datum
isrf_synthetic_users(PG_FUNCTION_ARGS)
{
	return synthetic_rows(fcinfo, SYNTH_USERS);
}
