/*
 * llm_job.c
 *	  The description jobs of isrf.describe_items and isrf.describe_users:
 *	  a dynamic background worker per job asks the LLM endpoint three
 *	  questions per row (see the view isrf.llm_prompts) and writes the
 *	  answers into the job's table.
 *
 * The worker runs as the role that started the job (its rights, its row-
 * level security) and waits for the starting transaction to commit before
 * it reads the job.  It survives the caller's disconnect.  Rows are
 * described concurrently up to the job's concurrency; each row written is
 * committed as soon as its three answers are in (INSERT ... ON CONFLICT DO
 * NOTHING on the table's unique id, so nothing is ever written twice), so
 * a job stopped half way -- cancelled, failed, its worker killed, the
 * cluster restarted -- resumes where it stopped when started again: rows
 * already in the table are skipped.  A request that fails is retried by
 * the client (llm_client.c); a row whose request fails for good, or whose
 * write fails, is recorded in isrf.llm_job_errors and the job goes on, until
 * max_failures rows in a row have failed.  isrf.cancel_llm_job sets a flag
 * the worker reads a few times a second.
 *
 * The job's row in isrf.llm_job_state (and its rows in llm_job_errors) are
 * written only through the catalogue writers isrf._cat_llm_job_*() and the
 * gate of catalogue.c, which acts for GetUserId(): in the starting backend
 * the calling role, in the worker the job's owner, as whom it connects.
 * One job per dataset and kind at a time is kept by a unique index on the
 * rows of queued and running jobs (see isrf._cat_llm_job_put).
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/lmgr.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "llm.h"
#include "pg_catalogue.h"
#include "pg_spi.h"

#define JOB_STEPS 3
#define JOB_FLUSH_INTERVAL 0.25	/* seconds between progress writes and cancel checks */
#define JOB_FETCH_CHUNK 256		/* inputs read per query */

/* What the starting backend hands its worker (in bgw_extra). */
typedef struct JobArgs
{
	int64		job;
	Oid			db;
	Oid			role;
	TransactionId xid;			/* the starting transaction */
} JobArgs;

/* What a kind of job writes: the id column, the columns of the steps, the prompts. */
typedef struct JobKind
{
	const char *id_col;
	const char *cols[JOB_STEPS];
	const char *steps[JOB_STEPS];	/* prompt names (isrf.llm_prompts) */
} JobKind;

static const JobKind job_kinds[] = {
	{"item_id", {"positive", "negative", "feature"}, {"item_positive", "item_negative", "item_feature"}},
	{"user_id", {"positive", "negative", "preference"}, {"user_positive", "user_negative", "user_preference"}},
};

/* A row being described. */
typedef struct JobRow
{
	int64		id;
	char	   *input;			/* {item} or {items} */
	int			step;			/* prompt being asked, 0..JOB_STEPS-1 */
	char	   *answers[JOB_STEPS];
	LlmCall		call;
	MemoryContext cxt;
} JobRow;

/* An error to record in isrf.llm_job_errors. */
typedef struct JobError
{
	int64		row_id;
	const char *step;
	int			attempts;
	char	   *error;
} JobError;

typedef struct Job
{
	int64		id;
	char	   *dataset;
	bool		users;			/* describe_users */
	Oid			target;
	char	   *target_sql;		/* qualified name */
	const JobKind *kind;
	char	   *system;
	char	   *prompts[JOB_STEPS];
	char	   *model;
	double		temperature;
	int			max_tokens;
	int64		max_failures;
	int64		limit;
	int			max_items;
	LlmSettings settings;
	char	   *input_sql;

	int64	   *pending;		/* ids to describe */
	int64		n_pending;
	int64		next;			/* next pending id whose input is not read */
	List	   *ready;			/* JobRow read, not submitted */
	int			in_flight;		/* rows with a call in the client */
	List	   *finished;		/* JobRow with every answer, to write */
	List	   *errors;			/* JobError */

	int64		total,
				skipped,
				done,
				failed,
				consecutive_failures;
	char	   *last_error;
	double		last_record;	/* llm_now() of the last job_record() */
	bool		cancelled;
	LlmClient  *client;
	MemoryContext cxt;
} Job;

