/*
 * test_baselines.c
 *	  Unit tests of metrics.c and baselines.c: HR/NDCG values, full-ranking
 *	  top-k, direct-task ranks and candidates (number for number the same as
 *	  Python's random module, which referee.py uses), Markov + item-kNN
 *	  scores worked out by hand on a toy data set, and the figures of
 *	  ../shared/tools/referee.py on ml100k and beauty when the data is there.
 */
#include "eval/baselines.h"
#include "data/datadir.h"
#include "unit.h"

#include <string.h>
#include <unistd.h>

static IsrfEnv env;

static void
test_metric_values(void)
{
	IsrfMetrics acc = {0};
	IsrfMetrics m;
	int32_t		list[] = {4, 8, 15, 16, 23, 42};

	CHECK(isrf_hr_at(0, 5) == 1.0 && isrf_hr_at(4, 5) == 1.0 && isrf_hr_at(5, 5) == 0.0);
	CHECK(isrf_hr_at(-1, 10) == 0.0);
	CHECK(isrf_ndcg_at(0, 10) == 1.0);
	CHECK_NEAR(isrf_ndcg_at(1, 10), 0.6309297535714575, 1e-15);
	CHECK_NEAR(isrf_ndcg_at(9, 10), 1.0 / log2(11.0), 1e-15);
	CHECK(isrf_ndcg_at(10, 10) == 0.0 && isrf_ndcg_at(5, 5) == 0.0);
	CHECK(isrf_rank_in_list(list, 6, 23) == 4 && isrf_rank_in_list(list, 6, 5) == -1);

	isrf_metrics_add(&acc, 0);
	isrf_metrics_add(&acc, 6);
	isrf_metrics_add(&acc, -1);
	isrf_metrics_add(&acc, 2);
	m = isrf_metrics_mean(&acc);
	CHECK(m.users == 4);
	CHECK_NEAR(m.hr5, 0.5, 1e-15);
	CHECK_NEAR(m.hr10, 0.75, 1e-15);
	CHECK_NEAR(m.ndcg5, (1.0 + 0.5) / 4, 1e-15);
	CHECK_NEAR(m.ndcg10, (1.0 + 1.0 / log2(8.0) + 0.5) / 4, 1e-15);
	acc = (IsrfMetrics) {0};
	m = isrf_metrics_mean(&acc);
	CHECK(m.users == 0 && m.hr10 == 0.0);
}

static void
test_topk_excluding(void)
{
	float		s[] = {0.5f, 2.0f, NAN, 2.0f, 1.0f, 3.0f, 2.0f, -1.0f};
	int32_t		ex[] = {5};
	int32_t		idx[10];
	float		val[10];

	isrf_topk_excluding(s, 8, ex, 1, 4, idx, val);
	/* 5 excluded, ties at 2.0 by lower index, NaN never chosen */
	CHECK(idx[0] == 1 && idx[1] == 3 && idx[2] == 6 && idx[3] == 4);
	CHECK(val[0] == 2.0f && val[3] == 1.0f);
	isrf_topk_excluding(s, 8, NULL, 0, 1, idx, NULL);
	CHECK(idx[0] == 5);
	isrf_topk_excluding(s, 8, ex, 1, 9, idx, val);
	CHECK(idx[5] == 7 && idx[6] == -1 && idx[8] == -1 && val[6] == -INFINITY);
	isrf_topk_excluding(s, 8, ex, 1, 0, idx, val);	/* k = 0: nothing to do */
}

static void
test_direct_rank(void)
{
	double		s[] = {1, 3, 2, 2, 2, NAN};
	double		t[] = {0, 0, 5, 1, 1, 0};

	/* target at 3 (score 2): 1 higher; ties at 2 and 4 */
	CHECK(isrf_direct_rank(s, NULL, 6, 3, true) == 1);
	CHECK(isrf_direct_rank(s, NULL, 6, 3, false) == 2);
	CHECK(isrf_direct_rank(s, NULL, 6, 4, false) == 3);
	/* with popularity: 2 beats 3 and 4; 3 and 4 still tie */
	CHECK(isrf_direct_rank(s, t, 6, 3, true) == 2);
	CHECK(isrf_direct_rank(s, t, 6, 4, false) == 3);
	CHECK(isrf_direct_rank(s, t, 6, 2, false) == 1);
	CHECK(isrf_direct_rank(s, NULL, 6, 5, true) == 5);	/* NaN ranks last */
	CHECK(isrf_direct_rank(s, NULL, 6, 0, true) == 4);	/* NaN does not win */
}

