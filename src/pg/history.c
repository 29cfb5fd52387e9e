/*
 * history.c
 *	  Reading a user's current history for serving (see history.h): the
 *	  dataset's query, prepared once per process and kept, run with the
 *	  caller's rights in the caller's snapshot, mapped to the model's items.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "history.h"
#include "pg_spi.h"

/* prepared history queries kept per process */
#define HISTORY_PLANS 8
/* tables already warned about */
#define HISTORY_NOTICED 32

typedef struct HistoryPlan
{
	char	   *sql;			/* TopMemoryContext */
	SPIPlanPtr	plan;
	uint64		last_use;
} HistoryPlan;

static HistoryPlan history_plans[HISTORY_PLANS];
static uint64 history_clock = 0;
static Oid	history_noticed[HISTORY_NOTICED];
static int	history_n_noticed = 0;

/* The kept plan of sql, prepared (under the fixed search_path) the first time. */
static SPIPlanPtr
history_plan(const char *sql)
{
	HistoryPlan *slot = &history_plans[0];
	SPIPlanPtr	plan;
	int			i;

	for (i = 0; i < HISTORY_PLANS; i++)
	{
		if (history_plans[i].sql && strcmp(history_plans[i].sql, sql) == 0)
		{
			history_plans[i].last_use = ++history_clock;
			return history_plans[i].plan;
		}
		if (history_plans[i].last_use < slot->last_use)
			slot = &history_plans[i];
	}
	plan = isrf_spi_prepare(sql, 1, (Oid[]) {INT8OID});
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "could not keep the history query's plan");
	if (slot->plan)
		SPI_freeplan(slot->plan);
	if (slot->sql)
		pfree(slot->sql);
	slot->sql = MemoryContextStrdup(TopMemoryContext, sql);
	slot->plan = plan;
	slot->last_use = ++history_clock;
	return plan;
}

void
isrf_pg_history_map(const int64 *ids, int n, const IsrfModel *m, IsrfPgHistory *out)
{
	int			i;

	out->items = palloc(sizeof(int32) * (n + 1));
	out->len = 0;
	out->unknown = 0;
	for (i = 0; i < n; i++)
	{
		int32		it = isrf_model_item_index(m, ids[i]);

		if (it < 0)
			out->unknown++;
		else
			out->items[out->len++] = it;
	}
}

int64 *
isrf_pg_history_read(const char *sql, int64 user_id, int *n)
{
	SPITupleTable *tt;
	int64	   *ids;
	uint64		rows,
				i;

	tt = isrf_spi_execute_plan(history_plan(sql), (Datum[]) {Int64GetDatum(user_id)}, NULL, &rows);
	if (rows > (uint64) (MaxAllocSize / sizeof(int64) - 1))
		elog(ERROR, "a history of %llu items is too long", (unsigned long long) rows);
	ids = palloc(sizeof(int64) * (rows + 1));
	for (i = 0; i < rows; i++)
	{
		bool		isnull;

		ids[i] = DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull));
	}
	*n = (int) rows;
	return ids;
}

void
isrf_pg_history_index_notice(Oid reviews, bool has_index)
{
	char	   *name,
			   *nsp;
	int			i;

	if (has_index)
		return;
	for (i = 0; i < history_n_noticed; i++)
		if (history_noticed[i] == reviews)
			return;
	if (history_n_noticed < HISTORY_NOTICED)
		history_noticed[history_n_noticed++] = reviews;
	name = get_rel_name(reviews);
	nsp = get_namespace_name(get_rel_namespace(reviews));
	name = name && nsp ? quote_qualified_identifier(nsp, name) : "<reviews table>";
	ereport(NOTICE,
			(errmsg("no index of table %s leads with user_id, so every isrf call reads the whole table for one user's history",
					name),
			 errhint("CREATE INDEX ON %s (user_id, <order column>);", name)));
}
