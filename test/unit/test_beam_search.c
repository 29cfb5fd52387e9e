/*
 * test_beam_search.c
 *	  Unit tests of the code trie and constrained beam search: the trie's
 *	  structure against the codes, exact top-N against an exhaustive search
 *	  when the beam is wide enough, valid distinct items with smaller beams,
 *	  exclusion (with widening), N beyond the catalogue, ties, batching
 *	  equal to one request at a time, and bad input.
 */
#include "model/beam_search.h"
#include "unit.h"

#include <string.h>

#define T_LEVELS 3

static const int32_t t_sizes[T_LEVELS] = {4, 3, 5};

/* Deterministic log-probability of code at level given request and prefix. */
typedef struct Scorer
{
	uint64_t	seed;			/* per request: seed + request id */
	const int32_t *req_ids;		/* batch position -> request id */
	int			levels;
	bool		ties;			/* coarse values, so many scores tie */
	/* validation of what the search passes in */
	const IsrfTrie *trie;
	int			calls;
	int			bad;
} Scorer;

static float
score_of(const Scorer *sc, int req_id, int level, const int32_t *prefix, int code)
{
	unsigned long long h = sc->seed * 1000003ULL + (unsigned long long) req_id * 7919ULL;
	int			d;

	for (d = 0; d < level; d++)
		h = h * 31ULL + (unsigned long long) prefix[d] + 1ULL;
	h = h * 131ULL + (unsigned long long) level * 17ULL + (unsigned long long) code;
	{
		unsigned long long st = h;
		float		u = unit_rand_uniform(&st);	/* [-1, 1) */

		if (sc->ties)
			return -(float) ((int) ((u + 1.0f) * 1.5f));	/* 0, -1, -2 */
		return -3.0f * (u + 1.0f);
	}
}

/* True when prefix[0..level) leads somewhere in the trie. */
static bool
valid_prefix(const IsrfTrie *t, const int32_t *prefix, int level)
{
	int32_t		u = 0,
				d,
				v;

	for (d = 0; d < level; d++)
	{
		for (v = t->first_child[u]; v < t->first_child[u] + t->n_children[u]; v++)
			if (t->code[v] == prefix[d])
				break;
		if (v == t->first_child[u] + t->n_children[u])
			return false;
		u = v;
	}
	return true;
}

static IsrfStatus
score_step(void *arg, int level, int n_beams, const int32_t *beam_request,
		   const int32_t *prefix_codes, float *logp)
{
	Scorer	   *sc = arg;
	int			b,
				c,
				cb = t_sizes[level];

	sc->calls++;
	for (b = 0; b < n_beams; b++)
	{
		const int32_t *p = prefix_codes + (size_t) b * level;

		if (b > 0 && beam_request[b] < beam_request[b - 1])
			sc->bad++;
		if (sc->trie && !valid_prefix(sc->trie, p, level))
			sc->bad++;
		for (c = 0; c < cb; c++)
			logp[(size_t) b * cb + c] = score_of(sc, sc->req_ids[beam_request[b]], level, p, c);
	}
	return ISRF_OK;
}

/* A catalogue of n distinct random codes over t_sizes. */
static void
make_codes(int n, unsigned long long seed, int32_t *codes)
{
	int			total = t_sizes[0] * t_sizes[1] * t_sizes[2];
	int		   *perm = malloc(sizeof(int) * total);
	int			i;

	for (i = 0; i < total; i++)
		perm[i] = i;
	for (i = total - 1; i > 0; i--)
	{
		int			j = (int) (unit_rand_next(&seed) % (unsigned long long) (i + 1)),
					t = perm[i];

		perm[i] = perm[j];
		perm[j] = t;
	}
	for (i = 0; i < n; i++)
	{
		codes[i * 3 + 0] = perm[i] / (t_sizes[1] * t_sizes[2]);
		codes[i * 3 + 1] = (perm[i] / t_sizes[2]) % t_sizes[1];
		codes[i * 3 + 2] = perm[i] % t_sizes[2];
	}
	free(perm);
}

/* Lexicographic order of two codes. */
static int
code_cmp(const int32_t *a, const int32_t *b)
{
	int			d;

	for (d = 0; d < T_LEVELS; d++)
		if (a[d] != b[d])
			return a[d] < b[d] ? -1 : 1;
	return 0;
}