PGDLLEXPORT void isrf_llm_job_main(Datum arg);

/* ---- the starting backend ------------------------------------------------ */

PG_FUNCTION_INFO_V1(isrf_llm_session_settings);

/*
 * isrf._llm_session_settings() -> jsonb: the settings a job takes from the
 * session that starts it.  The endpoint and the key are not among them:
 * the worker reads those from its own configuration.
 */
Datum
isrf_llm_session_settings(PG_FUNCTION_ARGS)
{
	StringInfoData b;

	(void) fcinfo;
	initStringInfo(&b);
	appendStringInfoString(&b, "{\"model\": ");
	escape_json(&b, isrf_llm_model_guc ? isrf_llm_model_guc : "");
	appendStringInfo(&b, ", \"concurrency\": %d, \"rate_limit\": %g, \"timeout_ms\": %d,"
					 " \"connect_timeout_ms\": %d, \"max_retries\": %d}",
					 isrf_llm_concurrency_guc, isrf_llm_rate_limit_guc, isrf_llm_timeout_guc,
					 isrf_llm_connect_timeout_guc, isrf_llm_max_retries_guc);
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(b.data)));
}

PG_FUNCTION_INFO_V1(isrf_llm_launch);

/*
 * isrf._llm_launch(dataset text, kind text, target regclass, options jsonb)
 * -> the job's id.  Records the job through the catalogue writer
 * isrf._cat_llm_job_put (the calling role's, on its own dataset; one per
 * dataset and kind; at most 8 running per role) and starts its worker,
 * which waits for the calling transaction to commit.  Called by
 * isrf._llm_start, which checks the options first.
 */
Datum
isrf_llm_launch(PG_FUNCTION_ARGS)
{
	JobArgs		a;
	BackgroundWorker w;
	BackgroundWorkerHandle *handle;
	HeapTuple	tup;
	bool		can_login;
	pid_t		pid;

	/* a background worker connects like a session: the role must log in */
	tup = SearchSysCache1(AUTHOID, ObjectIdGetDatum(GetUserId()));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for role %u", GetUserId());
	can_login = ((Form_pg_authid) GETSTRUCT(tup))->rolcanlogin;
	ReleaseSysCache(tup);
	if (!can_login)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" cannot log in, so it cannot run an LLM job",
						GetUserNameFromId(GetUserId(), false)),
				 errhint("The job runs in a background worker as the role that starts it; start it as a role with LOGIN.")));

	memset(&a, 0, sizeof(a));
	SPI_connect();
	a.job = DatumGetInt64(isrf_catalogue_call("_cat_llm_job_put", 5,
											  (Oid[]) {TEXTOID, TEXTOID, REGCLASSOID, JSONBOID, TEXTOID},
											  (Datum[]) {PG_GETARG_DATUM(0), PG_GETARG_DATUM(1), PG_GETARG_DATUM(2),
												  PG_GETARG_DATUM(3),
											  CStringGetTextDatum(isrf_llm_endpoint_guc ? isrf_llm_endpoint_guc : "")},
											  NULL, NULL));
	a.db = MyDatabaseId;
	a.role = GetUserId();
	a.xid = GetTopTransactionId();

	memset(&w, 0, sizeof(w));
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(w.bgw_library_name, BGW_MAXLEN, "isrf");
	snprintf(w.bgw_function_name, BGW_MAXLEN, "isrf_llm_job_main");
	snprintf(w.bgw_name, BGW_MAXLEN, "isrf llm job %lld", (long long) a.job);
	snprintf(w.bgw_type, BGW_MAXLEN, "isrf llm job");
	StaticAssertStmt(sizeof(JobArgs) <= BGW_EXTRALEN, "JobArgs must fit bgw_extra");
	memcpy(w.bgw_extra, &a, sizeof(a));
	w.bgw_notify_pid = MyProcPid;
	if (!RegisterDynamicBackgroundWorker(&w, &handle))
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start the background worker of the LLM job"),
				 errhint("Raise max_worker_processes.")));
	if (WaitForBackgroundWorkerStartup(handle, &pid) != BGWH_STARTED)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("the background worker of the LLM job did not start"),
				 errhint("Check the server log.")));
	(void) isrf_catalogue_call("_cat_llm_job_started", 2, (Oid[]) {INT8OID, INT4OID},
							   (Datum[]) {Int64GetDatum(a.job), Int32GetDatum((int32) pid)}, NULL, NULL);
	SPI_finish();
	PG_RETURN_INT64(a.job);
}

