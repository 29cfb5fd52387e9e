/*
 * base/csv.h
 *	  A reader for RFC 4180 CSV files with a header row, as the data sets in
 *	  ../shared/data and PostgreSQL's COPY ... CSV HEADER write them.
 *
 * The whole file is read into one buffer and split in place: quoted fields,
 * doubled quotes, commas and newlines inside quotes, LF or CRLF line ends and
 * UTF-8 (passed through untouched; a leading byte-order mark is dropped).
 * Every cell becomes a NUL-terminated string with its length.  A newline at
 * the end of the file and lines with no characters at all are not rows.  A
 * quote inside an unquoted field is kept as a literal character, as most
 * writers that do not quote would mean it.
 *
 * Errors name the file, the line and what was wrong: an unterminated quote,
 * text after a closing quote, a row with more or fewer fields than the
 * header, a NUL byte, a duplicate or missing header.
 */
#ifndef ISRF_CSV_H
#define ISRF_CSV_H

#include "base/env.h"

typedef struct IsrfCsv
{
	char		name[256];		/* file name for messages */
	int32_t		n_cols;
	int64_t		n_rows;			/* data rows, header excluded */
	const char **header;		/* [n_cols] column names */
	const char **cell;			/* [(n_rows + 1) * n_cols], row 0 = header */
	uint32_t   *cell_len;		/* same shape, bytes without the NUL */
	int64_t    *row_line;		/* [n_rows + 1] line where each row starts */
	char	   *buf;			/* the file's bytes, split in place */
} IsrfCsv;

/* Read and parse a file.  ISRF_ERR_IO when it cannot be read. */
IsrfStatus	isrf_csv_read(IsrfEnv *env, const char *path, IsrfCsv *out);

/* Parse text already in memory (copied); name is used in messages. */
IsrfStatus	isrf_csv_parse(IsrfEnv *env, const char *name, const char *data,
						   size_t len, IsrfCsv *out);

void		isrf_csv_free(IsrfEnv *env, IsrfCsv *csv);

/* Index of the column with this exact name, or -1. */
int32_t		isrf_csv_column(const IsrfCsv *csv, const char *name);

/* Cell of data row r (0-based, header excluded) and column c. */
static inline const char *
isrf_csv_cell(const IsrfCsv *csv, int64_t r, int32_t c)
{
	return csv->cell[(r + 1) * csv->n_cols + c];
}

static inline uint32_t
isrf_csv_cell_len(const IsrfCsv *csv, int64_t r, int32_t c)
{
	return csv->cell_len[(r + 1) * csv->n_cols + c];
}

/* Line of the file where data row r starts, for messages. */
static inline int64_t
isrf_csv_line(const IsrfCsv *csv, int64_t r)
{
	return csv->row_line[r + 1];
}

/*
 * Parse a cell as a whole number / a finite real (surrounding blanks
 * allowed).  On bad input the message names file, line, column and value.
 */
IsrfStatus	isrf_csv_int64(IsrfEnv *env, const IsrfCsv *csv, int64_t r,
						   int32_t c, int64_t *out);
IsrfStatus	isrf_csv_double(IsrfEnv *env, const IsrfCsv *csv, int64_t r,
							int32_t c, double *out);

/* True when the cell holds only blanks (or nothing). */
bool		isrf_csv_blank(const IsrfCsv *csv, int64_t r, int32_t c);

/* True when s parses whole as a finite number (blanks around allowed). */
bool		isrf_csv_is_number(const char *s);

#endif							/* ISRF_CSV_H */