/* Exhaustive top-N: every non-excluded item scored, best first, ties by code. */
static int
exhaustive(const Scorer *sc, int req_id, const int32_t *codes, int n,
		   const int32_t *excl, int n_excl, int want, int32_t *items, float *scores)
{
	int32_t    *cand = malloc(sizeof(int32_t) * n);
	float	   *cs = malloc(sizeof(float) * n);
	int			m = 0,
				i,
				j,
				d;

	for (i = 0; i < n; i++)
	{
		bool		ex = false;
		float		s = 0.0f;

		for (j = 0; j < n_excl; j++)
			ex |= excl[j] == i;
		if (ex)
			continue;
		for (d = 0; d < T_LEVELS; d++)
		{
			float		lp = score_of(sc, req_id, d, codes + i * 3, codes[i * 3 + d]);

			s = s + lp;
		}
		cand[m] = i;
		cs[m] = s;
		m++;
	}
	/* selection sort: small */
	for (i = 0; i < m; i++)
	{
		int			best = i;

		for (j = i + 1; j < m; j++)
		{
			int			cmp = 0;

			if (cs[j] != cs[best])
				cmp = cs[j] > cs[best] ? -1 : 1;
			else
				cmp = code_cmp(codes + cand[j] * 3, codes + cand[best] * 3);
			if (cmp < 0)
				best = j;
		}
		{
			int32_t		ti = cand[i];
			float		ts = cs[i];

			cand[i] = cand[best];
			cs[i] = cs[best];
			cand[best] = ti;
			cs[best] = ts;
		}
	}
	for (i = 0; i < want && i < m; i++)
	{
		items[i] = cand[i];
		scores[i] = cs[i];
	}
	free(cand);
	free(cs);
	return m < want ? m : want;
}

static void
test_trie(IsrfEnv *env)
{
	int			n = 40,
				i,
				v,
				bad = 0;
	int32_t    *codes = malloc(sizeof(int32_t) * n * 3);
	IsrfTrie	t;

	make_codes(n, 5, codes);
	CHECK(isrf_trie_build(env, codes, n, T_LEVELS, t_sizes, &t) == ISRF_OK);
	CHECK(t.n_items == n && t.levels == 3);
	CHECK(t.n_leaves[0] == n);
	CHECK(t.level_start[0] == 0 && t.level_start[1] == 1);
	CHECK(t.level_start[4] == t.n_nodes);
	CHECK(t.level_start[4] - t.level_start[3] == n);
	/* every item found by its code, and its leaf path spells the code */
	for (i = 0; i < n; i++)
	{
		int			d = 2;

		bad += isrf_trie_lookup(&t, codes + i * 3) != i;
		for (v = t.item_leaf[i]; v > 0; v = t.parent[v], d--)
			bad += t.code[v] != codes[i * 3 + d];
		bad += d != -1;
	}
	CHECK_MSG(bad == 0, "%d lookup/path errors", bad);
	/* children sorted, contiguous, parent links, leaf counts add up */
	bad = 0;
	for (v = 0; v < t.level_start[3]; v++)
	{
		int			c,
					sum = 0;

		bad += t.n_children[v] < 1;
		for (c = t.first_child[v]; c < t.first_child[v] + t.n_children[v]; c++)
		{
			bad += t.parent[c] != v;
			if (c > t.first_child[v])
				bad += t.code[c] <= t.code[c - 1];
			sum += t.n_leaves[c];
		}
		bad += sum != t.n_leaves[v];
	}
	CHECK_MSG(bad == 0, "%d structure errors", bad);
	/* a code not in the catalogue */
	{
		int32_t		probe[3];
		int			total = 60,
					found = 0;

		for (i = 0; i < total; i++)
		{
			probe[0] = i / 15;
			probe[1] = (i / 5) % 3;
			probe[2] = i % 5;
			found += isrf_trie_lookup(&t, probe) >= 0;
		}
		CHECK(found == n);
	}
	isrf_trie_free(env, &t);

	/* duplicate codes and codes out of range are refused by name */
	memcpy(codes + 3, codes, sizeof(int32_t) * 3);
	CHECK(isrf_trie_build(env, codes, n, T_LEVELS, t_sizes, &t) == ISRF_ERR_INVALID);
	CHECK_MSG(strstr(env->errmsg, "items 0 and 1") || strstr(env->errmsg, "items 1 and 0"),
			  "%s", env->errmsg);
	codes[3 + 2] = 5;
	CHECK(isrf_trie_build(env, codes, n, T_LEVELS, t_sizes, &t) == ISRF_ERR_INVALID);
	CHECK_MSG(strstr(env->errmsg, "item 1 has code 5 at level 2"), "%s", env->errmsg);
	free(codes);
}