/* ---- the worker: reading the job ---------------------------------------- */

/* A text column of the current SPI row, copied into the job's memory; NULL stays NULL. */
static char *
job_text(Job *j, int col)
{
	char	   *v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col);

	return v ? MemoryContextStrdup(j->cxt, v) : NULL;
}

static int64
job_int(int col, int64 dflt)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, &isnull);

	return isnull ? dflt : DatumGetInt64(d);
}

static double
job_float(int col, double dflt)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, &isnull);

	return isnull ? dflt : DatumGetFloat8(d);
}

/*
 * Read the job's row and claim it (queued -> running); false when it is
 * not ours to run (rolled back, started twice, already over).
 */
static bool
job_claim(Job *j)
{
	int			rc;
	char	   *owner;
	char	   *kind;
	char	   *endpoint;
	char	   *state;
	int64		pid;
	bool		isnull;
	Datum		target;

	rc = SPI_execute_with_args(
							   "SELECT owner::text, dataset, kind, state, pid::int8, target, endpoint,"
							   " options->>'model', (options->>'temperature')::float8, (options->>'max_tokens')::int8,"
							   " (options->>'max_failures')::int8, (options->>'limit')::int8, (options->>'max_items')::int8,"
							   " (options->>'concurrency')::int8, (options->>'rate_limit')::float8,"
							   " (options->>'timeout_ms')::int8, (options->>'connect_timeout_ms')::int8,"
							   " (options->>'max_retries')::int8, (options->>'backoff_ms')::int8,"
							   " options->'prompts'->>'system',"
							   " options->'prompts'->>(CASE kind WHEN 'items' THEN 'item_positive' ELSE 'user_positive' END),"
							   " options->'prompts'->>(CASE kind WHEN 'items' THEN 'item_negative' ELSE 'user_negative' END),"
							   " options->'prompts'->>(CASE kind WHEN 'items' THEN 'item_feature' ELSE 'user_preference' END)"
							   " FROM isrf.llm_job_state WHERE id = $1",
							   1, (Oid[]) {INT8OID}, (Datum[]) {Int64GetDatum(j->id)}, NULL, false, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read LLM job %lld: %s", (long long) j->id, SPI_result_code_string(rc));
	if (SPI_processed == 0)
		return false;			/* the starting transaction rolled back */
	owner = job_text(j, 1);
	j->dataset = job_text(j, 2);
	kind = job_text(j, 3);
	state = job_text(j, 4);
	pid = job_int(5, 0);
	target = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 6, &isnull);
	endpoint = job_text(j, 7);
	if (strcmp(state, "queued") != 0 || (pid != 0 && pid != MyProcPid) ||
		strcmp(owner, GetUserNameFromId(GetUserId(), false)) != 0)
		return false;
	j->target = isnull ? InvalidOid : DatumGetObjectId(target);
	j->users = strcmp(kind, "users") == 0;
	j->model = job_text(j, 8);
	j->temperature = job_float(9, 0.0);
	j->max_tokens = (int) job_int(10, 512);
	j->max_failures = job_int(11, 20);
	j->limit = job_int(12, 0);
	j->max_items = (int) job_int(13, 20);
	j->settings.concurrency = (int) job_int(14, 4);
	j->settings.rate_limit = job_float(15, 0.0);
	j->settings.timeout_ms = (int) job_int(16, 120000);
	j->settings.connect_timeout_ms = (int) job_int(17, 10000);
	j->settings.max_retries = (int) job_int(18, 5);
	j->settings.backoff_ms = (int) job_int(19, 500);
	j->system = job_text(j, 20);
	j->prompts[0] = job_text(j, 21);
	j->prompts[1] = job_text(j, 22);
	j->prompts[2] = job_text(j, 23);

	/*
	 * The endpoint: a superuser's job may use the one its session had; any
	 * other role's job uses the worker's own setting (whatever its row
	 * says).  The key is never stored: always the worker's.
	 */
	j->settings.endpoint = (superuser() && endpoint) ? endpoint :
		MemoryContextStrdup(j->cxt, isrf_llm_endpoint_guc ? isrf_llm_endpoint_guc : "");
	j->settings.api_key = isrf_llm_api_key();

	j->kind = &job_kinds[j->users ? 1 : 0];
	if (j->model == NULL || j->prompts[0] == NULL || j->prompts[1] == NULL || j->prompts[2] == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("LLM job %lld has no model or lacks a prompt", (long long) j->id)));

	return DatumGetBool(isrf_catalogue_call("_cat_llm_job_claim", 3, (Oid[]) {INT8OID, INT4OID, TEXTOID},
											(Datum[]) {Int64GetDatum(j->id), Int32GetDatum(MyProcPid),
											CStringGetTextDatum(j->settings.endpoint)}, NULL, NULL));
}