/* Build a dataset from per-user sequences (position = order). */
static IsrfStatus
build(const int64_t *uid, const int64_t *const *seqs, const int *lens, int n_users,
	  const int64_t *cat, int64_t n_cat, IsrfDataset *ds)
{
	int64_t		u[256],
				it[256];
	double		o[256];
	int			n = 0,
				i,
				j;
	IsrfInteractions rows;

	for (i = 0; i < n_users; i++)
		for (j = 0; j < lens[i]; j++)
		{
			u[n] = uid[i];
			it[n] = seqs[i][j];
			o[n] = j + 1;
			n++;
		}
	rows.n = n;
	rows.user_id = u;
	rows.item_id = it;
	rows.order = o;
	return isrf_dataset_build(&env, &rows, cat, n_cat, ds);
}

/* Candidates as Python's random (referee.py's procedure) gives them. */
static void
test_direct_parity(void)
{
	static const int64_t s5[] = {1, 2, 3, 4}, s2[] = {5, 6, 7},
				s9[] = {8, 9, 10, 11, 12}, s4[] = {1, 3}, s7[] = {13, 14, 15, 16};
	const int64_t *seqs[] = {s5, s2, s9, s4, s7};
	int64_t		uid[] = {5, 2, 9, 4, 7};
	int			lens[] = {4, 3, 5, 2, 4};
	int64_t		cat[20];
	IsrfDataset ds;
	IsrfDirectTask t,
				t2;
	static const int64_t want_users[] = {2, 9, 7, 5};
	static const int64_t want_cand[4][4] = {
		{13, 2, 20, 7}, {12, 13, 17, 16}, {16, 5, 10, 11}, {8, 4, 20, 14}};
	static const int64_t want_users64[] = {5, 2, 9, 7};
	static const int64_t want_cand64[4][4] = {
		{17, 4, 6, 5}, {8, 7, 13, 4}, {12, 14, 2, 4}, {4, 6, 16, 5}};
	int			i,
				j,
				bad = 0;

	for (i = 0; i < 20; i++)
		cat[i] = i + 1;
	CHECK(build(uid, seqs, lens, 5, cat, 20, &ds) == ISRF_OK);
	CHECK(isrf_direct_task_build(&env, &ds, ISRF_TARGET_TEST, ISRF_DIRECT_SEED, 3, 0, &t) == ISRF_OK);
	CHECK(t.n_users == 4 && t.n_cand == 4);
	for (i = 0; i < 4 && t.n_users == 4; i++)
	{
		if (ds.user_ids[t.user[i]] != want_users[i])
			bad++;
		for (j = 0; j < 4; j++)
			if (ds.item_ids[t.cand[i * 4 + j]] != want_cand[i][j])
				bad++;
		if (ds.item_ids[t.cand[i * 4 + t.target_pos[i]]] !=
			ds.item_ids[ds.seq[ds.seq_ptr[t.user[i] + 1] - 1]])
			bad++;
	}
	CHECK_MSG(bad == 0, "%d differences from Python's random", bad);

	/* a seed above 2^32 seeds with two key words, as Python does */
	CHECK(isrf_direct_task_build(&env, &ds, ISRF_TARGET_TEST, (1ULL << 40) + 5, 3, 0, &t2) == ISRF_OK);
	bad = 0;
	for (i = 0; i < 4 && t2.n_users == 4; i++)
	{
		if (ds.user_ids[t2.user[i]] != want_users64[i])
			bad++;
		for (j = 0; j < 4; j++)
			if (ds.item_ids[t2.cand[i * 4 + j]] != want_cand64[i][j])
				bad++;
	}
	CHECK_MSG(bad == 0, "%d differences from Python's random (64-bit seed)", bad);
	isrf_direct_task_free(&env, &t2);

	/* the first max_users are the same users and candidates */
	CHECK(isrf_direct_task_build(&env, &ds, ISRF_TARGET_TEST, ISRF_DIRECT_SEED, 3, 2, &t2) == ISRF_OK);
	CHECK(t2.n_users == 2 && t2.user[1] == t.user[1] &&
		  memcmp(t2.cand, t.cand, sizeof(int32_t) * 8) == 0);
	isrf_direct_task_free(&env, &t2);
	isrf_direct_task_free(&env, &t);

	/* validation target: the second-to-last item, never a touched negative */
	CHECK(isrf_direct_task_build(&env, &ds, ISRF_TARGET_VALIDATION, 1, 10, 0, &t) == ISRF_OK);
	bad = 0;
	for (i = 0; i < t.n_users; i++)
	{
		int32_t		uu = t.user[i];
		int32_t		len = isrf_dataset_len(&ds, uu);

		for (j = 0; j < t.n_cand; j++)
		{
			int32_t		x = t.cand[i * t.n_cand + j];
			bool		touched = isrf_rank_in_list(ds.seq + ds.seq_ptr[uu], len, x) >= 0;
			int			k;

			if (j == t.target_pos[i] ? x != ds.seq[ds.seq_ptr[uu] + len - 2] : touched)
				bad++;
			for (k = 0; k < j; k++)
				if (t.cand[i * t.n_cand + k] == x)
					bad++;
		}
	}
	CHECK_MSG(bad == 0 && t.n_users == 4, "%d bad candidates", bad);
	isrf_direct_task_free(&env, &t);
	/* 20 items, user 9 touched 5: 16 negatives cannot be drawn */
	CHECK(isrf_direct_task_build(&env, &ds, ISRF_TARGET_TEST, 1, 16, 0, &t) == ISRF_ERR_INVALID);
	CHECK_MSG(strstr(env.errmsg, "user 9"), "%s", env.errmsg);
	isrf_dataset_free(&env, &ds);
}

