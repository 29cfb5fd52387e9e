/*
 * model_server.c
 *	  The model server: a background worker per database keeps the deployed
 *	  models alive (on the GPU when there is one) and answers requests that
 *	  backends post into fixed slots in shared memory, draining all pending
 *	  slots into one batched beam search.
 *
 * This file holds the shared state and the backend side (starting and
 * finding servers, posting a request and waiting for its answer); the
 * worker is in model_server_worker.c, the SQL views of the shared state in
 * model_server_status.c, and what they share in model_server_internal.h.
 *
 * Slots.  Each slot has one 64-bit word: its state, a generation that every
 * claim bumps, and the pid of the backend that claimed it (its owner).
 * Every transition is a compare-and-swap of the whole word, so a process
 * that read a word and acts on it later acts on that very request or not at
 * all, and no lock is held while work is done:
 *
 *	  FREE -> FILLING	a backend claims it (generation + 1, owner = itself)
 *	  FILLING -> POSTED	the request is written; the server's latch is set
 *	  POSTED -> TAKEN	the server collects it (and then notes itself as taker)
 *	  TAKEN -> DONE		the reply is written; the owner's latch is set
 *	  DONE -> FREE		the owner read the reply
 *
 * and the ways out, whatever state a backend leaves its slot in:
 *
 *	  FILLING, POSTED, DONE, LOST -> FREE
 *						the owner gave up (error, cancel, exit): the server had
 *						not taken it, or has finished with it
 *	  TAKEN -> ABANDONED	the owner gave up while the server computes; the
 *						server frees it when done (ABANDONED -> FREE)
 *	  TAKEN -> LOST		the server exited while computing (its exit callback
 *						marks what it had taken); the owner fails the request,
 *						or answers it in-process, and frees the slot
 *
 * A backend gives its slot up from PG_CATCH and from a before_shmem_exit
 * callback (pg_terminate_backend too).  A process that dies without its
 * callbacks (SIGKILL) makes the postmaster reinitialise shared memory; yet,
 * as a second line, the server (twice a second) and any backend that finds
 * no free slot reclaim slots whose owner, or taker, is no longer a process
 * of the cluster (server_sweep).
 *
 * Servers.  One entry per database: STARTING (reserved by the backend that
 * asked the postmaster for a worker) or RUNNING (the worker registered its
 * pid and latch), each incarnation with a token never reused.  A waiting
 * backend checks that the incarnation its request went to still runs: when
 * it exited, a request it had not taken moves to the next server, which the
 * backend starts; one it was computing fails with 08006 or is answered
 * in-process (isrf.server_fallback).  08006 (connection_failure) because the
 * request lost the service that answers it while the session itself is
 * intact and the statement can be retried; 57P01 would tell clients that
 * their own session was terminated, and poolers drop connections on it.
 * A worker that exits before it registered (it could not connect, say)
 * clears its entry from its exit callback, and the backend that started it
 * watches its handle as well, so a failed start is reported at once and the
 * next request starts another.
 *
 * The worker creates its compute backend (its CUDA context) after it has
 * started: never in the postmaster, whose children would inherit it.  A
 * device failure makes it exit with code 1, its batch failing as above: the
 * postmaster restarts the servers of isrf.server_databases (started with the
 * cluster), and the next request starts a new one for a database whose
 * server started on first use.  SIGHUP only reloads settings.
 *
 * A slot's request has a fixed part and a variable part at the head of its
 * payload (req.var_len bytes: the user's history as the calling backend
 * read it, external item ids, oldest first), which the server copies out
 * before it writes the reply's arrays over it.
 */
#include "postgres.h"

#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

#include "pg_env.h"
#include "model_server.h"
#include "model_server_internal.h"

#define SERVER_START_TIMEOUT_MS 20000
#define SERVER_PID_CHECK_MS 1000	/* a waiting backend checks its server's pid */
#define SERVER_MAX_RESTARTS 3	/* server exits one posted request outlives */

