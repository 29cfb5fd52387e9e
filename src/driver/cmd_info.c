/*
 * cmd_info.c
 *	  isrf_driver info: which backend --device resolves to, described.
 */
#include "commands.h"

#include <stdio.h>

int
driver_cmd_info(int argc, char **argv)
{
	DriverOpts	o;
	IsrfEnv		env;
	IsrfBackend *be;
	char		desc[512];

	if (!driver_parse_opts(argc, argv, &o))
		return 2;
	if (o.dir)
	{
		fprintf(stderr, "isrf_driver: info takes no data directory\n");
		return 2;
	}
	driver_env_init(&env);
	if (driver_open_backend(&env, o.device, &be) != ISRF_OK)
		return driver_report(&env, "opening the backend");
	if (be->describe(be, desc, sizeof(desc)) != ISRF_OK)
	{
		isrf_backend_close(be);
		return driver_report(&env, "describing the backend");
	}
	printf("device: %s\n", be->name);
	printf("backend: %s\n", desc);
	isrf_backend_close(be);
	return 0;
}