/*
 * Toy data, items 1..6 (index = id - 1):
 *	 u1: 1 2 3 | 4 5   u2: 1 2 4 | 6 3   u3: 2 3 1 | 5 6
 * train counts 1:3 2:3 3:2 4:1; transitions 1>2 x2, 2>3 x2, 2>4, 3>1;
 * co 1-2:3 1-3:2 2-3:2 1-4:1 2-4:1.
 */
static void
test_toy(void)
{
	static const int64_t s1[] = {1, 2, 3, 4, 5}, s2[] = {1, 2, 4, 6, 3}, s3[] = {2, 3, 1, 5, 6};
	const int64_t *seqs[] = {s1, s2, s3};
	int64_t		uid[] = {1, 2, 3};
	int			lens[] = {5, 5, 5};
	IsrfDataset ds;
	IsrfBaselines b;
	IsrfBaselineEval ev;
	int32_t		in1234[] = {0, 1, 2, 3};
	int32_t		in2[] = {1};
	int32_t		in4[] = {3};
	int32_t		bad_in[] = {6};
	int32_t		cand[] = {0, 1, 2, 3, 4, 5};
	int32_t		top[10];
	double		sc[10],
				tie[6],
				want[6];
	double		r3 = sqrt(3.0),
				r6 = sqrt(6.0);
	int			i;

	CHECK(build(uid, seqs, lens, 3, NULL, 0, &ds) == ISRF_OK);
	CHECK(isrf_baselines_fit(&env, &ds, &b) == ISRF_OK);
	CHECK(b.pop[0] == 3 && b.pop[1] == 3 && b.pop[2] == 2 && b.pop[3] == 1 && b.pop[4] == 0);
	CHECK(b.pop_order[0] == 0 && b.pop_order[1] == 1 && b.pop_order[2] == 2 &&
		  b.pop_order[3] == 3 && b.pop_order[4] == 4 && b.pop_order[5] == 5);
	CHECK(b.tr_total[0] == 2 && b.tr_total[1] == 3 && b.tr_total[2] == 1 && b.tr_total[3] == 0);

	/* scores of every item after input 1 2 3 4 (weights 1 .6 .36 .216 from 4 back) */
	want[0] = 0.5 / r3 + 0.6 + 0.5 * 0.6 * 2 / r6 + 0.5 * 0.36 * 3 / 3;
	want[1] = 0.5 / r3 + 0.5 * 0.6 * 2 / r6 + 0.216 * 2 / 2 + 0.5 * 0.216 * 3 / 3;
	want[2] = 0.36 * 2 / 3 + 0.5 * 0.36 * 2 / r6 + 0.5 * 0.216 * 2 / r6;
	want[3] = 0.36 / 3 + 0.5 * 0.36 / r3 + 0.5 * 0.216 / r3;
	want[4] = want[5] = 0.0;
	CHECK(isrf_baselines_score(&env, &b, ISRF_BASELINE_MARKOV_KNN, in1234, 4, cand, 6, sc, tie) == ISRF_OK);
	for (i = 0; i < 6; i++)
		CHECK_MSG(fabs(sc[i] - want[i]) < 1e-12, "item %d: %.15g vs %.15g", i + 1, sc[i], want[i]);
	CHECK(tie[0] == 3 && tie[3] == 1 && tie[5] == 0);
	/* scratch is clean after each query: the same answer twice */
	CHECK(isrf_baselines_score(&env, &b, ISRF_BASELINE_MARKOV_KNN, in1234, 4, cand, 6, sc, tie) == ISRF_OK);
	CHECK(fabs(sc[0] - want[0]) < 1e-12 && sc[4] == 0.0);
	CHECK(isrf_baselines_score(&env, &b, ISRF_BASELINE_POPULARITY, in1234, 4, cand, 6, sc, tie) == ISRF_OK);
	CHECK(sc[0] == 3 && sc[2] == 2 && sc[5] == 0);

	/* input 2: 3 (2/3 + .5*2/sqrt6), 4 (1/3 + .5/sqrt3), 1 (.5), then 5 6 by popularity */
	CHECK(isrf_baselines_recommend(&env, &b, ISRF_BASELINE_MARKOV_KNN, in2, 1, 10, top, sc) == ISRF_OK);
	CHECK(top[0] == 2 && top[1] == 3 && top[2] == 0 && top[3] == 4 && top[4] == 5 && top[5] == -1);
	CHECK_NEAR(sc[0], 2.0 / 3 + 1.0 / r6, 1e-12);
	CHECK_NEAR(sc[2], 0.5, 1e-12);
	CHECK(sc[3] == 0.0 && sc[9] == -INFINITY);
	CHECK(isrf_baselines_recommend(&env, &b, ISRF_BASELINE_POPULARITY, in2, 1, 3, top, sc) == ISRF_OK);
	CHECK(top[0] == 0 && top[1] == 2 && top[2] == 3 && sc[0] == 3 && sc[2] == 1);
	/* input 4: items 1 and 2 tie on .5/sqrt3 -> lower index first */
	CHECK(isrf_baselines_recommend(&env, &b, ISRF_BASELINE_MARKOV_KNN, in4, 1, 5, top, NULL) == ISRF_OK);
	CHECK(top[0] == 0 && top[1] == 1 && top[2] == 2 && top[3] == 4 && top[4] == 5);
	CHECK(isrf_baselines_recommend(&env, &b, ISRF_BASELINE_MARKOV_KNN, in4, 1, 1, top, NULL) == ISRF_OK);
	CHECK(top[0] == 0);
	CHECK(isrf_baselines_recommend(&env, &b, ISRF_BASELINE_MARKOV_KNN, bad_in, 1, 1, top, NULL) == ISRF_ERR_INVALID);

	/* test target: ranks 0, 0, 1 for both; validation: 0, 2, 1 */
	CHECK(isrf_baselines_evaluate(&env, &b, &ds, ISRF_TARGET_TEST, NULL, false, &ev) == ISRF_OK);
	for (i = 0; i < ISRF_N_BASELINES; i++)
	{
		CHECK(ev.sequential[i].users == 3 && ev.direct[i].users == 0);
		CHECK_NEAR(ev.sequential[i].hr5, 1.0, 1e-12);
		CHECK_NEAR(ev.sequential[i].ndcg5, (2.0 + 1.0 / log2(3.0)) / 3, 1e-12);
	}
	CHECK(isrf_baselines_evaluate(&env, &b, &ds, ISRF_TARGET_VALIDATION, NULL, false, &ev) == ISRF_OK);
	for (i = 0; i < ISRF_N_BASELINES; i++)
		CHECK_NEAR(ev.sequential[i].ndcg10, (1.0 + 0.5 + 1.0 / log2(3.0)) / 3, 1e-12);
	isrf_baselines_free(&env, &b);
	isrf_dataset_free(&env, &ds);
}

