/*
 * test_config.c
 *	  Unit tests of the configuration table (train/config.h): defaults,
 *	  parsing independent of key order, ranges, keys made ineffective by the
 *	  others, switches resolved off, the effective configuration as JSON, and
 *	  README's table of keys generated from the table.
 */
#include "train/config.h"
#include "unit.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parse pairs "k=v" (NULL-terminated) into cfg; the status. */
static IsrfStatus
parse(IsrfEnv *env, IsrfTrainConfig *cfg, const char *first,...)
{
	const char *keys[64],
			   *values[64];
	char		buf[64][128];
	const char *kv;
	va_list		ap;
	int			n = 0;

	va_start(ap, first);
	for (kv = first; kv && n < 64; kv = va_arg(ap, const char *))
	{
		char	   *eq;

		snprintf(buf[n], sizeof(buf[n]), "%s", kv);
		eq = strchr(buf[n], '=');
		*eq = '\0';
		keys[n] = buf[n];
		values[n] = eq + 1;
		n++;
	}
	va_end(ap);
	return isrf_train_config_parse(env, n, keys, values, cfg);
}

static bool
has(const char *s, const char *part)
{
	return strstr(s, part) != NULL;
}

/* The README's table of keys, between its markers; malloc'd or NULL. */
static char *
readme_table(void)
{
	const char *begin = "<!-- config-keys:begin (generated from src/core/train/config.c) -->\n";
	const char *end = "<!-- config-keys:end -->";
	FILE	   *f = fopen(ISRF_SOURCE_DIR "/README.md", "rb");
	char	   *all,
			   *a,
			   *b,
			   *out;
	long		len;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	fseek(f, 0, SEEK_SET);
	all = calloc(1, (size_t) len + 1);
	if (fread(all, 1, (size_t) len, f) != (size_t) len)
		len = 0;
	fclose(f);
	a = strstr(all, begin);
	b = a ? strstr(a, end) : NULL;
	if (!a || !b)
	{
		free(all);
		return NULL;
	}
	a += strlen(begin);
	out = strndup(a, (size_t) (b - a));
	free(all);
	return out;
}

