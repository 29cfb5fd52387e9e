/*
 * test/fuzz/support.c
 *	  What the fuzzing harnesses share (see fuzz.h).
 */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/serve.h"
#include "support/model_edit.h"

static IsrfEnv env;
static bool env_ready = false;
static IsrfBackend *backend = NULL;
static uint8_t *seed_buf[2];
static size_t seed_len[2];

IsrfEnv *
fuzz_env(void)
{
	if (!env_ready)
	{
		isrf_env_init_malloc(&env);
		env_ready = true;
	}
	env.status = ISRF_OK;
	env.errmsg[0] = '\0';
	return &env;
}

IsrfBackend *
fuzz_backend(void)
{
	if (backend == NULL)
	{
		isrf_cpu_set_threads(1);
		if (isrf_backend_open(fuzz_env(), ISRF_DEVICE_CPU, NULL, &backend) != ISRF_OK)
		{
			fprintf(stderr, "fuzz: no CPU backend: %s\n", env.errmsg);
			abort();
		}
	}
	return backend;
}

/* Train seed model which (0: with a generative part, 1: without). */
static void
fuzz_train_seed(int which)
{
	IsrfModel	m;
	IsrfEnv    *e = fuzz_env();

	if (isrf_test_small_model(e, fuzz_backend(), which == 0, &m) != ISRF_OK ||
		isrf_model_save(e, &m, &seed_buf[which], &seed_len[which]) != ISRF_OK)
	{
		fprintf(stderr, "fuzz: could not train seed model %d: %s\n", which, e->errmsg);
		abort();
	}
	isrf_model_free(e, &m);
}

void
fuzz_seed_model(int which, const uint8_t **buf, size_t *len)
{
	which = which ? 1 : 0;
	if (seed_buf[which] == NULL)
		fuzz_train_seed(which);
	*buf = seed_buf[which];
	*len = seed_len[which];
}

/* Every harness: with ISRF_FUZZ_WRITE_SEEDS=DIR, write the seed models and exit. */
int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void) argc;
	(void) argv;
	fuzz_maybe_write_seeds();
	return 0;
}

void
fuzz_maybe_write_seeds(void)
{
	const char *dir = getenv("ISRF_FUZZ_WRITE_SEEDS");
	int			which;

	if (dir == NULL)
		return;
	for (which = 0; which < 2; which++)
	{
		const uint8_t *buf;
		size_t		len;
		char		path[4096];
		FILE	   *f;

		fuzz_seed_model(which, &buf, &len);
		snprintf(path, sizeof(path), "%s/%s.isrfmodel", dir, which == 0 ? "generative" : "no_generative");
		f = fopen(path, "wb");
		if (f == NULL || fwrite(buf, 1, len, f) != len || fclose(f) != 0)
		{
			fprintf(stderr, "fuzz: could not write %s\n", path);
			exit(1);
		}
		fprintf(stderr, "fuzz: wrote %s (%zu bytes)\n", path, len);
	}
	exit(0);
}

/* Abort when an answer names an item outside the catalogue. */
static void
fuzz_check_items(const IsrfModel *m, const IsrfRecRequest *rq, const IsrfRecResult *rs)
{
	int32_t		i;

	if (rs->count < 0 || rs->count > rq->k)
	{
		fprintf(stderr, "fuzz: %d items answered for k = %d\n", rs->count, rq->k);
		abort();
	}
	for (i = 0; i < rs->count; i++)
		if (rs->items[i] < 0 || rs->items[i] >= m->n_items)
		{
			fprintf(stderr, "fuzz: item index %d outside the catalogue of %d\n", rs->items[i], m->n_items);
			abort();
		}
}

void
fuzz_serve(const IsrfModel *m, uint32_t knobs)
{
	IsrfEnv    *e = fuzz_env();
	IsrfServeSession *ss;
	IsrfRecRequest req[4];
	IsrfRecResult res[4];
	int32_t		n = 0,
				i,
				big = m->n_items + 3;
	int32_t		hist[3];
	int32_t		cand[6];
	float		scores[6];

	if (isrf_serve_session_open(e, fuzz_backend(), m, &ss) != ISRF_OK)
		return;
	memset(req, 0, sizeof(req));
	req[n++] = (IsrfRecRequest) {m->n_users > 0 ? 0 : -1, 1, 1, NULL, 0};
	req[n++] = (IsrfRecRequest) {m->n_users - 1, big, 20, NULL, 0};
	req[n++] = (IsrfRecRequest) {-1, 7, (int32_t) (knobs % 300) + 1, NULL, 0};
	if (m->n_users > 0)
		req[n++] = (IsrfRecRequest) {(int32_t) ((knobs >> 8) % (uint32_t) m->n_users), 5, 0, NULL, 0};
	for (i = 0; i < n; i++)
	{
		res[i].items = malloc(sizeof(int32_t) * req[i].k);
		res[i].scores = malloc(sizeof(float) * req[i].k);
		res[i].count = 0;
		res[i].cold_start = false;
	}
	if (isrf_serve_recommend(e, ss, n, req, res) == ISRF_OK)
		for (i = 0; i < n; i++)
			fuzz_check_items(m, &req[i], &res[i]);
	for (i = 0; i < n; i++)
	{
		free(res[i].items);
		free(res[i].scores);
	}

	/* candidates: unknown, first, last, chosen; a stored and a given history */
	cand[0] = -1;
	cand[1] = m->n_items > 0 ? 0 : -1;
	cand[2] = m->n_items - 1;
	cand[3] = m->n_items > 0 ? (int32_t) ((knobs >> 16) % (uint32_t) m->n_items) : -1;
	cand[4] = -1;
	cand[5] = m->n_items > 1 ? 1 : -1;
	(void) isrf_serve_rank(fuzz_env(), ss, m->n_users > 0 ? m->n_users - 1 : -1, NULL, 0, 6, cand, scores);
	(void) isrf_serve_rank(fuzz_env(), ss, -1, NULL, 0, 6, cand, scores);
	if (m->n_items > 0)
	{
		hist[0] = 0;
		hist[1] = m->n_items - 1;
		hist[2] = cand[3];
		(void) isrf_serve_rank(fuzz_env(), ss, -1, hist, 3, 6, cand, scores);
		req[0] = (IsrfRecRequest) {-1, 3, 4, hist, 3};
		res[0].items = malloc(sizeof(int32_t) * 3);
		res[0].scores = malloc(sizeof(float) * 3);
		if (isrf_serve_recommend(fuzz_env(), ss, 1, req, res) == ISRF_OK)
			fuzz_check_items(m, &req[0], &res[0]);
		free(res[0].items);
		free(res[0].scores);
	}
	isrf_serve_session_close(ss);
}
