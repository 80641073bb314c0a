/*
 * sqlite_schema: the SQLite backend's schema, its migrations, and how rows
 * are read into links and keys (see store_sqlite.c for the design, and the
 * two schema files, compiled in, for every table).
 *
 * Each file's PRAGMA user_version counts the migrations applied to it; a
 * migration is the SQL after a "-- migration N" line, applied in its own
 * transaction, so that a crash between two leaves a database that the next
 * start takes on from where it stopped.
 */
#include "sqlite_internal.h"
#include "core/log.h"
#include "core/util.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char schema_sql[] =
#include "schema_sqlite.sql.h"
	;
static const char clicks_schema_sql[] =
#include "schema_clicks.sql.h"
	;

/* shortd.db's migration 4 drops the click tables that migration 2 made
 * there; clicks.db's migration 1 has copied them first. */
#define MAIN_CLICKS_DROPPED 4

int sqlite_exec(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "sqlite: %s (in '%.60s')", msg ? msg : "error", sql);
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static int user_version(sqlite3 *db, const char *schema)
{
	char sql[64];
	snprintf(sql, sizeof(sql), "PRAGMA %s.user_version", schema);
	sqlite3_stmt *st;
	int version = -1;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return version;
}

/* clicks.db's migration 1, after its tables exist: the counters of a
 * shortd.db from before the move, if it still has them, come along in the
 * same transaction. If shortd was stopped after this commit and before
 * shortd.db's migration 4, the next start finds clicks.db at version 1
 * and only drops the old tables: nothing is copied twice. */
static int copy_old_clicks(sqlite3 *db, int n, char *err, size_t errlen)
{
	if (n != 1 || user_version(db, "main") >= MAIN_CLICKS_DROPPED)
		return 0;
	int64_t before = sqlite3_total_changes64(db);
	int rc = sqlite_exec(db,
		      "INSERT INTO clicks.click_hours SELECT * FROM main.click_hours;"
		      "INSERT INTO clicks.click_days SELECT * FROM main.click_days;"
		      "INSERT INTO clicks.click_deltas SELECT * FROM main.click_deltas;"
		      "UPDATE clicks.click_flush SET seq ="
		      " (SELECT seq FROM main.click_flush WHERE id = 1);",
		      err, errlen);
	/* (the click_flush row is one change) */
	if (rc == 0 && sqlite3_total_changes64(db) - before > 1)
		log_info("moved %lld click counters and deltas from shortd.db to clicks.db",
			 (long long)(sqlite3_total_changes64(db) - before - 1));
	return rc;
}

/* Applies the migrations of sql (up to `upto`) above the user_version of
 * schema, each in its own transaction; after_each, if given, runs in that
 * transaction after migration n. */
static int migrate(sqlite3 *db, const char *schema, const char *sql, int upto,
		   int (*after_each)(sqlite3 *db, int n, char *err, size_t errlen), char *err,
		   size_t errlen)
{
	int version = user_version(db, schema);
	if (version < 0) {
		snprintf(err, errlen, "unable to read the schema version of %s: %s", schema,
			 sqlite3_errmsg(db));
		return -1;
	}
	int latest = 0;
	const char *marker = "-- migration ";
	for (const char *p = strstr(sql, marker); p; p = strstr(p + 1, marker))
		latest = atoi(p + strlen(marker));
	if (version > latest) {
		snprintf(err, errlen, "database %s schema version %d is newer than this shortd (%d)",
			 schema, version, latest);
		return -1;
	}
	for (const char *p = strstr(sql, marker); p;) {
		int n = atoi(p + strlen(marker));
		const char *next = strstr(p + 1, marker);
		if (n > version && n <= upto) {
			size_t len = next ? (size_t)(next - p) : strlen(p);
			struct buf step;
			buf_init(&step);
			buf_puts(&step, "BEGIN IMMEDIATE;\n");
			buf_append(&step, p, len);
			int rc = sqlite_exec(db, step.p, err, errlen);
			buf_release(&step);
			if (rc == 0 && after_each)
				rc = after_each(db, n, err, errlen);
			if (rc == 0) {
				char fin[80];
				snprintf(fin, sizeof(fin), "PRAGMA %s.user_version = %d; COMMIT;",
					 schema, n);
				rc = sqlite_exec(db, fin, err, errlen);
			}
			if (rc != 0) {
				sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
				return -1;
			}
			log_info("applied database migration %d of %s", n, schema);
		}
		p = next;
	}
	return 0;
}

