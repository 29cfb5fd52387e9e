/*
 * cmd_config.c
 *	  isrf_driver config-keys [--readme FILE]: print the table of
 *	  configuration keys (train/config.c) as README shows it, or rewrite
 *	  the table in FILE between its markers.
 */
#include "commands.h"
#include "train/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_BEGIN "<!-- config-keys:begin (generated from src/core/train/config.c) -->\n"
#define CONFIG_END "<!-- config-keys:end -->"

/* Replace the block between the markers of path with md; false on failure. */
static bool
config_rewrite(const char *path, const char *md)
{
	char	   *all = driver_read_file(path, NULL);
	char	   *a,
			   *b;
	FILE	   *f;
	bool		ok;

	if (all == NULL)
	{
		fprintf(stderr, "isrf_driver: cannot read %s\n", path);
		return false;
	}
	a = strstr(all, CONFIG_BEGIN);
	b = a ? strstr(a, CONFIG_END) : NULL;
	if (a == NULL || b == NULL)
	{
		fprintf(stderr, "isrf_driver: %s has no config-keys markers\n", path);
		free(all);
		return false;
	}
	a += strlen(CONFIG_BEGIN);
	f = fopen(path, "wb");
	ok = f != NULL &&
		fwrite(all, 1, (size_t) (a - all), f) == (size_t) (a - all) &&
		fputs(md, f) >= 0 && fputs(b, f) >= 0;
	if (f && fclose(f) != 0)
		ok = false;
	if (!ok)
		fprintf(stderr, "isrf_driver: cannot write %s\n", path);
	free(all);
	return ok;
}

int
driver_cmd_config_keys(int argc, char **argv)
{
	size_t		need = isrf_config_markdown(NULL, 0);
	char	   *md = malloc(need);
	int			rc = 0;

	if (md == NULL)
		return 1;
	isrf_config_markdown(md, need);
	if (argc == 1)
		fputs(md, stdout);
	else if (argc == 3 && strcmp(argv[1], "--readme") == 0)
		rc = config_rewrite(argv[2], md) ? 0 : 1;
	else
	{
		fprintf(stderr, "usage: isrf_driver config-keys [--readme FILE]\n");
		rc = 2;
	}
	free(md);
	return rc;
}
