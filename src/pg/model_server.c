/*
 * model_server.c
 *	  The model server: a background worker per database keeps the deployed
 *	  models alive (on the GPU when there is one) and answers requests that
 *	  backends post into fixed slots in shared memory, draining all pending
 *	  slots into one batched beam search.
 *
 * Protocol.  A backend resolves the model (with its own rights), claims a
 * free slot (FREE -> FILLING), writes the request, publishes it (POSTED)
 * and sets the worker's latch, then sleeps on its own latch.  The worker
 * answers and flips POSTED -> DONE, or, if the backend gave up meanwhile
 * (cancel: POSTED -> ABANDONED), frees the slot itself.  Every transition
 * is a compare-and-swap, so no lock is held while work is done.  Errors
 * travel back as (SQLSTATE, message) and are raised in the backend.
 *
 * The worker creates its compute backend (its CUDA context) after it has
 * started: never in the postmaster, whose children would inherit it.  A
 * device failure makes it exit with code 1: the postmaster restarts the
 * servers of isrf.server_databases (started with the cluster), and the next
 * request starts a new one for a database whose server started on first
 * use.  SIGHUP only reloads settings.
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/dbcommands.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "pg_catalogue.h"
#include "pg_env.h"
#include "history.h"
#include "model_cache.h"
#include "model_server.h"
#include "serve/serve.h"

#define SERVER_SLOTS 64
#define SERVER_MAX_WORKERS 8
#define SERVER_START_TIMEOUT_MS 20000

typedef enum SlotState
{
	SLOT_FREE = 0,
	SLOT_FILLING,
	SLOT_POSTED,
	SLOT_DONE,
	SLOT_ABANDONED
} SlotState;

typedef struct ServerSlot
{
	pg_atomic_uint32 state;
	bool		preload;		/* load the model, answer nothing (slot freed by the server) */
	Oid			dbid;
	Latch	   *client_latch;
	char		model[NAMEDATALEN];
	int32		version;
	TimestampTz created_at;
	int64		user_id;
	int32		k;
	int32		beam_width;		/* the caller's isrf.beam_width */
	int32		n_hist;			/* the user's history, as the caller read it */
	int64		hist[ISRF_SERVER_MAX_HIST];
	TimestampTz posted_at;
	/* reply */
	int32		count;
	bool		cold_start;
	int			sqlerrcode;		/* 0: success */
	char		message[256];
	int64		items[ISRF_SERVER_MAX_K];
	float		scores[ISRF_SERVER_MAX_K];
} ServerSlot;

typedef struct ServerWorker
{
	Oid			dbid;			/* InvalidOid: entry unused */
	pid_t		pid;			/* 0 while starting */
	Latch	   *latch;
	TimestampTz started_at;
	char		device[160];
	char		models[256];
	uint64		requests;
	uint64		batches;
	uint64		errors;
	int32		max_batch;
	double		latency_sum_ms;
	double		latency_max_ms;
} ServerWorker;

typedef struct ServerShared
{
	LWLock	   *lock;			/* protects workers[] */
	ServerWorker workers[SERVER_MAX_WORKERS];
	ServerSlot	slots[SERVER_SLOTS];
} ServerShared;

static ServerShared *server = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static ServerWorker *my_worker = NULL;

/* isrf.c */
extern int	isrf_device_guc;
extern char *isrf_server_databases_guc;

PGDLLEXPORT void isrf_server_main(Datum arg);

static void
server_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(ServerShared)));
	RequestNamedLWLockTranche("isrf_server", 1);
}

static void
server_shmem_startup(void)
{
	bool		found;
	int			i;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	server = ShmemInitStruct("isrf_server", sizeof(ServerShared), &found);
	if (!found)
	{
		memset(server, 0, sizeof(ServerShared));
		server->lock = &(GetNamedLWLockTranche("isrf_server"))->lock;
		for (i = 0; i < SERVER_SLOTS; i++)
			pg_atomic_init_u32(&server->slots[i].state, SLOT_FREE);
	}
	LWLockRelease(AddinShmemInitLock);
}

/* A worker entry for a database; static workers connect by name. */
static void
server_fill_worker(BackgroundWorker *w, Oid dbid, const char *dbname)
{
	memset(w, 0, sizeof(*w));
	w->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w->bgw_start_time = BgWorkerStart_ConsistentState;	/* hot standbys serve too */
	w->bgw_restart_time = 1;
	snprintf(w->bgw_library_name, BGW_MAXLEN, "isrf");
	snprintf(w->bgw_function_name, BGW_MAXLEN, "isrf_server_main");
	snprintf(w->bgw_name, BGW_MAXLEN, "isrf model server");
	snprintf(w->bgw_type, BGW_MAXLEN, "isrf model server");
	w->bgw_main_arg = ObjectIdGetDatum(dbid);
	if (dbname)
		strlcpy(w->bgw_extra, dbname, BGW_EXTRALEN);
}

