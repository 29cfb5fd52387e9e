/*
 * common.c
 *	  Helpers shared by the driver's commands: options, environment,
 *	  backend choice and loading a data directory up to semantic features.
 */
#include "commands.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DRIVER_MAX_TEXT_COLUMNS 32

static void
driver_log(void *ctx, const char *msg)
{
	(void) ctx;
	fprintf(stderr, "isrf_driver: %s\n", msg);
}

void
driver_env_init(IsrfEnv *env)
{
	isrf_env_init_malloc(env);
	env->log = driver_log;
}

int
driver_report(IsrfEnv *env, const char *what)
{
	fprintf(stderr, "isrf_driver: %s: %s (%s)\n", what,
			env->errmsg[0] ? env->errmsg : "failed", isrf_status_name(env->status));
	return 1;
}

/* Parse an int option value in [lo, hi]. */
bool
driver_int_arg(const char *name, const char *s, long lo, long hi, int32_t *out)
{
	char	   *end;
	long		v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < lo || v > hi)
	{
		fprintf(stderr, "isrf_driver: --%s wants an integer in %ld..%ld, got \"%s\"\n",
				name, lo, hi, s);
		return false;
	}
	*out = (int32_t) v;
	return true;
}

bool
driver_parse_opts(int argc, char **argv, DriverOpts *o)
{
	int			i;

	memset(o, 0, sizeof(*o));
	o->device = "auto";
	o->k = 50;
	o->dm = 128;
	o->layers = 3;
	o->threshold = -INFINITY;
	o->seed = 1;
	o->user_text = true;
	for (i = 1; i < argc; i++)
	{
		const char *a = argv[i];
		const char *v = (i + 1 < argc) ? argv[i + 1] : NULL;

		if (strncmp(a, "--", 2) != 0)
		{
			if (o->dir)
			{
				fprintf(stderr, "isrf_driver: %s: unexpected argument \"%s\"\n", argv[0], a);
				return false;
			}
			o->dir = a;
			continue;
		}
		if (v == NULL)
		{
			fprintf(stderr, "isrf_driver: option %s needs a value\n", a);
			return false;
		}
		i++;
		if (strcmp(a, "--device") == 0)
		{
			IsrfDevicePref p;

			if (!isrf_device_pref_parse(v, &p))
			{
				fprintf(stderr, "isrf_driver: --device must be auto, cpu or cuda, got \"%s\"\n", v);
				return false;
			}
			o->device = v;
		}
		else if (strcmp(a, "--k") == 0)
		{
			if (!driver_int_arg("k", v, 1, 100000, &o->k))
				return false;
		}
		else if (strcmp(a, "--dm") == 0)
		{
			if (!driver_int_arg("dm", v, 1, 4096, &o->dm))
				return false;
		}
		else if (strcmp(a, "--layers") == 0)
		{
			if (!driver_int_arg("layers", v, 0, 64, &o->layers))
				return false;
		}
		else if (strcmp(a, "--block") == 0)
		{
			if (!driver_int_arg("block", v, 0, 1 << 20, &o->block_rows))
				return false;
		}
		else if (strcmp(a, "--seed") == 0)
		{
			int32_t		s;

			if (!driver_int_arg("seed", v, 0, INT32_MAX, &s))
				return false;
			o->seed = (uint64_t) s;
		}
		else if (strcmp(a, "--user-text") == 0)
		{
			if (strcmp(v, "on") != 0 && strcmp(v, "off") != 0)
			{
				fprintf(stderr, "isrf_driver: --user-text must be on or off, got \"%s\"\n", v);
				return false;
			}
			o->user_text = strcmp(v, "on") == 0;
		}
		else if (strcmp(a, "--text-columns") == 0)
			o->text_columns = v;
		else if (strcmp(a, "--threshold") == 0)
		{
			char	   *end;
			double		t = strtod(v, &end);

			if (*end || end == v || !(t >= -1.0 && t <= 1.0))
			{
				fprintf(stderr, "isrf_driver: --threshold wants a cosine in [-1, 1], got \"%s\"\n", v);
				return false;
			}
			o->threshold = (float) t;
		}
		else
		{
			fprintf(stderr, "isrf_driver: %s: unknown option %s\n", argv[0], a);
			return false;
		}
	}
	return true;
}

IsrfStatus
driver_open_backend(IsrfEnv *env, const char *device, IsrfBackend **out)
{
	IsrfDevicePref pref;
	const char *lib = getenv("ISRF_CUDA_LIBRARY");
	char		path[PATH_MAX + 32];

	if (!isrf_device_pref_parse(device, &pref))
		return isrf_fail(env, ISRF_ERR_INVALID, "unknown device \"%s\"", device);
	if (lib == NULL || lib[0] == '\0')
	{
		ssize_t		n = readlink("/proc/self/exe", path, PATH_MAX);
		char	   *slash;

		if (n <= 0)
			return isrf_fail(env, ISRF_ERR_IO, "cannot find the driver's own path");
		path[n] = '\0';
		slash = strrchr(path, '/');
		if (slash)
			slash[1] = '\0';
		else
			path[0] = '\0';
		strcat(path, "isrf_cuda.so");
		lib = path;
	}
	return isrf_backend_open(env, pref, lib, out);
}

