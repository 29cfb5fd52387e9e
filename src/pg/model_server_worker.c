/*
 * model_server_worker.c
 *	  The model server's background worker: it registers itself for its
 *	  database, takes the slots posted to it, answers them model by model in
 *	  one batched beam search each, and hands the replies back; its exit
 *	  marks what it was answering LOST.  The slot protocol and the life of a
 *	  server are described at the top of model_server.c.
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "tcop/tcopprot.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "pg_env.h"
#include "history.h"
#include "model_cache.h"
#include "model_server_internal.h"
#include "serve/serve.h"

#define SERVER_SWEEP_MS 500		/* the server reclaims orphaned slots this often */

static ServerWorker *my_worker = NULL;
static ServerStartArg my_start;
static uint64 taken[SERVER_SLOTS];	/* word of each slot this server took; 0: none */

PGDLLEXPORT void isrf_server_main(Datum arg);

/*
 * The worker exits (SIGTERM, a device error, an error before it could
 * register): the requests it was answering are marked LOST, its entry is
 * cleared, and the backends waiting on this database's server are woken so
 * that their requests go to the next one.
 */
static void
server_worker_exit(int code, Datum arg)
{
	int			i;
	Oid			dbid = my_worker ? my_worker->dbid : InvalidOid;

	(void) code;
	(void) arg;
	for (i = 0; i < SERVER_SLOTS; i++)
	{
		ServerSlot *s = &server_shmem->slots[i];
		uint64		w = taken[i];

		if (w == 0)
			continue;
		taken[i] = 0;
		if (server_slot_cas(s, w, WORD_WITH(w, SLOT_LOST)))
			server_slot_wake(s);
		else
			(void) server_slot_cas(s, WORD_WITH(w, SLOT_ABANDONED), WORD_FREED(w));
	}
	LWLockAcquire(server_shmem->lock, LW_EXCLUSIVE);
	if (my_worker != NULL && my_worker->pid == MyProcPid)
		server_entry_clear(my_worker);
	else if (my_start.token != 0 && my_start.entry >= 0 && my_start.entry < SERVER_MAX_WORKERS)
	{
		ServerWorker *w = &server_shmem->workers[my_start.entry];

		/* exited before registering: the start failed */
		if (w->state == ENTRY_STARTING && w->token == my_start.token)
			server_entry_clear(w);
	}
	LWLockRelease(server_shmem->lock);
	my_worker = NULL;
	if (!OidIsValid(dbid))
		return;
	for (i = 0; i < SERVER_SLOTS; i++)
	{
		ServerSlot *s = &server_shmem->slots[i];

		if (WORD_STATE(pg_atomic_read_u64(&s->word)) == SLOT_POSTED && s->dbid == dbid)
			server_slot_wake(s);
	}
}

/* Publish this worker in shared memory (its entry may have been reserved). */
static void
server_register_self(void)
{
	int			i,
				use = -1,
				free_entry = -1;

	LWLockAcquire(server_shmem->lock, LW_EXCLUSIVE);
	for (i = 0; i < SERVER_MAX_WORKERS; i++)
	{
		ServerWorker *w = &server_shmem->workers[i];

		if (w->state == ENTRY_EMPTY)
		{
			if (free_entry < 0)
				free_entry = i;
			continue;
		}
		if (w->dbid != MyDatabaseId)
			continue;
		if (w->state == ENTRY_RUNNING && w->pid != MyProcPid && server_pid_alive(w->pid))
		{
			LWLockRelease(server_shmem->lock);
			ereport(LOG, (errmsg("isrf model server: another server runs for this database; exiting")));
			proc_exit(0);
		}
		if (use < 0)
			use = i;			/* reserved for a start (ours or another's), or left over */
	}
	if (use < 0)
		use = free_entry;
	if (use < 0)
	{
		LWLockRelease(server_shmem->lock);
		ereport(LOG, (errmsg("isrf model server: no free server entry; exiting")));
		proc_exit(0);
	}
	my_worker = &server_shmem->workers[use];
	server_entry_clear(my_worker);
	my_worker->state = ENTRY_RUNNING;
	my_worker->dbid = MyDatabaseId;
	my_worker->token = ++server_shmem->next_token;
	my_worker->started_at = GetCurrentTimestamp();
	my_worker->pid = MyProcPid;
	my_worker->latch = MyLatch;
	LWLockRelease(server_shmem->lock);
}