/* Beam width covering the whole code space gives the exhaustive top-N. */
static void
test_exact(IsrfEnv *env, bool ties)
{
	int			n = 40,
				r,
				i;
	int32_t    *codes = malloc(sizeof(int32_t) * n * 3);
	IsrfTrie	t;
	int32_t		req_ids[1];
	int32_t		items[60],
				ref[60],
				count;
	float		scores[60],
				rs[60];
	Scorer		sc = {.seed = 3, .req_ids = req_ids, .ties = ties};
	int			bad = 0;

	make_codes(n, 9, codes);
	CHECK(isrf_trie_build(env, codes, n, T_LEVELS, t_sizes, &t) == ISRF_OK);
	sc.trie = &t;
	for (r = 0; r < 20; r++)
	{
		IsrfBeamRequest rq = {NULL, 0, 10};
		int			m;

		req_ids[0] = r;
		CHECK(isrf_beam_search(env, &t, 60, score_step, &sc, 1, &rq, items, scores,
							   &count) == ISRF_OK);
		m = exhaustive(&sc, r, codes, n, NULL, 0, 10, ref, rs);
		bad += count != m;
		for (i = 0; i < m; i++)
			bad += items[i] != ref[i] || scores[i] != rs[i];
	}
	CHECK_MSG(bad == 0, "%d differences from exhaustive search (ties %d)", bad, ties);
	CHECK(sc.bad == 0);
	CHECK(sc.calls == 20 * 3);
	isrf_trie_free(env, &t);
	free(codes);
}

/* Small beams: valid, distinct, sorted, scored right, exclusions honoured. */
static void
test_small_beams(IsrfEnv *env)
{
	int			n = 40,
				r,
				i,
				j,
				wdt;
	int32_t    *codes = malloc(sizeof(int32_t) * n * 3);
	IsrfTrie	t;
	int32_t		req_ids[1];
	int32_t		items[60],
				count;
	float		scores[60];
	Scorer		sc = {.seed = 17, .req_ids = req_ids};
	int			bad = 0,
				short_count = 0;
	const int32_t excl[] = {3, 7, 7, 11, 0};

	make_codes(n, 21, codes);
	CHECK(isrf_trie_build(env, codes, n, T_LEVELS, t_sizes, &t) == ISRF_OK);
	sc.trie = &t;
	for (wdt = 1; wdt <= 4; wdt++)
		for (r = 0; r < 10; r++)
		{
			IsrfBeamRequest rq = {excl, 5, 6};

			req_ids[0] = r;
			CHECK(isrf_beam_search(env, &t, wdt, score_step, &sc, 1, &rq, items, scores,
								   &count) == ISRF_OK);
			short_count += count != 6;
			for (i = 0; i < count; i++)
			{
				float		s = 0.0f;
				int			d;

				bad += items[i] < 0 || items[i] >= n;
				if (items[i] < 0 || items[i] >= n)
					continue;
				for (j = 0; j < 5; j++)
					bad += items[i] == excl[j];
				for (j = 0; j < i; j++)
					bad += items[i] == items[j];
				for (d = 0; d < 3; d++)
					s += score_of(&sc, r, d, codes + items[i] * 3, codes[items[i] * 3 + d]);
				bad += s != scores[i];
				if (i > 0)
					bad += scores[i] > scores[i - 1];
			}
		}
	CHECK_MSG(bad == 0, "%d invalid results from small beams", bad);
	CHECK_MSG(short_count == 0, "%d requests got fewer than 6 items", short_count);
	CHECK(sc.bad == 0);

	/* the wide beam with the same exclusions equals the exhaustive answer */
	{
		IsrfBeamRequest rq = {excl, 5, 12};
		int32_t		ref[60];
		float		rs[60];
		int			m;

		req_ids[0] = 4;
		CHECK(isrf_beam_search(env, &t, 100, score_step, &sc, 1, &rq, items, scores,
							   &count) == ISRF_OK);
		m = exhaustive(&sc, 4, codes, n, excl, 5, 12, ref, rs);
		CHECK(count == m && m == 12);
		bad = 0;
		for (i = 0; i < m; i++)
			bad += items[i] != ref[i] || scores[i] != rs[i];
		CHECK(bad == 0);
	}
	isrf_trie_free(env, &t);
	free(codes);
}

