/* pgtest.h - PostgreSQL for the store tests, through psql (only store/ includes libpq): the
 * throwaway cluster that tests/pg/cluster.sh runs, a database wiped between tests, one-value
 * queries, and the cluster stopped and started again for the outage tests. */
#ifndef COUPOND_PGTEST_H
#define COUPOND_PGTEST_H

#include <stdbool.h>
#include <stddef.h>

/* True when uri names a PostgreSQL store ("postgresql:" or "postgres:"). */
bool pgtest_is_pg(const char *uri);

/* Runs sql (one or more statements) with psql on uri; true when it succeeded. */
bool pgtest_sql(const char *uri, const char *sql);

/* Starts sql with psql on uri without waiting; returns its process id (or -1). */
int pgtest_sql_start(const char *uri, const char *sql);

/* Waits for a pgtest_sql_start; true when psql succeeded. */
bool pgtest_sql_wait(int pid);

/* The first column of the first row of sql's result, as text, into out; false on failure. */
bool pgtest_value(const char *uri, const char *sql, char *out, size_t len);

/* Empties the database of uri: no coupond schema, no table. Aborts the test on failure. */
void pgtest_wipe(const char *uri);

/* Stops (at once, as a crash would) or starts the cluster of cluster.sh; false on failure or
 * outside cluster.sh. */
bool pgtest_cluster(const char *action);

#endif
