/*
 * cmd_train.c
 *	  isrf_driver train DIR [--device D] [--config key=value ...]
 *	  [--text-columns a,b] [--save FILE] [--evaluate on|off]
 *	  [--baselines on|off] [--lists FILE]: the whole
 *	  training pipeline on a data directory (the same code CALL isrf_train
 *	  runs), per-epoch progress, then the isrf_evaluate table on the model's
 *	  own split (skipped with --evaluate off: the ablation script reads the
 *	  validation figures only).
 */
#include "commands.h"
#include "train/pipeline.h"
#include "eval/evaluate.h"
#include "serve/serve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TRAIN_MAX_COLUMNS 32
#define TRAIN_MAX_KEYS 64

/* Print stage starts with the time since the start. */
static IsrfStatus
train_stage(void *arg, const char *stage)
{
	double		t0 = *(double *) arg;

	fprintf(stderr, "isrf_driver: [%7.1f s] stage %s\n", isrf_now() - t0, stage);
	return ISRF_OK;
}

/* Write buf to path; false (and a message) on failure. */
static bool
train_write(const char *path, const uint8_t *buf, size_t len)
{
	FILE	   *f = fopen(path, "wb");

	if (f == NULL || fwrite(buf, 1, len, f) != len || fclose(f) != 0)
	{
		fprintf(stderr, "isrf_driver: cannot write \"%s\"\n", path);
		if (f)
			fclose(f);
		return false;
	}
	return true;
}

int
driver_cmd_train(int argc, char **argv)
{
	IsrfEnv		env;
	IsrfBackend *be = NULL;
	IsrfTrainConfig cfg;
	IsrfDataDir dd;
	IsrfModel	m;
	int32_t		i;
	const char *dir = NULL,
			   *device = "auto",
			   *lists = NULL,
			   *save = NULL,
			   *columns = NULL;
	char		colbuf[1024];
	const char *cols[TRAIN_MAX_COLUMNS + 1];
	const char *const *colp = NULL;
	double		t0 = isrf_now(),
				t_train;
	bool		evaluate = true,
				baselines = true;
	int			rc = 1;
	char		kvbuf[TRAIN_MAX_KEYS][256];
	const char *keys[TRAIN_MAX_KEYS],
			   *values[TRAIN_MAX_KEYS];
	int			n_keys = 0;

	driver_env_init(&env);
	memset(&dd, 0, sizeof(dd));
	memset(&m, 0, sizeof(m));
	for (i = 1; i < argc; i++)
	{
		const char *a = NULL,
				   *v = NULL;
		int			kind = driver_next_arg(argc, argv, &i, &dir, &a, &v);

		if (kind < 0)
			return 2;
		if (kind == 0)
			continue;
		if (strcmp(a, "--device") == 0)
			device = v;
		else if (strcmp(a, "--save") == 0)
			save = v;
		else if (strcmp(a, "--text-columns") == 0)
			columns = v;
		else if (strcmp(a, "--lists") == 0)
			lists = v;
		else if (strcmp(a, "--baselines") == 0 && (strcmp(v, "on") == 0 || strcmp(v, "off") == 0))
			baselines = strcmp(v, "on") == 0;
		else if (strcmp(a, "--evaluate") == 0)
		{
			if (strcmp(v, "on") != 0 && strcmp(v, "off") != 0)
			{
				fprintf(stderr, "isrf_driver: --evaluate must be on or off, got \"%s\"\n", v);
				return 2;
			}
			evaluate = strcmp(v, "on") == 0;
		}
		else if (strcmp(a, "--config") == 0)
		{
			char	   *eq;

			if (n_keys == TRAIN_MAX_KEYS)
			{
				fprintf(stderr, "isrf_driver: too many --config options\n");
				return 2;
			}
			snprintf(kvbuf[n_keys], sizeof(kvbuf[n_keys]), "%s", v);
			eq = strchr(kvbuf[n_keys], '=');
			if (eq == NULL)
			{
				fprintf(stderr, "isrf_driver: --config wants key=value, got \"%s\"\n", v);
				return 2;
			}
			*eq = '\0';
			keys[n_keys] = kvbuf[n_keys];
			values[n_keys] = eq + 1;
			n_keys++;
		}
		else
		{
			fprintf(stderr, "isrf_driver: train: unknown option %s\n", a);
			return 2;
		}
	}
	if (isrf_train_config_parse(&env, n_keys, keys, values, &cfg) != ISRF_OK)
	{
		driver_report(&env, "train");
		return 2;
	}
	if (cfg.use_llm_embeddings)
	{
		fprintf(stderr, "isrf_driver: train: use_llm_embeddings needs the PostgreSQL extension (it fetches the embeddings from the LLM endpoint)\n");
		return 2;
	}
	if (dir == NULL)
	{
		fprintf(stderr, "usage: isrf_driver train DIR [--device D] [--config key=value ...] "
				"[--text-columns a,b] [--save FILE] [--evaluate on|off] [--baselines on|off] [--lists FILE]\n");
		return 2;
	}
	if (columns)
	{
		int			n = 0;
		char	   *s,
				   *sp = NULL;

		snprintf(colbuf, sizeof(colbuf), "%s", columns);
		for (s = strtok_r(colbuf, ",", &sp); s && n < TRAIN_MAX_COLUMNS; s = strtok_r(NULL, ",", &sp))
			cols[n++] = s;
		cols[n] = NULL;
		colp = cols;
	}
	if (driver_open_backend(&env, device, &be) != ISRF_OK)
		return driver_report(&env, "backend");
	if (isrf_datadir_load(&env, dir, colp, &dd) != ISRF_OK)
	{
		driver_report(&env, "load");
		goto out;
	}
	fprintf(stderr, "isrf_driver: loaded %s in %.1f s\n", dir, isrf_now() - t0);
	if (isrf_train(&env, be, &dd.corpus, &cfg, &(IsrfTrainHooks) {train_stage, NULL, &t0}, &m) != ISRF_OK)
	{
		driver_report(&env, "train");
		goto out;
	}
	t_train = isrf_now() - t0;
	{
		char		js[2048];

		isrf_model_stats_json(&m, js, sizeof(js));
		printf("model: %s\n", js);
	}
	printf("training wall time: %.1f s (generative model %.1f s, %d epochs, best epoch %d, "
		   "validation HR@10 %.4f NDCG@10 %.4f, prior beta %g / direct %g)\n",
		   t_train, m.stats.t_train, m.genrec.epochs_run, m.genrec.best_epoch,
		   m.genrec.best_val_hr10, m.genrec.best_val_ndcg10,
		   (double) m.genrec.weights.prior, (double) m.genrec.weights.prior_direct);
	fflush(stdout);
	if (save)
	{
		uint8_t    *buf;
		size_t		len;

		if (isrf_model_save(&env, &m, &buf, &len) != ISRF_OK)
		{
			driver_report(&env, "save");
			goto out;
		}
		if (!train_write(save, buf, len))
		{
			isrf_free(&env, buf);
			goto out;
		}
		isrf_free(&env, buf);
		printf("saved %zu bytes to %s\n", len, save);
	}
	rc = evaluate ? driver_evaluate(&env, be, &m, baselines, lists) : 0;

out:
	isrf_model_free(&env, &m);
	isrf_datadir_free(&env, &dd);
	isrf_backend_close(be);
	return rc;
}
