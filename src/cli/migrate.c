/*
 * migrate: `shortd migrate --pg URL [--from-sqlite DIR]`.
 *
 * Applies the PostgreSQL schema's migrations and exits (serve and the other
 * commands apply them too; this is for a deployment step of its own). With
 * --from-sqlite DIR, it then copies a stopped SQLite shortd's data into
 * the (empty) PostgreSQL database, in one transaction with COPY: every
 * link (deleted ones too, so their codes stay taken), every API key and
 * the click counters: the merged ones, and the deltas not merged yet, which
 * become --node-id's in PostgreSQL (the node that starts with that id
 * reads them back and merges them, as a SQLite shortd would have). Exit
 * status: 0 done,
 * 1 failed (nothing copied), 2 bad arguments.
 */
#include "cli.h"
#include "app/app.h"
#include "core/config.h"
#include "core/log.h"
#include "core/util.h"
#include "store/store.h"

#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
	"usage: shortd migrate --pg URL [--from-sqlite DIR]\n"
	"  applies the PostgreSQL schema; with --from-sqlite, copies a stopped SQLite\n"
	"  shortd's links, keys and click counters from DIR into the empty database\n";

/* One COPY row field in text format: \N for NULL, escapes otherwise. */
static void put_field(struct buf *b, sqlite3_stmt *st, int col, int bytea)
{
	if (col)
		buf_lit(b, "\t");
	if (sqlite3_column_type(st, col) == SQLITE_NULL) {
		buf_lit(b, "\\N");
		return;
	}
	if (bytea) {
		const unsigned char *p = sqlite3_column_blob(st, col);
		int n = sqlite3_column_bytes(st, col);
		buf_lit(b, "\\\\x");
		for (int i = 0; i < n; i++)
			buf_printf(b, "%02x", p[i]);
		return;
	}
	const char *t = (const char *)sqlite3_column_text(st, col);
	for (; *t; t++) {
		if (*t == '\\' || *t == '\t' || *t == '\n' || *t == '\r') {
			char esc[3] = {'\\', *t == '\t' ? 't' : *t == '\n' ? 'n' : *t == '\r' ? 'r' : '\\', 0};
			buf_append(b, esc, 2);
		} else {
			buf_append(b, t, 1);
		}
	}
}

/* Copies the rows of a SQLite query into a PostgreSQL table: the number
 * of rows, or -1 with err. bytea_col: the column sent as bytea, or -1. */
static long copy_table(sqlite3 *db, PGconn *pg, const char *select, const char *copy,
		       int bytea_col, int bytea_col2, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, select, -1, &st, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "sqlite: %s", sqlite3_errmsg(db));
		return -1;
	}
	PGresult *r = PQexec(pg, copy);
	int ok = PQresultStatus(r) == PGRES_COPY_IN;
	if (!ok)
		snprintf(err, errlen, "%s", PQresultErrorMessage(r));
	PQclear(r);
	long n = 0;
	struct buf line;
	buf_init(&line);
	int rc;
	while (ok && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		line.len = 0;
		for (int c = 0; c < sqlite3_column_count(st); c++)
			put_field(&line, st, c, c == bytea_col || c == bytea_col2);
		buf_lit(&line, "\n");
		if (PQputCopyData(pg, line.p, (int)line.len) != 1) {
			snprintf(err, errlen, "%s", PQerrorMessage(pg));
			ok = 0;
		}
		n++;
	}
	if (ok && rc != SQLITE_DONE) {
		snprintf(err, errlen, "sqlite: %s", sqlite3_errmsg(db));
		ok = 0;
	}
	buf_release(&line);
	sqlite3_finalize(st);
	if (PQputCopyEnd(pg, ok ? NULL : "shortd migrate stopped") != 1)
		ok = 0;
	r = PQgetResult(pg);
	if (ok && PQresultStatus(r) != PGRES_COMMAND_OK) {
		snprintf(err, errlen, "%s", PQresultErrorMessage(r));
		ok = 0;
	}
	PQclear(r);
	while ((r = PQgetResult(pg)))
		PQclear(r);
	return ok ? n : -1;
}

static int exec_ok(PGconn *pg, const char *sql, char *err, size_t errlen)
{
	PGresult *r = PQexec(pg, sql);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
	if (!ok)
		snprintf(err, errlen, "%s", PQresultErrorMessage(r));
	PQclear(r);
	return ok ? 0 : -1;
}