/*
 * Widening: with beam width 1, excluding all but a few items (whole
 * subtrees included) still returns every remaining item; N beyond the
 * catalogue returns what exists and pads.
 */
static void
test_widening(IsrfEnv *env)
{
	int			n = 40,
				i,
				j;
	int32_t    *codes = malloc(sizeof(int32_t) * n * 3);
	IsrfTrie	t;
	int32_t		req_ids[1] = {0};
	int32_t		items[80],
				count;
	float		scores[80];
	int32_t		excl[40];
	int			n_excl = 0,
				bad = 0;
	Scorer		sc = {.seed = 5, .req_ids = req_ids};

	make_codes(n, 33, codes);
	CHECK(isrf_trie_build(env, codes, n, T_LEVELS, t_sizes, &t) == ISRF_OK);
	sc.trie = &t;
	/* keep only items 5, 17 and 29: every other subtree is fully excluded */
	for (i = 0; i < n; i++)
		if (i != 5 && i != 17 && i != 29)
			excl[n_excl++] = i;
	{
		IsrfBeamRequest rq = {excl, n_excl, 3};

		CHECK(isrf_beam_search(env, &t, 1, score_step, &sc, 1, &rq, items, scores,
							   &count) == ISRF_OK);
		CHECK(count == 3);
		for (i = 0; i < 3; i++)
			bad += !(items[i] == 5 || items[i] == 17 || items[i] == 29);
		bad += items[0] == items[1] || items[1] == items[2] || items[0] == items[2];
		CHECK(bad == 0);
	}
	/* N larger than what is left: all of it, then padding */
	{
		IsrfBeamRequest rq = {excl, n_excl, 10};

		CHECK(isrf_beam_search(env, &t, 2, score_step, &sc, 1, &rq, items, scores,
							   &count) == ISRF_OK);
		CHECK(count == 3);
		for (i = 3; i < 10; i++)
			CHECK(items[i] == -1 && isinf(scores[i]) && scores[i] < 0);
	}
	/* N larger than the catalogue, no exclusion, width 1 */
	{
		IsrfBeamRequest rq = {NULL, 0, 80};
		int			seen[40] = {0};

		CHECK(isrf_beam_search(env, &t, 1, score_step, &sc, 1, &rq, items, scores,
							   &count) == ISRF_OK);
		CHECK(count == n);
		bad = 0;
		for (i = 0; i < count; i++)
			if (items[i] >= 0 && items[i] < n)
				seen[items[i]]++;
			else
				bad++;
		for (i = 0; i < n; i++)
			bad += seen[i] != 1;
		for (i = 1; i < count; i++)
			bad += scores[i] > scores[i - 1];
		CHECK(bad == 0);
		for (j = n; j < 80; j++)
			CHECK(items[j] == -1);
	}
	/* everything excluded, and N = 0: nothing, no step call */
	{
		IsrfBeamRequest rq[2] = {{excl, n_excl, 0}, {NULL, 0, 0}};
		int32_t		all[40],
					cnt2[2];

		for (i = 0; i < n; i++)
			all[i] = n - 1 - i;
		rq[0].exclude = all;
		rq[0].n_exclude = n;
		rq[0].n_results = 4;
		sc.calls = 0;
		CHECK(isrf_beam_search(env, &t, 3, score_step, &sc, 2, rq, items, scores,
							   cnt2) == ISRF_OK);
		CHECK(cnt2[0] == 0 && cnt2[1] == 0);
		CHECK(items[0] == -1 && items[3] == -1);
		CHECK(sc.calls == 0);
	}
	CHECK(sc.bad == 0);
	isrf_trie_free(env, &t);
	free(codes);
}

