/*
 * llm_client.c
 *	  A client for OpenAI-compatible chat and embeddings endpoints on
 *	  libcurl's multi interface: many requests in flight at once, a rate
 *	  limit, retries with exponential backoff that honour Retry-After, and
 *	  waits that always poll for interrupts.
 *
 * libcurl is initialised lazily, in the process that first sends a request
 * (never in the postmaster: isrf.so is preloaded there).  Its threaded
 * resolver starts a thread per name lookup from inside curl_multi_perform,
 * so that call (and adding a handle) runs with every signal blocked: the
 * thread inherits the mask and PostgreSQL's signals reach only the main
 * thread.  The write callback runs on the main thread inside libcurl and
 * must not raise: it uses malloc and returns 0 to stop a transfer.
 *
 * Every libcurl handle and buffer belongs to a transfer record in the
 * client's memory context; a reset callback on that context releases them,
 * so an error or a cancel (a longjmp out of the caller) leaks nothing.
 */
#include "postgres.h"

#include <curl/curl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>

#include "common/pg_prng.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/pmsignal.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"

#include "llm.h"

/* One attempt in flight: the libcurl handle and its response. */
typedef struct LlmTransfer
{
	dlist_node	node;
	LlmCall    *call;
	CURL	   *easy;
	char	   *resp;			/* malloc'd */
	size_t		len;
	size_t		cap;
	bool		too_large;
	char		errbuf[CURL_ERROR_SIZE];
} LlmTransfer;

struct LlmClient
{
	MemoryContext cxt;
	MemoryContext scratch;		/* parsing, reset after each response */
	LlmSettings s;
	char	   *chat_url;
	char	   *embed_url;
	struct curl_slist *headers;
	CURLM	   *multi;
	dlist_head	queue;			/* calls waiting to start or to retry */
	dlist_head	running;		/* LlmTransfer */
	int			n_queued;
	int			n_running;
	List	   *done;			/* finished since the last step */
	double		next_start;		/* rate limit: earliest next start */
	LlmClientStats stats;
	MemoryContextCallback release;
};

static bool llm_curl_ready = false;

/* Hand a call back from the next step (the list lives in the client's memory). */
static void
llm_done(LlmClient *c, LlmCall *call)
{
	MemoryContext old = MemoryContextSwitchTo(c->cxt);

	c->done = lappend(c->done, call);
	MemoryContextSwitchTo(old);
}

double
llm_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

/* Block every signal; returns the mask to restore. */
static sigset_t
llm_block_signals(void)
{
	sigset_t	all,
				old;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	return old;
}

static void
llm_restore_signals(const sigset_t *old)
{
	pthread_sigmask(SIG_SETMASK, old, NULL);
}

/* curl_global_init once per process, after fork, with signals blocked. */
static void
llm_curl_init(void)
{
	CURLcode	rc;
	sigset_t	old;

	if (llm_curl_ready)
		return;
	old = llm_block_signals();
	rc = curl_global_init(CURL_GLOBAL_DEFAULT);
	llm_restore_signals(&old);
	if (rc != CURLE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("could not initialise libcurl: %s", curl_easy_strerror(rc))));
	llm_curl_ready = true;
}

/* Free a transfer's libcurl handle and buffer (not the record). */
static void
llm_transfer_free(LlmClient *c, LlmTransfer *t)
{
	if (t->easy)
	{
		curl_multi_remove_handle(c->multi, t->easy);
		curl_easy_cleanup(t->easy);
		t->easy = NULL;
	}
	free(t->resp);
	t->resp = NULL;
	t->len = t->cap = 0;
}

/* The header list holds the key: wipe it before libcurl frees it. */
static void
llm_free_headers(struct curl_slist *h)
{
	struct curl_slist *p;

	for (p = h; p; p = p->next)
		if (p->data)
			explicit_bzero(p->data, strlen(p->data));
	curl_slist_free_all(h);
}

/* Reset callback of the client's context: release every libcurl resource. */
static void
llm_client_release(void *arg)
{
	LlmClient  *c = arg;
	dlist_mutable_iter it;

	dlist_foreach_modify(it, &c->running)
	{
		LlmTransfer *t = dlist_container(LlmTransfer, node, it.cur);

		llm_transfer_free(c, t);
	}
	dlist_init(&c->running);
	dlist_init(&c->queue);
	c->n_running = c->n_queued = 0;
	if (c->multi)
		curl_multi_cleanup(c->multi);
	c->multi = NULL;
	llm_free_headers(c->headers);
	c->headers = NULL;
}