/* The data directory: $ISRF_DATA_DIR, ../shared/data, or next to the build. */
static const char *
data_root(void)
{
	static char buf[1024];
	const char *e = getenv("ISRF_DATA_DIR");

	if (e && *e)
		return e;
	if (access("../shared/data/README.md", F_OK) == 0)
		return "../shared/data";
#ifdef ISRF_BUILD_DIR
	snprintf(buf, sizeof(buf), "%s/../../shared/data", ISRF_BUILD_DIR);
	if (access(buf, F_OK) == 0)
		return buf;
#endif
	(void) buf;
	return NULL;
}

static void
check_figures(const char *name, const IsrfMetrics *got, const double want[4])
{
	double		g[4] = {got->hr5, got->ndcg5, got->hr10, got->ndcg10};
	int			i;

	for (i = 0; i < 4; i++)
		CHECK_MSG(fabs(g[i] - want[i]) <= 0.00005 + 1e-9, "%s metric %d: %.5f vs referee %.4f",
				  name, i, g[i], want[i]);
}

/*
 * referee.py's figures.  Popularity NDCG here ranks equally popular items by
 * id; referee.py keeps Python's first-seen order (ml100k items 181 and 258
 * both have 500 train interactions), which gives NDCG@5/10 0.0196/0.0250
 * there; with ties by id the referee's own code gives the values below.
 * Direct: its 2000 users, ties in the target's favour.
 */
