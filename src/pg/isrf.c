/*
 * isrf.c
 *	  Module entry: _PG_init with the isrf.* settings, and the SQL function
 *	  that reports which compute backend this session resolves to.
 *
 * _PG_init runs in the postmaster when isrf is preloaded: it only defines
 * settings.  Nothing here loads the BLAS or CUDA; that happens on first use
 * in a backend (see pg_env.c and src/core/backend.c).
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "llm.h"
#include "pg_env.h"
#include "model_server.h"

PG_MODULE_MAGIC;

int			isrf_device_guc = ISRF_DEVICE_AUTO;
char	   *isrf_cuda_library_guc = NULL;
char	   *isrf_default_model_guc = NULL;
int			isrf_beam_width_guc = 20;
int			isrf_blas_threads_guc = 0;
char	   *isrf_server_databases_guc = NULL;
int			isrf_server_fallback_guc = ISRF_SERVER_FALLBACK_ERROR;

static const struct config_enum_entry isrf_device_options[] = {
	{"auto", ISRF_DEVICE_AUTO, false},
	{"cpu", ISRF_DEVICE_CPU, false},
	{"cuda", ISRF_DEVICE_CUDA, false},
	{NULL, 0, false}
};

static const struct config_enum_entry isrf_server_fallback_options[] = {
	{"error", ISRF_SERVER_FALLBACK_ERROR, false},
	{"in_process", ISRF_SERVER_FALLBACK_IN_PROCESS, false},
	{NULL, 0, false}
};

void		_PG_init(void);

void
_PG_init(void)
{
	DefineCustomEnumVariable("isrf.device",
							 "Compute device for training and serving.",
							 "auto uses CUDA where the CUDA backend loads and a device answers, else the CPU.",
							 &isrf_device_guc,
							 ISRF_DEVICE_AUTO,
							 isrf_device_options,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);
	DefineCustomStringVariable("isrf.cuda_library",
							   "Path of the CUDA backend library.",
							   "Empty means $libdir/isrf_cuda.so.",
							   &isrf_cuda_library_guc,
							   "",
							   PGC_SUSET,
							   0,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("isrf.default_model",
							   "Model used when a function's model argument is NULL.",
							   NULL,
							   &isrf_default_model_guc,
							   "",
							   PGC_USERSET,
							   0,
							   NULL, NULL, NULL);
	DefineCustomIntVariable("isrf.beam_width",
							"Width of the constrained beam search that serves recommendations.",
							NULL,
							&isrf_beam_width_guc,
							20, 1, 1024,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("isrf.blas_threads",
							"Threads of the CPU backend's BLAS in this session (0: the library's default).",
							NULL,
							&isrf_blas_threads_guc,
							0, 0, 256,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);
	DefineCustomStringVariable("isrf.server_databases",
							   "Databases whose model server starts with the cluster.",
							   "Comma-separated names; other databases start theirs on first use.",
							   &isrf_server_databases_guc,
							   "",
							   PGC_POSTMASTER,
							   0,
							   NULL, NULL, NULL);
	DefineCustomEnumVariable("isrf.server_fallback",
							 "What a request does when the model server cannot answer it.",
							 "error raises 08006 when the server could not start or exited while answering; "
							 "in_process answers in the calling session instead.",
							 &isrf_server_fallback_guc,
							 ISRF_SERVER_FALLBACK_ERROR,
							 isrf_server_fallback_options,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);
	isrf_llm_define_settings();
	MarkGUCPrefixReserved("isrf");
	isrf_server_init();
}

PG_FUNCTION_INFO_V1(isrf_backend_info);

/*
 * isrf.backend_info() -> (requested text, backend text, description text)
 *
 * Opens the backend exactly as training would, so that it answers the
 * question "where would my work run?" honestly, then closes it.
 */
Datum
isrf_backend_info(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	IsrfPgEnv	penv;
	IsrfBackend *volatile be = NULL;
	char		desc[512];
	char		name[16];
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	isrf_pg_env_init(&penv, CurrentMemoryContext, DEBUG1);
	PG_TRY();
	{
		be = isrf_pg_backend_open(&penv);
		isrf_pg_check(&penv.env, be->describe(be, desc, sizeof(desc)), NULL);
		strlcpy(name, be->name, sizeof(name));
	}
	PG_FINALLY();
	{
		isrf_backend_close(be);
		isrf_pg_env_done(&penv);
	}
	PG_END_TRY();

	values[0] = CStringGetTextDatum(isrf_device_options[isrf_device_guc].name);
	values[1] = CStringGetTextDatum(name);
	values[2] = CStringGetTextDatum(desc);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
