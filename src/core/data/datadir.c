/*
 * data/datadir.c
 *	  A data-set directory of CSV files into an IsrfCorpus (see datadir.h).
 */
#include "data/datadir.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const dd_order_columns[] = {"reviewed_at", "position", "ts", "timestamp", NULL};

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static int64_t
dd_days_from_civil(int64_t y, int m, int d)
{
	int64_t		era;
	int64_t		yoe,
				doy,
				doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* Read exactly n digits. */
static bool
dd_digits(const char **s, int n, int *out)
{
	int			v = 0;
	int			i;

	for (i = 0; i < n; i++)
	{
		if (!isdigit((unsigned char) (*s)[i]))
			return false;
		v = v * 10 + ((*s)[i] - '0');
	}
	*s += n;
	*out = v;
	return true;
}

bool
isrf_parse_order_key(const char *s, double *out)
{
	int			y,
				mo,
				d,
				h = 0,
				mi = 0,
				sec = 0;
	double		frac = 0.0;
	int64_t		offset = 0;

	if (isrf_csv_is_number(s))
	{
		*out = strtod(s, NULL);
		return true;
	}
	while (*s == ' ')
		s++;
	if (!dd_digits(&s, 4, &y) || *s++ != '-' || !dd_digits(&s, 2, &mo) ||
		*s++ != '-' || !dd_digits(&s, 2, &d) || mo < 1 || mo > 12 || d < 1 || d > 31)
		return false;
	if (*s == 'T' || *s == ' ')
	{
		s++;
		if (!dd_digits(&s, 2, &h) || *s++ != ':' || !dd_digits(&s, 2, &mi) ||
			h > 24 || mi > 59)
			return false;
		if (*s == ':')
		{
			s++;
			if (!dd_digits(&s, 2, &sec) || sec > 60)
				return false;
			if (*s == '.')
			{
				double		scale = 0.1;

				s++;
				if (!isdigit((unsigned char) *s))
					return false;
				while (isdigit((unsigned char) *s))
				{
					frac += (*s++ - '0') * scale;
					scale /= 10;
				}
			}
		}
		if (*s == 'Z')
			s++;
		else if (*s == '+' || *s == '-')
		{
			int			sign = *s++ == '-' ? -1 : 1;
			int			oh,
						om = 0;

			if (!dd_digits(&s, 2, &oh))
				return false;
			if (*s == ':')
				s++;
			if (isdigit((unsigned char) *s) && !dd_digits(&s, 2, &om))
				return false;
			offset = sign * (oh * 3600 + om * 60);
		}
	}
	while (*s == ' ')
		s++;
	if (*s != '\0')
		return false;
	*out = (double) (dd_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset) + frac;
	return true;
}

/* Read dir/name into csv; *present = false (and OK) when there is no such file. */
static IsrfStatus
dd_read_optional(IsrfEnv *env, const char *dir, const char *name, IsrfCsv *csv,
				 bool *present)
{
	char		path[4096];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	*present = access(path, F_OK) == 0;
	if (!*present)
		return ISRF_OK;
	return isrf_csv_read(env, path, csv);
}

static bool
dd_is_id_column(const char *name)
{
	return strcmp(name, "item_id") == 0 || strcmp(name, "user_id") == 0;
}

static bool
dd_named(const char *const *names, const char *col)
{
	for (; *names; names++)
		if (strcmp(*names, col) == 0)
			return true;
	return false;
}

/* Whether column c of csv is used as text (see datadir.h). */
static bool
dd_is_text_column(const IsrfCsv *csv, int32_t c, const char *const *text_columns)
{
	int64_t		r;

	if (dd_is_id_column(csv->header[c]))
		return false;
	if (text_columns)
		return dd_named(text_columns, csv->header[c]);
	for (r = 0; r < csv->n_rows; r++)
		if (!isrf_csv_blank(csv, r, c) && !isrf_csv_is_number(isrf_csv_cell(csv, r, c)))
			return true;
	return false;
}

/* Remember a text column as "file.column" for messages. */
static void
dd_note_column(IsrfDataDir *d, const char *file, const char *col)
{
	size_t		used = strlen(d->text_columns);

	snprintf(d->text_columns + used, sizeof(d->text_columns) - used, "%s%s.%s",
			 used ? ", " : "", file, col);
	d->n_text_columns++;
}

/*
 * Append the text pieces of csv (keyed by id_name) to *pieces.  Rows with an
 * empty id are skipped and counted.
 */
static IsrfStatus
dd_collect_text(IsrfEnv *env, IsrfDataDir *d, const IsrfCsv *csv, const char *file,
				const char *id_name, const char *const *text_columns,
				IsrfTextPiece **pieces, int64_t *n_pieces)
{
	int32_t		id_col = isrf_csv_column(csv, id_name);
	bool	   *is_text;
	int32_t		c,
				n_text = 0;
	int64_t		r,
				n = *n_pieces;
	IsrfTextPiece *grown;

	if (id_col < 0)
		return isrf_fail(env, ISRF_ERR_INVALID, "%s: no \"%s\" column", csv->name, id_name);
	is_text = isrf_calloc(env, (size_t) csv->n_cols + 1, sizeof(bool));
	if (is_text == NULL)
		return ISRF_ERR_NOMEM;
	for (c = 0; c < csv->n_cols; c++)
		if (c != id_col && dd_is_text_column(csv, c, text_columns))
		{
			is_text[c] = true;
			n_text++;
			dd_note_column(d, file, csv->header[c]);
		}

	grown = isrf_alloc(env, sizeof(IsrfTextPiece) * (size_t) (n + csv->n_rows * n_text + 1));
	if (grown == NULL)
	{
		isrf_free(env, is_text);
		return ISRF_ERR_NOMEM;
	}
	if (n > 0)
		memcpy(grown, *pieces, sizeof(IsrfTextPiece) * (size_t) n);
	isrf_free(env, *pieces);
	*pieces = grown;

	for (r = 0; r < csv->n_rows; r++)
	{
		int64_t		id;
		IsrfStatus	st;

		if (isrf_csv_blank(csv, r, id_col))
		{
			d->n_skipped_null++;
			continue;
		}
		if (n_text == 0)
			continue;
		st = isrf_csv_int64(env, csv, r, id_col, &id);
		if (st != ISRF_OK)
		{
			isrf_free(env, is_text);
			return st;
		}
		for (c = 0; c < csv->n_cols; c++)
			if (is_text[c] && !isrf_csv_blank(csv, r, c))
			{
				grown[n].id = id;
				grown[n].text = isrf_csv_cell(csv, r, c);
				grown[n].len = isrf_csv_cell_len(csv, r, c);
				grown[n].weight = 1.0f;
				n++;
			}
	}
	isrf_free(env, is_text);
	*n_pieces = n;
	return ISRF_OK;
}

static int
dd_cmp_int64(const void *a, const void *b)
{
	int64_t		x = *(const int64_t *) a;
	int64_t		y = *(const int64_t *) b;

	return (x > y) - (x < y);
}

/* Interactions file into d->user_id/item_id/order. */
static IsrfStatus
dd_load_interactions(IsrfEnv *env, IsrfDataDir *d, const char *dir,
					 const int64_t *sorted_catalogue, int64_t n_catalogue)
{
	IsrfCsv		csv;
	bool		present;
	int32_t		uc,
				ic,
				oc = -1;
	int64_t		r,
				n = 0;
	IsrfStatus	st = ISRF_OK;
	int			k;

	snprintf(d->interactions_file, sizeof(d->interactions_file), "interactions.csv");
	ISRF_TRY(dd_read_optional(env, dir, d->interactions_file, &csv, &present));
	if (!present)
	{
		snprintf(d->interactions_file, sizeof(d->interactions_file), "ratings.csv");
		ISRF_TRY(dd_read_optional(env, dir, d->interactions_file, &csv, &present));
	}
	if (!present)
		return isrf_fail(env, ISRF_ERR_IO,
						 "data directory \"%s\" has neither interactions.csv nor ratings.csv",
						 dir);
	uc = isrf_csv_column(&csv, "user_id");
	ic = isrf_csv_column(&csv, "item_id");
	for (k = 0; dd_order_columns[k] && oc < 0; k++)
		oc = isrf_csv_column(&csv, dd_order_columns[k]);
	if (uc < 0 || ic < 0)
	{
		st = isrf_fail(env, ISRF_ERR_INVALID, "%s: needs columns \"user_id\" and \"item_id\"",
					   csv.name);
		goto done;
	}
	if (oc >= 0)
		snprintf(d->order_column, sizeof(d->order_column), "%s", csv.header[oc]);
	else
		isrf_log(env, "%s: no order column (reviewed_at, position, ts, timestamp): using the file order",
				 csv.name);

	d->user_id = isrf_alloc(env, sizeof(int64_t) * (size_t) (csv.n_rows + 1));
	d->item_id = isrf_alloc(env, sizeof(int64_t) * (size_t) (csv.n_rows + 1));
	d->order = isrf_alloc(env, sizeof(double) * (size_t) (csv.n_rows + 1));
	if (!d->user_id || !d->item_id || !d->order)
	{
		st = ISRF_ERR_NOMEM;
		goto done;
	}
	for (r = 0; r < csv.n_rows; r++)
	{
		if ((r & 0xFFFF) == 0 && (st = isrf_poll(env)) != ISRF_OK)
			goto done;
		if (isrf_csv_blank(&csv, r, uc) || isrf_csv_blank(&csv, r, ic) ||
			(oc >= 0 && isrf_csv_blank(&csv, r, oc)))
		{
			d->n_skipped_null++;
			continue;
		}
		if ((st = isrf_csv_int64(env, &csv, r, uc, &d->user_id[n])) != ISRF_OK ||
			(st = isrf_csv_int64(env, &csv, r, ic, &d->item_id[n])) != ISRF_OK)
			goto done;
		if (oc < 0)
			d->order[n] = (double) r;
		else if (!isrf_parse_order_key(isrf_csv_cell(&csv, r, oc), &d->order[n]))
		{
			st = isrf_fail(env, ISRF_ERR_INVALID,
						   "%s: line %lld: order column \"%s\" is neither a number nor an ISO 8601 timestamp: \"%.64s\"",
						   csv.name, (long long) isrf_csv_line(&csv, r), csv.header[oc],
						   isrf_csv_cell(&csv, r, oc));
			goto done;
		}
		if (n_catalogue > 0 &&
			!bsearch(&d->item_id[n], sorted_catalogue, (size_t) n_catalogue,
					 sizeof(int64_t), dd_cmp_int64))
		{
			d->n_skipped_unknown_item++;
			continue;
		}
		n++;
	}
	d->corpus.rows.n = n;
	d->corpus.rows.user_id = d->user_id;
	d->corpus.rows.item_id = d->item_id;
	d->corpus.rows.order = d->order;
done:
	isrf_csv_free(env, &csv);
	return st;
}

/* The body of isrf_datadir_load; the caller frees d on failure. */
static IsrfStatus
dd_load(IsrfEnv *env, const char *dir, const char *const *text_columns, IsrfDataDir *d)
{
	bool		has_items,
				has_idesc,
				has_udesc;
	int64_t    *sorted = NULL;
	int64_t		r,
				n_cat = 0;
	IsrfStatus	st;

	ISRF_TRY(dd_read_optional(env, dir, "items.csv", &d->items, &has_items));
	ISRF_TRY(dd_read_optional(env, dir, "item_descriptions.csv", &d->item_desc, &has_idesc));
	ISRF_TRY(dd_read_optional(env, dir, "user_descriptions.csv", &d->user_desc, &has_udesc));

	/* every named text column must exist somewhere */
	if (text_columns)
	{
		const char *const *name;

		for (name = text_columns; *name; name++)
		{
			bool		found = !dd_is_id_column(*name) &&
				((has_items && isrf_csv_column(&d->items, *name) >= 0) ||
				 (has_idesc && isrf_csv_column(&d->item_desc, *name) >= 0) ||
				 (has_udesc && isrf_csv_column(&d->user_desc, *name) >= 0));

			if (!found)
				return isrf_fail(env, ISRF_ERR_INVALID,
								 "text column \"%s\" is not a non-id column of items.csv, item_descriptions.csv or user_descriptions.csv in \"%s\"",
								 *name, dir);
		}
	}

	if (has_items)
	{
		int32_t		idc = isrf_csv_column(&d->items, "item_id");

		if (idc < 0)
			return isrf_fail(env, ISRF_ERR_INVALID, "%s: no \"item_id\" column", d->items.name);
		d->catalogue = isrf_alloc(env, sizeof(int64_t) * (size_t) (d->items.n_rows + 1));
		sorted = isrf_alloc(env, sizeof(int64_t) * (size_t) (d->items.n_rows + 1));
		if (!d->catalogue || !sorted)
		{
			isrf_free(env, sorted);
			return ISRF_ERR_NOMEM;
		}
		for (r = 0; r < d->items.n_rows; r++)
		{
			if (isrf_csv_blank(&d->items, r, idc))
				continue;		/* counted with the text pieces below */
			st = isrf_csv_int64(env, &d->items, r, idc, &d->catalogue[n_cat]);
			if (st != ISRF_OK)
			{
				isrf_free(env, sorted);
				return st;
			}
			n_cat++;
		}
		memcpy(sorted, d->catalogue, sizeof(int64_t) * (size_t) n_cat);
		qsort(sorted, (size_t) n_cat, sizeof(int64_t), dd_cmp_int64);
		d->corpus.catalogue_ids = d->catalogue;
		d->corpus.n_catalogue = n_cat;
	}
	st = dd_load_interactions(env, d, dir, sorted, n_cat);
	isrf_free(env, sorted);
	if (st != ISRF_OK)
		return st;

	if (has_items)
		ISRF_TRY(dd_collect_text(env, d, &d->items, "items", "item_id", text_columns,
								 &d->item_text, &d->corpus.n_item_text));
	if (has_idesc)
		ISRF_TRY(dd_collect_text(env, d, &d->item_desc, "item_descriptions", "item_id",
								 text_columns, &d->item_text, &d->corpus.n_item_text));
	if (has_udesc)
		ISRF_TRY(dd_collect_text(env, d, &d->user_desc, "user_descriptions", "user_id",
								 text_columns, &d->user_text, &d->corpus.n_user_text));
	d->corpus.item_text = d->item_text;
	d->corpus.user_text = d->user_text;

	isrf_log(env, "%s: %lld interactions (%s, order %s), %lld catalogue items, %lld item and %lld user text pieces from %s; skipped %lld rows with empty ids, %lld interactions with items not in items.csv",
			 dir, (long long) d->corpus.rows.n, d->interactions_file,
			 d->order_column[0] ? d->order_column : "file order",
			 (long long) d->corpus.n_catalogue, (long long) d->corpus.n_item_text,
			 (long long) d->corpus.n_user_text,
			 d->n_text_columns ? d->text_columns : "no text column",
			 (long long) d->n_skipped_null, (long long) d->n_skipped_unknown_item);
	return ISRF_OK;
}

IsrfStatus
isrf_datadir_load(IsrfEnv *env, const char *dir, const char *const *text_columns,
				  IsrfDataDir *out)
{
	IsrfStatus	st;

	memset(out, 0, sizeof(*out));
	st = dd_load(env, dir, text_columns, out);
	if (st != ISRF_OK)
		isrf_datadir_free(env, out);
	return st;
}

void
isrf_datadir_free(IsrfEnv *env, IsrfDataDir *d)
{
	isrf_free(env, d->user_id);
	isrf_free(env, d->item_id);
	isrf_free(env, d->order);
	isrf_free(env, d->catalogue);
	isrf_free(env, d->item_text);
	isrf_free(env, d->user_text);
	isrf_csv_free(env, &d->items);
	isrf_csv_free(env, &d->item_desc);
	isrf_csv_free(env, &d->user_desc);
	memset(d, 0, sizeof(*d));
}
