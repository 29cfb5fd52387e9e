/*
 * llm_json.c
 *	  JSON of the LLM endpoints: request bodies, and the few fields read
 *	  back from responses (the chat answer, the embedding vectors, token
 *	  usage, the error message).
 *
 * Responses are untrusted.  They are parsed with PostgreSQL's JSON parser
 * (common/jsonapi.h), which reports malformed input through return codes,
 * driven by semantic actions that follow the path to each wanted field, so
 * that a malformed, truncated or oddly shaped body is a recorded error and
 * never a raised one: the body must be valid UTF-8 without NUL bytes and
 * nest at most LLM_JSON_MAX_DEPTH levels (the parser would raise on
 * excessive nesting) before it is parsed at all.
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "common/jsonapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/json.h"
#include "utils/memutils.h"

#include "llm.h"

#define LLM_JSON_MAX_DEPTH 64
#define LLM_MAX_EMBEDDING_DIM 65536

/* ---- request bodies ------------------------------------------------------ */

/* A JSON string literal of a server-encoded string, as UTF-8. */
static void
llm_json_string(StringInfo b, const char *s)
{
	char	   *u = pg_server_to_any(s, strlen(s), PG_UTF8);

	escape_json(b, u);
	if (u != s)
		pfree(u);
}

char *
llm_chat_body(const char *model, const char *system, const char *user,
			  double temperature, int max_tokens)
{
	StringInfoData b;

	initStringInfo(&b);
	appendStringInfoString(&b, "{\"model\":");
	llm_json_string(&b, model);
	appendStringInfoString(&b, ",\"messages\":[");
	if (system && system[0])
	{
		appendStringInfoString(&b, "{\"role\":\"system\",\"content\":");
		llm_json_string(&b, system);
		appendStringInfoString(&b, "},");
	}
	appendStringInfoString(&b, "{\"role\":\"user\",\"content\":");
	llm_json_string(&b, user);
	appendStringInfoString(&b, "}],\"stream\":false");
	if (temperature >= 0)
		appendStringInfo(&b, ",\"temperature\":%g", temperature);
	if (max_tokens > 0)
		appendStringInfo(&b, ",\"max_tokens\":%d", max_tokens);
	appendStringInfoChar(&b, '}');
	return b.data;
}

char *
llm_embed_body(const char *model, const char *const *texts, int n)
{
	StringInfoData b;
	int			i;

	initStringInfo(&b);
	appendStringInfoString(&b, "{\"model\":");
	llm_json_string(&b, model);
	appendStringInfoString(&b, ",\"input\":[");
	for (i = 0; i < n; i++)
	{
		if (i > 0)
			appendStringInfoChar(&b, ',');
		llm_json_string(&b, texts[i]);
	}
	appendStringInfoString(&b, "]}");
	return b.data;
}

/* ---- response parsing ---------------------------------------------------- */

/* One vector of an embeddings response ("data" element). */
typedef struct LlmJsonVector
{
	float	   *v;
	int			len;
	int			cap;
	int64		index;			/* its "index" field; -1 when absent */
} LlmJsonVector;

typedef struct LlmJsonState
{
	/* the path to the current value: a key per object level, an index per array level */
	int			depth;
	bool		is_array[LLM_JSON_MAX_DEPTH + 2];
	char	   *key[LLM_JSON_MAX_DEPTH + 2];
	int			index[LLM_JSON_MAX_DEPTH + 2];

	/* found */
	char	   *content;
	bool		content_null;
	int64		total_tokens;
	int64		prompt_tokens;
	int64		completion_tokens;
	char	   *error_message;
	LlmJsonVector *vec;
	int			n_vec;
	int			cap_vec;
	char		bad[160];		/* first problem with a wanted field */
} LlmJsonState;

/*
 * Whether the current path is pattern: its n elements are keys, "#" for
 * any array index, or digits for one index.
 */
static bool
llm_path_is(LlmJsonState *st, const char *const *pattern, int n)
{
	int			i;

	if (st->depth != n)
		return false;
	for (i = 0; i < n; i++)
	{
		int			lv = i + 1;
		const char *p = pattern[i];

		if (st->is_array[lv])
		{
			if (strcmp(p, "#") == 0)
				continue;
			if (p[0] < '0' || p[0] > '9' || atoi(p) != st->index[lv])
				return false;
		}
		else if (st->key[lv] == NULL || strcmp(st->key[lv], p) != 0)
			return false;
	}
	return true;
}

