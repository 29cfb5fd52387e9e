/*
 * cmd_group_quality.c
 *	  isrf_driver group-quality DIR: is the group graph better than chance?
 *
 * For every evaluated user u with test item t_u, over its group neighbours
 * v (K per user) and, as the baseline, the same number of users drawn
 * uniformly at random (fixed seed):
 *	  same-test  how often t_v == t_u (v evaluated);
 *	  overlap    how often t_u is among v's TRAIN items;
 *	  coverage   share of users for whom at least one v has t_u in train.
 * The lift is neighbour rate / random rate.  When the directory's users.csv
 * has a "group" column (the synthetic generator's planted groups), it also
 * prints precision@K of recovering them, against the rate chance gives.
 */
#include "commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct GroupRates
{
	int64_t		pairs_eval;		/* pairs with v evaluated */
	int64_t		same_test;
	int64_t		pairs;
	int64_t		overlap;
	int64_t		users;
	int64_t		covered;
} GroupRates;

static uint64_t
gq_rand(uint64_t *s)
{
	uint64_t	z = (*s += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static int32_t
gq_test_item(const IsrfDataset *ds, int32_t u)
{
	return ds->seq[ds->seq_ptr[u + 1] - 1];
}

static bool
gq_in_train(const IsrfDataset *ds, int32_t v, int32_t item)
{
	const int32_t *h = ds->seq + ds->seq_ptr[v];
	int32_t		t;

	for (t = 0; t < ds->n_train[v]; t++)
		if (h[t] == item)
			return true;
	return false;
}

/* Add user u's pairs with the users in nb[0..len) to the rates. */
static void
gq_count(const IsrfDataset *ds, int32_t u, const int32_t *nb, int32_t len, GroupRates *r)
{
	int32_t		tu = gq_test_item(ds, u),
				j;
	bool		cov = false;

	r->users++;
	for (j = 0; j < len; j++)
	{
		int32_t		v = nb[j];
		bool		o = gq_in_train(ds, v, tu);

		if (ds->evaluated[v])
		{
			r->pairs_eval++;
			r->same_test += gq_test_item(ds, v) == tu;
		}
		r->pairs++;
		r->overlap += o;
		cov |= o;
	}
	r->covered += cov;
}

static double
gq_rate(int64_t a, int64_t b)
{
	return b > 0 ? (double) a / (double) b : 0.0;
}

static void
gq_print(const char *what, double nb, double rnd)
{
	printf("%-10s neighbours %.5f  random %.5f  lift %s", what, nb, rnd,
		   rnd > 0 ? "" : "n/a\n");
	if (rnd > 0)
		printf("%.1f\n", nb / rnd);
}

/*
 * Planted groups from DIR/users.csv (user_id, group); returns false
 * quietly when there are none.  group[u] = -1 for users not listed.
 */
static bool
gq_planted(IsrfEnv *env, const char *dir, const IsrfDataset *ds, int32_t *group)
{
	char		path[4096];
	IsrfCsv		csv;
	int32_t		cu,
				cg;
	int64_t		r;

	snprintf(path, sizeof(path), "%s/users.csv", dir);
	if (isrf_csv_read(env, path, &csv) != ISRF_OK)
	{
		env->status = ISRF_OK;
		env->errmsg[0] = '\0';
		return false;
	}
	cu = isrf_csv_column(&csv, "user_id");
	cg = isrf_csv_column(&csv, "group");
	if (cu < 0 || cg < 0)
	{
		isrf_csv_free(env, &csv);
		return false;
	}
	for (r = 0; r < ds->n_users; r++)
		group[r] = -1;
	for (r = 0; r < csv.n_rows; r++)
	{
		int32_t		u = isrf_dataset_user_index(ds, strtoll(isrf_csv_cell(&csv, r, cu), NULL, 10));

		if (u >= 0)
			group[u] = (int32_t) strtol(isrf_csv_cell(&csv, r, cg), NULL, 10);
	}
	isrf_csv_free(env, &csv);
	return true;
}

/* precision@K of planted groups, and what chance would give. */
static void
gq_group_precision(const IsrfDataset *ds, const IsrfCsr *g, const int32_t *group)
{
	int64_t		hits = 0,
				pairs = 0,
				n_known = 0,
				same_pairs = 0;
	double		prec_sum = 0;
	int32_t		u,
				max_g = -1,
				users = 0;
	int64_t    *size;

	for (u = 0; u < ds->n_users; u++)
		if (group[u] > max_g)
			max_g = group[u];
	size = calloc((size_t) max_g + 2, sizeof(int64_t));
	for (u = 0; u < ds->n_users; u++)
		if (group[u] >= 0)
		{
			size[group[u]]++;
			n_known++;
		}
	for (u = 0; u < ds->n_users; u++)
	{
		int32_t		p,
					h = 0,
					len = g->rowptr[u + 1] - g->rowptr[u];

		if (group[u] < 0 || len == 0)
			continue;
		for (p = g->rowptr[u]; p < g->rowptr[u + 1]; p++)
			h += group[g->col[p]] == group[u];
		hits += h;
		pairs += len;
		prec_sum += (double) h / len;
		users++;
	}
	for (u = 0; u <= max_g; u++)
		same_pairs += size[u] * (size[u] - 1);
	printf("planted    precision@K %.4f over %d users (%lld of %lld pairs in-group); "
		   "chance %.4f\n", users ? prec_sum / users : 0.0, users, (long long) hits,
		   (long long) pairs,
		   n_known > 1 ? (double) same_pairs / ((double) n_known * (n_known - 1)) : 0.0);
	free(size);
}

int
driver_cmd_group_quality(int argc, char **argv)
{
	DriverOpts	o;
	IsrfEnv		env;
	IsrfBackend *be;
	DriverData	dd;
	IsrfGroupGraphConfig kcfg;
	IsrfCsr		g;
	GroupRates	rn,
				rr;
	int32_t    *rnd = NULL,
			   *group = NULL;
	uint64_t	seed;
	int32_t		u;
	IsrfDataset *ds;
	double		t0;
	int			rc;

	if ((rc = driver_start(argc, argv, "group-quality", false, &o, &env, &be, &dd)) >= 0)
		return rc;
	ds = &dd.ds;
	driver_knn_config(&o, &kcfg);
	t0 = isrf_now();
	if (isrf_group_graph_build(&env, be, dd.sem.user, ds->n_users, dd.sem.dm, &kcfg, &g) != ISRF_OK)
	{
		driver_data_free(&env, &dd);
		isrf_backend_close(be);
		return driver_report(&env, "group graph");
	}
	printf("group graph: %d users (%d from descriptions, %d from train history, %d without), "
		   "K=%d, %d edges, %.2f s\n", ds->n_users, dd.sem.n_users_with_description,
		   dd.sem.n_users_from_history, dd.sem.n_users_without, o.k, g.nnz,
		   isrf_now() - t0);
	if (dd.sem.n_users_with_description > 0)
		printf("note: user descriptions were used; where they were written from the whole "
			   "history (goodreads), they saw the test item\n");

	memset(&rn, 0, sizeof(rn));
	memset(&rr, 0, sizeof(rr));
	rnd = malloc(sizeof(int32_t) * ((size_t) o.k + 1));
	seed = o.seed;
	for (u = 0; u < ds->n_users; u++)
	{
		int32_t		len = g.rowptr[u + 1] - g.rowptr[u],
					j;

		if (!ds->evaluated[u] || len == 0 || ds->n_users < 2)
			continue;
		gq_count(ds, u, g.col + g.rowptr[u], len, &rn);
		for (j = 0; j < len; j++)
		{
			int32_t		v;

			do
				v = (int32_t) (gq_rand(&seed) % (uint64_t) ds->n_users);
			while (v == u);
			rnd[j] = v;
		}
		gq_count(ds, u, rnd, len, &rr);
	}
	printf("evaluated users with neighbours: %lld\n", (long long) rn.users);
	gq_print("same-test", gq_rate(rn.same_test, rn.pairs_eval), gq_rate(rr.same_test, rr.pairs_eval));
	gq_print("overlap", gq_rate(rn.overlap, rn.pairs), gq_rate(rr.overlap, rr.pairs));
	gq_print("coverage", gq_rate(rn.covered, rn.users), gq_rate(rr.covered, rr.users));

	group = malloc(sizeof(int32_t) * ((size_t) ds->n_users + 1));
	if (gq_planted(&env, o.dir, ds, group))
		gq_group_precision(ds, &g, group);
	free(group);
	free(rnd);
	isrf_csr_free(&env, &g);
	driver_data_free(&env, &dd);
	isrf_backend_close(be);
	return 0;
}