int
main(void)
{
	IsrfEnv		env;
	IsrfTrainConfig cfg;
	char		json[4096];
	const IsrfConfigKey *keys;
	int			n,
				i;

	isrf_env_init_malloc(&env);

	/* the documented defaults */
	isrf_train_config_default(&cfg);
	CHECK(cfg.dm == 128 && cfg.hash_dim == 262144 && cfg.min_df == 2 && cfg.use_text &&
		  cfg.use_user_text && cfg.use_group && cfg.group_k == 50 && cfg.group_threshold == -1.0f &&
		  cfg.layers == 3 && cfg.seed == 1);
	CHECK(cfg.gen.d_model == 64 && cfg.gen.tf_layers == 2 && cfg.gen.n_heads == 2 &&
		  cfg.gen.max_len == 50 && cfg.gen.batch_size == 0 && cfg.gen.epochs == 30 &&
		  cfg.gen.patience == 5 && cfg.gen.lr == 0.0f && cfg.gen.ema == 0.99f && cfg.gen.dropout == 0.5f &&
		  cfg.gen.weight_decay == 0.0f && cfg.gen.clip == 1.0f && cfg.gen.lambda1 == 0.1f &&
		  cfg.gen.lambda2 == 0.1f && cfg.gen.tau == 0.1f && cfg.gen.alpha == 1.0f &&
		  cfg.gen.gen_weight == 0.3f && cfg.gen.use_generative && !cfg.gen.use_group_interest &&
		  cfg.gen.use_align && !cfg.gen.use_explicit && cfg.gen.use_adapter && cfg.gen.use_prior &&
		  cfg.gen.semid_levels == 3 && cfg.gen.semid_codebook == 256 && cfg.gen.eval_users == 0 &&
		  cfg.gen.seed == 1);
	CHECK(parse(&env, &cfg, NULL) == ISRF_OK);

	/* no check depends on key order */
	CHECK(parse(&env, &cfg, "d_model=75", "n_heads=3", NULL) == ISRF_OK &&
		  cfg.gen.d_model == 75 && cfg.gen.n_heads == 3);
	CHECK(parse(&env, &cfg, "n_heads=3", "d_model=75", NULL) == ISRF_OK &&
		  cfg.gen.d_model == 75 && cfg.gen.n_heads == 3);
	CHECK(parse(&env, &cfg, "n_heads=3", NULL) == ISRF_ERR_INVALID &&
		  has(env.errmsg, "n_heads") && has(env.errmsg, "d_model"));
	CHECK(parse(&env, &cfg, "lambda2=0.5", "use_group_interest=true", NULL) == ISRF_OK &&
		  cfg.gen.lambda2 == 0.5f && cfg.gen.use_group_interest && cfg.gen.use_align);
	CHECK(parse(&env, &cfg, "use_group_interest=true", "lambda2=0.5", NULL) == ISRF_OK &&
		  cfg.gen.lambda2 == 0.5f);
	CHECK(parse(&env, &cfg, "use_align=false", "use_group_interest=true", NULL) == ISRF_OK &&
		  !cfg.gen.use_align && cfg.gen.lambda1 == 0.1f);
	/* use_align off stays off whatever comes after */
	CHECK(parse(&env, &cfg, "use_group_interest=true", "use_align=off", "lambda2=0.3", NULL) ==
		  ISRF_ERR_INVALID && has(env.errmsg, "\"lambda2\" has no effect without use_align"));

	/* types and ranges name the key; a failure leaves the defaults */
	CHECK(parse(&env, &cfg, "group_k=20", NULL) == ISRF_OK && cfg.group_k == 20);
	CHECK(parse(&env, &cfg, "group_k=0", NULL) == ISRF_ERR_INVALID && has(env.errmsg, "\"group_k\""));
	CHECK(cfg.group_k == 50);
	CHECK(parse(&env, &cfg, "group_k=12abc", NULL) == ISRF_ERR_INVALID);
	CHECK(parse(&env, &cfg, "hash_dim=3000", NULL) == ISRF_ERR_INVALID && has(env.errmsg, "power of two"));
	CHECK(parse(&env, &cfg, "hash_dim=4096", NULL) == ISRF_OK && cfg.hash_dim == 4096);
	CHECK(parse(&env, &cfg, "use_group=maybe", NULL) == ISRF_ERR_INVALID);
	CHECK(parse(&env, &cfg, "use_group=false", NULL) == ISRF_OK && !cfg.use_group);
	CHECK(parse(&env, &cfg, "group_threshold=0.25", NULL) == ISRF_OK && cfg.group_threshold == 0.25f);
	CHECK(parse(&env, &cfg, "group_threshold=2", NULL) == ISRF_ERR_INVALID);
	CHECK(parse(&env, &cfg, "dropout=1.5", NULL) == ISRF_ERR_INVALID);
	CHECK(parse(&env, &cfg, "batch_size=1", NULL) == ISRF_ERR_INVALID && has(env.errmsg, "batch_size"));
	CHECK(parse(&env, &cfg, "batch_size=64", NULL) == ISRF_OK && cfg.gen.batch_size == 64);
	CHECK(parse(&env, &cfg, "seed=-1", NULL) == ISRF_ERR_INVALID);
	CHECK(parse(&env, &cfg, "seed=12345678901", NULL) == ISRF_OK && cfg.seed == 12345678901ULL &&
		  cfg.gen.seed == cfg.seed);
	CHECK(parse(&env, &cfg, "nope=1", NULL) == ISRF_ERR_INVALID &&
		  has(env.errmsg, "unknown config key \"nope\"") && has(env.errmsg, "use_group_interest"));
	CHECK(parse(&env, &cfg, "dm=16", "dm=32", NULL) == ISRF_ERR_INVALID && has(env.errmsg, "twice"));
	CHECK(parse(&env, &cfg, "model=abc", NULL) == ISRF_OK);
	CHECK(parse(&env, &cfg, "model=", NULL) == ISRF_ERR_INVALID);

	/* a key the rest of the configuration makes ineffective is refused, saying why */
	CHECK(parse(&env, &cfg, "lambda1=0.2", NULL) == ISRF_ERR_INVALID &&
		  has(env.errmsg, "\"lambda1\" has no effect without use_group_interest"));
	CHECK(parse(&env, &cfg, "lambda1=0.2", "use_group_interest=true", NULL) == ISRF_ERR_INVALID &&
		  has(env.errmsg, "without use_explicit"));
	CHECK(parse(&env, &cfg, "lambda1=0.2", "use_group_interest=true", "use_explicit=true", NULL) == ISRF_OK);
	CHECK(parse(&env, &cfg, "tau=0.2", NULL) == ISRF_ERR_INVALID);
	CHECK(parse(&env, &cfg, "use_align=true", NULL) == ISRF_ERR_INVALID);
	CHECK(parse(&env, &cfg, "alpha=0.5", NULL) == ISRF_ERR_INVALID && has(env.errmsg, "without use_explicit"));
	CHECK(parse(&env, &cfg, "use_group_interest=true", "use_group=false", NULL) == ISRF_ERR_INVALID &&
		  has(env.errmsg, "without use_group"));
	CHECK(parse(&env, &cfg, "group_k=10", "use_group=false", NULL) == ISRF_ERR_INVALID);
	CHECK(parse(&env, &cfg, "min_df=3", "use_text=false", NULL) == ISRF_ERR_INVALID);
	CHECK(parse(&env, &cfg, "gen_weight=1", "use_generative=false", NULL) == ISRF_ERR_INVALID);
	CHECK(parse(&env, &cfg, "d_model=32", "epochs=0", NULL) == ISRF_ERR_INVALID &&
		  has(env.errmsg, "\"d_model\" has no effect with epochs 0"));
	CHECK(parse(&env, &cfg, "epochs=0", "dm=16", NULL) == ISRF_OK && cfg.gen.epochs == 0);

	/* switches left at their default whose needs are not met are off */
	CHECK(parse(&env, &cfg, "use_text=false", NULL) == ISRF_OK && !cfg.gen.use_adapter &&
		  !cfg.gen.use_text_score);
	CHECK(parse(&env, &cfg, NULL) == ISRF_OK && cfg.gen.use_text_score);
	CHECK(parse(&env, &cfg, "use_text_score=true", "use_text=false", NULL) == ISRF_ERR_INVALID &&
		  has(env.errmsg, "without use_text"));
	CHECK(parse(&env, &cfg, "use_text_score=true", "use_prior=false", NULL) == ISRF_ERR_INVALID &&
		  has(env.errmsg, "without use_prior"));
	CHECK(parse(&env, &cfg, NULL) == ISRF_OK && !cfg.gen.use_align);
	CHECK(parse(&env, &cfg, "use_group=false", NULL) == ISRF_OK && !cfg.gen.use_group_interest);

	/* the effective configuration: every key with an effect, nothing else */
	CHECK(parse(&env, &cfg, NULL) == ISRF_OK);
	CHECK(isrf_train_config_json(&cfg, json, sizeof(json)) < sizeof(json));
	CHECK_MSG(has(json, "\"d_model\": 64") && has(json, "\"lr\": 0,") && has(json, "\"dropout\": 0.5") &&
			  has(json, "\"use_prior\": true") && has(json, "\"seed\": 1") && has(json, "\"group_threshold\": -1") &&
			  !has(json, "lambda1") && !has(json, "tau") && !has(json, "\"model\"") && json[0] == '{',
			  "%s", json);
	CHECK(parse(&env, &cfg, "use_group_interest=true", "lambda2=0.25", NULL) == ISRF_OK);
	isrf_train_config_json(&cfg, json, sizeof(json));
	CHECK_MSG(has(json, "\"lambda2\": 0.25") && has(json, "\"tau\": 0.1") && has(json, "\"use_align\": true") &&
			  !has(json, "lambda1"), "%s", json);
	CHECK(isrf_train_config_json(&cfg, json, 8) > 8 && strlen(json) == 7);

	/* every key has a name, a doc and (numbers) a default in its range */
	keys = isrf_config_keys(&n);
	CHECK(n > 30);
	for (i = 0; i < n; i++)
	{
		const IsrfConfigKey *k = &keys[i];

		CHECK_MSG(k->name && k->doc && isrf_config_key(k->name) == k, "key %d", i);
		if (k->type == ISRF_KEY_INT || k->type == ISRF_KEY_FLOAT)
			CHECK_MSG(k->def >= k->lo && k->def <= k->hi, "default of %s", k->name);
	}

	/* README's table is the table */
	{
		size_t		need = isrf_config_markdown(NULL, 0);
		char	   *md = malloc(need);
		char	   *readme = readme_table();

		CHECK(isrf_config_markdown(md, need) == need && strlen(md) + 1 == need);
		CHECK_MSG(readme != NULL, "README.md has no config-keys block");
		CHECK_MSG(readme && strcmp(readme, md) == 0,
				  "README's table of configuration keys differs from src/core/train/config.c: "
				  "rewrite it with build/isrf_driver config-keys --readme README.md");
		free(md);
		free(readme);
	}

	UNIT_END("test_config");
}