/*
 * Hand a taken slot back: with its reply (DONE, its owner woken) or, when
 * its owner gave up meanwhile or it needs none, freed.
 */
static void
server_finish(int i, bool reply)
{
	ServerSlot *s = &server_shmem->slots[i];
	uint64		w = taken[i];

	taken[i] = 0;
	pg_write_barrier();
	if (reply && server_slot_cas(s, w, WORD_WITH(w, SLOT_DONE)))
	{
		server_slot_wake(s);
		return;
	}
	if (!server_slot_cas(s, w, WORD_FREED(w)))
		(void) server_slot_cas(s, WORD_WITH(w, SLOT_ABANDONED), WORD_FREED(w));
}

/* Count a request in the statistics and hand its reply back. */
static void
server_reply(int i)
{
	ServerSlot *s = &server_shmem->slots[i];
	double		ms = (double) (GetCurrentTimestamp() - s->posted_at) / 1000.0;

	my_worker->requests++;
	my_worker->latency_sum_ms += ms;
	if (ms > my_worker->latency_max_ms)
		my_worker->latency_max_ms = ms;
	if (s->rep.status != REPLY_OK)
		my_worker->errors++;
	server_finish(i, true);
}

/*
 * The history length a request's variable part holds; a length that is not
 * whole ids or exceeds the payload (only a bug could write one) reads as none.
 */
static int
server_request_hist_len(const ServerRequest *r)
{
	if (r->var_len <= 0 || r->var_len > (int32) SLOT_REQUEST_BYTES || r->var_len % sizeof(int64) != 0)
		return 0;
	return r->var_len / (int) sizeof(int64);
}