/* The qualified name of the job's table; an error if it is gone. */
static void
job_resolve_target(Job *j)
{
	char	   *rel = OidIsValid(j->target) ? get_rel_name(j->target) : NULL;
	char	   *nsp = rel ? get_namespace_name(get_rel_namespace(j->target)) : NULL;

	if (rel == NULL || nsp == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("the table of LLM job %lld no longer exists", (long long) j->id)));
	j->target_sql = MemoryContextStrdup(j->cxt, quote_qualified_identifier(nsp, rel));
}

/*
 * Record the job's counters, the errors collected since the last time and,
 * with final_state, its end (isrf._cat_llm_job_flush); sets j->cancelled
 * when a cancel was asked for or the job's row is gone.
 */
static void
job_record(Job *j, const char *final_state)
{
	static const LlmClientStats none;
	const LlmClientStats *st = j->client ? llm_client_stats(j->client) : &none;
	int			n = list_length(j->errors);
	Datum	   *rows = palloc(sizeof(Datum) * (n + 1));
	Datum	   *steps = palloc(sizeof(Datum) * (n + 1));
	Datum	   *attempts = palloc(sizeof(Datum) * (n + 1));
	Datum	   *messages = palloc(sizeof(Datum) * (n + 1));
	Datum		v[14];
	char		nulls[14];
	ListCell   *lc;
	int			i = 0;

	foreach(lc, j->errors)
	{
		JobError   *e = lfirst(lc);

		rows[i] = Int64GetDatum(e->row_id);
		steps[i] = CStringGetTextDatum(e->step);
		attempts[i] = Int32GetDatum(e->attempts);
		messages[i] = CStringGetTextDatum(e->error);
		i++;
	}
	memset(nulls, ' ', sizeof(nulls));
	v[0] = Int64GetDatum(j->id);
	v[1] = Int64GetDatum(j->done);
	v[2] = Int64GetDatum(j->failed);
	v[3] = Int64GetDatum(j->total);
	v[4] = Int64GetDatum(j->skipped);
	v[5] = Int64GetDatum(st->requests);
	v[6] = Int64GetDatum(st->failed_attempts);
	v[7] = Int64GetDatum(st->tokens);
	v[8] = j->last_error ? CStringGetTextDatum(j->last_error) : (Datum) 0;
	nulls[8] = j->last_error ? ' ' : 'n';
	v[9] = final_state ? CStringGetTextDatum(final_state) : (Datum) 0;
	nulls[9] = final_state ? ' ' : 'n';
	v[10] = PointerGetDatum(construct_array(rows, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	v[11] = PointerGetDatum(construct_array(steps, n, TEXTOID, -1, false, TYPALIGN_INT));
	v[12] = PointerGetDatum(construct_array(attempts, n, INT4OID, 4, true, TYPALIGN_INT));
	v[13] = PointerGetDatum(construct_array(messages, n, TEXTOID, -1, false, TYPALIGN_INT));
	if (DatumGetBool(isrf_catalogue_call("_cat_llm_job_flush", 14,
										 (Oid[]) {INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID,
										 INT8OID, TEXTOID, TEXTOID, INT8ARRAYOID, TEXTARRAYOID, INT4ARRAYOID, TEXTARRAYOID},
										 v, nulls, NULL)))
		j->cancelled = true;

	foreach(lc, j->errors)
	{
		JobError   *e = lfirst(lc);

		pfree(e->error);
		pfree(e);
	}
	list_free(j->errors);
	j->errors = NIL;
}

/* The ids still to describe (rows already in the table are skipped). */
static void
job_plan(Job *j)
{
	char	   *ids_sql;
	char	   *sql;
	Portal		portal;
	int64		cap = 1024;

	SPI_execute_with_args("SELECT s.ids_sql, s.input_sql FROM isrf._dataset($1) d,"
						  " isrf._llm_job_sql(d, $2, $3) s",
						  3, (Oid[]) {TEXTOID, TEXTOID, INT4OID},
						  (Datum[]) {CStringGetTextDatum(j->dataset),
							  CStringGetTextDatum(j->users ? "users" : "items"),
						  Int32GetDatum(j->max_items)}, NULL, false, 1);
	if (SPI_processed != 1)
		elog(ERROR, "could not plan LLM job %lld", (long long) j->id);
	ids_sql = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	j->input_sql = job_text(j, 2);
	if (ids_sql == NULL || j->input_sql == NULL)
		elog(ERROR, "LLM job %lld has nothing to read", (long long) j->id);

	sql = psprintf("SELECT c.id, EXISTS (SELECT 1 FROM %s t WHERE t.%s = c.id) FROM (%s) c ORDER BY c.id",
				   j->target_sql, quote_identifier(j->kind->id_col), ids_sql);
	j->pending = MemoryContextAlloc(j->cxt, sizeof(int64) * cap);
	portal = SPI_cursor_open_with_args(NULL, sql, 0, NULL, NULL, NULL, true, 0);
	for (;;)
	{
		uint64		i;

		SPI_cursor_fetch(portal, true, 10000);
		if (SPI_processed == 0)
			break;
		for (i = 0; i < SPI_processed; i++)
		{
			bool		isnull;
			int64		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
			bool		described = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));

			if (described)
			{
				j->skipped++;
				continue;
			}
			if (j->limit > 0 && j->n_pending >= j->limit)
				continue;
			if (j->n_pending == cap)
			{
				cap *= 2;
				j->pending = repalloc_huge(j->pending, sizeof(int64) * cap);
			}
			j->pending[j->n_pending++] = id;
		}
		SPI_freetuptable(SPI_tuptable);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_cursor_close(portal);
	j->total = j->n_pending;
	job_record(j, NULL);
}

/* Read the inputs of the next pending ids into j->ready. */
static void
job_fetch(Job *j)
{
	int64		n = Min((int64) JOB_FETCH_CHUNK, j->n_pending - j->next);
	Datum	   *ids;
	ArrayType  *arr;
	int64		i;
	uint64		r;

	if (n <= 0)
		return;
	ids = palloc(sizeof(Datum) * n);
	for (i = 0; i < n; i++)
		ids[i] = Int64GetDatum(j->pending[j->next + i]);
	arr = construct_array(ids, (int) n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
	j->next += n;
	if (SPI_execute_with_args(j->input_sql, 1, (Oid[]) {INT8ARRAYOID}, (Datum[]) {PointerGetDatum(arr)},
							  NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the inputs of LLM job %lld", (long long) j->id);
	for (r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull));
		char	   *input = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2);
		MemoryContext cxt = AllocSetContextCreate(j->cxt, "isrf llm row", ALLOCSET_SMALL_SIZES);
		JobRow	   *row = MemoryContextAllocZero(cxt, sizeof(JobRow));
		MemoryContext old;

		row->cxt = cxt;
		row->id = id;
		row->input = MemoryContextStrdup(cxt, input ? input : "");
		old = MemoryContextSwitchTo(j->cxt);
		j->ready = lappend(j->ready, row);
		MemoryContextSwitchTo(old);
	}
	/* ids whose input vanished since planning (row deleted): nothing to do */
	j->total -= n - (int64) SPI_processed;
	SPI_freetuptable(SPI_tuptable);
}

/* ---- the worker: asking --------------------------------------------------- */

/* A prompt with its placeholders filled in for a row. */
static char *
job_fill(Job *j, const char *tmpl, JobRow *row)
{
	StringInfoData b;
	const char *p = tmpl;

	initStringInfo(&b);
	while (*p)
	{
		const char *val = NULL;
		size_t		skip = 0;

		if (*p == '{')
		{
			if (strncmp(p, "{item}", 6) == 0 && !j->users)
				val = row->input, skip = 6;
			else if (strncmp(p, "{items}", 7) == 0 && j->users)
				val = row->input, skip = 7;
			else if (strncmp(p, "{positive}", 10) == 0)
				val = row->answers[0] ? row->answers[0] : "", skip = 10;
			else if (strncmp(p, "{negative}", 10) == 0)
				val = row->answers[1] ? row->answers[1] : "", skip = 10;
		}
		if (skip)
		{
			appendStringInfoString(&b, val);
			p += skip;
		}
		else
			appendStringInfoChar(&b, *p++);
	}
	return b.data;
}

/* Ask a row's current step. */
static void
job_ask(Job *j, JobRow *row)
{
	MemoryContext old = MemoryContextSwitchTo(row->cxt);
	char	   *user = job_fill(j, j->prompts[row->step], row);

	if (row->call.body)
		pfree(row->call.body);
	row->call.kind = LLM_CALL_CHAT;
	row->call.arg = row;
	row->call.attempts = 0;
	row->call.body = llm_chat_body(j->model, j->system ? j->system : "", user,
								   j->temperature, j->max_tokens);
	pfree(user);
	MemoryContextSwitchTo(old);
	llm_client_submit(j->client, &row->call);
}

static void
job_add_error(Job *j, int64 row_id, const char *step, int attempts, const char *error)
{
	MemoryContext old = MemoryContextSwitchTo(j->cxt);
	JobError   *e = palloc(sizeof(JobError));

	e->row_id = row_id;
	e->step = step;
	e->attempts = attempts;
	e->error = pstrdup(error);
	j->errors = lappend(j->errors, e);
	if (j->last_error)
		pfree(j->last_error);
	j->last_error = pstrdup(error);
	MemoryContextSwitchTo(old);
	j->failed++;
	j->consecutive_failures++;
}

/* A call came back: the row's next step, its end, or its failure. */
static void
job_answer(Job *j, LlmCall *call)
{
	JobRow	   *row = call->arg;

	j->in_flight--;
	if (!call->ok)
	{
		job_add_error(j, row->id, j->kind->steps[row->step], call->attempts, call->error);
		MemoryContextDelete(row->cxt);
		return;
	}
	row->answers[row->step] = MemoryContextStrdup(row->cxt, call->content);
	pfree(call->content);
	call->content = NULL;
	if (++row->step < JOB_STEPS)
	{
		job_ask(j, row);
		j->in_flight++;
		return;
	}
	{
		MemoryContext old = MemoryContextSwitchTo(j->cxt);

		j->finished = lappend(j->finished, row);
		MemoryContextSwitchTo(old);
	}
}

/* ---- the worker: writing -------------------------------------------------- */

/*
 * Insert a row in a subtransaction, so that a failing write (a constraint
 * or trigger of the user's table) is recorded and the job goes on.
 */
static void
job_write_row(Job *j, const char *sql, JobRow *row)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		Datum		v[4];

		v[0] = Int64GetDatum(row->id);
		v[1] = CStringGetTextDatum(row->answers[0]);
		v[2] = CStringGetTextDatum(row->answers[1]);
		v[3] = CStringGetTextDatum(row->answers[2]);
		if (SPI_execute_with_args(sql, 4, (Oid[]) {INT8OID, TEXTOID, TEXTOID, TEXTOID}, v, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not insert into %s", j->target_sql);
		if (SPI_processed == 1)
		{
			j->done++;
			j->consecutive_failures = 0;
		}
		else
		{
			/* written meanwhile by someone else: never twice */
			j->skipped++;
			j->total--;
		}
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
			ReThrowError(edata);
		job_add_error(j, row->id, "write", 0, edata->message ? edata->message : "write failed");
		FreeErrorData(edata);
	}
	PG_END_TRY();
}

/*
 * One transaction: the finished rows (each committed as soon as it is
 * answered); the errors at once; the counters, with the cancel flag read
 * back, at most every JOB_FLUSH_INTERVAL, and the final state.
 */
static void
job_flush(Job *j, const char *final_state)
{
	ListCell   *lc;
	char	   *insert = psprintf("INSERT INTO %s (%s, %s, %s, %s) VALUES ($1, $2, $3, $4) ON CONFLICT (%s) DO NOTHING",
								  j->target_sql, quote_identifier(j->kind->id_col), quote_identifier(j->kind->cols[0]),
								  quote_identifier(j->kind->cols[1]), quote_identifier(j->kind->cols[2]),
								  quote_identifier(j->kind->id_col));

	foreach(lc, j->finished)
	{
		JobRow	   *row = lfirst(lc);

		job_write_row(j, insert, row);
		MemoryContextDelete(row->cxt);
	}
	list_free(j->finished);
	j->finished = NIL;

	if (final_state || j->errors != NIL || llm_now() - j->last_record >= JOB_FLUSH_INTERVAL)
	{
		job_record(j, final_state);
		j->last_record = llm_now();
	}
	pfree(insert);
}

/* Run fn in a transaction of its own with SPI and a snapshot. */
static void
job_xact(void (*fn) (Job *j, const char *arg), Job *j, const char *arg)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	fn(j, arg);
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
}

