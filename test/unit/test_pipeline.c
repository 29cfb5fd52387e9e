/*
 * test_pipeline.c
 *	  The training pipeline end to end on synthetic data with planted
 *	  groups: stage order, that the group graph recovers the groups, model
 *	  save/load round trip and damage detection, and configuration keys.
 */
#include "train/pipeline.h"
#include "data/synthetic.h"
#include "unit.h"

#include <string.h>

static char stages_seen[256];

static IsrfStatus
record_stage(void *arg, const char *stage)
{
	(void) arg;
	strcat(stages_seen, stage);
	strcat(stages_seen, " ");
	return ISRF_OK;
}

static IsrfStatus
stop_at_group(void *arg, const char *stage)
{
	IsrfEnv    *env = arg;

	if (strcmp(stage, "group_graph") == 0)
		return isrf_fail(env, ISRF_ERR_CANCELLED, "stopped by test");
	return ISRF_OK;
}

int
main(void)
{
	IsrfEnv		env;
	IsrfBackend *be;
	IsrfSynthConfig sc = {600, 200, 6, 12, 11};
	IsrfSynthData sd;
	IsrfTrainConfig cfg;
	IsrfCorpus	corpus;
	IsrfModel	m,
				m2;
	double	   *order;
	IsrfTextPiece *items,
			   *users;
	char	  (*texts)[256];
	int64_t		i;
	int32_t		u,
				p;
	int64_t		same = 0,
				total = 0,
				self_edges = 0;
	uint8_t    *buf;
	size_t		len;

	isrf_env_init_malloc(&env);
	CHECK(isrf_backend_open(&env, ISRF_DEVICE_CPU, NULL, &be) == ISRF_OK);
	CHECK(isrf_synth_generate(&env, &sc, &sd) == ISRF_OK);

	/* a corpus as the glue or the driver would build it */
	order = malloc(sizeof(double) * sd.n_rows);
	for (i = 0; i < sd.n_rows; i++)
		order[i] = sd.position[i];
	texts = malloc(sizeof(*texts) * (sc.n_items * 2 + sc.n_users));
	items = malloc(sizeof(IsrfTextPiece) * sc.n_items * 2);
	users = malloc(sizeof(IsrfTextPiece) * sc.n_users);
	for (i = 0; i < sc.n_items; i++)
	{
		isrf_synth_item_text(&sc, &sd, (int32_t) i, 0, texts[2 * i], 256);
		isrf_synth_item_text(&sc, &sd, (int32_t) i, 2, texts[2 * i + 1], 256);
		items[2 * i] = (IsrfTextPiece) {i + 1, texts[2 * i], strlen(texts[2 * i]), 1.0f};
		items[2 * i + 1] = (IsrfTextPiece) {i + 1, texts[2 * i + 1], strlen(texts[2 * i + 1]), 1.0f};
	}
	for (i = 0; i < sc.n_users; i++)
	{
		char	   *t = texts[2 * sc.n_items + i];

		isrf_synth_user_text(&sc, &sd, (int32_t) i, t, 256);
		users[i] = (IsrfTextPiece) {i + 1, t, strlen(t), 1.0f};
	}
	memset(&corpus, 0, sizeof(corpus));
	corpus.rows.n = sd.n_rows;
	corpus.rows.user_id = sd.user_id;
	corpus.rows.item_id = sd.item_id;
	corpus.rows.order = order;
	corpus.item_text = items;
	corpus.n_item_text = sc.n_items * 2;
	corpus.user_text = users;
	corpus.n_user_text = sc.n_users;

	/* the generative stage has its own tests (test_genrec); keep it short here */
	{
		static const char *const keys[] = {"dm", "group_k", "layers", "epochs"};
		static const char *const values[] = {"32", "10", "2", "1"};

		CHECK(isrf_train_config_parse(&env, 4, keys, values, &cfg) == ISRF_OK);
	}
	CHECK(isrf_train(&env, be, &corpus, &cfg, &(IsrfTrainHooks) {record_stage, NULL, NULL}, &m) == ISRF_OK);
	CHECK_MSG(strcmp(stages_seen, "split features group_graph lightgcn train done ") == 0, "%s", stages_seen);
	CHECK(m.n_users == sc.n_users && m.n_items == sc.n_items && m.dm == 32);
	CHECK(m.group.nnz == sc.n_users * 10);
	CHECK(m.stats.n_users_with_description == sc.n_users);

	/* neighbours come from the user's planted group */
	for (u = 0; u < m.n_users; u++)
		for (p = m.group.rowptr[u]; p < m.group.rowptr[u + 1]; p++)
		{
			int32_t		v = m.group.col[p];

			self_edges += v == u;
			same += sd.user_group[m.user_ids[u] - 1] == sd.user_group[m.user_ids[v] - 1];
			total++;
		}
	CHECK(self_edges == 0);
	printf("group precision@10: %.3f (chance %.3f)\n", (double) same / total, 1.0 / sc.n_groups);
	CHECK_MSG((double) same / total > 0.8, "precision %.3f", (double) same / total);

	/* round trip */
	CHECK(isrf_model_save(&env, &m, &buf, &len) == ISRF_OK);
	CHECK(isrf_model_load(&env, buf, len, &m2) == ISRF_OK);
	CHECK(m2.n_users == m.n_users && m2.group.nnz == m.group.nnz);
	CHECK(memcmp(m2.user_group, m.user_group, sizeof(float) * m.n_users * m.dm) == 0);
	CHECK(memcmp(m2.seq, m.seq, sizeof(int32_t) * m.seq_ptr[m.n_users]) == 0);
	CHECK(isrf_model_user_index(&m2, m.user_ids[17]) == 17 && isrf_model_user_index(&m2, -5) == -1);
	CHECK(isrf_model_item_index(&m2, m.item_ids[0]) == 0 && isrf_model_item_index(&m2, m.item_ids[m.n_items - 1]) == m.n_items - 1 &&
		  isrf_model_item_index(&m2, m.item_ids[m.n_items / 2]) == m.n_items / 2 && isrf_model_item_index(&m2, -5) == -1);
	/* the default refit: served and train-split weights both travel */
	CHECK(m.genrec.eval_params != NULL && m2.genrec.eval_params != NULL);
	CHECK(m2.genrec.params && memcmp(m2.genrec.params, m.genrec.params, m.genrec.n_params * 4) == 0);
	CHECK(memcmp(m2.genrec.eval_params, m.genrec.eval_params, m.genrec.n_params * 4) == 0);
	CHECK(memcmp(m2.genrec.eval_tf_params, m.genrec.eval_tf_params, m.genrec.n_tf_params * 4) == 0);
	CHECK(memcmp(m.genrec.eval_params, m.genrec.params, m.genrec.n_params * 4) != 0);
	isrf_model_free(&env, &m2);
	buf[len / 2] ^= 1;
	CHECK(isrf_model_load(&env, buf, len, &m2) == ISRF_ERR_CORRUPT);
	CHECK(isrf_model_load(&env, buf, len / 3, &m2) == ISRF_ERR_CORRUPT);
	isrf_free(&env, buf);

	/* same inputs, same model */
	CHECK(isrf_train(&env, be, &corpus, &cfg, NULL, &m2) == ISRF_OK);
	CHECK(memcmp(m2.user_group, m.user_group, sizeof(float) * m.n_users * m.dm) == 0);
	isrf_model_free(&env, &m2);

	/* a hook can stop training; nothing is left behind */
	CHECK(isrf_train(&env, be, &corpus, &cfg, &(IsrfTrainHooks) {stop_at_group, NULL, &env}, &m2) == ISRF_ERR_CANCELLED);
	CHECK(m2.user_ids == NULL);

	/* switched-off group graph: no edges, still a model */
	cfg.use_group = false;
	CHECK(isrf_train(&env, be, &corpus, &cfg, NULL, &m2) == ISRF_OK);
	CHECK(m2.group.nnz == 0);
	isrf_model_free(&env, &m2);

	/* empty corpus */
	memset(&corpus, 0, sizeof(corpus));
	CHECK(isrf_train(&env, be, &corpus, &cfg, NULL, &m2) == ISRF_ERR_INVALID);

	isrf_model_free(&env, &m);
	isrf_synth_free(&env, &sd);
	isrf_backend_close(be);
	free(order);
	free(texts);
	free(items);
	free(users);
	UNIT_END("test_pipeline");
}