/* A batch of requests gives what each request gives alone. */
static void
test_batch(IsrfEnv *env)
{
	int			n = 40,
				nreq = 12,
				r,
				i,
				total = 0,
				off,
				bad = 0;
	int32_t    *codes = malloc(sizeof(int32_t) * n * 3);
	IsrfTrie	t;
	IsrfBeamRequest rq[12];
	int32_t		excl[12][6];
	int32_t		req_ids[12];
	int32_t		items[200],
				one[40],
				counts[12],
				c1;
	float		scores[200],
				s1[40];
	unsigned long long seed = 77;
	Scorer		sc = {.seed = 8, .req_ids = req_ids};

	make_codes(n, 44, codes);
	CHECK(isrf_trie_build(env, codes, n, T_LEVELS, t_sizes, &t) == ISRF_OK);
	sc.trie = &t;
	for (r = 0; r < nreq; r++)
	{
		int			ne = (int) (unit_rand_next(&seed) % 7);

		for (i = 0; i < ne; i++)
			excl[r][i] = (int32_t) (unit_rand_next(&seed) % (unsigned long long) n);
		rq[r].exclude = excl[r];
		rq[r].n_exclude = ne;
		rq[r].n_results = (int) (unit_rand_next(&seed) % 12);	/* 0 .. 11 */
		req_ids[r] = 100 + r;
		total += rq[r].n_results;
	}
	CHECK(total <= 200);
	CHECK(isrf_beam_search(env, &t, 4, score_step, &sc, nreq, rq, items, scores,
						   counts) == ISRF_OK);
	off = 0;
	for (r = 0; r < nreq; r++)
	{
		int32_t		saved = req_ids[0];

		req_ids[0] = 100 + r;
		CHECK(isrf_beam_search(env, &t, 4, score_step, &sc, 1, &rq[r], one, s1,
							   &c1) == ISRF_OK);
		req_ids[0] = saved;
		bad += c1 != counts[r];
		for (i = 0; i < rq[r].n_results; i++)
			bad += one[i] != items[off + i] || memcmp(&s1[i], &scores[off + i], sizeof(float));
		off += rq[r].n_results;
	}
	CHECK_MSG(bad == 0, "%d differences between batch and single requests", bad);
	CHECK(sc.bad == 0);

	/* bad exclusions and widths are refused */
	{
		int32_t		bad_ex[1] = {40};
		IsrfBeamRequest b1 = {bad_ex, 1, 3};

		CHECK(isrf_beam_search(env, &t, 4, score_step, &sc, 1, &b1, items, scores,
							   counts) == ISRF_ERR_INVALID);
		CHECK_MSG(strstr(env->errmsg, "excludes item 40"), "%s", env->errmsg);
		CHECK(isrf_beam_search(env, &t, 0, score_step, &sc, 1, &rq[0], items, scores,
							   counts) == ISRF_ERR_INVALID);
	}
	isrf_trie_free(env, &t);
	free(codes);
}

/* A step that fails stops the search with its status. */
static IsrfStatus
failing_step(void *arg, int level, int n_beams, const int32_t *beam_request,
			 const int32_t *prefix_codes, float *logp)
{
	IsrfEnv    *env = arg;

	(void) n_beams;
	(void) beam_request;
	(void) prefix_codes;
	(void) logp;
	if (level == 1)
		return isrf_fail(env, ISRF_ERR_DEVICE, "decoder failed at level %d", level);
	for (int i = 0; i < n_beams * t_sizes[level]; i++)
		logp[i] = NAN;			/* NaN counts as -infinity, never a crash */
	return ISRF_OK;
}

static void
test_step_failure(IsrfEnv *env)
{
	int			n = 10;
	int32_t		codes[30];
	IsrfTrie	t;
	IsrfBeamRequest rq = {NULL, 0, 3};
	int32_t		items[3],
				count;
	float		scores[3];

	make_codes(n, 2, codes);
	CHECK(isrf_trie_build(env, codes, n, T_LEVELS, t_sizes, &t) == ISRF_OK);
	CHECK(isrf_beam_search(env, &t, 2, failing_step, env, 1, &rq, items, scores,
						   &count) == ISRF_ERR_DEVICE);
	CHECK(strstr(env->errmsg, "level 1") != NULL);
	isrf_trie_free(env, &t);
}

int
main(void)
{
	IsrfEnv		env;

	isrf_env_init_malloc(&env);
	test_trie(&env);
	test_exact(&env, false);
	test_exact(&env, true);
	test_small_beams(&env);
	test_widening(&env);
	test_batch(&env);
	test_step_failure(&env);
	UNIT_END("test_beam_search");
}