/* Answer every taken slot of one model version with one batched call. */
static void
server_answer(const int *batch, int n)
{
	MemoryContext cxt = CurrentMemoryContext;
	IsrfPgEnv	batch_env;
	IsrfPgEnv  *penv = &batch_env;
	IsrfRecRequest *req = palloc0(sizeof(IsrfRecRequest) * n);
	IsrfRecResult *res = palloc(sizeof(IsrfRecResult) * n);
	const ServerRequest *first = &server_shmem->slots[batch[0]].req;
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
		ss = isrf_model_cache_session(first->model, first->version, first->created_at);
		m = isrf_serve_session_model(ss);
		for (i = 0; i < n; i++)
		{
			const ServerRequest *r = &server_shmem->slots[batch[i]].req;
			IsrfPgHistory h;

			/* copied out of the payload, which the reply overwrites */
			isrf_pg_history_map((const int64 *) server_shmem->slots[batch[i]].payload,
								server_request_hist_len(r), m, &h);
			req[i].user = isrf_model_user_index(m, r->user_id);
			req[i].k = Min(r->k, Max(m->n_items, 1));
			req[i].beam_width = r->beam_width;
			req[i].hist = h.items;
			req[i].len = h.len;
			res[i].items = palloc(sizeof(int32) * req[i].k);
			res[i].scores = palloc(sizeof(float) * req[i].k);
		}
		isrf_model_cache_check(&penv->env, isrf_serve_recommend(&penv->env, ss, n, req, res),
							   "recommendation failed");
		for (i = 0; i < n; i++)
		{
			ServerSlot *s = &server_shmem->slots[batch[i]];
			int64	   *items = (int64 *) s->payload;
			float	   *scores = (float *) ((char *) s->payload + sizeof(int64) * ISRF_SERVER_MAX_K);
			int			j;

			s->rep.status = REPLY_OK;
			s->rep.count = res[i].count;
			s->rep.cold_start = res[i].cold_start;
			for (j = 0; j < res[i].count; j++)
			{
				items[j] = m->item_ids[res[i].items[j]];
				scores[j] = res[i].scores[j];
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
			ServerSlot *s = &server_shmem->slots[batch[i]];

			s->rep.status = device_failed ? REPLY_SERVER_EXIT : REPLY_ERROR;
			s->rep.sqlerrcode = edata->sqlerrcode;
			strlcpy(s->rep.message, edata->message ? edata->message : "model server error",
					sizeof(s->rep.message));
		}
		if (device_failed)
		{
			/* a sticky device error: answer, then exit (restarted as the header says) */
			for (i = 0; i < n; i++)
				server_reply(batch[i]);
			ereport(LOG, (errmsg("isrf model server: device error, exiting: %s", edata->message)));
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
server_preload(int slot_index)
{
	ServerRequest r = server_shmem->slots[slot_index].req;
	MemoryContext cxt = CurrentMemoryContext;

	server_finish(slot_index, false);
	PG_TRY();
	{
		StartTransactionCommand();
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		(void) isrf_model_cache_get(r.model, r.version, r.created_at);
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

/* Take this database's posted slots (POSTED -> TAKEN); their indexes in out. */
static int
server_take(int *out)
{
	int			n = 0,
				i;

	for (i = 0; i < SERVER_SLOTS; i++)
	{
		ServerSlot *s = &server_shmem->slots[i];
		uint64		w = pg_atomic_read_u64(&s->word);

		if (WORD_STATE(w) != SLOT_POSTED)
			continue;
		pg_read_barrier();
		if (s->dbid != MyDatabaseId || !server_slot_cas(s, w, WORD_WITH(w, SLOT_TAKEN)))
			continue;
		/* taker 0 until here: a sweep leaves a slot being taken alone */
		pg_atomic_write_u32(&s->taker, (uint32) MyProcPid);
		taken[i] = WORD_WITH(w, SLOT_TAKEN);
		pg_read_barrier();
		if (s->req.kind == REQUEST_PRELOAD)
			server_preload(i);
		else
			out[n++] = i;
	}
	return n;
}

/* Take this database's posted slots and answer them, model by model. */
static void
server_drain(MemoryContext batch_cxt)
{
	int			pending[SERVER_SLOTS];
	bool		done[SERVER_SLOTS];
	int			n = server_take(pending),
				i;

	memset(done, 0, sizeof(done));
	for (i = 0; i < n; i++)
	{
		int			batch[SERVER_SLOTS];
		int			nb = 0,
					j;
		const ServerRequest *ri = &server_shmem->slots[pending[i]].req;
		MemoryContext old;

		if (done[i])
			continue;
		for (j = i; j < n; j++)
		{
			const ServerRequest *rj = &server_shmem->slots[pending[j]].req;

			if (!done[j] && strcmp(rj->model, ri->model) == 0 && rj->version == ri->version &&
				rj->created_at == ri->created_at)
			{
				done[j] = true;
				batch[nb++] = pending[j];
			}
		}
		old = MemoryContextSwitchTo(batch_cxt);
		server_answer(batch, nb);
		MemoryContextSwitchTo(old);
		MemoryContextReset(batch_cxt);
	}
}

/* The worker's entry point: register, then drain and sweep until it exits. */
void
isrf_server_main(Datum arg)
{
	IsrfBackend *be;
	MemoryContext batch_cxt;
	TimestampTz swept = 0;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	/* before connecting: a worker that cannot connect clears its entry */
	memset(&my_start, 0, sizeof(my_start));
	my_start.entry = -1;
	before_shmem_exit(server_worker_exit, (Datum) 0);
	if (DatumGetInt32(arg) == SERVER_WORKER_DYNAMIC)
	{
		memcpy(&my_start, MyBgworkerEntry->bgw_extra, sizeof(my_start));
		BackgroundWorkerInitializeConnectionByOid(my_start.dbid, InvalidOid, 0);
	}
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
		TimestampTz now;

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, SERVER_SWEEP_MS,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		server_drain(batch_cxt);
		now = GetCurrentTimestamp();
		if (TimestampDifferenceExceeds(swept, now, SERVER_SWEEP_MS))
		{
			server_sweep();
			swept = now;
		}
	}
}