void
driver_knn_config(const DriverOpts *o, IsrfGroupGraphConfig *cfg)
{
	isrf_group_graph_config_default(cfg);
	cfg->k = o->k;
	cfg->min_similarity = o->threshold;
	cfg->block_rows = o->block_rows;
}

IsrfStatus
driver_load(IsrfEnv *env, IsrfBackend *be, const DriverOpts *o, bool with_semantic,
			DriverData *out)
{
	char		buf[1024];
	const char *cols[DRIVER_MAX_TEXT_COLUMNS + 1];
	const char *const *colp = NULL;
	double		t0 = isrf_now();
	IsrfStatus	st;

	memset(out, 0, sizeof(*out));
	if (o->dir == NULL)
		return isrf_fail(env, ISRF_ERR_INVALID, "no data directory given");
	if (o->text_columns)
	{
		int			n = 0;
		char	   *s,
				   *save = NULL;

		snprintf(buf, sizeof(buf), "%s", o->text_columns);
		for (s = strtok_r(buf, ",", &save); s; s = strtok_r(NULL, ",", &save))
		{
			if (n == DRIVER_MAX_TEXT_COLUMNS)
				return isrf_fail(env, ISRF_ERR_INVALID, "more than %d text columns",
								 DRIVER_MAX_TEXT_COLUMNS);
			cols[n++] = s;
		}
		cols[n] = NULL;
		colp = cols;
	}
	ISRF_TRY(isrf_datadir_load(env, o->dir, colp, &out->dd));
	out->have_dd = true;
	st = isrf_dataset_build(env, &out->dd.corpus.rows, out->dd.corpus.catalogue_ids,
							out->dd.corpus.n_catalogue, &out->ds);
	if (st != ISRF_OK)
	{
		driver_data_free(env, out);
		return st;
	}
	out->have_ds = true;
	out->t_load = isrf_now() - t0;
	if (with_semantic)
	{
		IsrfSemanticConfig scfg;

		isrf_semantic_config_default(&scfg);
		scfg.dm = o->dm;
		scfg.use_user_text = o->user_text;
		st = isrf_semantic_build(env, be, &out->dd.corpus, &out->ds, &scfg, &out->sem);
		if (st != ISRF_OK)
		{
			driver_data_free(env, out);
			return st;
		}
		out->have_sem = true;
	}
	return ISRF_OK;
}

void
driver_data_free(IsrfEnv *env, DriverData *d)
{
	if (d->have_sem)
		isrf_semantic_free(env, &d->sem);
	if (d->have_ds)
		isrf_dataset_free(env, &d->ds);
	if (d->have_dd)
		isrf_datadir_free(env, &d->dd);
	memset(d, 0, sizeof(*d));
}

int
driver_start(int argc, char **argv, const char *command, bool print_backend,
			 DriverOpts *o, IsrfEnv *env, IsrfBackend **be, DriverData *dd)
{
	if (!driver_parse_opts(argc, argv, o))
		return 2;
	if (o->dir == NULL)
	{
		fprintf(stderr, "isrf_driver: %s needs a data directory\n", command);
		return 2;
	}
	driver_env_init(env);
	if (driver_open_backend(env, o->device, be) != ISRF_OK)
		return driver_report(env, "opening the backend");
	if (print_backend)
	{
		char		desc[512];

		(*be)->describe(*be, desc, sizeof(desc));
		printf("backend: %s\n", desc);
	}
	if (driver_load(env, *be, o, true, dd) != ISRF_OK)
	{
		isrf_backend_close(*be);
		return driver_report(env, o->dir);
	}
	return -1;
}

char *
driver_read_file(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	char	   *buf;
	long		n;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0 ||
		(buf = calloc(1, (size_t) n + 1)) == NULL)
	{
		fclose(f);
		return NULL;
	}
	if (fread(buf, 1, (size_t) n, f) != (size_t) n)
	{
		free(buf);
		buf = NULL;
	}
	else if (len != NULL)
		*len = (size_t) n;
	fclose(f);
	return buf;
}

int
driver_load_model(IsrfEnv *env, const char *path, IsrfModel *m)
{
	char	   *buf;
	size_t		len = 0;
	IsrfStatus	st;

	memset(m, 0, sizeof(*m));
	if ((buf = driver_read_file(path, &len)) == NULL)
	{
		fprintf(stderr, "isrf_driver: cannot read \"%s\"\n", path);
		return 1;
	}
	st = isrf_model_load(env, (const uint8_t *) buf, len, m);
	free(buf);
	return st == ISRF_OK ? 0 : driver_report(env, "load");
}

int
driver_next_arg(int argc, char **argv, int *i, const char **positional, const char **name,
				const char **value)
{
	const char *a = argv[*i];

	if (strncmp(a, "--", 2) != 0)
	{
		if (*positional != NULL)
		{
			fprintf(stderr, "isrf_driver: %s: unexpected argument \"%s\"\n", argv[0], a);
			return -1;
		}
		*positional = a;
		return 0;
	}
	if (*i + 1 >= argc)
	{
		fprintf(stderr, "isrf_driver: option %s needs a value\n", a);
		return -1;
	}
	*name = a;
	*value = argv[++*i];
	return 1;
}