/* Attaches clicks.db (made if missing) to db as "clicks". */
int sqlite_attach_clicks(sqlite3 *db, const char *path, char *err, size_t errlen)
{
	char *sql = sqlite3_mprintf("ATTACH DATABASE %Q AS clicks", path);
	int rc = sqlite_exec(db, sql, err, errlen);
	sqlite3_free(sql);
	return rc;
}

int sqlite_schema_apply(struct sqlite_store *ss, char *err, size_t errlen)
{
	sqlite3 *db = ss->links.db;
	if (sqlite_exec(db, "PRAGMA journal_mode=WAL", err, errlen) ||
	    sqlite_exec(db, "PRAGMA synchronous=FULL", err, errlen) ||
	    migrate(db, "main", schema_sql, MAIN_CLICKS_DROPPED - 1, NULL, err, errlen) ||
	    sqlite_attach_clicks(db, ss->clicks_path, err, errlen) ||
	    sqlite_exec(db, "PRAGMA clicks.journal_mode=WAL", err, errlen) ||
	    sqlite_exec(db, "PRAGMA clicks.synchronous=FULL", err, errlen))
		return -1;
	if (user_version(db, "clicks") == 0 && user_version(db, "main") >= MAIN_CLICKS_DROPPED)
		log_warn("'%s' was missing: click counts start again from zero (restore it from"
			 " the backup taken with shortd.db to keep them)",
			 ss->clicks_path);
	if (migrate(db, "clicks", clicks_schema_sql, INT_MAX, copy_old_clicks, err, errlen) ||
	    migrate(db, "main", schema_sql, INT_MAX, NULL, err, errlen) ||
	    /* BEGIN IMMEDIATE locks every attached file: the links writer
	     * must not hold clicks.db's lock, which the click writer needs */
	    sqlite_exec(db, "DETACH DATABASE clicks", err, errlen))
		return -1;
	return 0;
}

int sqlite_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, char *err, size_t errlen)
{
	if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "sqlite: unable to sqlite_prepare statement: %s", sqlite3_errmsg(db));
		return -1;
	}
	return 0;
}

struct link *sqlite_row_to_link(sqlite3_stmt *st)
{
	const char *code = (const char *)sqlite3_column_text(st, 1);
	int code_len = sqlite3_column_bytes(st, 1);
	const char *url = (const char *)sqlite3_column_text(st, 2);
	int url_len = sqlite3_column_bytes(st, 2);
	struct link *l = link_new(code ? code : "", (size_t)code_len, url ? url : "", (size_t)url_len);
	l->id = sqlite3_column_int64(st, 0);
	l->redirect = sqlite3_column_int(st, 3);
	l->created_at_ms = sqlite3_column_int64(st, 4);
	l->updated_at_ms = sqlite3_column_int64(st, 5);
	l->expires_at_ms = sqlite3_column_int64(st, 6); /* NULL reads as 0 */
	l->deleted_at_ms = sqlite3_column_int64(st, 7);
	l->owner = sqlite3_column_int64(st, 8);
	l->forward_query = sqlite3_column_int(st, 9);
	return l;
}

void sqlite_row_to_key(sqlite3_stmt *st, struct api_key *k)
{
	memset(k, 0, sizeof(*k));
	k->id = sqlite3_column_int64(st, 0);
	snprintf(k->key_id, sizeof(k->key_id), "%s", (const char *)sqlite3_column_text(st, 1));
	snprintf(k->name, sizeof(k->name), "%s", (const char *)sqlite3_column_text(st, 2));
	k->role = apikey_role_parse((const char *)sqlite3_column_text(st, 3));
	if (sqlite3_column_bytes(st, 4) == (int)sizeof(k->hash))
		memcpy(k->hash, sqlite3_column_blob(st, 4), sizeof(k->hash));
	k->created_at_ms = sqlite3_column_int64(st, 5);
	k->revoked_at_ms = sqlite3_column_int64(st, 6);
}