static long count(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	long n = -1;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

static int copy_all(const char *dir, const char *pg_url, int node, char *err, size_t errlen)
{
	char path[4200];
	sqlite3 *db = NULL;
	PGconn *pg = NULL;
	int rc = -1;
	snprintf(path, sizeof(path), "file:%s/shortd.db?mode=ro", dir);
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "unable to open '%s/shortd.db': %s", dir,
			 db ? sqlite3_errmsg(db) : "out of memory");
		goto out;
	}
	char *attach = sqlite3_mprintf("ATTACH 'file:%q/clicks.db?mode=ro' AS clicks", dir);
	int att = sqlite3_exec(db, attach, NULL, NULL, NULL);
	sqlite3_free(attach);
	if (att != SQLITE_OK || count(db, "SELECT count(*) FROM clicks.click_flush") < 0) {
		snprintf(err, errlen, "unable to read '%s/clicks.db'", dir);
		goto out;
	}
	pg = PQconnectdb(pg_url);
	if (PQstatus(pg) != CONNECTION_OK) {
		snprintf(err, errlen, "%s", PQerrorMessage(pg));
		goto out;
	}
	if (exec_ok(pg, "BEGIN", err, errlen))
		goto out;
	PGresult *r = PQexec(pg, "SELECT (SELECT count(*) FROM links) + (SELECT count(*) FROM api_keys)");
	int empty = PQresultStatus(r) == PGRES_TUPLES_OK && strcmp(PQgetvalue(r, 0, 0), "0") == 0;
	PQclear(r);
	if (!empty) {
		snprintf(err, errlen, "the PostgreSQL database already holds links or keys: migrate"
			 " into an empty one");
		goto out;
	}
	long links = copy_table(db, pg,
				"SELECT id, code, url, redirect, created_at, updated_at, expires_at,"
				" deleted_at, owner, idem_key, idem_hash, forward_query FROM links",
				"COPY links (id, code, url, redirect, created_at, updated_at, expires_at,"
				" deleted_at, owner, idem_key, idem_hash, forward_query) FROM STDIN",
				10, -1, err, errlen);
	long keys = links < 0 ? -1
			      : copy_table(db, pg,
					   "SELECT id, key_id, name, role, hash, created_at, revoked_at"
					   " FROM api_keys",
					   "COPY api_keys (id, key_id, name, role, hash, created_at,"
					   " revoked_at) FROM STDIN",
					   4, -1, err, errlen);
	long hours = keys < 0 ? -1
			      : copy_table(db, pg, "SELECT link_id, hour, humans, bots FROM clicks.click_hours",
					   "COPY click_hours (link_id, hour, humans, bots) FROM STDIN", -1,
					   -1, err, errlen);
	long days = hours < 0 ? -1
			      : copy_table(db, pg,
					   "SELECT link_id, day, referrer, country, device, browser, os,"
					   " clicks FROM clicks.click_days",
					   "COPY click_days (link_id, day, referrer, country, device,"
					   " browser, os, clicks) FROM STDIN",
					   -1, -1, err, errlen);
	char sql[200];
	snprintf(sql, sizeof(sql), "SELECT %d, seq, data FROM clicks.click_deltas", node);
	long deltas = days < 0 ? -1
			       : copy_table(db, pg, sql, "COPY click_deltas (node, seq, data) FROM STDIN",
					    2, -1, err, errlen);
	if (deltas < 0)
		goto out;
	snprintf(sql, sizeof(sql),
		 "INSERT INTO click_flush (node, seq) VALUES (%d, %ld)"
		 " ON CONFLICT (node) DO UPDATE SET seq = excluded.seq",
		 node, count(db, "SELECT seq FROM clicks.click_flush WHERE id = 1"));
	if (exec_ok(pg, sql, err, errlen) || exec_ok(pg, "COMMIT", err, errlen))
		goto out;
	fprintf(stderr,
		"copied %ld links, %ld API keys, %ld + %ld click counters and %ld click deltas"
		" (now node %d's) from '%s'\n",
		links, keys, hours, days, deltas, node, dir);
	rc = 0;
out:
	if (pg && PQtransactionStatus(pg) == PQTRANS_INTRANS)
		PQclear(PQexec(pg, "ROLLBACK"));
	PQfinish(pg);
	sqlite3_close(db);
	return rc;
}

int cli_migrate(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(usage, stdout);
			return 0;
		}
	const char *from = NULL, *extra = NULL;
	const struct config_flag flags[] = {{"--from-sqlite", &from, 0}};
	struct config cfg;
	char err[600];
	int rc = config_load_sub(&cfg, argc, argv, 1, flags, ARRAY_LEN(flags), &extra, err,
				 sizeof(err));
	if (rc != CONFIG_OK || extra || !cfg.pg[0]) {
		if (rc == CONFIG_ERR)
			fprintf(stderr, "shortd migrate: %s\n", err);
		else if (rc == CONFIG_OK)
			fprintf(stderr, "shortd migrate: %s\n",
				extra ? "unexpected argument" : "give the database with --pg URL");
		fputs(usage, stderr);
		config_release(&cfg);
		return rc == CONFIG_HELP ? 0 : 2;
	}
	log_threshold = LOG_LEVEL_WARN;
	struct store_config sc;
	app_store_config(&cfg, &sc);
	struct store s;
	rc = 1;
	if (store_open(&s, &sc, err, sizeof(err)) != STORE_OK) {
		fprintf(stderr, "shortd migrate: %s\n", err);
		goto out;
	}
	store_close(&s);
	fprintf(stderr, "the PostgreSQL schema is up to date\n");
	if (from && copy_all(from, cfg.pg, cfg.node_id, err, sizeof(err)) != 0) {
		fprintf(stderr, "shortd migrate: %s (nothing was copied)\n", err);
		goto out;
	}
	rc = 0;
out:
	config_release(&cfg);
	return rc;
}