static void
test_real(const char *root, const char *set, const double want[4][4], int32_t n_users)
{
	char		dir[1200];
	IsrfDataDir dd;
	IsrfDataset ds;
	IsrfBaselines b;
	IsrfDirectTask t;
	IsrfBaselineEval ev;
	double		t0 = isrf_now();

	snprintf(dir, sizeof(dir), "%s/%s", root, set);
	if (access(dir, F_OK) != 0)
	{
		printf("test_baselines: %s not found, skipping its referee figures\n", dir);
		return;
	}
	CHECK(isrf_datadir_load(&env, dir, NULL, &dd) == ISRF_OK);
	CHECK(isrf_dataset_build(&env, &dd.corpus.rows, dd.corpus.catalogue_ids,
							 dd.corpus.n_catalogue, &ds) == ISRF_OK);
	isrf_datadir_free(&env, &dd);
	CHECK(ds.n_evaluated == n_users);
	CHECK(isrf_baselines_fit(&env, &ds, &b) == ISRF_OK);
	CHECK(isrf_direct_task_build(&env, &ds, ISRF_TARGET_TEST, ISRF_DIRECT_SEED,
								 ISRF_DIRECT_NEGATIVES, 2000, &t) == ISRF_OK);
	CHECK(isrf_baselines_evaluate(&env, &b, &ds, ISRF_TARGET_TEST, &t, true, &ev) == ISRF_OK);
	check_figures("sequential popularity", &ev.sequential[ISRF_BASELINE_POPULARITY], want[0]);
	check_figures("sequential markov_knn", &ev.sequential[ISRF_BASELINE_MARKOV_KNN], want[1]);
	check_figures("direct popularity", &ev.direct[ISRF_BASELINE_POPULARITY], want[2]);
	check_figures("direct markov_knn", &ev.direct[ISRF_BASELINE_MARKOV_KNN], want[3]);
	printf("test_baselines: %s referee figures checked in %.2f s\n", set, isrf_now() - t0);
	isrf_direct_task_free(&env, &t);
	isrf_baselines_free(&env, &b);
	isrf_dataset_free(&env, &ds);
}

int
main(void)
{
	static const double ml100k[4][4] = {
		{0.0329, 0.0201, 0.0498, 0.0254},
		{0.1230, 0.0835, 0.1845, 0.1033},
		{0.1898, 0.1262, 0.3139, 0.1661},
		{0.4942, 0.3523, 0.6416, 0.4004}};
	/* Markov NDCG: referee.py 0.0446 / 0.0505 with first-seen ties */
	static const double beauty[4][4] = {
		{0.0075, 0.0041, 0.0115, 0.0055},
		{0.0605, 0.0445, 0.0791, 0.0506},
		{0.1740, 0.1132, 0.2790, 0.1471},
		{0.3215, 0.2493, 0.4155, 0.2799}};
	const char *root;

	isrf_env_init_malloc(&env);
	test_metric_values();
	test_topk_excluding();
	test_direct_rank();
	test_direct_parity();
	test_toy();
	root = data_root();
	if (root == NULL)
		printf("test_baselines: no ../shared/data and no $ISRF_DATA_DIR, skipping the referee figures\n");
	else
	{
		test_real(root, "ml100k", ml100k, 943);
		test_real(root, "beauty", beauty, 22363);
	}
	UNIT_END("test_baselines");
}