static void
llm_bad(LlmJsonState *st, const char *what)
{
	if (st->bad[0] == '\0')
		strlcpy(st->bad, what, sizeof(st->bad));
}

static void
llm_push(LlmJsonState *st, bool is_array)
{
	/* the depth was checked before parsing; stay in bounds regardless */
	if (st->depth >= LLM_JSON_MAX_DEPTH + 1)
	{
		llm_bad(st, "nested too deeply");
		return;
	}
	st->depth++;
	st->is_array[st->depth] = is_array;
	st->key[st->depth] = NULL;
	st->index[st->depth] = -1;
}

static void
llm_object_start(void *arg)
{
	llm_push(arg, false);
}

static void
llm_array_start(void *arg)
{
	llm_push(arg, true);
}

static void
llm_pop(void *arg)
{
	LlmJsonState *st = arg;

	if (st->depth > 0)
		st->depth--;
}

static void
llm_field_start(void *arg, char *fname, bool isnull)
{
	LlmJsonState *st = arg;

	(void) isnull;
	if (st->depth > 0 && !st->is_array[st->depth])
		st->key[st->depth] = fname;
}

static void
llm_element_start(void *arg, bool isnull)
{
	LlmJsonState *st = arg;

	(void) isnull;
	if (st->depth > 0 && st->is_array[st->depth])
		st->index[st->depth]++;
}

/* The embeddings vector of data element i, grown on demand. */
static LlmJsonVector *
llm_vector(LlmJsonState *st, int i)
{
	if (i < 0 || i >= 1000000)
		return NULL;
	if (i >= st->cap_vec)
	{
		int			cap = Max(i + 1, st->cap_vec * 2);
		int			j;

		st->vec = st->vec ? repalloc(st->vec, sizeof(LlmJsonVector) * cap)
			: palloc(sizeof(LlmJsonVector) * cap);
		memset(st->vec + st->cap_vec, 0, sizeof(LlmJsonVector) * (cap - st->cap_vec));
		for (j = st->cap_vec; j < cap; j++)
			st->vec[j].index = -1;
		st->cap_vec = cap;
	}
	st->n_vec = Max(st->n_vec, i + 1);
	return &st->vec[i];
}

/* An integer token, or false. */
static bool
llm_int(const char *token, int64 *out)
{
	char	   *end;
	double		d = strtod(token, &end);

	if (*end != '\0' || !isfinite(d) || d < 0 || d > 1e15 || d != floor(d))
		return false;
	*out = (int64) d;
	return true;
}

static void
llm_scalar(void *arg, char *token, JsonTokenType type)
{
	LlmJsonState *st = arg;
	static const char *const p_content[] = {"choices", "0", "message", "content"};
	static const char *const p_total[] = {"usage", "total_tokens"};
	static const char *const p_prompt[] = {"usage", "prompt_tokens"};
	static const char *const p_completion[] = {"usage", "completion_tokens"};
	static const char *const p_error_msg[] = {"error", "message"};
	static const char *const p_error[] = {"error"};
	static const char *const p_emb[] = {"data", "#", "embedding", "#"};
	static const char *const p_index[] = {"data", "#", "index"};

	if (llm_path_is(st, p_content, 4))
	{
		if (type == JSON_TOKEN_STRING)
			st->content = token;
		else if (type == JSON_TOKEN_NULL)
			st->content_null = true;
		else
			llm_bad(st, "choices[0].message.content is not a string");
	}
	else if (type == JSON_TOKEN_NUMBER && llm_path_is(st, p_total, 2))
		(void) llm_int(token, &st->total_tokens);
	else if (type == JSON_TOKEN_NUMBER && llm_path_is(st, p_prompt, 2))
		(void) llm_int(token, &st->prompt_tokens);
	else if (type == JSON_TOKEN_NUMBER && llm_path_is(st, p_completion, 2))
		(void) llm_int(token, &st->completion_tokens);
	else if (type == JSON_TOKEN_STRING && (llm_path_is(st, p_error_msg, 2) || llm_path_is(st, p_error, 1)))
		st->error_message = token;
	else if (llm_path_is(st, p_emb, 4))
	{
		LlmJsonVector *v = llm_vector(st, st->index[2]);
		char	   *end;
		double		d;

		if (v == NULL || type != JSON_TOKEN_NUMBER)
		{
			llm_bad(st, "an embedding holds something other than numbers");
			return;
		}
		d = strtod(token, &end);
		if (*end != '\0' || !isfinite(d) || fabs(d) > FLT_MAX)
		{
			llm_bad(st, "an embedding holds a number out of range");
			return;
		}
		if (v->len >= LLM_MAX_EMBEDDING_DIM)
		{
			llm_bad(st, "an embedding has too many dimensions");
			return;
		}
		if (v->len == v->cap)
		{
			v->cap = Max(64, v->cap * 2);
			v->v = v->v ? repalloc(v->v, sizeof(float) * v->cap) : palloc(sizeof(float) * v->cap);
		}
		v->v[v->len++] = (float) d;
	}
	else if (llm_path_is(st, p_index, 3))
	{
		LlmJsonVector *v = llm_vector(st, st->index[2]);
		int64		ix;

		if (v == NULL || type != JSON_TOKEN_NUMBER || !llm_int(token, &ix))
			llm_bad(st, "data[].index is not a non-negative integer");
		else
			v->index = ix;
	}
}

