/*
 * main.c
 *	  isrf_driver: the engine without PostgreSQL, on the same CSV data sets,
 *	  for timing and checking stages on a CPU or a GPU machine.
 */
#include "commands.h"

#include <stdio.h>
#include <string.h>

/*
 * cmd_baselines.c is written separately; a weak reference keeps the driver
 * linkable while it is absent (the symbol is then NULL).
 */
#pragma weak driver_cmd_baselines

static void
main_usage(FILE *f)
{
	fprintf(f,
			"usage: isrf_driver COMMAND [options]\n"
			"  info [--device auto|cpu|cuda]            describe the compute backend\n"
			"  stages DIR [--device D] [--k 50] [--dm 128] [--layers 3]\n"
			"             [--text-columns a,b] [--threshold x] [--block rows]\n"
			"             [--user-text on|off]\n"
			"                                           time every stage up to LightGCN\n"
			"  knn-reference DIR [same options]         all-pairs group graph, compared\n"
			"  group-quality DIR [same options] [--seed n]\n"
			"                                           lift of group neighbours vs random\n"
			"  baselines DIR ...                        reference recommenders\n"
			"  train DIR [--device D] [--config key=value ...] [--text-columns a,b]\n"
			"            [--save FILE] [--evaluate on|off]\n"
			"                                           train the model, print isrf_evaluate\n"
			"  evaluate MODEL_FILE [--device D] [--retune on|off] [--beam-weight W]\n"
			"           [--without prior|group|text|net|relations|rerank] [--baselines on|off] [--lists FILE]\n"
			"                                           isrf_evaluate of a saved model\n"
			"  recommend MODEL_FILE --lists FILE [--k 10] [--device D] [--retune on|off]\n"
			"      [--weights served|train]\n"
			"                                           what every user is served, as CSV\n"
			"  rank MODEL_FILE --tasks FILE [--device D] [--weights served|train]\n"
			"      [--terms all|train] [--without net]\n"
			"                                           isrf_rank on direct-task lists, scored\n"
			"  config-keys [--readme FILE]              the table of configuration keys\n"
			"The CUDA library is $ISRF_CUDA_LIBRARY or isrf_cuda.so next to the driver.\n");
}

int
main(int argc, char **argv)
{
	const char *cmd;

	if (argc < 2)
	{
		main_usage(stderr);
		return 2;
	}
	cmd = argv[1];
	if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0)
	{
		main_usage(stdout);
		return 0;
	}
	if (strcmp(cmd, "info") == 0)
		return driver_cmd_info(argc - 1, argv + 1);
	if (strcmp(cmd, "stages") == 0)
		return driver_cmd_stages(argc - 1, argv + 1);
	if (strcmp(cmd, "knn-reference") == 0)
		return driver_cmd_knn_reference(argc - 1, argv + 1);
	if (strcmp(cmd, "group-quality") == 0)
		return driver_cmd_group_quality(argc - 1, argv + 1);
	if (strcmp(cmd, "train") == 0)
		return driver_cmd_train(argc - 1, argv + 1);
	if (strcmp(cmd, "recommend") == 0)
		return driver_cmd_recommend(argc - 1, argv + 1);
	if (strcmp(cmd, "rank") == 0)
		return driver_cmd_rank(argc - 1, argv + 1);
	if (strcmp(cmd, "evaluate") == 0)
		return driver_cmd_evaluate(argc - 1, argv + 1);
	if (strcmp(cmd, "config-keys") == 0)
		return driver_cmd_config_keys(argc - 1, argv + 1);
	if (strcmp(cmd, "baselines") == 0)
	{
		if (driver_cmd_baselines == NULL)
		{
			fprintf(stderr, "isrf_driver: this build has no baselines command\n");
			return 2;
		}
		return driver_cmd_baselines(argc - 1, argv + 1);
	}
	fprintf(stderr, "isrf_driver: unknown command \"%s\"\n", cmd);
	main_usage(stderr);
	return 2;
}
