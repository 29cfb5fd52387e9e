/*
 * llm_settings.c
 *	  The isrf.llm_* settings: where the LLM endpoint is, the key, the
 *	  models, timeouts, concurrency, rate limit and retries.
 *
 * The endpoint and the key can be set only by a superuser, so a database
 * user cannot make the server call an arbitrary URL.  The key is never
 * shown: SHOW, current_setting() and pg_settings print a mask even to a
 * superuser, it is left out of SHOW ALL, and it may not be set per role,
 * per database or in a function's SET clause, which would store it in a
 * catalog table (pg_roles shows role settings to every role).  It can be
 * set in postgresql.conf, with ALTER SYSTEM (a file), or with SET in a
 * superuser's session (for the embeddings fetched by isrf_train there).
 */
#include "postgres.h"

#include "utils/guc.h"

#include "llm.h"

char	   *isrf_llm_endpoint_guc = NULL;
char	   *isrf_llm_api_key_guc = NULL;
char	   *isrf_llm_model_guc = NULL;
char	   *isrf_llm_embedding_model_guc = NULL;
int			isrf_llm_timeout_guc = 120000;
int			isrf_llm_connect_timeout_guc = 10000;
int			isrf_llm_concurrency_guc = 4;
double		isrf_llm_rate_limit_guc = 0.0;
int			isrf_llm_max_retries_guc = 5;
int			isrf_llm_embedding_batch_guc = 32;

/* The endpoint must be an http(s) URL without spaces or control characters. */
static bool
llm_check_endpoint(char **newval, void **extra, GucSource source)
{
	const char *v = *newval;
	const char *p;

	(void) extra;
	(void) source;
	if (v == NULL || v[0] == '\0')
		return true;			/* unset: requests fail with a clear error */
	if (strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0)
	{
		GUC_check_errdetail("The endpoint must start with http:// or https://.");
		return false;
	}
	for (p = v; *p; p++)
		if ((unsigned char) *p <= ' ' || *p == 0x7f)
		{
			GUC_check_errdetail("The endpoint must not contain spaces or control characters.");
			return false;
		}
	if (strlen(v) > 2048)
	{
		GUC_check_errdetail("The endpoint is longer than 2048 bytes.");
		return false;
	}
	return true;
}

/*
 * The key itself lives in the setting's "extra" and in llm_api_key_value;
 * the setting's visible value is always empty.  PostgreSQL logs "parameter
 * ... changed to ..." when a reloaded value differs from the old one, and
 * prints values in a few other places: none of them can see the key.
 */
static const char *llm_api_key_value = "";

/*
 * The key may not come from a per-role or per-database setting nor be
 * checked for one (ALTER ROLE/DATABASE ... SET, a function's SET clause):
 * those are stored in catalog tables.  The message never repeats the value.
 */
static bool
llm_check_api_key(char **newval, void **extra, GucSource source)
{
	const char *v = *newval ? *newval : "";
	char	   *key;

	if (v[0] != '\0' &&
		(source == PGC_S_GLOBAL || source == PGC_S_DATABASE || source == PGC_S_USER ||
		 source == PGC_S_DATABASE_USER || source == PGC_S_TEST))
	{
		GUC_check_errmsg("isrf.llm_api_key cannot be set per role, per database or in a function's SET clause");
		GUC_check_errdetail("Such settings are stored in catalog tables that other roles can read.");
		GUC_check_errhint("Set it in postgresql.conf or with ALTER SYSTEM.");
		return false;
	}
	/* PG15: a check hook's strings and extra are malloc'd */
	key = strdup(v);
	if (key == NULL)
	{
		GUC_check_errcode(ERRCODE_OUT_OF_MEMORY);
		return false;
	}
	if (*newval == NULL || (*newval)[0] != '\0')
	{
		char	   *empty = strdup("");

		if (empty == NULL)
		{
			free(key);
			GUC_check_errcode(ERRCODE_OUT_OF_MEMORY);
			return false;
		}
		if (*newval)
		{
			explicit_bzero(*newval, strlen(*newval));
			free(*newval);
		}
		*newval = empty;
	}
	*extra = key;
	return true;
}

static void
llm_assign_api_key(const char *newval, void *extra)
{
	(void) newval;
	llm_api_key_value = extra ? (const char *) extra : "";
}

/* SHOW, current_setting() and pg_settings: a mask, never the key. */
static const char *
llm_show_api_key(void)
{
	return llm_api_key_value[0] ? "********" : "";
}

const char *
isrf_llm_api_key(void)
{
	return llm_api_key_value;
}

void
isrf_llm_define_settings(void)
{
	DefineCustomStringVariable("isrf.llm_endpoint",
							   "Base URL of the OpenAI-compatible LLM endpoint (.../v1).",
							   "Requests go to {endpoint}/chat/completions and {endpoint}/embeddings.",
							   &isrf_llm_endpoint_guc,
							   "http://127.0.0.1:11434/v1",
							   PGC_SUSET,
							   0,
							   llm_check_endpoint, NULL, NULL);
	DefineCustomStringVariable("isrf.llm_api_key",
							   "API key sent as a bearer token to the LLM endpoint.",
							   "Never shown; set it in postgresql.conf or with ALTER SYSTEM.",
							   &isrf_llm_api_key_guc,
							   "",
							   PGC_SUSET,
							   GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							   llm_check_api_key, llm_assign_api_key, llm_show_api_key);
	DefineCustomStringVariable("isrf.llm_model",
							   "Chat model that writes item and user descriptions.",
							   NULL,
							   &isrf_llm_model_guc,
							   "",
							   PGC_USERSET,
							   0,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("isrf.llm_embedding_model",
							   "Embedding model of the use_llm_embeddings training option.",
							   NULL,
							   &isrf_llm_embedding_model_guc,
							   "",
							   PGC_USERSET,
							   0,
							   NULL, NULL, NULL);
	DefineCustomIntVariable("isrf.llm_timeout",
							"Longest time one LLM request may take.",
							NULL,
							&isrf_llm_timeout_guc,
							120000, 100, 3600000,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("isrf.llm_connect_timeout",
							"Longest time to connect to the LLM endpoint.",
							NULL,
							&isrf_llm_connect_timeout_guc,
							10000, 100, 600000,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("isrf.llm_concurrency",
							"LLM requests in flight at once, per job or training session.",
							NULL,
							&isrf_llm_concurrency_guc,
							4, 1, LLM_MAX_CONCURRENCY,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);
	DefineCustomRealVariable("isrf.llm_rate_limit",
							 "LLM requests started per second at most (0: no limit).",
							 NULL,
							 &isrf_llm_rate_limit_guc,
							 0.0, 0.0, 1000000.0,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("isrf.llm_max_retries",
							"Retries of a failed LLM request (with exponential backoff) before it is recorded as failed.",
							NULL,
							&isrf_llm_max_retries_guc,
							5, 0, 100,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("isrf.llm_embedding_batch",
							"Texts per embeddings request.",
							NULL,
							&isrf_llm_embedding_batch_guc,
							32, 1, 2048,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);
}

void
llm_settings_from_gucs(LlmSettings *s)
{
	memset(s, 0, sizeof(*s));
	s->endpoint = isrf_llm_endpoint_guc;
	s->api_key = isrf_llm_api_key();
	s->timeout_ms = isrf_llm_timeout_guc;
	s->connect_timeout_ms = isrf_llm_connect_timeout_guc;
	s->concurrency = isrf_llm_concurrency_guc;
	s->rate_limit = isrf_llm_rate_limit_guc;
	s->max_retries = isrf_llm_max_retries_guc;
	s->backoff_ms = 500;
}
