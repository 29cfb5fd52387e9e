/*
 * base/csv.c
 *	  RFC 4180 CSV reading into one in-place-split buffer (see csv.h).
 */
#include "base/csv.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Split csv->buf[0..len) in place into header and rows. */
static IsrfStatus
csv_split(IsrfEnv *env, IsrfCsv *csv, size_t len)
{
	char	   *p = csv->buf;
	char	   *end = csv->buf + len;
	size_t		max_cells = 1,
				max_rows = 1,
				i;
	int64_t		line = 1;
	int64_t		n_cells = 0;
	int64_t		row = 0;

	/* a UTF-8 byte-order mark is not part of the first column's name */
	if (len >= 3 && (unsigned char) p[0] == 0xEF && (unsigned char) p[1] == 0xBB &&
		(unsigned char) p[2] == 0xBF)
		p += 3;

	/* every cell ends at a comma, a line-end byte or the end of the file */
	for (i = 0; i < len; i++)
	{
		if (csv->buf[i] == ',')
			max_cells++;
		else if (csv->buf[i] == '\n' || csv->buf[i] == '\r')
		{
			max_cells++;
			max_rows++;
		}
	}
	csv->cell = isrf_alloc(env, sizeof(char *) * max_cells);
	csv->cell_len = isrf_alloc(env, sizeof(uint32_t) * max_cells);
	csv->row_line = isrf_alloc(env, sizeof(int64_t) * max_rows);
	if (!csv->cell || !csv->cell_len || !csv->row_line)
		return ISRF_ERR_NOMEM;

	while (p < end)
	{
		int32_t		fields = 0;
		int64_t		row_line = line;

		/* a line with no characters is not a row */
		if (*p == '\n' || *p == '\r')
		{
			if (*p == '\r' && p + 1 < end && p[1] == '\n')
				p++;
			p++;
			line++;
			continue;
		}
		if ((row & 0xFFFF) == 0)
			ISRF_TRY(isrf_poll(env));

		for (;;)
		{
			char	   *start = p;
			char	   *w = p;
			char		t;

			if (*p == '"')
			{
				int64_t		quote_line = line;

				p++;
				for (;;)
				{
					if (p >= end)
						return isrf_fail(env, ISRF_ERR_INVALID,
										 "%s: line %lld: unterminated quoted field (the quote opens on line %lld)",
										 csv->name, (long long) line, (long long) quote_line);
					if (*p == '"')
					{
						if (p + 1 < end && p[1] == '"')
						{
							*w++ = '"';
							p += 2;
							continue;
						}
						p++;
						break;
					}
					if (*p == '\0')
						return isrf_fail(env, ISRF_ERR_INVALID,
										 "%s: line %lld: NUL byte in a field",
										 csv->name, (long long) line);
					if (*p == '\n' || (*p == '\r' && !(p + 1 < end && p[1] == '\n')))
						line++;
					*w++ = *p++;
				}
				if (p < end && *p != ',' && *p != '\n' && *p != '\r')
					return isrf_fail(env, ISRF_ERR_INVALID,
									 "%s: line %lld: unexpected character '%c' after a closing quote (a quote inside a quoted field must be doubled)",
									 csv->name, (long long) line, *p);
			}
			else
			{
				while (p < end && *p != ',' && *p != '\n' && *p != '\r')
				{
					if (*p == '\0')
						return isrf_fail(env, ISRF_ERR_INVALID,
										 "%s: line %lld: NUL byte in a field",
										 csv->name, (long long) line);
					p++;
				}
				w = p;
			}
			if ((size_t) (w - start) > UINT32_MAX)
				return isrf_fail(env, ISRF_ERR_INVALID,
								 "%s: line %lld: field longer than 4 GB",
								 csv->name, (long long) line);
			t = p < end ? *p : '\0';
			*w = '\0';			/* w <= p, and t is already saved */
			csv->cell[n_cells] = start;
			csv->cell_len[n_cells] = (uint32_t) (w - start);
			n_cells++;
			fields++;
			if (t == ',')
			{
				p++;
				continue;
			}
			if (t == '\r')
			{
				p++;
				if (p < end && *p == '\n')
					p++;
				line++;
			}
			else if (t == '\n')
			{
				p++;
				line++;
			}
			break;
		}

		if (row == 0)
			csv->n_cols = fields;
		else if (fields != csv->n_cols)
			return isrf_fail(env, ISRF_ERR_INVALID,
							 "%s: line %lld: row has %d fields, the header has %d",
							 csv->name, (long long) row_line, fields, csv->n_cols);
		csv->row_line[row] = row_line;
		row++;
	}
	if (row == 0)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "%s: file is empty: a header row is expected", csv->name);
	csv->n_rows = row - 1;
	csv->header = csv->cell;

	for (i = 0; i < (size_t) csv->n_cols; i++)
	{
		size_t		j;

		for (j = 0; j < i; j++)
			if (strcmp(csv->header[i], csv->header[j]) == 0)
				return isrf_fail(env, ISRF_ERR_INVALID,
								 "%s: column \"%s\" appears twice in the header",
								 csv->name, csv->header[i]);
	}
	return ISRF_OK;
}

