/*
 * history.h
 *	  A user's current history, read at the moment of a call from the
 *	  dataset's bound reviews table with the caller's rights, for serving.
 */
#ifndef ISRF_HISTORY_H
#define ISRF_HISTORY_H

#include "postgres.h"

#include "model/model.h"

/* A history in the model's item indices, oldest first (palloc'd). */
typedef struct IsrfPgHistory
{
	int32	   *items;			/* the items the model knows */
	int32		len;
	int32		unknown;		/* items the model was not trained on, skipped */
} IsrfPgHistory;

/*
 * Read user_id's history, as external item ids oldest first (palloc'd,
 * *n of them), with the query isrf._history_sql() built (its plan prepared
 * once per process), in the caller's snapshot (a transaction sees its own
 * writes) and rights; SPI connected.
 */
int64	   *isrf_pg_history_read(const char *sql, int64 user_id, int *n);

/* Map external item ids to the model's items, skipping (and counting) unknown ones. */
void		isrf_pg_history_map(const int64 *ids, int n, const IsrfModel *m, IsrfPgHistory *out);

/*
 * Once per session and reviews table: a NOTICE that no index leads with
 * user_id, so every call reads the whole table.
 */
void		isrf_pg_history_index_notice(Oid reviews, bool has_index);

#endif							/* ISRF_HISTORY_H */