/* Where a backend's request goes: one incarnation of a database's server. */
typedef struct ServerRef
{
	int			entry;
	uint64		token;
	pid_t		pid;
	Latch	   *latch;
	TimestampTz pid_checked_at;
} ServerRef;

/* How a backend's wait for its answer ended. */
typedef enum ServerWaitResult
{
	WAIT_ANSWERED,				/* DONE: the reply is in the slot */
	WAIT_LOST,					/* the server exited while answering */
	WAIT_NO_SERVER				/* none could be started; fall back */
} ServerWaitResult;

ServerShared *server_shmem = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* backend side: the slot this backend waits on, and its word as last set */
static ServerSlot *my_slot = NULL;
static uint64 my_word = 0;
static bool backend_exit_set = false;

/* isrf.c */
extern int	isrf_device_guc;
extern int	isrf_server_fallback_guc;
extern char *isrf_server_databases_guc;

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
	server_shmem = ShmemInitStruct("isrf_server", sizeof(ServerShared), &found);
	if (!found)
	{
		memset(server_shmem, 0, sizeof(ServerShared));
		server_shmem->lock = &(GetNamedLWLockTranche("isrf_server"))->lock;
		for (i = 0; i < SERVER_SLOTS; i++)
		{
			pg_atomic_init_u64(&server_shmem->slots[i].word, WORD_MAKE(SLOT_FREE, 0, 0));
			pg_atomic_init_u32(&server_shmem->slots[i].taker, 0);
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

/* A worker entry; the caller sets its main argument and extra data. */
static void
server_fill_worker(BackgroundWorker *w)
{
	memset(w, 0, sizeof(*w));
	w->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w->bgw_start_time = BgWorkerStart_ConsistentState;	/* hot standbys serve too */
	w->bgw_restart_time = 1;
	snprintf(w->bgw_library_name, BGW_MAXLEN, "isrf");
	snprintf(w->bgw_function_name, BGW_MAXLEN, "isrf_server_main");
	snprintf(w->bgw_name, BGW_MAXLEN, "isrf model server");
	snprintf(w->bgw_type, BGW_MAXLEN, "isrf model server");
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

		server_fill_worker(&w);
		w.bgw_main_arg = Int32GetDatum(SERVER_WORKER_STATIC);
		strlcpy(w.bgw_extra, tok, BGW_EXTRALEN);
		RegisterBackgroundWorker(&w);
	}
	pfree(list);
}

bool
isrf_server_available(void)
{
	return server_shmem != NULL && isrf_device_guc != ISRF_DEVICE_CPU;
}

/* ------------------------------------------------------------------------
 * Slots: transitions and the reclaiming of orphans (any process)
 * ------------------------------------------------------------------------ */

/* Move a slot from word expected to word next; false if it was not there. */
bool
server_slot_cas(ServerSlot *s, uint64 expected, uint64 next)
{
	return pg_atomic_compare_exchange_u64(&s->word, &expected, next);
}

/* Wake the backend waiting on a slot (a preload has none). */
void
server_slot_wake(ServerSlot *s)
{
	Latch	   *latch = s->client_latch;

	if (latch != NULL)
		SetLatch(latch);
}

/* Whether pid is a live process of this cluster with a PGPROC. */
bool
server_pid_alive(pid_t pid)
{
	return pid != 0 && BackendPidGetProc(pid) != NULL;
}

/*
 * Reclaim the slots whose owner, or whose taker, is no longer a process of
 * the cluster: a request no one waits for is freed, and one whose server is
 * gone is marked LOST for its owner.
 */
void
server_sweep(void)
{
	int			i;

	for (i = 0; i < SERVER_SLOTS; i++)
	{
		ServerSlot *s = &server_shmem->slots[i];
		uint64		w = pg_atomic_read_u64(&s->word);
		pid_t		taker;

		switch (WORD_STATE(w))
		{
			case SLOT_FREE:
				break;
			case SLOT_FILLING:
			case SLOT_POSTED:
			case SLOT_DONE:
			case SLOT_LOST:
				if (WORD_PID(w) != MyProcPid && !server_pid_alive(WORD_PID(w)))
					(void) server_slot_cas(s, w, WORD_FREED(w));
				break;
			case SLOT_TAKEN:
			case SLOT_ABANDONED:
				taker = (pid_t) pg_atomic_read_u32(&s->taker);
				if (taker == 0 || taker == MyProcPid || server_pid_alive(taker))
					break;		/* 0: being taken right now */
				if (WORD_STATE(w) == SLOT_ABANDONED)
					(void) server_slot_cas(s, w, WORD_FREED(w));
				else if (server_slot_cas(s, w, WORD_WITH(w, SLOT_LOST)))
					server_slot_wake(s);
				break;
		}
	}
}

/* ------------------------------------------------------------------------
 * Backend side
 * ------------------------------------------------------------------------ */

/*
 * The model server cannot answer: false when isrf.server_fallback says to
 * answer in this session, else the error.
 */
static bool
server_unavailable(int sqlerrcode, const char *msg, const char *detail)
{
	if (isrf_server_fallback_guc == ISRF_SERVER_FALLBACK_IN_PROCESS)
	{
		ereport(DEBUG1, (errmsg_internal("isrf: answering in-process: %s", msg)));
		return false;
	}
	ereport(ERROR,
			(errcode(sqlerrcode),
			 errmsg_internal("%s", msg),
			 detail ? errdetail_internal("%s", detail) : 0,
			 errhint("The next request starts a new server; with isrf.server_fallback = 'in_process' "
					 "this session answers itself instead.")));
	return false;				/* not reached */
}

/* Empty an entry (the lock held). */
void
server_entry_clear(ServerWorker *w)
{
	memset(w, 0, sizeof(*w));
}

/* Ask the postmaster for a worker for the entry just reserved. */
static BackgroundWorkerHandle *
server_start_worker(int entry, uint64 token)
{
	BackgroundWorker w;
	BackgroundWorkerHandle *handle;
	ServerStartArg arg;

	server_fill_worker(&w);
	memset(&arg, 0, sizeof(arg));
	arg.dbid = MyDatabaseId;
	arg.entry = entry;
	arg.token = token;
	w.bgw_main_arg = Int32GetDatum(SERVER_WORKER_DYNAMIC);
	memcpy(w.bgw_extra, &arg, sizeof(arg));

	/*
	 * A started-on-demand server is not restarted by the postmaster (its
	 * database may be dropped); the next request starts another.
	 */
	w.bgw_restart_time = BGW_NEVER_RESTART;
	w.bgw_notify_pid = MyProcPid;
	if (RegisterDynamicBackgroundWorker(&w, &handle))
		return handle;
	LWLockAcquire(server_shmem->lock, LW_EXCLUSIVE);
	if (server_shmem->workers[entry].state == ENTRY_STARTING && server_shmem->workers[entry].token == token)
		server_entry_clear(&server_shmem->workers[entry]);
	LWLockRelease(server_shmem->lock);
	return NULL;
}

/* Fill ref with this database's running server; false if there is none. */
static bool
server_find_running(ServerRef *ref)
{
	int			i;

	for (i = 0; i < SERVER_MAX_WORKERS; i++)
	{
		ServerWorker *w = &server_shmem->workers[i];

		if (w->state == ENTRY_RUNNING && w->dbid == MyDatabaseId)
		{
			ref->entry = i;
			ref->token = w->token;
			ref->pid = w->pid;
			ref->latch = w->latch;
			ref->pid_checked_at = GetCurrentTimestamp();
			return true;
		}
	}
	return false;
}

/*
 * This database's running server, starting one if there is none.  Waits
 * (interruptibly) while one starts; a start that fails (the worker exits
 * before it registered, or does not register in time) is reported at once,
 * its entry cleared, so the next call starts another.  false: none, and
 * isrf.server_fallback says to answer in-process.
 */
static bool
server_connect(ServerRef *ref)
{
	uint64		waited = 0;		/* token of the start this backend waits for */
	BackgroundWorkerHandle *handle = NULL;	/* when this backend asked for it */
	bool		found;

	/* the common case, under the shared lock */
	LWLockAcquire(server_shmem->lock, LW_SHARED);
	found = server_find_running(ref);
	LWLockRelease(server_shmem->lock);
	if (found)
		return true;
	for (;;)
	{
		int			i,
					entry = -1,
					free_entry = -1;
		bool		start = false;
		const char *failure = NULL;
		pid_t		pid;
		bool		stopped;
		TimestampTz now;

		/* the worker this backend asked for has exited (or never ran) */
		stopped = handle != NULL && GetBackgroundWorkerPid(handle, &pid) == BGWH_STOPPED;

		LWLockAcquire(server_shmem->lock, LW_EXCLUSIVE);
		now = GetCurrentTimestamp();
		for (i = 0; i < SERVER_MAX_WORKERS; i++)
		{
			ServerWorker *w = &server_shmem->workers[i];

			if (w->state == ENTRY_EMPTY)
			{
				if (free_entry < 0)
					free_entry = i;
			}
			else if (w->dbid == MyDatabaseId && entry < 0)
				entry = i;
		}
		if (entry >= 0 && server_find_running(ref))
		{
			LWLockRelease(server_shmem->lock);
			return true;
		}
		if (entry >= 0)
		{
			ServerWorker *w = &server_shmem->workers[entry];

			if (waited == 0)
				waited = w->token;
			if (w->token != waited)
				failure = "exited before it was ready";
			else if (stopped || now >= w->start_deadline)
			{
				server_entry_clear(w);
				failure = stopped ? "exited before it was ready" : "did not start in time";
			}
		}
		else if (waited != 0)
			failure = "exited before it was ready";
		else if (free_entry >= 0)
		{
			ServerWorker *w = &server_shmem->workers[free_entry];

			server_entry_clear(w);
			w->state = ENTRY_STARTING;
			w->dbid = MyDatabaseId;
			w->token = ++server_shmem->next_token;
			w->started_at = now;
			w->start_deadline = TimestampTzPlusMilliseconds(now, SERVER_START_TIMEOUT_MS);
			waited = w->token;
			entry = free_entry;
			start = true;
		}
		LWLockRelease(server_shmem->lock);

		if (entry < 0 && failure == NULL)
			return server_unavailable(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED,
									  psprintf("isrf model servers already run for %d databases",
											   SERVER_MAX_WORKERS),
									  NULL);
		if (failure != NULL)
		{
			char	   *dbname = get_database_name(MyDatabaseId);

			return server_unavailable(ERRCODE_CONNECTION_FAILURE,
									  psprintf("the isrf model server of database \"%s\" %s",
											   dbname ? dbname : "?", failure),
									  "See the server log for why.");
		}
		if (start && (handle = server_start_worker(entry, waited)) == NULL)
			return server_unavailable(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED,
									  "could not start the isrf model server",
									  "No background worker slot is free: raise max_worker_processes.");
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/* Whether the incarnation a request went to still runs. */
static bool
server_ref_alive(ServerRef *ref)
{
	ServerWorker *w = &server_shmem->workers[ref->entry];
	bool		alive;
	TimestampTz now;

	LWLockAcquire(server_shmem->lock, LW_SHARED);
	alive = w->state == ENTRY_RUNNING && w->token == ref->token;
	LWLockRelease(server_shmem->lock);
	now = GetCurrentTimestamp();
	if (alive && TimestampDifferenceExceeds(ref->pid_checked_at, now, SERVER_PID_CHECK_MS))
	{
		alive = server_pid_alive(ref->pid);
		ref->pid_checked_at = now;
	}
	return alive;
}

/* Give this backend's slot up, whatever state it is in. */
static void
server_release_slot(void)
{
	ServerSlot *s = my_slot;

	if (s == NULL)
		return;
	my_slot = NULL;
	for (;;)
	{
		uint64		w = pg_atomic_read_u64(&s->word);

		if (WORD_GEN(w) != WORD_GEN(my_word) || WORD_PID(w) != MyProcPid)
			break;				/* no longer ours (reclaimed) */
		switch (WORD_STATE(w))
		{
			case SLOT_FREE:
			case SLOT_ABANDONED:
				return;
			case SLOT_TAKEN:
				/* the server frees it once it has finished */
				if (server_slot_cas(s, w, WORD_WITH(w, SLOT_ABANDONED)))
					return;
				break;
			default:
				if (server_slot_cas(s, w, WORD_FREED(w)))
					return;
				break;
		}
	}
}

/* A backend exits (pg_terminate_backend, FATAL): its slot goes with it. */
static void
server_backend_exit(int code, Datum arg)
{
	(void) code;
	(void) arg;
	server_release_slot();
}

/*
 * Claim a free slot for a request (FREE -> FILLING) and write the request's
 * fixed part; NULL when every slot is busy.  *word gets the slot's word.
 */
static ServerSlot *
server_try_claim(ServerRequestKind kind, const char *model, int32 version, TimestampTz created_at,
				 uint64 *word)
{
	int			i;

	for (i = 0; i < SERVER_SLOTS; i++)
	{
		ServerSlot *s = &server_shmem->slots[i];
		uint64		w = pg_atomic_read_u64(&s->word);

		*word = WORD_MAKE(SLOT_FILLING, WORD_GEN(w) + 1, MyProcPid);
		if (WORD_STATE(w) == SLOT_FREE && server_slot_cas(s, w, *word))
		{
			s->dbid = MyDatabaseId;
			s->client_latch = kind == REQUEST_PRELOAD ? NULL : MyLatch;
			pg_atomic_write_u32(&s->taker, 0);
			memset(&s->req, 0, sizeof(s->req));
			s->req.kind = kind;
			strlcpy(s->req.model, model, NAMEDATALEN);
			s->req.version = version;
			s->req.created_at = created_at;
			s->posted_at = GetCurrentTimestamp();
			return s;
		}
	}
	return NULL;
}

/*
 * Claim a slot for this backend's request, waiting (interruptibly) while
 * all are busy; it becomes this backend's to give up (my_slot).
 */
static ServerSlot *
server_claim_slot(const char *model, int32 version, TimestampTz created_at)
{
	TimestampTz swept = 0;

	if (!backend_exit_set)
	{
		before_shmem_exit(server_backend_exit, (Datum) 0);
		backend_exit_set = true;
	}
	for (;;)
	{
		ServerSlot *s;
		uint64		word;
		TimestampTz now;

		s = server_try_claim(REQUEST_RECOMMEND, model, version, created_at, &word);
		if (s != NULL)
		{
			my_slot = s;
			my_word = word;
			return s;
		}
		/* all busy: some may belong to processes that are gone */
		now = GetCurrentTimestamp();
		if (TimestampDifferenceExceeds(swept, now, 100))
		{
			server_sweep();
			swept = now;
			continue;
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/* Publish this backend's filled slot (FILLING -> POSTED). */
static void
server_post(ServerSlot *s)
{
	uint64		posted = WORD_WITH(my_word, SLOT_POSTED);

	pg_write_barrier();
	if (!server_slot_cas(s, my_word, posted))
		elog(ERROR, "isrf model server slot was reclaimed while this backend filled it");
	my_word = posted;
}

/*
 * Wait for the answer to this backend's posted request.  When the server
 * exits, a request it had not taken waits for the next server (started
 * here), one it was answering is lost.
 */
static ServerWaitResult
server_wait(ServerSlot *s, ServerRef *ref)
{
	int			restarts = 0;

	for (;;)
	{
		SlotState	st = WORD_STATE(pg_atomic_read_u64(&s->word));

		if (st == SLOT_DONE)
			return WAIT_ANSWERED;
		if (st == SLOT_LOST)
			return WAIT_LOST;
		if (!server_ref_alive(ref))
		{
			st = WORD_STATE(pg_atomic_read_u64(&s->word));
			if (st == SLOT_DONE)
				return WAIT_ANSWERED;
			if (st != SLOT_POSTED)
				return WAIT_LOST;	/* taken by a server that is gone */
			if (++restarts > SERVER_MAX_RESTARTS)
			{
				if (!server_unavailable(ERRCODE_CONNECTION_FAILURE,
										psprintf("the isrf model server exited %d times while this request waited",
												 restarts),
										"See the server log for why."))
					return WAIT_NO_SERVER;
			}
			if (!server_connect(ref))
				return WAIT_NO_SERVER;
			SetLatch(ref->latch);
			continue;
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 100,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

bool
isrf_server_recommend(const char *model, int32 version, TimestampTz created_at,
					  int64 user_id, int32 k, int32 beam_width, const int64 *hist, int32 n_hist,
					  int64 *items, float *scores, int32 *count, bool *cold_start)
{
	ServerRef	ref;
	ServerSlot *slot;
	ServerWaitResult result = WAIT_NO_SERVER;
	ServerReply rep;

	if (!server_connect(&ref))
		return false;
	n_hist = Min(n_hist, ISRF_SERVER_MAX_HIST);
	slot = server_claim_slot(model, version, created_at);
	slot->req.user_id = user_id;
	slot->req.k = Min(k, ISRF_SERVER_MAX_K);
	slot->req.beam_width = beam_width;
	/* the variable part: the history, oldest first */
	slot->req.var_len = (int32) (sizeof(int64) * n_hist);
	if (n_hist > 0)
		memcpy(slot->payload, hist, sizeof(int64) * n_hist);
	server_post(slot);
	SetLatch(ref.latch);

	PG_TRY();
	{
		result = server_wait(slot, &ref);
	}
	PG_CATCH();
	{
		server_release_slot();
		PG_RE_THROW();
	}
	PG_END_TRY();

	if (result != WAIT_ANSWERED)
	{
		server_release_slot();
		if (result == WAIT_NO_SERVER)
			return false;
		return server_unavailable(ERRCODE_CONNECTION_FAILURE,
								  "the isrf model server exited while answering this request",
								  "See the server log for why.");
	}
	pg_read_barrier();
	rep = slot->rep;
	if (rep.status == REPLY_OK)
	{
		*count = rep.count;
		*cold_start = rep.cold_start;
		memcpy(items, slot->payload, sizeof(int64) * rep.count);
		memcpy(scores, (char *) slot->payload + sizeof(int64) * ISRF_SERVER_MAX_K,
			   sizeof(float) * rep.count);
	}
	server_release_slot();
	if (rep.status == REPLY_SERVER_EXIT)
		return server_unavailable(ERRCODE_CONNECTION_FAILURE,
								  "the isrf model server exited while answering this request",
								  rep.message);
	if (rep.status == REPLY_ERROR)
		ereport(ERROR, (errcode(rep.sqlerrcode), errmsg_internal("%s", rep.message)));
	return true;
}

void
isrf_server_preload(const char *model, int32 version, TimestampTz created_at)
{
	Latch	   *worker_latch = NULL;
	ServerSlot *slot;
	uint64		word;
	int			i;

	if (!isrf_server_available())
		return;
	/* only a running server is told; one that starts later loads on demand */
	LWLockAcquire(server_shmem->lock, LW_SHARED);
	for (i = 0; i < SERVER_MAX_WORKERS; i++)
		if (server_shmem->workers[i].state == ENTRY_RUNNING && server_shmem->workers[i].dbid == MyDatabaseId)
			worker_latch = server_shmem->workers[i].latch;
	LWLockRelease(server_shmem->lock);
	if (worker_latch == NULL)
		return;
	/* not this backend's to wait for: if it exits first, the sweep frees it */
	slot = server_try_claim(REQUEST_PRELOAD, model, version, created_at, &word);
	if (slot == NULL)
		return;					/* all busy: it will load on the next request */
	pg_write_barrier();
	if (server_slot_cas(slot, word, WORD_WITH(word, SLOT_POSTED)))
		SetLatch(worker_latch);
}