/* Append to a header list, or raise; the caller wipes line afterwards. */
static struct curl_slist *
llm_header(struct curl_slist *h, const char *line)
{
	struct curl_slist *n = curl_slist_append(h, line);

	if (n == NULL)
	{
		llm_free_headers(h);
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	}
	return n;
}

LlmClient *
llm_client_create(const LlmSettings *s, MemoryContext parent)
{
	MemoryContext cxt = AllocSetContextCreate(parent, "isrf llm client", ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	LlmClient  *c = palloc0(sizeof(LlmClient));
	char	   *base;
	size_t		n;
	const char *p;

	c->cxt = cxt;
	c->scratch = AllocSetContextCreate(cxt, "isrf llm response", ALLOCSET_DEFAULT_SIZES);
	c->s = *s;
	dlist_init(&c->queue);
	dlist_init(&c->running);
	c->release.func = llm_client_release;
	c->release.arg = c;
	MemoryContextRegisterResetCallback(cxt, &c->release);

	if (s->endpoint == NULL || s->endpoint[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("isrf.llm_endpoint is not set"),
				 errhint("A superuser sets it, e.g. ALTER SYSTEM SET isrf.llm_endpoint = 'http://127.0.0.1:11434/v1'.")));
	base = pstrdup(s->endpoint);
	n = strlen(base);
	while (n > 0 && base[n - 1] == '/')
		base[--n] = '\0';
	c->s.endpoint = base;
	c->chat_url = psprintf("%s/chat/completions", base);
	c->embed_url = psprintf("%s/embeddings", base);
	c->s.api_key = NULL;		/* kept only in the header list */
	/* the settings' own ranges, whatever a job's row says */
	c->s.concurrency = Max(1, Min(s->concurrency, LLM_MAX_CONCURRENCY));
	c->s.max_retries = Max(0, Min(s->max_retries, 100));
	c->s.backoff_ms = Max(0, Min(s->backoff_ms, LLM_MAX_BACKOFF_MS));
	c->s.timeout_ms = Max(100, Min(s->timeout_ms, 3600000));
	c->s.connect_timeout_ms = Max(100, Min(s->connect_timeout_ms, 600000));
	c->s.rate_limit = (s->rate_limit > 0 && isfinite(s->rate_limit)) ? s->rate_limit : 0;

	llm_curl_init();
	c->headers = llm_header(NULL, "Content-Type: application/json");
	c->headers = llm_header(c->headers, "Accept: application/json");
	c->headers = llm_header(c->headers, "Expect:");	/* no 100-continue round trip */
	if (s->api_key && s->api_key[0])
	{
		char	   *line;

		for (p = s->api_key; *p; p++)
			if ((unsigned char) *p < ' ' || *p == 0x7f)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("isrf.llm_api_key contains control characters")));
		line = psprintf("Authorization: Bearer %s", s->api_key);
		c->headers = llm_header(c->headers, line);
		explicit_bzero(line, strlen(line));
		pfree(line);
	}
	c->multi = curl_multi_init();
	if (c->multi == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("could not create a libcurl multi handle")));
	/* keep a connection per request in flight */
	curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long) c->s.concurrency);
	MemoryContextSwitchTo(old);
	return c;
}

void
llm_client_destroy(LlmClient *c)
{
	if (c)
		MemoryContextDelete(c->cxt);
}

const LlmClientStats *
llm_client_stats(LlmClient *c)
{
	return &c->stats;
}

int
llm_client_pending(LlmClient *c)
{
	return c->n_queued + c->n_running;
}

void
llm_client_submit(LlmClient *c, LlmCall *call)
{
	call->ok = false;
	call->error[0] = '\0';
	call->not_before = 0;
	dlist_push_tail(&c->queue, &call->node);
	c->n_queued++;
}

void
llm_client_abandon(LlmClient *c)
{
	dlist_mutable_iter it;

	dlist_foreach_modify(it, &c->running)
	{
		LlmTransfer *t = dlist_container(LlmTransfer, node, it.cur);

		dlist_delete(&t->node);
		llm_transfer_free(c, t);
		pfree(t);
	}
	dlist_init(&c->queue);
	c->n_queued = c->n_running = 0;
	c->done = NIL;
}

/* libcurl's write callback: append to the transfer's buffer, never raise. */
static size_t
llm_write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	LlmTransfer *t = userdata;
	size_t		n = size * nmemb;

	if (t->len + n > LLM_MAX_RESPONSE_BYTES)
	{
		t->too_large = true;
		return 0;
	}
	if (t->len + n + 1 > t->cap)
	{
		size_t		cap = Max(Max(t->cap * 2, t->len + n + 1), (size_t) 4096);
		char	   *p = realloc(t->resp, cap);

		if (p == NULL)
			return 0;
		t->resp = p;
		t->cap = cap;
	}
	memcpy(t->resp + t->len, ptr, n);
	t->len += n;
	t->resp[t->len] = '\0';
	return n;
}

