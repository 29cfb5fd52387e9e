/*
 * data/datadir.h
 *	  Loading a data set from a directory of CSV files, in the form of
 *	  ../shared/data (see its README), into an IsrfCorpus.  This is how the
 *	  standalone driver and the unit tests read data; the PostgreSQL glue
 *	  fills the same corpus from tables.
 *
 * Files (header row required):
 *	  interactions.csv or ratings.csv   user_id, item_id and an order column,
 *		the first present of reviewed_at, position, ts, timestamp (numbers or
 *		ISO 8601 timestamps); without one the file order is used
 *	  items.csv               item_id: the catalogue, plus text columns
 *	  item_descriptions.csv   item_id plus text columns
 *	  user_descriptions.csv   user_id plus text columns
 * Only the interactions file is required.
 *
 * Text columns are every column other than the ids whose non-empty values
 * are not all numeric (so a "year" column is skipped), or exactly the columns
 * named in text_columns.  Each non-blank cell of a text column becomes one
 * text piece of weight 1.0.  Rows with an empty id or order key are skipped
 * and counted; so are interactions whose item is missing from a non-empty
 * items.csv (as the SQL loader does).
 */
#ifndef ISRF_DATADIR_H
#define ISRF_DATADIR_H

#include "data/corpus.h"
#include "base/csv.h"

typedef struct IsrfDataDir
{
	IsrfCorpus	corpus;

	char		interactions_file[32];	/* "interactions.csv" or "ratings.csv" */
	char		order_column[32];	/* "" when the file order is used */
	int64_t		n_skipped_null; /* rows with an empty id or order key */
	int64_t		n_skipped_unknown_item; /* interactions not in items.csv */
	int32_t		n_text_columns; /* (file, column) pairs used as text */
	char		text_columns[512];	/* "items.title, ..." for messages */

	/* owned storage behind corpus */
	int64_t    *user_id;
	int64_t    *item_id;
	double	   *order;
	int64_t    *catalogue;
	IsrfTextPiece *item_text;
	IsrfTextPiece *user_text;
	IsrfCsv		items;			/* text pieces point into these */
	IsrfCsv		item_desc;
	IsrfCsv		user_desc;
} IsrfDataDir;

/*
 * Load dir.  text_columns is a NULL-terminated list of column names, or
 * NULL for every text column; a name found in none of the text files is an
 * error.  On failure nothing is left allocated.
 */
IsrfStatus	isrf_datadir_load(IsrfEnv *env, const char *dir,
							  const char *const *text_columns, IsrfDataDir *out);

void		isrf_datadir_free(IsrfEnv *env, IsrfDataDir *d);

/*
 * Parse an order key: a number, or an ISO 8601 date/timestamp
 * ("2014-03-01", "2014-03-01 12:30:00.5+02:00") as seconds since 1970 UTC.
 */
bool		isrf_parse_order_key(const char *s, double *out);

#endif							/* ISRF_DATADIR_H */
