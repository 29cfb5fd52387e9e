/*
 * model_server_status.c
 *	  The SQL views of the model servers' shared state: isrf_status() (one
 *	  row per server) and isrf.server_slots() (the request slots by state).
 *	  They run in any backend and only read; see model_server.c.
 */
#include "postgres.h"

#include "commands/dbcommands.h"
#include "fmgr.h"
#include "funcapi.h"
#include "port/atomics.h"
#include "storage/lwlock.h"
#include "utils/builtins.h"

#include "pg_catalogue.h"
#include "model_server_internal.h"

PG_FUNCTION_INFO_V1(isrf_status);

/*
 * isrf_status() -> one row per model server, running or starting:
 * database, pid, device, loaded models (those the caller may see),
 * requests, batches, errors, latency.
 */
Datum
isrf_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ServerWorker *workers = palloc(sizeof(ServerWorker) * SERVER_MAX_WORKERS);
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	if (server_shmem == NULL)
		return (Datum) 0;
	/* a copy, so that no lock is held while catalogues are read */
	LWLockAcquire(server_shmem->lock, LW_SHARED);
	memcpy(workers, server_shmem->workers, sizeof(ServerWorker) * SERVER_MAX_WORKERS);
	LWLockRelease(server_shmem->lock);
	for (i = 0; i < SERVER_MAX_WORKERS; i++)
	{
		ServerWorker *w = &workers[i];
		bool		running = w->state == ENTRY_RUNNING;
		Datum		v[10];
		bool		n[10] = {false};
		char	   *dbname;
		char	   *models;

		if (w->state == ENTRY_EMPTY)
			continue;
		dbname = get_database_name(w->dbid);
		v[0] = dbname ? CStringGetTextDatum(dbname) : (Datum) 0;
		n[0] = dbname == NULL;
		v[1] = Int32GetDatum(w->pid);
		n[1] = !running;
		v[2] = CStringGetTextDatum(running ? w->device : "starting");
		models = isrf_visible_models(w->dbid, w->models);	/* other roles' models are not shown */
		v[3] = models ? CStringGetTextDatum(models) : (Datum) 0;
		n[3] = models == NULL;
		v[4] = Int64GetDatum((int64) w->requests);
		v[5] = Int64GetDatum((int64) w->batches);
		v[6] = Int64GetDatum((int64) w->errors);
		v[7] = Float4GetDatum(w->requests ? (float4) (w->latency_sum_ms / w->requests) : 0.0f);
		v[8] = Float4GetDatum((float4) w->latency_max_ms);
		v[9] = Int32GetDatum(w->max_batch);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
	}
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(isrf_server_slots);

/*
 * isrf.server_slots() -> (state text, slots integer): the request slots of
 * the model servers (shared by every database) by state, every state listed.
 */
Datum
isrf_server_slots(PG_FUNCTION_ARGS)
{
	static const char *const names[] = {"free", "filling", "posted", "taken", "done", "abandoned", "lost"};
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int32		counts[lengthof(names)] = {0};
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	if (server_shmem == NULL)
		return (Datum) 0;
	for (i = 0; i < SERVER_SLOTS; i++)
	{
		SlotState	st = WORD_STATE(pg_atomic_read_u64(&server_shmem->slots[i].word));

		if ((int) st < (int) lengthof(names))
			counts[st]++;
	}
	for (i = 0; i < (int) lengthof(names); i++)
	{
		Datum		v[2];
		bool		n[2] = {false, false};

		v[0] = CStringGetTextDatum(names[i]);
		v[1] = Int32GetDatum(counts[i]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
	}
	return (Datum) 0;
}