/* Start one attempt of a call; false (and the call failed) if libcurl cannot. */
static bool
llm_start(LlmClient *c, LlmCall *call)
{
	LlmTransfer *t = MemoryContextAllocZero(c->cxt, sizeof(LlmTransfer));
	CURL	   *e = curl_easy_init();
	CURLMcode	mc;
	sigset_t	old;

	if (e == NULL)
	{
		pfree(t);
		snprintf(call->error, sizeof(call->error), "could not create a libcurl handle");
		return false;
	}
	t->call = call;
	t->easy = e;
	curl_easy_setopt(e, CURLOPT_URL, call->kind == LLM_CALL_CHAT ? c->chat_url : c->embed_url);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long) strlen(call->body));
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, call->body);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->headers);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, llm_write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(e, CURLOPT_PRIVATE, t);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long) c->s.timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long) c->s.connect_timeout_ms);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "isrf/0.1");
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);

	old = llm_block_signals();
	mc = curl_multi_add_handle(c->multi, e);
	llm_restore_signals(&old);
	if (mc != CURLM_OK)
	{
		curl_easy_cleanup(e);
		pfree(t);
		snprintf(call->error, sizeof(call->error), "could not start a request: %s",
				 curl_multi_strerror(mc));
		return false;
	}
	dlist_push_tail(&c->running, &t->node);
	c->n_running++;
	call->attempts++;
	c->stats.requests++;
	return true;
}

/* Start queued calls while slots, their retry times and the rate limit allow. */
static void
llm_start_ready(LlmClient *c)
{
	dlist_mutable_iter it;
	double		now = llm_now();

	dlist_foreach_modify(it, &c->queue)
	{
		LlmCall    *call = dlist_container(LlmCall, node, it.cur);

		if (c->n_running >= c->s.concurrency)
			break;
		if (call->not_before > now)
			continue;
		if (c->s.rate_limit > 0)
		{
			if (c->next_start > now)
				break;
			c->next_start = Max(c->next_start, now) + 1.0 / c->s.rate_limit;
		}
		dlist_delete(&call->node);
		c->n_queued--;
		if (!llm_start(c, call))
			llm_done(c, call);
	}
}

/* Seconds until the next queued call may start (a large number if none). */
static double
llm_next_wait(LlmClient *c)
{
	dlist_iter	it;
	double		now = llm_now(),
				w = 3600.0;

	if (c->n_running >= c->s.concurrency)
		return w;
	dlist_foreach(it, &c->queue)
	{
		LlmCall    *call = dlist_container(LlmCall, node, it.cur);

		w = Min(w, call->not_before - now);
	}
	if (c->n_queued > 0 && c->s.rate_limit > 0)
		w = Max(w, c->next_start - now);
	return Max(w, 0.0);
}

/*
 * Whether a failed attempt is worth repeating: transport errors and
 * timeouts, answers that could not be read, 408, 409, 425, 429 and 5xx.
 */
static bool
llm_retryable(CURLcode res, long status, bool too_large)
{
	if (too_large)
		return false;
	if (res != CURLE_OK)
		return !(res == CURLE_UNSUPPORTED_PROTOCOL || res == CURLE_URL_MALFORMAT ||
				 res == CURLE_NOT_BUILT_IN);
	return (status >= 200 && status < 300) || status == 408 || status == 409 ||
		status == 425 || status == 429 || status >= 500;
}

/*
 * Judge a finished attempt: a parsed answer, a retry (after Retry-After or
 * the backoff), or a final failure.
 */