static void
job_fetch_xact(Job *j, const char *arg)
{
	(void) arg;
	job_fetch(j);
}

/* ---- the worker: the main loop --------------------------------------------- */

static void
job_start_xact(Job *j, const char *arg)
{
	bool	   *claimed = (bool *) arg;

	*claimed = job_claim(j);
	if (!*claimed)
		return;
	job_resolve_target(j);
	job_plan(j);
}

static void
job_run(Job *j)
{
	bool		claimed = false;
	double		last_flush = 0;
	const char *final_state;

	job_xact(job_start_xact, j, (const char *) &claimed);
	if (!claimed)
		return;
	ereport(LOG,
			(errmsg("isrf llm job %lld: describing %lld %s of dataset \"%s\" into %s (%lld already described)",
					(long long) j->id, (long long) j->total, j->users ? "users" : "items",
					j->dataset, j->target_sql, (long long) j->skipped)));
	j->client = llm_client_create(&j->settings, j->cxt);

	for (;;)
	{
		List	   *done;
		ListCell   *lc;

		CHECK_FOR_INTERRUPTS();
		/* keep the client busy: a row per slot */
		while (j->in_flight < j->settings.concurrency)
		{
			JobRow	   *row;

			if (j->ready == NIL)
			{
				if (j->next >= j->n_pending)
					break;
				job_xact(job_fetch_xact, j, NULL);
				continue;
			}
			row = linitial(j->ready);
			j->ready = list_delete_first(j->ready);
			job_ask(j, row);
			j->in_flight++;
		}
		if (j->in_flight == 0 && j->ready == NIL && j->next >= j->n_pending)
			break;

		done = llm_client_step(j->client, 100);
		foreach(lc, done)
			job_answer(j, lfirst(lc));
		list_free(done);

		if (j->finished != NIL || j->errors != NIL || llm_now() - last_flush >= JOB_FLUSH_INTERVAL)
		{
			job_xact(job_flush, j, NULL);
			last_flush = llm_now();
		}
		if (j->cancelled)
			break;
		if (j->consecutive_failures >= j->max_failures)
			break;
	}

	llm_client_abandon(j->client);
	if (j->cancelled)
		final_state = "cancelled";
	else if (j->consecutive_failures >= j->max_failures)
	{
		final_state = "failed";
		j->last_error = psprintf("stopped after %lld rows in a row failed; the last: %s",
								 (long long) j->consecutive_failures, j->last_error ? j->last_error : "?");
	}
	else
		final_state = "done";
	job_xact(job_flush, j, final_state);
	ereport(LOG,
			(errmsg("isrf llm job %lld %s: %lld written, %lld failed, %lld requests",
					(long long) j->id, final_state, (long long) j->done, (long long) j->failed,
					(long long) llm_client_stats(j->client)->requests)));
	llm_client_destroy(j->client);
	j->client = NULL;
}

