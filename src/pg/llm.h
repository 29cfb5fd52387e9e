/*
 * llm.h
 *	  The LLM reasoning step: a client for OpenAI-compatible
 *	  /v1/chat/completions and /v1/embeddings endpoints (libcurl's multi
 *	  interface), the isrf.llm_* settings, and the pieces shared by the
 *	  description jobs (llm_job.c) and the embedding features of training
 *	  (llm_embed.c).
 *
 * Nothing here runs in the postmaster: libcurl is initialised on first use
 * in the process that sends requests, and every libcurl call that may start
 * a thread (the threaded resolver) runs with every signal blocked, so that
 * PostgreSQL's signals reach only the main thread.  Callbacks that libcurl
 * calls never raise an error (they would longjmp through libcurl): they use
 * malloc and report failures through return codes.
 */
#ifndef ISRF_LLM_H
#define ISRF_LLM_H

#include "postgres.h"

#include "lib/ilist.h"
#include "nodes/pg_list.h"

/* ---- settings (llm_settings.c) ------------------------------------------ */

extern char *isrf_llm_endpoint_guc;
extern char *isrf_llm_api_key_guc;
extern char *isrf_llm_model_guc;
extern char *isrf_llm_embedding_model_guc;
extern int	isrf_llm_timeout_guc;
extern int	isrf_llm_connect_timeout_guc;
extern int	isrf_llm_concurrency_guc;
extern double isrf_llm_rate_limit_guc;
extern int	isrf_llm_max_retries_guc;
extern int	isrf_llm_embedding_batch_guc;

/* Define the isrf.llm_* settings; called from _PG_init. */
void		isrf_llm_define_settings(void);

/* The API key ("" when unset); isrf_llm_api_key_guc only ever holds "". */
const char *isrf_llm_api_key(void);

/* ---- the client (llm_client.c) ------------------------------------------- */

#define LLM_MAX_CONCURRENCY 256
#define LLM_MAX_RESPONSE_BYTES (64 * 1024 * 1024)
#define LLM_MAX_BACKOFF_MS 60000
#define LLM_MAX_RETRY_AFTER_S 600

/* What a client connects to and how hard it tries. */
typedef struct LlmSettings
{
	const char *endpoint;		/* base URL, e.g. http://127.0.0.1:11434/v1 */
	const char *api_key;		/* NULL or "": no Authorization header */
	int			timeout_ms;		/* whole request */
	int			connect_timeout_ms;
	int			concurrency;	/* requests in flight at most */
	double		rate_limit;		/* requests started per second; 0: no limit */
	int			max_retries;	/* attempts after the first */
	int			backoff_ms;		/* delay before the first retry, doubled each time */
} LlmSettings;

typedef enum LlmCallKind
{
	LLM_CALL_CHAT,				/* POST {endpoint}/chat/completions */
	LLM_CALL_EMBED				/* POST {endpoint}/embeddings */
} LlmCallKind;

typedef struct LlmClient LlmClient;

/*
 * One request and its outcome.  The caller allocates it (palloc0), sets
 * the first block and submits it; the client hands it back from
 * llm_client_step once it succeeded or failed for good.
 */
typedef struct LlmCall
{
	/* set by the caller */
	LlmCallKind kind;
	char	   *body;			/* the JSON request body (UTF-8) */
	int			n_inputs;		/* embeddings: vectors expected */
	void	   *arg;			/* the caller's */

	/* the outcome */
	bool		ok;
	char	   *content;		/* chat: the answer, server encoding, palloc'd */
	float	   *vectors;		/* embeddings: n_inputs x dim, palloc'd */
	int			dim;
	int64		tokens;			/* usage.total_tokens summed over attempts */
	int			attempts;
	char		error[512];		/* why it failed (last attempt) */

	/* the client's */
	dlist_node	node;			/* in its queue */
	double		not_before;		/* earliest (re)start, seconds of llm_now() */
} LlmCall;