/* Parse a buffer this module owns (len bytes plus a spare byte). */
static IsrfStatus
csv_parse_owned(IsrfEnv *env, const char *name, char *buf, size_t len, IsrfCsv *out)
{
	IsrfStatus	st;

	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "%s", name);
	out->buf = buf;
	buf[len] = '\0';
	st = csv_split(env, out, len);
	if (st != ISRF_OK)
		isrf_csv_free(env, out);
	return st;
}

IsrfStatus
isrf_csv_parse(IsrfEnv *env, const char *name, const char *data, size_t len,
			   IsrfCsv *out)
{
	char	   *buf;

	memset(out, 0, sizeof(*out));
	buf = isrf_alloc(env, len + 1);
	if (buf == NULL)
		return ISRF_ERR_NOMEM;
	if (len > 0)
		memcpy(buf, data, len);
	return csv_parse_owned(env, name, buf, len, out);
}

IsrfStatus
isrf_csv_read(IsrfEnv *env, const char *path, IsrfCsv *out)
{
	FILE	   *f;
	long		size;
	char	   *buf;
	size_t		got;

	memset(out, 0, sizeof(*out));
	f = fopen(path, "rb");
	if (f == NULL)
		return isrf_fail(env, ISRF_ERR_IO, "could not open \"%s\": %s",
						 path, strerror(errno));
	if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 ||
		fseek(f, 0, SEEK_SET) != 0)
	{
		int			e = errno;

		fclose(f);
		return isrf_fail(env, ISRF_ERR_IO, "could not size \"%s\": %s",
						 path, strerror(e));
	}
	buf = isrf_alloc(env, (size_t) size + 1);
	if (buf == NULL)
	{
		fclose(f);
		return ISRF_ERR_NOMEM;
	}
	got = size > 0 ? fread(buf, 1, (size_t) size, f) : 0;
	if (got != (size_t) size || ferror(f))
	{
		fclose(f);
		isrf_free(env, buf);
		return isrf_fail(env, ISRF_ERR_IO, "could not read \"%s\": %zu of %ld bytes read",
						 path, got, size);
	}
	fclose(f);
	return csv_parse_owned(env, path, buf, (size_t) size, out);
}

void
isrf_csv_free(IsrfEnv *env, IsrfCsv *csv)
{
	isrf_free(env, (void *) csv->cell);
	isrf_free(env, csv->cell_len);
	isrf_free(env, csv->row_line);
	isrf_free(env, csv->buf);
	memset(csv, 0, sizeof(*csv));
}

int32_t
isrf_csv_column(const IsrfCsv *csv, const char *name)
{
	int32_t		c;

	for (c = 0; c < csv->n_cols; c++)
		if (strcmp(csv->header[c], name) == 0)
			return c;
	return -1;
}

static bool
csv_blank_tail(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return *s == '\0';
}

bool
isrf_csv_blank(const IsrfCsv *csv, int64_t r, int32_t c)
{
	const char *s = isrf_csv_cell(csv, r, c);

	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
		s++;
	return *s == '\0';
}

bool
isrf_csv_is_number(const char *s)
{
	char	   *e;
	double		v;

	while (*s == ' ' || *s == '\t')
		s++;
	if (*s == '\0')
		return false;
	errno = 0;
	v = strtod(s, &e);
	return e != s && csv_blank_tail(e) && isfinite(v);
}

IsrfStatus
isrf_csv_int64(IsrfEnv *env, const IsrfCsv *csv, int64_t r, int32_t c, int64_t *out)
{
	const char *s = isrf_csv_cell(csv, r, c);
	char	   *e;
	long long	v;

	errno = 0;
	v = strtoll(s, &e, 10);
	if (e == s || !csv_blank_tail(e) || errno == ERANGE)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "%s: line %lld: column \"%s\" is not a 64-bit integer: \"%.64s\"",
						 csv->name, (long long) isrf_csv_line(csv, r),
						 csv->header[c], s);
	*out = (int64_t) v;
	return ISRF_OK;
}

IsrfStatus
isrf_csv_double(IsrfEnv *env, const IsrfCsv *csv, int64_t r, int32_t c, double *out)
{
	const char *s = isrf_csv_cell(csv, r, c);

	if (!isrf_csv_is_number(s))
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "%s: line %lld: column \"%s\" is not a finite number: \"%.64s\"",
						 csv->name, (long long) isrf_csv_line(csv, r),
						 csv->header[c], s);
	*out = strtod(s, NULL);
	return ISRF_OK;
}