/* Record why the job ended early; runs in a fresh transaction. */
static void
job_mark_failed(Job *j, const char *arg)
{
	(void) isrf_catalogue_call("_cat_llm_job_end", 3, (Oid[]) {INT8OID, TEXTOID, TEXTOID},
							   (Datum[]) {Int64GetDatum(j->id),
								   CStringGetTextDatum(j->cancelled ? "cancelled" : "failed"),
							   CStringGetTextDatum(arg)}, NULL, NULL);
}

void
isrf_llm_job_main(Datum arg)
{
	JobArgs		a;
	Job			job;
	MemoryContext cxt;

	(void) arg;
	memcpy(&a, MyBgworkerEntry->bgw_extra, sizeof(a));
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	/* as the job's owner: the role the catalogue writers act for (GetUserId()) */
	BackgroundWorkerInitializeConnectionByOid(a.db, a.role, 0);
	pgstat_report_appname("isrf llm job");
	/* our SQL names everything it means: nothing is looked up in the role's search_path */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);

	/* the job's row becomes visible when the starting transaction commits */
	StartTransactionCommand();
	XactLockTableWait(a.xid, NULL, NULL, XLTW_None);
	CommitTransactionCommand();

	cxt = AllocSetContextCreate(TopMemoryContext, "isrf llm job", ALLOCSET_DEFAULT_SIZES);
	memset(&job, 0, sizeof(job));
	job.id = a.job;
	job.cxt = cxt;
	PG_TRY();
	{
		job_run(&job);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		HOLD_INTERRUPTS();
		MemoryContextSwitchTo(TopMemoryContext);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		if (job.client)
			llm_client_abandon(job.client);
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
			job.cancelled = true;
		RESUME_INTERRUPTS();
		ereport(LOG,
				(errmsg("isrf llm job %lld %s: %s", (long long) job.id,
						job.cancelled ? "cancelled" : "failed", edata->message)));
		job_xact(job_mark_failed, &job, edata->message ? edata->message : "unknown error");
	}
	PG_END_TRY();
	proc_exit(0);
}