static void
llm_finish(LlmClient *c, LlmTransfer *t, CURLcode res)
{
	LlmCall    *call = t->call;
	long		status = 0;
	curl_off_t	retry_after = 0;
	bool		ok = false;
	bool		retry;
	MemoryContext old;

	curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(t->easy, CURLINFO_RETRY_AFTER, &retry_after);
	/* parse in scratch memory; only the results are kept */
	old = MemoryContextSwitchTo(c->scratch);
	if (res != CURLE_OK)
	{
		if (t->too_large)
			snprintf(call->error, sizeof(call->error), "response larger than %d bytes",
					 LLM_MAX_RESPONSE_BYTES);
		else
			snprintf(call->error, sizeof(call->error), "%s%s%s", curl_easy_strerror(res),
					 t->errbuf[0] ? ": " : "", t->errbuf);
	}
	else if (status >= 200 && status < 300)
	{
		int64		tokens = 0;

		if (call->kind == LLM_CALL_CHAT)
			ok = llm_parse_chat(t->resp ? t->resp : "", t->len, &call->content, &tokens,
								call->error, sizeof(call->error));
		else
			ok = llm_parse_embeddings(t->resp ? t->resp : "", t->len, call->n_inputs,
									  &call->vectors, &call->dim, &tokens,
									  call->error, sizeof(call->error));
		call->tokens += tokens;
		c->stats.tokens += tokens;
	}
	else
	{
		char	   *msg = llm_parse_error_message(t->resp ? t->resp : "", t->len);

		if (msg == NULL)
			msg = llm_excerpt(t->resp ? t->resp : "", t->len, 200);
		snprintf(call->error, sizeof(call->error), "HTTP %ld%s%s", status,
				 msg[0] ? ": " : "", msg);
	}
	MemoryContextSwitchTo(old);
	if (ok && call->content)
		call->content = MemoryContextStrdup(c->cxt, call->content);
	if (ok && call->vectors)
	{
		float	   *v = MemoryContextAlloc(c->cxt, sizeof(float) * (size_t) call->n_inputs * call->dim);

		memcpy(v, call->vectors, sizeof(float) * (size_t) call->n_inputs * call->dim);
		call->vectors = v;
	}
	if (!ok)
	{
		call->content = NULL;
		call->vectors = NULL;
	}
	MemoryContextReset(c->scratch);

	dlist_delete(&t->node);
	c->n_running--;
	retry = !ok && llm_retryable(res, status, t->too_large) && call->attempts <= c->s.max_retries;
	llm_transfer_free(c, t);
	pfree(t);

	if (ok)
	{
		call->ok = true;
		call->error[0] = '\0';
		llm_done(c, call);
		return;
	}
	c->stats.failed_attempts++;
	if (!retry)
	{
		llm_done(c, call);
		return;
	}
	c->stats.retries++;
	if (retry_after > 0)
		call->not_before = llm_now() + (double) Min(retry_after, (curl_off_t) LLM_MAX_RETRY_AFTER_S);
	else
	{
		double		ms = (double) c->s.backoff_ms * pow(2.0, Min(call->attempts - 1, 20));

		ms = Min(ms, (double) LLM_MAX_BACKOFF_MS);
		/* jitter, so that failed calls do not come back all at once */
		ms *= 0.5 + 0.5 * pg_prng_double(&pg_global_prng_state);
		call->not_before = llm_now() + ms / 1000.0;
	}
	dlist_push_tail(&c->queue, &call->node);
	c->n_queued++;
}

/* Let libcurl move every transfer on, then collect the finished ones. */
static void
llm_perform(LlmClient *c)
{
	int			still;
	int			left;
	CURLMsg    *msg;
	sigset_t	old;
	CURLMcode	mc;

	old = llm_block_signals();
	mc = curl_multi_perform(c->multi, &still);
	llm_restore_signals(&old);
	if (mc != CURLM_OK)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("libcurl failed: %s", curl_multi_strerror(mc))));
	while ((msg = curl_multi_info_read(c->multi, &left)) != NULL)
	{
		LlmTransfer *t = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &t);
		if (t)
			llm_finish(c, t, msg->data.result);
	}
}

List *
llm_client_step(LlmClient *c, int wait_ms)
{
	double		deadline = llm_now() + wait_ms / 1000.0;
	List	   *done;

	for (;;)
	{
		double		now,
					w;
		int			ms;

		llm_start_ready(c);
		if (c->n_running > 0)
			llm_perform(c);
		if (c->done != NIL || wait_ms <= 0)
			break;
		now = llm_now();
		if (now >= deadline)
			break;
		w = Min(Min(deadline - now, 0.1), llm_next_wait(c));
		ms = Max(1, (int) ceil(w * 1000.0));
		if (c->n_running > 0)
		{
			CURLMcode	mc = curl_multi_poll(c->multi, NULL, 0, ms, NULL);

			if (mc != CURLM_OK)
				ereport(ERROR,
						(errcode(ERRCODE_SYSTEM_ERROR),
						 errmsg("libcurl failed: %s", curl_multi_strerror(mc))));
		}
		else
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, ms,
							 PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
		if (!PostmasterIsAlive())
			proc_exit(1);
		CHECK_FOR_INTERRUPTS();
	}
	done = c->done;
	c->done = NIL;
	return done;
}

void
llm_client_run_all(LlmClient *c)
{
	while (llm_client_pending(c) > 0)
	{
		CHECK_FOR_INTERRUPTS();
		list_free(llm_client_step(c, 100));
	}
}