/* Valid UTF-8 without NUL bytes, nested at most LLM_JSON_MAX_DEPTH deep. */
static bool
llm_precheck(const char *body, size_t len, char *error, size_t error_len)
{
	size_t		i;
	int			depth = 0;
	bool		in_string = false;

	if (len == 0)
	{
		snprintf(error, error_len, "empty response");
		return false;
	}
	if (len > (size_t) LLM_MAX_RESPONSE_BYTES || !pg_verify_mbstr(PG_UTF8, body, (int) len, true))
	{
		snprintf(error, error_len, "malformed response: not valid UTF-8 text");
		return false;
	}
	for (i = 0; i < len; i++)
	{
		char		ch = body[i];

		if (in_string)
		{
			if (ch == '\\')
				i++;
			else if (ch == '"')
				in_string = false;
		}
		else if (ch == '"')
			in_string = true;
		else if (ch == '{' || ch == '[')
		{
			if (++depth > LLM_JSON_MAX_DEPTH)
			{
				snprintf(error, error_len, "malformed response: JSON nested more than %d deep",
						 LLM_JSON_MAX_DEPTH);
				return false;
			}
		}
		else if (ch == '}' || ch == ']')
			depth--;
	}
	return true;
}

/* Parse body into st; false with error set when it is not JSON or a wanted field is malformed. */
static bool
llm_parse(const char *body, size_t len, LlmJsonState *st, char *error, size_t error_len)
{
	JsonLexContext *lex;
	JsonSemAction sem;
	JsonParseErrorType rc;

	memset(st, 0, sizeof(*st));
	if (!llm_precheck(body, len, error, error_len))
		return false;
	memset(&sem, 0, sizeof(sem));
	sem.semstate = st;
	sem.object_start = llm_object_start;
	sem.object_end = llm_pop;
	sem.array_start = llm_array_start;
	sem.array_end = llm_pop;
	sem.object_field_start = llm_field_start;
	sem.array_element_start = llm_element_start;
	sem.scalar = llm_scalar;
	lex = makeJsonLexContextCstringLen((char *) body, (int) len, PG_UTF8, true);
	rc = pg_parse_json(lex, &sem);
	if (rc != JSON_SUCCESS)
	{
		char	   *detail = json_errdetail(rc, lex);

		snprintf(error, error_len, "malformed response: %s", llm_excerpt(detail, strlen(detail), 200));
		return false;
	}
	if (st->bad[0])
	{
		snprintf(error, error_len, "malformed response: %s", st->bad);
		return false;
	}
	return true;
}

/* A UTF-8 string in the server encoding, or NULL if it cannot be converted. */
static char *
llm_to_server(const char *s)
{
	MemoryContext cxt = CurrentMemoryContext;
	char	   *volatile out = NULL;

	if (GetDatabaseEncoding() == PG_UTF8)
		return pstrdup(s);
	/* a pure conversion: nothing but memory to release on failure */
	PG_TRY();
	{
		out = pg_any_to_server(s, strlen(s), PG_UTF8);
		if (out == s)
			out = pstrdup(s);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		FlushErrorState();
		out = NULL;
	}
	PG_END_TRY();
	return out;
}

