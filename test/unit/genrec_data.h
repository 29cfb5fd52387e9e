/*
 * genrec_data.h
 *	  A small random data set for the generative model's unit tests
 *	  (test_genrec, test_parity_model): users with histories of distinct
 *	  items and random features, explicit, group and user vectors.
 */
#ifndef ISRF_GENREC_DATA_H
#define ISRF_GENREC_DATA_H

#include "model/genrec.h"
#include "unit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A small random data set: users with histories over n_items items. */
typedef struct TestData
{
	IsrfGenrecData d;
	int32_t    *seq_ptr,
			   *seq,
			   *n_train;
	float	   *item_feat,
			   *item_exp,
			   *user_exp,
			   *user_grp,
			   *user_feat;
} TestData;

static void
test_data_random(TestData *t, int32_t nu, int32_t ni, int32_t dm, unsigned long long seed)
{
	unsigned long long rs = seed;
	int32_t		u,
				i,
				p = 0;

	memset(t, 0, sizeof(*t));
	t->seq_ptr = malloc(sizeof(int32_t) * (nu + 1));
	t->seq = malloc(sizeof(int32_t) * nu * ni);
	t->n_train = malloc(sizeof(int32_t) * nu);
	t->seq_ptr[0] = 0;
	for (u = 0; u < nu; u++)
	{
		int32_t		len = 3 + (int32_t) (unit_rand_next(&rs) % 6);
		int32_t		start = (int32_t) (unit_rand_next(&rs) % ni);

		if (len > ni)
			len = ni;
		/* distinct items: a run of consecutive indices */
		for (i = 0; i < len; i++)
			t->seq[p++] = (start + i) % ni;
		t->seq_ptr[u + 1] = p;
		t->n_train[u] = len - 2;
	}
	t->item_feat = malloc(sizeof(float) * ni * dm);
	t->item_exp = malloc(sizeof(float) * ni * dm);
	t->user_exp = malloc(sizeof(float) * nu * dm);
	t->user_grp = malloc(sizeof(float) * nu * dm);
	t->user_feat = malloc(sizeof(float) * nu * dm);
	for (i = 0; i < ni * dm; i++)
	{
		t->item_feat[i] = unit_rand_uniform(&rs);
		t->item_exp[i] = unit_rand_uniform(&rs);
	}
	for (i = 0; i < nu * dm; i++)
	{
		t->user_exp[i] = unit_rand_uniform(&rs);
		t->user_grp[i] = unit_rand_uniform(&rs);
		t->user_feat[i] = unit_rand_uniform(&rs);
	}
	t->d.n_users = nu;
	t->d.n_items = ni;
	t->d.dm = dm;
	t->d.seq_ptr = t->seq_ptr;
	t->d.seq = t->seq;
	t->d.n_train = t->n_train;
	t->d.item_feat = t->item_feat;
	t->d.item_explicit = t->item_exp;
	t->d.user_explicit = t->user_exp;
	t->d.user_group = t->user_grp;
	t->d.user_feat = t->user_feat;
	t->d.group_k = 3;
}

static void
test_data_free(TestData *t)
{
	free(t->seq_ptr);
	free(t->seq);
	free(t->n_train);
	free(t->item_feat);
	free(t->item_exp);
	free(t->user_exp);
	free(t->user_grp);
	free(t->user_feat);
}

/*
 * A TF-IDF-like matrix of item text: item i has the words i % 4, 4 + i % 3
 * and 7 + i / 5 with random positive weights, its row of unit length; item
 * 5 has no text.
 */
static void
test_data_text(int32_t n_items, IsrfCsr *m)
{
	unsigned long long rs = 29;
	int32_t		i,
				k;

	m->n_rows = n_items;
	m->n_cols = 7 + n_items / 5 + 1;
	m->rowptr = malloc(sizeof(int32_t) * (n_items + 1));
	m->col = malloc(sizeof(int32_t) * 3 * n_items);
	m->val = malloc(sizeof(float) * 3 * n_items);
	m->rowptr[0] = 0;
	for (i = 0; i < n_items; i++)
	{
		int32_t		p = m->rowptr[i];
		double		ss = 0.0;

		if (i == 5)
		{
			m->rowptr[i + 1] = p;
			continue;
		}
		m->col[p] = i % 4;
		m->col[p + 1] = 4 + i % 3;
		m->col[p + 2] = 7 + i / 5;
		for (k = 0; k < 3; k++)
		{
			m->val[p + k] = 0.2f + (float) (unit_rand_next(&rs) % 100) / 100.0f;
			ss += (double) m->val[p + k] * m->val[p + k];
		}
		for (k = 0; k < 3; k++)
			m->val[p + k] = (float) (m->val[p + k] / sqrt(ss));
		m->rowptr[i + 1] = p + 3;
	}
	m->nnz = m->rowptr[n_items];
}

static void
test_data_text_free(IsrfCsr *m)
{
	free(m->rowptr);
	free(m->col);
	free(m->val);
}

#endif							/* ISRF_GENREC_DATA_H */