void
isrf_server_init(void)
{
	char	   *list;
	char	   *tok;
	char	   *save;

	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = server_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = server_shmem_startup;

	/* static workers for the databases named in isrf.server_databases */
	if (isrf_server_databases_guc == NULL || isrf_server_databases_guc[0] == '\0')
		return;
	list = pstrdup(isrf_server_databases_guc);
	for (tok = strtok_r(list, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save))
	{
		BackgroundWorker w;

		server_fill_worker(&w, InvalidOid, tok);
		RegisterBackgroundWorker(&w);
	}
	pfree(list);
}

bool
isrf_server_available(void)
{
	return server != NULL && isrf_device_guc != ISRF_DEVICE_CPU;
}

/* ------------------------------------------------------------------------
 * Backend side
 * ------------------------------------------------------------------------ */

/* The latch of this database's worker, starting one if there is none. */
static Latch *
server_worker_latch(void)
{
	TimestampTz deadline = GetCurrentTimestamp() + SERVER_START_TIMEOUT_MS * (int64) 1000;
	bool		start = false;

	for (;;)
	{
		int			i,
					free_entry = -1;
		Latch	   *latch = NULL;
		bool		starting = false;

		LWLockAcquire(server->lock, LW_EXCLUSIVE);
		for (i = 0; i < SERVER_MAX_WORKERS; i++)
		{
			ServerWorker *w = &server->workers[i];

			if (w->dbid == MyDatabaseId)
			{
				if (w->pid != 0 && w->latch != NULL)
					latch = w->latch;
				else
					starting = true;
				break;
			}
			if (w->dbid == InvalidOid && free_entry < 0)
				free_entry = i;
		}
		if (latch == NULL && !starting)
		{
			if (free_entry < 0)
			{
				LWLockRelease(server->lock);
				ereport(ERROR,
						(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
						 errmsg("isrf model servers already run for %d databases", SERVER_MAX_WORKERS),
						 errhint("Set isrf.device = 'cpu' to serve in this session.")));
			}
			/* reserve the entry; the worker fills in its pid and latch */
			memset(&server->workers[free_entry], 0, sizeof(ServerWorker));
			server->workers[free_entry].dbid = MyDatabaseId;
			server->workers[free_entry].started_at = GetCurrentTimestamp();
			start = true;
		}
		LWLockRelease(server->lock);
		if (latch)
			return latch;

		if (start)
		{
			BackgroundWorker w;
			BackgroundWorkerHandle *handle;

			start = false;
			server_fill_worker(&w, MyDatabaseId, NULL);
			/*
			 * A started-on-demand server is not restarted by the postmaster
			 * (its database may be dropped); the next request starts another.
			 */
			w.bgw_restart_time = BGW_NEVER_RESTART;
			w.bgw_notify_pid = MyProcPid;
			if (!RegisterDynamicBackgroundWorker(&w, &handle))
			{
				LWLockAcquire(server->lock, LW_EXCLUSIVE);
				server->workers[free_entry].dbid = InvalidOid;
				LWLockRelease(server->lock);
				ereport(ERROR,
						(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
						 errmsg("could not start the isrf model server"),
						 errhint("Raise max_worker_processes, or set isrf.device = 'cpu' to serve in this session.")));
			}
		}
		if (GetCurrentTimestamp() > deadline)
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("the isrf model server of this database did not start in time"),
					 errhint("Check the server log; set isrf.device = 'cpu' to serve in this session.")));
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 20,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/* Claim a free slot, waiting (interruptibly) while all are busy. */
static ServerSlot *
server_claim_slot(void)
{
	for (;;)
	{
		int			i;

		for (i = 0; i < SERVER_SLOTS; i++)
		{
			uint32		expected = SLOT_FREE;

			if (pg_atomic_compare_exchange_u32(&server->slots[i].state, &expected, SLOT_FILLING))
				return &server->slots[i];
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/* Give a slot up after an error or cancel in the backend. */
static void
server_abandon(ServerSlot *slot)
{
	uint32		expected = SLOT_POSTED;

	if (!pg_atomic_compare_exchange_u32(&slot->state, &expected, SLOT_ABANDONED))
		pg_atomic_write_u32(&slot->state, SLOT_FREE);	/* DONE or FILLING: ours to free */
}

void
isrf_server_recommend(const char *model, int32 version, TimestampTz created_at,
					  int64 user_id, int32 k, int32 beam_width, const int64 *hist, int32 n_hist,
					  int64 *items, float *scores, int32 *count, bool *cold_start)
{
	Latch	   *worker_latch = server_worker_latch();
	ServerSlot *slot = server_claim_slot();

	slot->preload = false;
	slot->dbid = MyDatabaseId;
	slot->client_latch = MyLatch;
	strlcpy(slot->model, model, NAMEDATALEN);
	slot->version = version;
	slot->created_at = created_at;
	slot->user_id = user_id;
	slot->k = Min(k, ISRF_SERVER_MAX_K);
	slot->beam_width = beam_width;
	slot->n_hist = Min(n_hist, ISRF_SERVER_MAX_HIST);
	memcpy(slot->hist, hist, sizeof(int64) * slot->n_hist);
	slot->posted_at = GetCurrentTimestamp();
	slot->sqlerrcode = 0;
	slot->message[0] = '\0';
	pg_write_barrier();
	pg_atomic_write_u32(&slot->state, SLOT_POSTED);
	SetLatch(worker_latch);

	PG_TRY();
	{
		while (pg_atomic_read_u32(&slot->state) != SLOT_DONE)
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 100,
							 PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
	}
	PG_CATCH();
	{
		server_abandon(slot);
		PG_RE_THROW();
	}
	PG_END_TRY();
	pg_read_barrier();

	if (slot->sqlerrcode != 0)
	{
		int			code = slot->sqlerrcode;
		char		msg[sizeof(slot->message)];

		strlcpy(msg, slot->message, sizeof(msg));
		pg_atomic_write_u32(&slot->state, SLOT_FREE);
		ereport(ERROR, (errcode(code), errmsg("%s", msg)));
	}
	*count = slot->count;
	*cold_start = slot->cold_start;
	memcpy(items, slot->items, sizeof(int64) * slot->count);
	memcpy(scores, slot->scores, sizeof(float) * slot->count);
	pg_atomic_write_u32(&slot->state, SLOT_FREE);
}

void
isrf_server_preload(const char *model, int32 version, TimestampTz created_at)
{
	Latch	   *worker_latch = NULL;
	ServerSlot *slot = NULL;
	int			i;

	if (!isrf_server_available())
		return;
	/* only a running server is told; one that starts later loads on demand */
	LWLockAcquire(server->lock, LW_SHARED);
	for (i = 0; i < SERVER_MAX_WORKERS; i++)
		if (server->workers[i].dbid == MyDatabaseId && server->workers[i].pid != 0)
			worker_latch = server->workers[i].latch;
	LWLockRelease(server->lock);
	if (worker_latch == NULL)
		return;
	for (i = 0; i < SERVER_SLOTS && slot == NULL; i++)
	{
		uint32		expected = SLOT_FREE;

		if (pg_atomic_compare_exchange_u32(&server->slots[i].state, &expected, SLOT_FILLING))
			slot = &server->slots[i];
	}
	if (slot == NULL)
		return;					/* all busy: it will load on the next request */
	slot->preload = true;
	slot->dbid = MyDatabaseId;
	slot->client_latch = NULL;
	strlcpy(slot->model, model, NAMEDATALEN);
	slot->version = version;
	slot->created_at = created_at;
	slot->posted_at = GetCurrentTimestamp();
	pg_write_barrier();
	pg_atomic_write_u32(&slot->state, SLOT_POSTED);
	SetLatch(worker_latch);
}

/* ------------------------------------------------------------------------
 * Worker side
 * ------------------------------------------------------------------------ */

static void
server_worker_exit(int code, Datum arg)
{
	(void) code;
	(void) arg;
	if (my_worker == NULL)
		return;
	LWLockAcquire(server->lock, LW_EXCLUSIVE);
	my_worker->pid = 0;
	my_worker->latch = NULL;
	my_worker->dbid = InvalidOid;
	LWLockRelease(server->lock);
	my_worker = NULL;
}

/* Publish this worker in shared memory (its entry may have been reserved). */
static void
server_register_self(void)
{
	int			i,
				free_entry = -1;

	LWLockAcquire(server->lock, LW_EXCLUSIVE);
	for (i = 0; i < SERVER_MAX_WORKERS; i++)
	{
		ServerWorker *w = &server->workers[i];

		if (w->dbid == MyDatabaseId)
		{
			if (w->pid != 0 && w->pid != MyProcPid)
			{
				LWLockRelease(server->lock);
				ereport(LOG, (errmsg("isrf model server: another server runs for this database; exiting")));
				proc_exit(0);
			}
			my_worker = w;
			break;
		}
		if (w->dbid == InvalidOid && free_entry < 0)
			free_entry = i;
	}
	if (my_worker == NULL)
	{
		if (free_entry < 0)
		{
			LWLockRelease(server->lock);
			ereport(LOG, (errmsg("isrf model server: no free server entry; exiting")));
			proc_exit(0);
		}
		my_worker = &server->workers[free_entry];
		memset(my_worker, 0, sizeof(ServerWorker));
		my_worker->dbid = MyDatabaseId;
	}
	my_worker->started_at = GetCurrentTimestamp();
	my_worker->pid = MyProcPid;
	my_worker->latch = MyLatch;
	LWLockRelease(server->lock);
	before_shmem_exit(server_worker_exit, (Datum) 0);
}

/* Post the reply of a slot, or free it if its backend gave up. */
static void
server_reply(ServerSlot *slot)
{
	uint32		expected = SLOT_POSTED;
	Latch	   *latch = slot->client_latch;
	double		ms = (double) (GetCurrentTimestamp() - slot->posted_at) / 1000.0;

	my_worker->requests++;
	my_worker->latency_sum_ms += ms;
	if (ms > my_worker->latency_max_ms)
		my_worker->latency_max_ms = ms;
	if (slot->sqlerrcode)
		my_worker->errors++;
	pg_write_barrier();
	if (pg_atomic_compare_exchange_u32(&slot->state, &expected, SLOT_DONE))
		SetLatch(latch);
	else
		pg_atomic_write_u32(&slot->state, SLOT_FREE);
}

/* Answer every posted slot of one model version with one batched call. */
static void
server_answer(ServerSlot **batch, int n)
{
	MemoryContext cxt = CurrentMemoryContext;
	IsrfPgEnv	batch_env;
	IsrfPgEnv  *penv = &batch_env;
	IsrfRecRequest *req = palloc0(sizeof(IsrfRecRequest) * n);
	IsrfRecResult *res = palloc(sizeof(IsrfRecResult) * n);
	int			i;

	/* scratch of this batch only; the session keeps its own environment */
	isrf_pg_env_init(&batch_env, cxt, LOG);
	PG_TRY();
	{
		const IsrfModel *m;
		IsrfServeSession *ss;

		StartTransactionCommand();
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		ss = isrf_model_cache_session(batch[0]->model, batch[0]->version, batch[0]->created_at);
		m = isrf_serve_session_model(ss);
		for (i = 0; i < n; i++)
		{
			IsrfPgHistory h;

			isrf_pg_history_map(batch[i]->hist, batch[i]->n_hist, m, &h);
			req[i].user = isrf_model_user_index(m, batch[i]->user_id);
			req[i].k = Min(batch[i]->k, Max(m->n_items, 1));
			req[i].beam_width = batch[i]->beam_width;
			req[i].hist = h.items;
			req[i].len = h.len;
			res[i].items = palloc(sizeof(int32) * req[i].k);
			res[i].scores = palloc(sizeof(float) * req[i].k);
		}
		isrf_pg_check(&penv->env, isrf_serve_recommend(&penv->env, ss, n, req, res),
					  "recommendation failed");
		for (i = 0; i < n; i++)
		{
			int			j;

			batch[i]->count = res[i].count;
			batch[i]->cold_start = res[i].cold_start;
			for (j = 0; j < res[i].count; j++)
			{
				batch[i]->items[j] = m->item_ids[res[i].items[j]];
				batch[i]->scores[j] = res[i].scores[j];
			}
		}
		PopActiveSnapshot();
		SPI_finish();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		ErrorData  *edata;
		bool		device_failed;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		/* a device error is raised as 58000 (pg_env.c) */
		device_failed = penv->env.status == ISRF_ERR_DEVICE || edata->sqlerrcode == ERRCODE_SYSTEM_ERROR;
		FlushErrorState();
		AbortCurrentTransaction();
		for (i = 0; i < n; i++)
		{
			batch[i]->sqlerrcode = edata->sqlerrcode;
			strlcpy(batch[i]->message, edata->message ? edata->message : "model server error",
					sizeof(batch[i]->message));
		}
		if (device_failed)
		{
			/* a sticky device error: answer, then let the postmaster restart us */
			for (i = 0; i < n; i++)
				server_reply(batch[i]);
			ereport(LOG, (errmsg("isrf model server: device error, restarting: %s", edata->message)));
			proc_exit(1);
		}
	}
	PG_END_TRY();
	isrf_pg_env_done(&batch_env);
	my_worker->batches++;
	if (n > my_worker->max_batch)
		my_worker->max_batch = n;
	for (i = 0; i < n; i++)
		server_reply(batch[i]);
	isrf_model_cache_describe(my_worker->models, sizeof(my_worker->models));
}

/* Load a newly deployed model ahead of its first request; errors only logged. */
static void
server_preload(ServerSlot *slot)
{
	char		model[NAMEDATALEN];
	int32		version = slot->version;
	TimestampTz created_at = slot->created_at;
	MemoryContext cxt = CurrentMemoryContext;

	strlcpy(model, slot->model, sizeof(model));
	pg_atomic_write_u32(&slot->state, SLOT_FREE);
	PG_TRY();
	{
		StartTransactionCommand();
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		(void) isrf_model_cache_get(model, version, created_at);
		PopActiveSnapshot();
		SPI_finish();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
	}
	PG_END_TRY();
	isrf_model_cache_describe(my_worker->models, sizeof(my_worker->models));
}

/* Collect this database's posted slots and answer them, model by model. */
static void
server_drain(MemoryContext batch_cxt)
{
	ServerSlot *pending[SERVER_SLOTS];
	bool		taken[SERVER_SLOTS];
	int			n = 0,
				i;

	for (i = 0; i < SERVER_SLOTS; i++)
	{
		ServerSlot *s = &server->slots[i];

		if (pg_atomic_read_u32(&s->state) == SLOT_POSTED && s->dbid == MyDatabaseId)
		{
			pg_read_barrier();
			if (s->preload)
				server_preload(s);
			else
				pending[n++] = s;
		}
	}
	memset(taken, 0, sizeof(taken));
	for (i = 0; i < n; i++)
	{
		ServerSlot *batch[SERVER_SLOTS];
		int			nb = 0,
					j;
		MemoryContext old;

		if (taken[i])
			continue;
		for (j = i; j < n; j++)
			if (!taken[j] && strcmp(pending[j]->model, pending[i]->model) == 0 &&
				pending[j]->version == pending[i]->version &&
				pending[j]->created_at == pending[i]->created_at)
			{
				taken[j] = true;
				batch[nb++] = pending[j];
			}
		old = MemoryContextSwitchTo(batch_cxt);
		server_answer(batch, nb);
		MemoryContextSwitchTo(old);
		MemoryContextReset(batch_cxt);
	}
}

void
isrf_server_main(Datum arg)
{
	Oid			dbid = DatumGetObjectId(arg);
	IsrfBackend *be;
	MemoryContext batch_cxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	if (OidIsValid(dbid))
		BackgroundWorkerInitializeConnectionByOid(dbid, InvalidOid, 0);
	else
		BackgroundWorkerInitializeConnection(MyBgworkerEntry->bgw_extra, NULL, 0);
	pgstat_report_appname("isrf model server");
	server_register_self();

	/* the compute backend lives as long as the worker: after fork, never before */
	be = isrf_model_cache_backend();
	if (be->describe(be, my_worker->device, sizeof(my_worker->device)) != ISRF_OK)
		strlcpy(my_worker->device, be->name, sizeof(my_worker->device));
	ereport(LOG, (errmsg("isrf model server started on %s", my_worker->device)));
	batch_cxt = AllocSetContextCreate(TopMemoryContext, "isrf server batch", ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10000,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		server_drain(batch_cxt);
	}
}

PG_FUNCTION_INFO_V1(isrf_status);

/*
 * isrf_status() -> one row per running model server: database, pid,
 * device, loaded models (those the caller may see), requests, batches,
 * errors, latency.
 */
Datum
isrf_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ServerWorker *workers = palloc(sizeof(ServerWorker) * SERVER_MAX_WORKERS);
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	if (server == NULL)
		return (Datum) 0;
	/* a copy, so that no lock is held while catalogues are read */
	LWLockAcquire(server->lock, LW_SHARED);
	memcpy(workers, server->workers, sizeof(ServerWorker) * SERVER_MAX_WORKERS);
	LWLockRelease(server->lock);
	for (i = 0; i < SERVER_MAX_WORKERS; i++)
	{
		ServerWorker *w = &workers[i];
		Datum		v[10];
		bool		n[10] = {false};
		char	   *dbname;
		char	   *models;

		if (w->dbid == InvalidOid)
			continue;
		dbname = get_database_name(w->dbid);
		v[0] = dbname ? CStringGetTextDatum(dbname) : (Datum) 0;
		n[0] = dbname == NULL;
		v[1] = Int32GetDatum(w->pid);
		n[1] = w->pid == 0;
		v[2] = CStringGetTextDatum(w->pid ? w->device : "starting");
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
