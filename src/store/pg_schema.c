/*
 * pg_schema: the PostgreSQL schema's migrations (schema_pg.sql, compiled
 * in). Each pending migration runs in a transaction of its own that first
 * takes the advisory lock PG_MIGRATE_LOCK, then reads again which
 * migrations are applied: of several shortd starting at once on an empty
 * database, one applies each migration and the others, waiting on the
 * lock, find it done.
 */
#include "pg_internal.h"
#include "core/log.h"
#include "core/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char schema_pg_sql[] =
#include "schema_pg.sql.h"
	;

#define PG_MIGRATE_LOCK "7305840"

static int exec_ok(PGconn *c, const char *sql, char *err, size_t errlen)
{
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);
	int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
	if (!ok)
		snprintf(err, errlen, "migration: %s", PQresultErrorMessage(r));
	PQclear(r);
	return ok ? 0 : -1;
}

/* One integer a query answers, or -1 with err. */
static int query_int(PGconn *c, const char *sql, char *err, size_t errlen)
{
	PGresult *r = PQexec(c, sql);
	int v = -1;
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
		v = atoi(PQgetvalue(r, 0, 0));
	else
		snprintf(err, errlen, "migration: %s", PQresultErrorMessage(r));
	PQclear(r);
	return v;
}

/* The last migration applied (0: none), read inside the lock. */
static int applied(PGconn *c, char *err, size_t errlen)
{
	int exists = query_int(c, "SELECT (to_regclass('schema_migrations') IS NOT NULL)::int", err,
			       errlen);
	if (exists <= 0)
		return exists;
	return query_int(c, "SELECT coalesce(max(version), 0) FROM schema_migrations", err, errlen);
}

int pg_migrate(PGconn *c, char *err, size_t errlen)
{
	const char *marker = "-- migration ";
	int latest = 0;
	for (const char *p = strstr(schema_pg_sql, marker); p; p = strstr(p + 1, marker))
		latest = atoi(p + strlen(marker));
	for (const char *p = strstr(schema_pg_sql, marker); p;) {
		int n = atoi(p + strlen(marker));
		const char *next = strstr(p + 1, marker);
		size_t len = next ? (size_t)(next - p) : strlen(p);
		if (exec_ok(c, "BEGIN; SELECT pg_advisory_xact_lock(" PG_MIGRATE_LOCK ")", err, errlen))
			return -1;
		int v = applied(c, err, errlen);
		if (v < 0 || v > latest) {
			if (v > latest)
				snprintf(err, errlen, "the database's schema version %d is newer than this"
					 " shortd (%d)", v, latest);
			exec_ok(c, "ROLLBACK", err, errlen);
			return -1;
		}
		if (n > v) {
			struct buf step;
			buf_init(&step);
			buf_append(&step, p, len);
			buf_printf(&step, "\n;INSERT INTO schema_migrations (version) VALUES (%d)", n);
			int rc = exec_ok(c, step.p, err, errlen);
			buf_release(&step);
			if (rc == 0)
				rc = exec_ok(c, "COMMIT", err, errlen);
			if (rc != 0) {
				PQclear(PQexec(c, "ROLLBACK"));
				return -1;
			}
			log_info("applied PostgreSQL migration %d", n);
		} else if (exec_ok(c, "COMMIT", err, errlen)) {
			return -1;
		}
		p = next;
	}
	return 0;
}
