/*
 * commands.h
 *	  The standalone driver's sub-commands and the helpers they share:
 *	  option parsing, opening a backend, loading a data directory into a
 *	  dataset and semantic features.  No PostgreSQL anywhere.
 *
 * Every command is called like a main(): argv[0] is the command name
 * ("stages", "baselines", ...), argv[1..] its arguments; the return value
 * is the process exit code (0 ok, 1 failure, 2 usage error).
 */
#ifndef ISRF_DRIVER_COMMANDS_H
#define ISRF_DRIVER_COMMANDS_H

#include "compute/backend.h"
#include "data/datadir.h"
#include "data/dataset.h"
#include "graph/group_graph.h"
#include "features/semantic_features.h"
#include "model/model.h"

int			driver_cmd_info(int argc, char **argv);
int			driver_cmd_stages(int argc, char **argv);
int			driver_cmd_knn_reference(int argc, char **argv);
int			driver_cmd_group_quality(int argc, char **argv);
int			driver_cmd_train(int argc, char **argv);
int			driver_cmd_config_keys(int argc, char **argv);
int			driver_cmd_evaluate(int argc, char **argv);
int			driver_cmd_recommend(int argc, char **argv);
int			driver_cmd_rank(int argc, char **argv);

/*
 * Print the isrf_evaluate table of a model (the LightGCN baseline only when
 * baselines); lists, when not NULL, gets the served sequential-task lists as
 * CSV for referee.py.  Returns an exit code.
 */
int			driver_evaluate(IsrfEnv *env, IsrfBackend *be, const IsrfModel *m, bool baselines,
							const char *lists);

/* In cmd_baselines.c (another engineer's); main.c links it weakly. */
int			driver_cmd_baselines(int argc, char **argv);

/* Options common to the commands; each ignores what it does not use. */
typedef struct DriverOpts
{
	const char *dir;			/* the one positional argument */
	const char *device;			/* auto | cpu | cuda */
	int32_t		k;				/* group neighbours (50) */
	int32_t		dm;				/* semantic dimension (128) */
	int32_t		layers;			/* LightGCN layers (3) */
	const char *text_columns;	/* "title,attributes" or NULL = all */
	float		threshold;		/* min similarity, -INFINITY = none */
	int32_t		block_rows;		/* kNN block rows, 0 = auto */
	uint64_t	seed;			/* random baselines (1) */
	bool		user_text;		/* --user-text on|off: use user descriptions */
} DriverOpts;

/* Parse an int option value in [lo, hi]; false (and a message) when it is not one. */
bool		driver_int_arg(const char *name, const char *s, long lo, long hi, int32_t *out);

/*
 * Parse "--name value" options and at most one positional argument
 * (argv[0] is the command name).  Prints a message and returns false on
 * anything unknown or malformed.
 */
bool		driver_parse_opts(int argc, char **argv, DriverOpts *o);

/*
 * The argument at argv[*i] of a command line of one positional argument and
 * "--name value" options: 0 when it is the positional one (into
 * *positional), 1 for an option (*name, *value; *i moves past the value),
 * -1 (with a message: a second positional argument, an option without its
 * value) for a usage error.
 */
int			driver_next_arg(int argc, char **argv, int *i, const char **positional, const char **name,
							const char **value);

/*
 * A whole file, NUL-terminated, malloc'd (its length into *len unless NULL),
 * or NULL when it cannot be read.
 */
char	   *driver_read_file(const char *path, size_t *len);

/* Load a saved model file into *m; returns an exit code (0, or 1 with a message). */
int			driver_load_model(IsrfEnv *env, const char *path, IsrfModel *m);

/* An environment on malloc whose progress lines go to stderr. */
void		driver_env_init(IsrfEnv *env);

/* Print env's failure as "isrf_driver: <what>: <message>"; returns 1. */
int			driver_report(IsrfEnv *env, const char *what);

/*
 * Open the backend named by --device; the CUDA library is
 * $ISRF_CUDA_LIBRARY, else isrf_cuda.so next to the executable.
 */
IsrfStatus	driver_open_backend(IsrfEnv *env, const char *device, IsrfBackend **out);

/* A data directory loaded all the way to semantic features. */
typedef struct DriverData
{
	IsrfDataDir dd;
	IsrfDataset ds;
	IsrfSemantic sem;
	bool		have_dd,
				have_ds,
				have_sem;
	double		t_load;			/* CSV + dataset build, seconds */
} DriverData;

/* Load o->dir and build the dataset (with_semantic: and the features). */
IsrfStatus	driver_load(IsrfEnv *env, IsrfBackend *be, const DriverOpts *o,
						bool with_semantic, DriverData *out);

void		driver_data_free(IsrfEnv *env, DriverData *d);

/*
 * The common start of the commands that read a data directory: parse the
 * options, require DIR, open the backend (print_backend: say which on
 * stdout) and load DIR to semantic features.  Returns -1 when all went
 * well, else the exit code (the failure already reported).
 */
int			driver_start(int argc, char **argv, const char *command, bool print_backend,
						 DriverOpts *o, IsrfEnv *env, IsrfBackend **be, DriverData *dd);

/* kNN configuration from the options. */
void		driver_knn_config(const DriverOpts *o, IsrfGroupGraphConfig *cfg);

#endif							/* ISRF_DRIVER_COMMANDS_H */