/* Counters of a client's life. */
typedef struct LlmClientStats
{
	int64		requests;		/* attempts sent */
	int64		failed_attempts;	/* attempts that failed (retried or not) */
	int64		retries;		/* attempts that were retried */
	int64		tokens;
} LlmClientStats;

/* Fill settings from the isrf.llm_* settings of this session. */
void		llm_settings_from_gucs(LlmSettings *s);

/*
 * A client whose memory and libcurl handles live in a child of parent; it
 * is released with that context (an error or a cancel releases it too).
 */
LlmClient  *llm_client_create(const LlmSettings *s, MemoryContext parent);
void		llm_client_destroy(LlmClient *c);

/* Queue a call; it starts when a slot, the rate limit and its retry time allow. */
void		llm_client_submit(LlmClient *c, LlmCall *call);

/*
 * Run transfers for up to wait_ms (never blocking longer than 100 ms at a
 * time, and polling for interrupts), and return the calls that finished
 * since the last step: a List of LlmCall *.
 */
List	   *llm_client_step(LlmClient *c, int wait_ms);

/* Calls queued, waiting to retry or in flight. */
int			llm_client_pending(LlmClient *c);

/* Drop every call not finished yet (they are not handed back). */
void		llm_client_abandon(LlmClient *c);

const LlmClientStats *llm_client_stats(LlmClient *c);

/* Seconds since an arbitrary origin (monotonic). */
double		llm_now(void);

/* Run every call submitted until all are back; polls for interrupts. */
void		llm_client_run_all(LlmClient *c);

/* ---- JSON (llm_json.c) --------------------------------------------------- */

/* The body of a chat request: one system and one user message. */
char	   *llm_chat_body(const char *model, const char *system, const char *user,
						  double temperature, int max_tokens);

/* The body of an embeddings request for n texts. */
char	   *llm_embed_body(const char *model, const char *const *texts, int n);

/*
 * Read a chat response: the answer of choices[0].message.content (without
 * a leading <think>...</think> block, trimmed, in the server encoding) and
 * usage.total_tokens.  Returns false with *error set on anything malformed;
 * never raises.
 */
bool		llm_parse_chat(const char *body, size_t len, char **content, int64 *tokens,
						   char *error, size_t error_len);

/*
 * Read an embeddings response of n vectors ordered by their index:
 * vectors (n x dim, palloc'd), dim, usage.total_tokens.
 */
bool		llm_parse_embeddings(const char *body, size_t len, int n, float **vectors,
								 int *dim, int64 *tokens, char *error, size_t error_len);

/* The "error.message" (or "error") string of an error response, or NULL. */
char	   *llm_parse_error_message(const char *body, size_t len);

/* A printable excerpt of untrusted text: valid in the server encoding, at most max bytes. */
char	   *llm_excerpt(const char *s, size_t len, size_t max);

/* ---- embeddings for training (llm_embed.c) -------------------------------- */

typedef struct LlmEmbedReport
{
	int64		cached;			/* texts found in isrf.llm_embeddings */
	int64		fetched;		/* texts embedded by the endpoint */
	int64		requests;
	int64		failed_attempts;
	int			dim;
} LlmEmbedReport;

/*
 * The embeddings of n non-empty texts (server encoding) by the model of
 * isrf.llm_embedding_model: n x report->dim floats in cxt, row i of
 * texts[i].  Cached ones come from isrf.llm_embeddings, the others from the
 * endpoint (and go into the cache); checkpoint(arg), if given, runs every
 * few seconds while requests come back.  Raises if a text cannot be embedded.
 */
/* Error unless isrf.llm_embedding_model names a model. */
void		isrf_llm_require_embedding_model(void);

float	   *isrf_llm_embed(char **texts, int64 n, MemoryContext cxt,
						   void (*checkpoint) (void *arg), void *arg, LlmEmbedReport *report);

#endif							/* ISRF_LLM_H */
