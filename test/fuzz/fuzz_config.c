/*
 * test/fuzz/fuzz_config.c
 *	  libFuzzer harness: the configuration keys of isrf_train
 *	  (train/config.h).  The input is lines of "key=value" (a line without
 *	  '=' is a key with an empty value).  A configuration the parser accepts
 *	  must pass the generative model's own check, give its JSON within the
 *	  length it states, and parse again from that JSON's keys to itself.
 *	  Seeds: test/fuzz/corpus/config; dictionary test/fuzz/config.dict.
 */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/genrec.h"
#include "train/config.h"

#define MAX_PAIRS 64

/*
 * The effective configuration (JSON of "key": value pairs, numbers and
 * switches) parsed again gives the same configuration: what is stored with
 * a model version reproduces it.
 */
static void
config_round_trip(const char *json)
{
	char	   *copy = strdup(json);
	const char *keys[MAX_PAIRS];
	const char *values[MAX_PAIRS];
	char	   *p = copy;
	int			n = 0;
	IsrfTrainConfig cfg;
	char		again[8192];
	IsrfEnv    *env = fuzz_env();

	while ((p = strchr(p, '"')) != NULL && n < MAX_PAIRS)
	{
		char	   *end = strchr(p + 1, '"');

		if (end == NULL || strncmp(end, "\": ", 3) != 0)
			abort();
		*end = '\0';
		keys[n] = p + 1;
		values[n] = end + 3;
		p = end + 3 + strcspn(end + 3, ",}");
		if (*p == '\0')
			abort();
		*p++ = '\0';
		n++;
	}
	if (isrf_train_config_parse(env, n, keys, values, &cfg) != ISRF_OK)
	{
		fprintf(stderr, "fuzz: the effective configuration %s does not parse: %s\n", json, env->errmsg);
		abort();
	}
	isrf_train_config_json(&cfg, again, sizeof(again));
	if (strcmp(again, json) != 0)
	{
		fprintf(stderr, "fuzz: %s parsed again gives %s\n", json, again);
		abort();
	}
	free(copy);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	IsrfEnv    *env = fuzz_env();
	char	   *text = malloc(size + 1);
	const char *keys[MAX_PAIRS];
	const char *values[MAX_PAIRS];
	int			n = 0,
				nk,
				i;
	char	   *line,
			   *save = NULL;
	IsrfTrainConfig cfg;
	char		json[8192];
	size_t		need;

	memcpy(text, data, size);
	text[size] = '\0';
	for (line = strtok_r(text, "\n", &save); line && n < MAX_PAIRS; line = strtok_r(NULL, "\n", &save))
	{
		char	   *eq = strchr(line, '=');

		keys[n] = line;
		values[n] = "";
		if (eq)
		{
			*eq = '\0';
			values[n] = eq + 1;
		}
		n++;
	}
	if (isrf_train_config_parse(env, n, keys, values, &cfg) != ISRF_OK)
	{
		if (env->errmsg[0] == '\0')
			abort();			/* a refusal always names why */
		free(text);
		return 0;
	}
	if (isrf_genrec_config_check(env, &cfg.gen) != ISRF_OK)
	{
		fprintf(stderr, "fuzz: accepted configuration fails the model's check: %s\n", env->errmsg);
		abort();
	}
	need = isrf_train_config_json(&cfg, json, sizeof(json));
	if (need > sizeof(json) || strlen(json) + 1 != need)
		abort();				/* the length it needs, its NUL included */
	{
		const IsrfConfigKey *table = isrf_config_keys(&nk);

		for (i = 0; i < nk; i++)
			(void) isrf_config_key_effective(&table[i], &cfg);
	}
	config_round_trip(json);
	free(text);
	return 0;
}