/* Drop a leading <think>...</think> block (reasoning models) and trim. */
static char *
llm_clean_answer(char *s, bool *unfinished)
{
	char	   *end;

	*unfinished = false;
	while (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')
		s++;
	if (strncmp(s, "<think>", 7) == 0)
	{
		char	   *close = strstr(s, "</think>");

		if (close == NULL)
		{
			*unfinished = true;
			return s;
		}
		s = close + 8;
		while (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')
			s++;
	}
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\n' || end[-1] == '\r' || end[-1] == '\t'))
		*--end = '\0';
	return s;
}

bool
llm_parse_chat(const char *body, size_t len, char **content, int64 *tokens,
			   char *error, size_t error_len)
{
	LlmJsonState st;
	char	   *answer;
	bool		unfinished;

	*content = NULL;
	*tokens = 0;
	if (!llm_parse(body, len, &st, error, error_len))
		return false;
	*tokens = st.total_tokens > 0 ? st.total_tokens : st.prompt_tokens + st.completion_tokens;
	if (st.content == NULL)
	{
		if (st.error_message)
			snprintf(error, error_len, "error response: %s",
					 llm_excerpt(st.error_message, strlen(st.error_message), 300));
		else
			snprintf(error, error_len, "malformed response: no choices[0].message.content%s",
					 st.content_null ? " (null)" : "");
		return false;
	}
	answer = llm_clean_answer(st.content, &unfinished);
	if (unfinished)
	{
		snprintf(error, error_len, "the answer ends inside its <think> block (raise max_tokens)");
		return false;
	}
	if (answer[0] == '\0')
	{
		snprintf(error, error_len, "empty answer");
		return false;
	}
	*content = llm_to_server(answer);
	if (*content == NULL)
	{
		snprintf(error, error_len, "the answer cannot be represented in the database encoding");
		return false;
	}
	return true;
}

bool
llm_parse_embeddings(const char *body, size_t len, int n, float **vectors,
					 int *dim, int64 *tokens, char *error, size_t error_len)
{
	LlmJsonState st;
	float	   *out;
	bool	   *seen;
	int			d,
				i;
	bool		indexed;

	*vectors = NULL;
	*dim = 0;
	*tokens = 0;
	if (!llm_parse(body, len, &st, error, error_len))
		return false;
	*tokens = st.total_tokens > 0 ? st.total_tokens : st.prompt_tokens;
	if (st.n_vec == 0 && st.error_message)
	{
		snprintf(error, error_len, "error response: %s",
				 llm_excerpt(st.error_message, strlen(st.error_message), 300));
		return false;
	}
	if (st.n_vec != n)
	{
		snprintf(error, error_len, "malformed response: %d embeddings for %d inputs", st.n_vec, n);
		return false;
	}
	d = st.vec[0].len;
	indexed = st.vec[0].index >= 0;
	for (i = 0; i < n; i++)
		if (st.vec[i].len != d || d == 0 || (st.vec[i].index >= 0) != indexed)
		{
			snprintf(error, error_len, "malformed response: embeddings of different or zero dimension");
			return false;
		}
	out = palloc(sizeof(float) * (size_t) n * d);
	seen = palloc0(sizeof(bool) * n);
	for (i = 0; i < n; i++)
	{
		int64		at = indexed ? st.vec[i].index : i;

		if (at < 0 || at >= n || seen[at])
		{
			pfree(out);
			snprintf(error, error_len, "malformed response: embedding indexes are not 0..%d", n - 1);
			return false;
		}
		seen[at] = true;
		memcpy(out + (size_t) at * d, st.vec[i].v, sizeof(float) * d);
	}
	*vectors = out;
	*dim = d;
	return true;
}

char *
llm_parse_error_message(const char *body, size_t len)
{
	LlmJsonState st;
	char		error[64];

	if (!llm_parse(body, len, &st, error, sizeof(error)) || st.error_message == NULL)
		return NULL;
	return llm_excerpt(st.error_message, strlen(st.error_message), 300);
}

char *
llm_excerpt(const char *s, size_t len, size_t max)
{
	size_t		n = Min(len, max),
				i;
	char	   *out = palloc(n + 4);

	/* printable ASCII only: always valid in any server encoding */
	for (i = 0; i < n; i++)
	{
		unsigned char ch = (unsigned char) s[i];

		out[i] = (ch == '\n' || ch == '\r' || ch == '\t') ? ' ' :
			(ch >= 0x20 && ch < 0x7f) ? (char) ch : '?';
	}
	if (len > max)
	{
		memcpy(out + n, "...", 3);
		n += 3;
	}
	out[n] = '\0';
	return out;
}
