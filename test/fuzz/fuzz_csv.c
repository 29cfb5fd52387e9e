/*
 * test/fuzz/fuzz_csv.c
 *	  libFuzzer harness: any bytes as a CSV file (base/csv.h).  The reader
 *	  must refuse malformed files with a message, and a file it accepts must
 *	  give cells that are NUL-terminated strings of their stated length, a
 *	  header whose names are found where they are, and numbers that parse or
 *	  are refused cleanly.  Seeds: test/fuzz/corpus/csv.
 */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/csv.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	IsrfEnv    *env = fuzz_env();
	IsrfCsv		csv;
	int64_t		r;
	int32_t		c;

	if (isrf_csv_parse(env, "fuzz.csv", (const char *) data, size, &csv) != ISRF_OK)
	{
		if (env->errmsg[0] == '\0')
			abort();			/* a refusal always says why */
		return 0;
	}
	for (c = 0; c < csv.n_cols; c++)
		if (isrf_csv_column(&csv, csv.header[c]) != c)
			abort();			/* header names are unique and found */
	for (r = 0; r < csv.n_rows && r < 2000; r++)
		for (c = 0; c < csv.n_cols; c++)
		{
			const char *cell = isrf_csv_cell(&csv, r, c);
			int64_t		i;
			double		d;

			if (strlen(cell) != isrf_csv_cell_len(&csv, r, c) || isrf_csv_line(&csv, r) < 1)
				abort();
			(void) isrf_csv_blank(&csv, r, c);
			if (isrf_csv_int64(env, &csv, r, c, &i) == ISRF_OK && !isrf_csv_is_number(cell))
				abort();		/* a whole number is a number */
			(void) isrf_csv_double(env, &csv, r, c, &d);
		}
	isrf_csv_free(env, &csv);
	return 0;
}
