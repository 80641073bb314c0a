/*
 * store_sqlite: the embedded backend, SQLite in WAL mode.
 *
 * Design:
 *  - A writer is a connection owned by one thread. Ops queue up while the
 *    previous transaction commits; the writer takes up to commit_batch of
 *    them, runs them in one BEGIN IMMEDIATE ... COMMIT, and only then
 *    calls each op's done(): many inserts per fsync (group commit). There
 *    are two: one for links and API keys (shortd.db), one for the click
 *    counters (clicks.db), so that a merge of click counters, which can
 *    take a second, never holds up a create; the click writer runs at a
 *    lower priority than the workers (see click_writer_setup).
 *  - journal_mode=WAL with synchronous=FULL: every COMMIT fsyncs the WAL,
 *    so a committed transaction survives power loss.
 *  - One reader connection per worker thread (struct store_reader). In WAL
 *    mode readers never wait for the writer. A reader keeps its read
 *    transaction (its snapshot) from one lookup to the next until the
 *    writer ends a transaction (commit_gen moves) or the worker releases it
 *    at the end of its loop's turn: beginning and ending a read
 *    transaction costs two fcntl locks and a look at the WAL index, which
 *    was a third of a cache miss. Since commit_gen moves before any op's
 *    done() runs, a read that follows an acknowledged write sees it.
 *  - Two database files: shortd.db (links, API keys) and clicks.db (click
 *    counters, committed every second), attached to every reader as
 *    "clicks", so that the counters' commits do not make the readers of
 *    links drop their page caches and memory maps. The links writer
 *    attaches clicks.db only to migrate it at open; the click writer opens
 *    it alone, as "main". Their schemas,
 *    schema_sqlite.sql and schema_clicks.sql, are compiled in; migrations
 *    are applied at open, and each file's PRAGMA user_version counts its own.
 * Invariant: an op's status is STORE_OK only if its transaction committed.
 * If a statement error makes SQLite roll the whole transaction back (disk
 * full, I/O error), the rest of the batch is failed, not run in autocommit.
 */
#include "store.h"
#include "code_map.h"
#include "sqlite_vfs.h"
#include "core/fault.h"
#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char schema_sql[] =
#include "schema_sqlite.sql.h"
	;
static const char clicks_schema_sql[] =
#include "schema_clicks.sql.h"
	;

/* shortd.db's migration 4 drops the click tables that migration 2 made
 * there; clicks.db's migration 1 has copied them first. */
#define MAIN_CLICKS_DROPPED 4

#define BUSY_TIMEOUT_MS 5000

#define LINK_COLUMNS \
	"id, code, url, redirect, created_at, updated_at, expires_at, deleted_at, owner"
#define KEY_COLUMNS "id, key_id, name, role, hash, created_at, revoked_at"

/* A writer: its connection, its thread and the ops queued for it. */
struct writer {
	struct sqlite_store *ss;
	sqlite3 *db;
	void (*setup)(void); /* run first on its thread, or NULL */
	pthread_t thread;
	int started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct store_op *head, *tail;
	int stopping;
	atomic_int last_commit_ok;
	/* owned by the writer's thread */
	struct histogram commit_latency, batch_size;
	metric_counter commits, commit_errors;
};

struct sqlite_store {
	char *path, *clicks_path; /* shortd.db, clicks.db */
	struct writer links;      /* shortd.db; clicks.db only while migrating */
	struct writer clicks;     /* clicks.db, opened as "main" */
	sqlite3_stmt *insert, *update, *del, *exists, *idem_expire, *key_insert, *key_revoke,
		*key_exists;
	sqlite3_stmt *click_hour, *click_day, *click_seq, *delta_add, *delta_drop; /* clicks.db */
	int commit_batch;
	atomic_ulong commit_gen; /* transactions the writers have ended */
	/* The code map (store_map_codes) and the thread that builds its
	 * tables, with its own connection; NULL/0 without one. */
	struct code_map *map;
	pthread_t mapper;
	pthread_mutex_t map_lock;
	pthread_cond_t map_cond;
	int map_wanted;		/* under map_lock */
	atomic_int map_stopping;
	metric_counter map_found, map_missed;
};

/* API key rows a reader read, each with the data version of shortd.db it
 * was read at (see sqlite_key_get). */
#define KEY_ROWS 4
struct key_row {
	struct api_key key; /* key_id "": an empty slot */
	unsigned version;
};

struct store_reader {
	struct sqlite_store *ss;
	sqlite3 *db;
	sqlite3_stmt *begin, *end;
	unsigned long gen; /* ss->commit_gen when the snapshot began */
	struct key_row keys[KEY_ROWS];
	unsigned next_key; /* the slot the next new row takes */
	uint64_t map_found, map_missed; /* not yet added to ss's */
	sqlite3_stmt *get, *get_id, *list, *list_owner, *key_get, *key_list, *idem_get;
	sqlite3_stmt *hours, *days, *seq, *deltas;
};

static int mkdir_p(const char *dir)
{
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s", dir);
	for (char *p = tmp + 1; *p; p++) {
		if (*p == '/') {
			*p = '\0';
			if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
				return -1;
			*p = '/';
		}
	}
	if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
		return -1;
	return 0;
}

static int exec(sqlite3 *db, const char *sql, char *err, size_t errlen)
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
	int rc = exec(db,
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
			int rc = exec(db, step.p, err, errlen);
			buf_release(&step);
			if (rc == 0 && after_each)
				rc = after_each(db, n, err, errlen);
			if (rc == 0) {
				char fin[80];
				snprintf(fin, sizeof(fin), "PRAGMA %s.user_version = %d; COMMIT;",
					 schema, n);
				rc = exec(db, fin, err, errlen);
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
static int attach_clicks(sqlite3 *db, const char *path, char *err, size_t errlen)
{
	char *sql = sqlite3_mprintf("ATTACH DATABASE %Q AS clicks", path);
	int rc = exec(db, sql, err, errlen);
	sqlite3_free(sql);
	return rc;
}

static struct link *row_to_link(sqlite3_stmt *st)
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
	return l;
}

static void row_to_key(sqlite3_stmt *st, struct api_key *k)
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

static int step_done(sqlite3_stmt *st, const char *what);

static int op_insert(struct sqlite_store *ss, struct store_op *op)
{
	struct link *l = op->link;
	sqlite3_stmt *st = ss->insert;
	if (op->idem_key) {
		/* An expired use of this Idempotency-Key gives it up. */
		sqlite3_stmt *x = ss->idem_expire;
		sqlite3_bind_int64(x, 1, l->owner);
		sqlite3_bind_text(x, 2, op->idem_key, -1, SQLITE_STATIC);
		sqlite3_bind_int64(x, 3, l->created_at_ms - STORE_IDEM_TTL_MS);
		int status = step_done(x, "expire an idempotency key");
		if (status != STORE_OK)
			return status;
		sqlite3_bind_text(st, 9, op->idem_key, -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 10, op->idem_hash, sizeof(op->idem_hash), SQLITE_STATIC);
	}
	sqlite3_bind_int64(st, 8, l->owner);
	sqlite3_bind_int64(st, 1, l->id);
	sqlite3_bind_text(st, 2, l->code, (int)l->code_len, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, l->url, (int)l->url_len, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, l->redirect);
	sqlite3_bind_int64(st, 5, l->created_at_ms);
	sqlite3_bind_int64(st, 6, l->updated_at_ms);
	if (l->expires_at_ms)
		sqlite3_bind_int64(st, 7, l->expires_at_ms);
	else
		sqlite3_bind_null(st, 7);
	int rc = sqlite3_step(st);
	int ext = sqlite3_extended_errcode(ss->links.db);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc == SQLITE_DONE) {
		op->result = link_ref(l);
		return STORE_OK;
	}
	if (ext == SQLITE_CONSTRAINT_UNIQUE || ext == SQLITE_CONSTRAINT_PRIMARYKEY)
		return STORE_CONFLICT;
	log_error("unable to insert link '%s': %s", l->code, sqlite3_errmsg(ss->links.db));
	return (ext & 0xff) == SQLITE_FULL ? STORE_FULL : STORE_ERR;
}

/* UPDATE/DELETE found no live row: tell "never existed" from "deleted". */
/* Why an UPDATE or DELETE of a live, owned link matched nothing: no such
 * code, another owner's (NOTFOUND, so codes of others stay invisible), or
 * deleted (GONE). */
static int missing_status(struct sqlite_store *ss, const struct store_op *op)
{
	sqlite3_stmt *st = ss->exists;
	sqlite3_bind_text(st, 1, op->link->code, (int)op->link->code_len, SQLITE_STATIC);
	int rc = sqlite3_step(st), status;
	if (rc == SQLITE_ROW)
		status = op->owner != STORE_ANY_OWNER && sqlite3_column_int64(st, 0) != op->owner
				 ? STORE_NOTFOUND
				 : STORE_GONE;
	else
		status = rc == SQLITE_DONE ? STORE_NOTFOUND : STORE_ERR;
	sqlite3_reset(st);
	return status;
}

static int op_modify(struct sqlite_store *ss, struct store_op *op)
{
	struct link *l = op->link;
	sqlite3_stmt *st;
	if (op->kind == STORE_OP_UPDATE) {
		st = ss->update;
		sqlite3_bind_text(st, 1, l->code, (int)l->code_len, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, !!(op->fields & STORE_F_URL));
		sqlite3_bind_text(st, 3, l->url, (int)l->url_len, SQLITE_STATIC);
		sqlite3_bind_int(st, 4, !!(op->fields & STORE_F_EXPIRES));
		if (l->expires_at_ms)
			sqlite3_bind_int64(st, 5, l->expires_at_ms);
		else
			sqlite3_bind_null(st, 5);
		sqlite3_bind_int(st, 6, !!(op->fields & STORE_F_REDIRECT));
		sqlite3_bind_int(st, 7, l->redirect);
		sqlite3_bind_int64(st, 8, l->updated_at_ms);
		sqlite3_bind_int64(st, 9, op->owner);
	} else {
		st = ss->del;
		sqlite3_bind_text(st, 1, l->code, (int)l->code_len, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, l->deleted_at_ms);
		sqlite3_bind_int64(st, 3, op->owner);
	}
	int rc = sqlite3_step(st), status;
	if (rc == SQLITE_ROW) {
		op->result = row_to_link(st);
		rc = sqlite3_step(st);
	}
	if (rc != SQLITE_DONE) {
		log_error("unable to change link '%s': %s", l->code, sqlite3_errmsg(ss->links.db));
		status = STORE_ERR;
	} else {
		status = op->result ? STORE_OK : missing_status(ss, op);
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (status != STORE_OK && op->result) {
		link_unref(op->result);
		op->result = NULL;
	}
	return status;
}

static int step_done(sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE) {
		log_error("unable to %s: %s", what, sqlite3_errmsg(sqlite3_db_handle(st)));
		return STORE_ERR;
	}
	return STORE_OK;
}

/* Appends one flushed batch of click counters. */
static int op_click_delta(struct sqlite_store *ss, struct store_op *op)
{
	sqlite3_bind_int64(ss->delta_add, 1, (sqlite3_int64)op->click_seq);
	sqlite3_bind_blob(ss->delta_add, 2, op->blob, (int)op->blob_len, SQLITE_STATIC);
	return step_done(ss->delta_add, "append click counters");
}

/* A merge row's place: the table (hours first), then the primary key's
 * columns, so that the upserts walk each B-tree in order and touch every
 * page once instead of at random. */
static int click_order_cmp(const void *a, const void *b)
{
	const struct click_count *p = *(const struct click_count *const *)a;
	const struct click_count *q = *(const struct click_count *const *)b;
	if (p->kind != q->kind)
		return p->kind < q->kind ? -1 : 1;
	if (p->link_id != q->link_id)
		return p->link_id < q->link_id ? -1 : 1;
	if (p->bucket != q->bucket)
		return p->bucket < q->bucket ? -1 : 1;
	int d = strcmp(p->referrer, q->referrer);
	if (!d)
		d = strcmp(p->country, q->country);
	if (!d)
		d = strcmp(p->device, q->device);
	if (!d)
		d = strcmp(p->browser, q->browser);
	if (!d)
		d = strcmp(p->os, q->os);
	return d;
}

/* Adds rows sorted by click_order_cmp to the click tables: the rows of
 * one key (a link's hour with several combinations, say) lie side by side,
 * and are added up into one upsert. */
static int click_upserts(struct sqlite_store *ss, const struct click_count *const *rows, size_t n)
{
	for (size_t i = 0, j; i < n; i = j) {
		const struct click_count *c = rows[i];
		uint64_t humans = 0, bots = 0;
		for (j = i; j < n && !click_order_cmp(&rows[i], &rows[j]); j++) {
			humans += rows[j]->humans;
			bots += rows[j]->bots;
		}
		sqlite3_stmt *st;
		if (c->kind == STORE_CLICK_HOUR) {
			st = ss->click_hour;
			sqlite3_bind_int64(st, 1, c->link_id);
			sqlite3_bind_int(st, 2, c->bucket);
			sqlite3_bind_int64(st, 3, (sqlite3_int64)humans);
			sqlite3_bind_int64(st, 4, (sqlite3_int64)bots);
		} else {
			st = ss->click_day;
			sqlite3_bind_int64(st, 1, c->link_id);
			sqlite3_bind_int(st, 2, c->bucket);
			sqlite3_bind_text(st, 3, c->referrer, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 4, c->country, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 5, c->device, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 6, c->browser, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 7, c->os, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 8, (sqlite3_int64)humans);
		}
		if (step_done(st, "merge click counters") != STORE_OK)
			return STORE_ERR;
	}
	return STORE_OK;
}

/* Adds counters to the click tables, drops the deltas they came from, and
 * records how far the tables go. */
static int op_click_merge(struct sqlite_store *ss, struct store_op *op)
{
	const struct click_count **order = xmalloc((op->nclicks ? op->nclicks : 1) * sizeof(*order));
	for (size_t i = 0; i < op->nclicks; i++)
		order[i] = &op->clicks[i];
	qsort(order, op->nclicks, sizeof(*order), click_order_cmp);
	int status = click_upserts(ss, order, op->nclicks);
	free(order);
	if (status != STORE_OK)
		return status;
	sqlite3_bind_int64(ss->delta_drop, 1, (sqlite3_int64)op->click_seq);
	if (step_done(ss->delta_drop, "drop merged click deltas") != STORE_OK)
		return STORE_ERR;
	sqlite3_bind_int64(ss->click_seq, 1, (sqlite3_int64)op->click_seq);
	return step_done(ss->click_seq, "record the click merge");
}

static int op_key_insert(struct sqlite_store *ss, struct store_op *op)
{
	const struct api_key *k = op->key;
	sqlite3_stmt *st = ss->key_insert;
	sqlite3_bind_int64(st, 1, k->id);
	sqlite3_bind_text(st, 2, k->key_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, k->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, apikey_role_name(k->role), -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 5, k->hash, sizeof(k->hash), SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, k->created_at_ms);
	int rc = sqlite3_step(st);
	int ext = sqlite3_extended_errcode(ss->links.db);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc == SQLITE_DONE)
		return STORE_OK;
	if (ext == SQLITE_CONSTRAINT_UNIQUE || ext == SQLITE_CONSTRAINT_PRIMARYKEY)
		return STORE_CONFLICT;
	log_error("unable to insert an API key: %s", sqlite3_errmsg(ss->links.db));
	return (ext & 0xff) == SQLITE_FULL ? STORE_FULL : STORE_ERR;
}

static int op_key_revoke(struct sqlite_store *ss, struct store_op *op)
{
	sqlite3_stmt *st = ss->key_revoke;
	sqlite3_bind_int64(st, 1, op->key->id);
	sqlite3_bind_int64(st, 2, op->key->revoked_at_ms);
	int status = step_done(st, "revoke an API key");
	if (status != STORE_OK || sqlite3_changes(ss->links.db) == 1)
		return status;
	st = ss->key_exists;
	sqlite3_bind_int64(st, 1, op->key->id);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc == SQLITE_ROW)
		return STORE_GONE; /* revoked before */
	return rc == SQLITE_DONE ? STORE_NOTFOUND : STORE_ERR;
}

/* STORE_FULL when the last error of db was a full disk, else STORE_ERR. */
static int failure(sqlite3 *db)
{
	return (sqlite3_extended_errcode(db) & 0xff) == SQLITE_FULL ? STORE_FULL : STORE_ERR;
}

static void fail_op(struct store_op *op, int status)
{
	op->status = status;
	if (op->result) {
		link_unref(op->result);
		op->result = NULL;
	}
}

/* Tells the code map that row id holds code, and has a new table built
 * when the map asks for one. */
static void map_add(struct sqlite_store *ss, const char *code, size_t len, int64_t id)
{
	if (code_map_add(ss->map, code_map_hash(ss->map, code, len), id)) {
		pthread_mutex_lock(&ss->map_lock);
		ss->map_wanted = 1;
		pthread_cond_signal(&ss->map_cond);
		pthread_mutex_unlock(&ss->map_lock);
	}
}

static void run_batch(struct writer *w, struct store_op *batch)
{
	struct sqlite_store *ss = w->ss;
	uint64_t t0 = time_mono_ns();
	size_t nops = 0;
	for (struct store_op *op = batch; op; op = op->next)
		nops++;
	hist_observe_value(&w->batch_size, nops);
	int ok = sqlite3_exec(w->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK;
	/* What every op not run (or rolled back) gets once ok is 0. */
	int fail_status = STORE_ERR;
	if (!ok) {
		log_error("unable to begin a transaction: %s", sqlite3_errmsg(w->db));
		fail_status = failure(w->db);
	}
	for (struct store_op *op = batch; op; op = op->next) {
		op->result = NULL;
		if (!ok) {
			op->status = fail_status;
			continue;
		}
		switch (op->kind) {
		case STORE_OP_INSERT:
			op->status = op_insert(ss, op);
			break;
		case STORE_OP_CLICK_DELTA:
			op->status = op_click_delta(ss, op);
			break;
		case STORE_OP_CLICK_MERGE:
			op->status = op_click_merge(ss, op);
			break;
		case STORE_OP_KEY_INSERT:
			op->status = op_key_insert(ss, op);
			break;
		case STORE_OP_KEY_REVOKE:
			op->status = op_key_revoke(ss, op);
			break;
		default:
			op->status = op_modify(ss, op);
			break;
		}
		if ((op->status == STORE_ERR || op->status == STORE_FULL) &&
		    sqlite3_get_autocommit(w->db)) {
			/* SQLite rolled the transaction back: nothing of this
			 * batch is committed, and nothing more may run. */
			ok = 0;
			fail_status = op->status;
			for (struct store_op *o = batch; o != op->next; o = o->next)
				fail_op(o, fail_status);
		}
	}
	enum fault_kind fk = ok ? fault_hit(FAULT_COMMIT) : FAULT_NONE;
	if (fk) {
		log_error("unable to commit: injected fault");
		ok = 0;
		for (struct store_op *op = batch; op; op = op->next)
			fail_op(op, fk == FAULT_ENOSPC ? STORE_FULL : STORE_ERR);
	}
	if (ok && sqlite3_exec(w->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		log_error("unable to commit: %s", sqlite3_errmsg(w->db));
		ok = 0;
		int st = failure(w->db);
		for (struct store_op *op = batch; op; op = op->next)
			fail_op(op, st);
	}
	if (!sqlite3_get_autocommit(w->db))
		sqlite3_exec(w->db, "ROLLBACK", NULL, NULL, NULL);
	w->last_commit_ok = ok;
	/* Before done(): readers drop older snapshots before a client can
	 * hear of this commit. */
	atomic_fetch_add_explicit(&ss->commit_gen, 1, memory_order_release);
	for (struct store_op *op = batch; ok && ss->map && op; op = op->next)
		if (op->kind == STORE_OP_INSERT && op->status == STORE_OK && op->result)
			map_add(ss, op->result->code, op->result->code_len, op->result->id);
	metric_add(ok ? &w->commits : &w->commit_errors, 1);
	hist_observe(&w->commit_latency, time_mono_ns() - t0);
	struct store_op *next;
	for (struct store_op *op = batch; op; op = next) {
		next = op->next;
		op->done(op); /* may free op */
	}
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	if (w->setup)
		w->setup();
	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (!w->head && !w->stopping)
			pthread_cond_wait(&w->cond, &w->lock);
		if (!w->head)
			break; /* stopping, and every op is done */
		if (w->head == w->tail && !w->stopping) {
			/* One op: let the threads that submit it run first if
			 * they share our core (a small VPS, or the benchmark's
			 * pinning), so that the ops they are about to submit
			 * join this commit instead of each paying for its own. */
			pthread_mutex_unlock(&w->lock);
			sched_yield();
			pthread_mutex_lock(&w->lock);
		}
		struct store_op *batch = w->head, *last = batch;
		for (int n = 1; n < w->ss->commit_batch && last->next; n++)
			last = last->next;
		w->head = last->next;
		if (!w->head)
			w->tail = NULL;
		last->next = NULL;
		pthread_mutex_unlock(&w->lock);
		run_batch(w, batch);
		pthread_mutex_lock(&w->lock);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* The click writer runs at SCHED_IDLE: only when nothing else wants its
 * core. On a core shared with a worker (a small VPS, or the benchmark's
 * pinning) a merge of 200k counters is a second of SQLite, and at the
 * normal priority the scheduler split the core between the two: the p99
 * of a redirect in a 5 s run with merges every 4 s went from 1.75 ms (at
 * SCHED_IDLE) to 4.02 ms (nice 0; 2.84 at nice 19). A worker that wakes
 * up takes the core back at once. The cost: while the workers keep every
 * core busy, clicks become durable late (they are counted, in memory,
 * and shown by queries; shortd_clicks_pending says how many wait). */
static void click_writer_setup(void)
{
	struct sched_param sp = {0};
	if (sched_setscheduler(0, SCHED_IDLE, &sp) != 0)
		log_warn("unable to run the click writer at SCHED_IDLE: %s", strerror(errno));
}

static void writer_init(struct writer *w, struct sqlite_store *ss, void (*setup)(void))
{
	w->ss = ss;
	w->setup = setup;
	w->last_commit_ok = 1;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
}

static int writer_start(struct writer *w)
{
	if (pthread_create(&w->thread, NULL, writer_main, w) != 0)
		return -1;
	w->started = 1;
	return 0;
}

/* Runs the ops queued, then ends the thread. */
static void writer_stop(struct writer *w)
{
	if (!w->started)
		return;
	pthread_mutex_lock(&w->lock);
	w->stopping = 1;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	w->started = 0;
}

static void writer_close(struct writer *w, const char *path)
{
	if (w->db && sqlite3_close(w->db) != SQLITE_OK)
		log_error("unable to close database '%s': %s", path, sqlite3_errmsg(w->db));
	w->db = NULL;
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
}

static void sqlite_submit(struct store *s, struct store_op *op)
{
	struct sqlite_store *ss = s->impl;
	struct writer *w = op->kind == STORE_OP_CLICK_DELTA || op->kind == STORE_OP_CLICK_MERGE
				   ? &ss->clicks
				   : &ss->links;
	op->next = NULL;
	pthread_mutex_lock(&w->lock);
	if (w->tail)
		w->tail->next = op;
	else
		w->head = op;
	w->tail = op;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

/* Checkpoints, in place of SQLite's automatic one (which this replaces):
 * after a commit that leaves at least CHECKPOINT_PAGES in the WAL, copy
 * them to the database (PASSIVE: without waiting, and only what no reader's
 * snapshot still needs, which is what SQLite's own does). Eight times
 * SQLite's 1,000 pages: a page that several commits change (a leaf of the
 * code index) is copied once per checkpoint, and the database is fsynced
 * less often, while the writer waits. Creates in 8 s runs: 101-126k at
 * 1,000 pages, 131-148k at 4,000; 8,000 gave 4-8% more than 4,000 in
 * three alternated pairs, and 16,000 no more than 8,000. Readers keep
 * snapshots for a turn of their loop, and under steady load some reader
 * always holds one, which keeps the WAL from starting over at its
 * beginning: it then grows. Past RESTART_PAGES the checkpoint waits for
 * the readers to let go (they do at the end of their turn: it yields the
 * CPU rather than sleep, up to RESTART_WAIT_NS), copies everything and has
 * the WAL start over; if a reader held on longer, the next commit tries
 * again. */
#define CHECKPOINT_PAGES STORE_SQLITE_CHECKPOINT_PAGES
#define RESTART_PAGES STORE_SQLITE_RESTART_PAGES
#define RESTART_WAIT_NS 20000000ULL

static int yield_while_busy(void *ctx, int tries)
{
	const uint64_t *deadline = ctx;
	(void)tries;
	if (time_mono_ns() >= *deadline)
		return 0;
	sched_yield();
	return 1;
}

static int on_wal_commit(void *ctx, sqlite3 *db, const char *schema, int pages)
{
	(void)ctx;
	if (pages < CHECKPOINT_PAGES)
		return SQLITE_OK;
	if (pages < RESTART_PAGES) {
		sqlite3_wal_checkpoint_v2(db, schema, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
		return SQLITE_OK;
	}
	uint64_t deadline = time_mono_ns() + RESTART_WAIT_NS;
	sqlite3_busy_handler(db, yield_while_busy, &deadline);
	sqlite3_wal_checkpoint_v2(db, schema, SQLITE_CHECKPOINT_RESTART, NULL, NULL);
	sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
	return SQLITE_OK;
}

static int prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, char *err, size_t errlen)
{
	if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "sqlite: unable to prepare statement: %s", sqlite3_errmsg(db));
		return -1;
	}
	return 0;
}

/* Reads every code and row id into a new table for the code map, in
 * chunks of MAP_CHUNK codes, each chunk in its own read transaction so
 * that the build does not hold one snapshot (and the WAL's growth) for
 * seconds. A link committed after its chunk was read is not missed: the
 * writer adds it to the map after its commit, which is after the build
 * began, so the map keeps it for the new table. Returns 0, or -1 if the
 * build stopped (error or shutdown). */
#define MAP_CHUNK 65536

static int build_code_map(struct sqlite_store *ss, sqlite3 *db)
{
	uint64_t t0 = time_mono_ns();
	sqlite3_stmt *count = NULL, *chunk = NULL;
	struct code_table *t = NULL;
	char err[256] = "";
	code_map_build_begin(ss->map);
	if (prepare(db, "SELECT count(*) FROM links", &count, err, sizeof(err)) ||
	    prepare(db,
		    "SELECT code, id FROM links INDEXED BY links_code WHERE code > ?1"
		    " ORDER BY code LIMIT ?2",
		    &chunk, err, sizeof(err)))
		goto fail;
	if (sqlite3_step(count) != SQLITE_ROW) {
		snprintf(err, sizeof(err), "%s", sqlite3_errmsg(db));
		goto fail;
	}
	int64_t rows = sqlite3_column_int64(count, 0);
	sqlite3_reset(count); /* ends its read transaction: each chunk has its own */
	/* The first table is sized for the links there are (a server
	 * restarted on its data grows slowly); one built because the map
	 * filled up holds 1.6 times more than that, so that it lasts until
	 * the table doubles: each rebuild reads every link, and under a
	 * stream of creates they were 5% of a create's CPU at 1.28 times. */
	struct code_map_stats before;
	code_map_get_stats(ss->map, &before);
	size_t room = before.builds ? (size_t)rows + (size_t)rows / 16 * 9 : (size_t)rows;
	if (!(t = code_table_new(room))) {
		snprintf(err, sizeof(err), "no memory for %lld links", (long long)rows);
		goto fail;
	}
	char last[LINK_CODE_MAX + 1] = "";
	for (;;) {
		int n = 0, rc;
		sqlite3_bind_text(chunk, 1, last, -1, SQLITE_STATIC);
		sqlite3_bind_int(chunk, 2, MAP_CHUNK);
		while ((rc = sqlite3_step(chunk)) == SQLITE_ROW) {
			const char *code = (const char *)sqlite3_column_text(chunk, 0);
			size_t len = (size_t)sqlite3_column_bytes(chunk, 0);
			int64_t id = sqlite3_column_int64(chunk, 1);
			code_table_put(t, code_map_hash(ss->map, code, len), id);
			if (++n == MAP_CHUNK)
				snprintf(last, sizeof(last), "%.*s", (int)len, code);
		}
		sqlite3_reset(chunk);
		if (rc != SQLITE_DONE) {
			snprintf(err, sizeof(err), "%s", sqlite3_errmsg(db));
			goto fail;
		}
		if (n < MAP_CHUNK)
			break;
		if (atomic_load(&ss->map_stopping))
			goto fail;
	}
	sqlite3_finalize(count);
	sqlite3_finalize(chunk);
	code_map_build_end(ss->map, t);
	struct code_map_stats st;
	code_map_get_stats(ss->map, &st);
	log_info("code map: %llu links in %.1f s, %llu MiB",
		 (unsigned long long)st.entries, (double)(time_mono_ns() - t0) / 1e9,
		 (unsigned long long)(st.bytes >> 20));
	return 0;
fail:
	if (err[0])
		log_warn("unable to build the code map (misses read the code index): %s", err);
	sqlite3_finalize(count);
	sqlite3_finalize(chunk);
	code_map_build_abort(ss->map, t);
	return -1;
}

/* The code map's builder. Its connection is opened for each build and
 * closed after it, without a memory map: a build reads the code index once,
 * in order, and its pages need not stay mapped (and counted in the
 * process's RSS) afterwards. */
static void *mapper_main(void *arg)
{
	struct sqlite_store *ss = arg;
	pthread_mutex_lock(&ss->map_lock);
	for (;;) {
		while (!ss->map_wanted && !atomic_load(&ss->map_stopping))
			pthread_cond_wait(&ss->map_cond, &ss->map_lock);
		if (atomic_load(&ss->map_stopping))
			break;
		ss->map_wanted = 0;
		pthread_mutex_unlock(&ss->map_lock);
		sqlite3 *db = NULL;
		char err[256] = "";
		int failed = 1;
		if (sqlite3_open_v2(ss->path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
				    sqlite_vfs_name()) != SQLITE_OK) {
			log_warn("unable to build the code map: %s",
				 db ? sqlite3_errmsg(db) : "no memory");
			code_map_build_abort(ss->map, NULL);
		} else if (sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS) != SQLITE_OK ||
			   exec(db, "PRAGMA query_only=1", err, sizeof(err))) {
			log_warn("unable to build the code map: %s", err);
			code_map_build_abort(ss->map, NULL);
		} else {
			failed = build_code_map(ss, db);
		}
		sqlite3_close(db);
		pthread_mutex_lock(&ss->map_lock);
		if (failed)
			break;
	}
	pthread_mutex_unlock(&ss->map_lock);
	return NULL;
}

static int sqlite_map_codes(struct store *s)
{
	struct sqlite_store *ss = s->impl;
	if (ss->map)
		return STORE_OK;
	ss->map = code_map_new();
	ss->map_wanted = 1;
	if (pthread_create(&ss->mapper, NULL, mapper_main, ss) != 0) {
		log_warn("unable to start the code map's thread: misses read the code index");
		code_map_free(ss->map);
		ss->map = NULL;
		return STORE_ERR;
	}
	return STORE_OK;
}

static void sqlite_close(struct store *s);

static int sqlite_open(struct store *s, const char *data_dir, int commit_batch, char *err,
		       size_t errlen)
{
	if (mkdir_p(data_dir) != 0) {
		snprintf(err, errlen, "unable to create data directory '%s': %s", data_dir,
			 strerror(errno));
		return STORE_ERR;
	}
	struct sqlite_store *ss = xcalloc(1, sizeof(*ss));
	s->impl = ss;
	struct buf path;
	buf_init(&path);
	buf_printf(&path, "%s/shortd.db", data_dir);
	ss->path = path.p;
	buf_init(&path);
	buf_printf(&path, "%s/clicks.db", data_dir);
	ss->clicks_path = path.p;
	ss->commit_batch = commit_batch;
	writer_init(&ss->links, ss, NULL);
	writer_init(&ss->clicks, ss, click_writer_setup);
	pthread_mutex_init(&ss->map_lock, NULL);
	pthread_cond_init(&ss->map_cond, NULL);
	if (sqlite3_open_v2(ss->path, &ss->links.db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			    sqlite_vfs_name()) != SQLITE_OK) {
		snprintf(err, errlen, "unable to open database '%s': %s", ss->path,
			 ss->links.db ? sqlite3_errmsg(ss->links.db) : "out of memory");
		goto fail;
	}
	sqlite3_busy_timeout(ss->links.db, BUSY_TIMEOUT_MS);
	sqlite3_wal_hook(ss->links.db, on_wal_commit, NULL);
	if (exec(ss->links.db, "PRAGMA journal_mode=WAL", err, errlen) ||
	    exec(ss->links.db, "PRAGMA synchronous=FULL", err, errlen) ||
	    migrate(ss->links.db, "main", schema_sql, MAIN_CLICKS_DROPPED - 1, NULL, err, errlen) ||
	    attach_clicks(ss->links.db, ss->clicks_path, err, errlen) ||
	    exec(ss->links.db, "PRAGMA clicks.journal_mode=WAL", err, errlen) ||
	    exec(ss->links.db, "PRAGMA clicks.synchronous=FULL", err, errlen))
		goto fail;
	if (user_version(ss->links.db, "clicks") == 0 &&
	    user_version(ss->links.db, "main") >= MAIN_CLICKS_DROPPED)
		log_warn("'%s' was missing: click counts start again from zero (restore it from"
			 " the backup taken with shortd.db to keep them)",
			 ss->clicks_path);
	if (migrate(ss->links.db, "clicks", clicks_schema_sql, INT_MAX, copy_old_clicks, err, errlen) ||
	    migrate(ss->links.db, "main", schema_sql, INT_MAX, NULL, err, errlen) ||
	    /* BEGIN IMMEDIATE locks every attached file: the links writer
	     * must not hold clicks.db's lock, which the click writer needs */
	    exec(ss->links.db, "DETACH DATABASE clicks", err, errlen))
		goto fail;
	if (sqlite3_open_v2(ss->clicks_path, &ss->clicks.db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, sqlite_vfs_name()) != SQLITE_OK) {
		snprintf(err, errlen, "unable to open database '%s': %s", ss->clicks_path,
			 ss->clicks.db ? sqlite3_errmsg(ss->clicks.db) : "out of memory");
		goto fail;
	}
	sqlite3_busy_timeout(ss->clicks.db, BUSY_TIMEOUT_MS);
	sqlite3_wal_hook(ss->clicks.db, on_wal_commit, NULL);
	if (exec(ss->clicks.db, "PRAGMA synchronous=FULL", err, errlen))
		goto fail;
	if (prepare(ss->links.db,
		    "INSERT INTO links (id, code, url, redirect, created_at, updated_at, expires_at,"
		    " owner, idem_key, idem_hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
		    &ss->insert, err, errlen) ||
	    prepare(ss->links.db,
		    "UPDATE links SET url = CASE WHEN ?2 THEN ?3 ELSE url END,"
		    " expires_at = CASE WHEN ?4 THEN ?5 ELSE expires_at END,"
		    " redirect = CASE WHEN ?6 THEN ?7 ELSE redirect END, updated_at = ?8"
		    " WHERE code = ?1 AND deleted_at IS NULL AND (?9 < 0 OR owner = ?9)"
		    " RETURNING " LINK_COLUMNS,
		    &ss->update, err, errlen) ||
	    prepare(ss->links.db,
		    "UPDATE links SET deleted_at = ?2, updated_at = ?2"
		    " WHERE code = ?1 AND deleted_at IS NULL AND (?3 < 0 OR owner = ?3)"
		    " RETURNING " LINK_COLUMNS,
		    &ss->del, err, errlen) ||
	    prepare(ss->links.db, "SELECT owner FROM links WHERE code = ?1", &ss->exists, err, errlen) ||
	    prepare(ss->links.db,
		    "UPDATE links SET idem_key = NULL, idem_hash = NULL"
		    " WHERE owner = ?1 AND idem_key = ?2 AND created_at < ?3",
		    &ss->idem_expire, err, errlen) ||
	    prepare(ss->links.db,
		    "INSERT INTO api_keys (id, key_id, name, role, hash, created_at)"
		    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
		    &ss->key_insert, err, errlen) ||
	    prepare(ss->links.db,
		    "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
		    &ss->key_revoke, err, errlen) ||
	    prepare(ss->links.db, "SELECT 1 FROM api_keys WHERE id = ?1", &ss->key_exists, err,
		    errlen))
		goto fail;
	if (prepare(ss->clicks.db,
		    "INSERT INTO click_hours (link_id, hour, humans, bots)"
		    " VALUES (?1, ?2, ?3, ?4)"
		    " ON CONFLICT (link_id, hour) DO UPDATE SET humans = humans + excluded.humans,"
		    " bots = bots + excluded.bots",
		    &ss->click_hour, err, errlen) ||
	    prepare(ss->clicks.db,
		    "INSERT INTO click_days"
		    " (link_id, day, referrer, country, device, browser, os, clicks)"
		    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
		    " ON CONFLICT (link_id, day, referrer, country, device, browser, os)"
		    " DO UPDATE SET clicks = clicks + excluded.clicks",
		    &ss->click_day, err, errlen) ||
	    prepare(ss->clicks.db, "UPDATE click_flush SET seq = ?1 WHERE id = 1", &ss->click_seq,
		    err, errlen) ||
	    prepare(ss->clicks.db, "INSERT INTO click_deltas (seq, data) VALUES (?1, ?2)",
		    &ss->delta_add, err, errlen) ||
	    prepare(ss->clicks.db, "DELETE FROM click_deltas WHERE seq <= ?1", &ss->delta_drop, err,
		    errlen))
		goto fail;
	if (writer_start(&ss->links) != 0 || writer_start(&ss->clicks) != 0) {
		snprintf(err, errlen, "unable to start the writer threads");
		goto fail;
	}
	log_info("database '%s' open (sqlite %s, WAL, synchronous=FULL)", ss->path,
		 sqlite3_libversion());
	return STORE_OK;
fail:
	sqlite_close(s);
	return STORE_ERR;
}

static void sqlite_close(struct store *s)
{
	struct sqlite_store *ss = s->impl;
	if (!ss)
		return;
	if (ss->map) {
		pthread_mutex_lock(&ss->map_lock);
		atomic_store(&ss->map_stopping, 1);
		pthread_cond_signal(&ss->map_cond);
		pthread_mutex_unlock(&ss->map_lock);
		pthread_join(ss->mapper, NULL);
	}
	writer_stop(&ss->links);
	writer_stop(&ss->clicks);
	sqlite3_finalize(ss->insert);
	sqlite3_finalize(ss->update);
	sqlite3_finalize(ss->del);
	sqlite3_finalize(ss->exists);
	sqlite3_finalize(ss->idem_expire);
	sqlite3_finalize(ss->key_insert);
	sqlite3_finalize(ss->key_revoke);
	sqlite3_finalize(ss->key_exists);
	sqlite3_finalize(ss->click_hour);
	sqlite3_finalize(ss->click_day);
	sqlite3_finalize(ss->click_seq);
	sqlite3_finalize(ss->delta_add);
	sqlite3_finalize(ss->delta_drop);
	writer_close(&ss->links, ss->path);
	writer_close(&ss->clicks, ss->clicks_path);
	pthread_mutex_destroy(&ss->map_lock);
	pthread_cond_destroy(&ss->map_cond);
	code_map_free(ss->map);
	free(ss->path);
	free(ss->clicks_path);
	free(ss);
	s->impl = NULL;
}

static void sqlite_reader_close(struct store_reader *r);

static int sqlite_reader_open(struct store *s, struct store_reader **out)
{
	struct sqlite_store *ss = s->impl;
	struct store_reader *r = xcalloc(1, sizeof(*r));
	char err[256];
	r->ss = ss;
	if (sqlite3_open_v2(ss->path, &r->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
			    sqlite_vfs_name()) !=
		    SQLITE_OK ||
	    /* before the first statement: reading the schema waits, as any
	     * read does, while a restart's recovery holds the WAL */
	    sqlite3_busy_timeout(r->db, BUSY_TIMEOUT_MS) != SQLITE_OK ||
	    attach_clicks(r->db, ss->clicks_path, err, sizeof(err)) ||
	    exec(r->db, "PRAGMA query_only=1", err, sizeof(err)) ||
	    /* As much of the file as SQLite maps (it caps this at its
	     * compile-time limit, 2 GiB in Debian's build): a page read
	     * beyond the map is a pread() and a copy. */
	    exec(r->db, "PRAGMA mmap_size=1099511627776", err, sizeof(err)) ||
	    exec(r->db, "PRAGMA clicks.mmap_size=1099511627776", err, sizeof(err)) ||
	    prepare(r->db, "BEGIN", &r->begin, err, sizeof(err)) ||
	    prepare(r->db, "COMMIT", &r->end, err, sizeof(err)) ||
	    prepare(r->db, "SELECT " LINK_COLUMNS " FROM links WHERE code = ?1", &r->get, err,
		    sizeof(err)) ||
	    prepare(r->db, "SELECT " LINK_COLUMNS " FROM links WHERE id = ?1", &r->get_id, err,
		    sizeof(err)) ||
	    prepare(r->db,
		    "SELECT " LINK_COLUMNS " FROM links WHERE deleted_at IS NULL AND id < ?1"
		    " ORDER BY id DESC LIMIT ?2",
		    &r->list, err, sizeof(err)) ||
	    prepare(r->db,
		    "SELECT " LINK_COLUMNS " FROM links WHERE owner = ?3 AND id < ?1"
		    " AND deleted_at IS NULL ORDER BY id DESC LIMIT ?2",
		    &r->list_owner, err, sizeof(err)) ||
	    prepare(r->db, "SELECT " KEY_COLUMNS " FROM api_keys WHERE key_id = ?1", &r->key_get,
		    err, sizeof(err)) ||
	    prepare(r->db, "SELECT " KEY_COLUMNS " FROM api_keys ORDER BY id DESC", &r->key_list,
		    err, sizeof(err)) ||
	    prepare(r->db,
		    "SELECT " LINK_COLUMNS ", idem_hash FROM links"
		    " WHERE owner = ?1 AND idem_key = ?2 AND created_at >= ?3",
		    &r->idem_get, err, sizeof(err)) ||
	    prepare(r->db,
		    "SELECT hour, humans, bots FROM clicks.click_hours WHERE link_id = ?1"
		    " AND hour BETWEEN ?2 AND ?3",
		    &r->hours, err, sizeof(err)) ||
	    prepare(r->db,
		    "SELECT day, referrer, country, device, browser, os, clicks"
		    " FROM clicks.click_days WHERE link_id = ?1 AND day BETWEEN ?2 AND ?3",
		    &r->days, err, sizeof(err)) ||
	    prepare(r->db, "SELECT seq FROM clicks.click_flush WHERE id = 1", &r->seq, err,
		    sizeof(err)) ||
	    prepare(r->db, "SELECT seq, data FROM clicks.click_deltas WHERE seq > ?1 ORDER BY seq",
		    &r->deltas, err, sizeof(err))) {
		log_error("unable to open a database reader: %s", r->db ? sqlite3_errmsg(r->db) : "");
		sqlite_reader_close(r);
		return STORE_ERR;
	}
	*out = r;
	return STORE_OK;
}

static void sqlite_reader_close(struct store_reader *r)
{
	if (!r)
		return;
	sqlite3_stmt *all[] = {r->get,	   r->get_id, r->list,  r->list_owner, r->key_get,
			       r->key_list, r->idem_get, r->hours,	    r->days,
			       r->seq,	   r->deltas, r->begin,	    r->end};
	for (size_t i = 0; i < ARRAY_LEN(all); i++)
		sqlite3_finalize(all[i]);
	sqlite3_close(r->db); /* ends a snapshot still held */
	free(r);
}

static void sqlite_reader_release(struct store_reader *r)
{
	if (r->map_found | r->map_missed) {
		metric_add(&r->ss->map_found, r->map_found);
		metric_add(&r->ss->map_missed, r->map_missed);
		r->map_found = r->map_missed = 0;
	}
	if (!sqlite3_get_autocommit(r->db)) {
		sqlite3_step(r->end);
		sqlite3_reset(r->end);
	}
}

/* Makes r's snapshot current: keeps the one it holds if the writer has
 * ended no transaction since it began, else begins a new one (which, being
 * deferred, takes its snapshot at the next statement). */
static void snapshot(struct store_reader *r)
{
	unsigned long gen = atomic_load_explicit(&r->ss->commit_gen, memory_order_acquire);
	if (!sqlite3_get_autocommit(r->db)) {
		if (r->gen == gen)
			return;
		sqlite_reader_release(r);
	}
	sqlite3_step(r->begin);
	sqlite3_reset(r->begin);
	r->gen = gen;
}

/* Steps a lookup of one row: STORE_OK with the row's columns readable,
 * STORE_NOTFOUND, or STORE_ERR (logged). The caller reads the row, then
 * calls lookup_done(). */
static int lookup_step(struct store_reader *r, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		return STORE_OK;
	if (rc == SQLITE_DONE)
		return STORE_NOTFOUND;
	log_error("unable to read %s: %s", what, sqlite3_errmsg(r->db));
	sqlite_reader_release(r);
	return STORE_ERR;
}

static int lookup_done(sqlite3_stmt *st, int status)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return status;
}

/* The row the code map says holds code, if one of them does: STORE_OK
 * (*out set), STORE_NOTFOUND (none does, or there is no map) or
 * STORE_ERR. */
static int get_mapped(struct store_reader *r, const char *code, size_t len, struct link **out)
{
	int64_t ids[4];
	uint64_t hash = code_map_hash(r->ss->map, code, len);
	size_t n = code_map_find(r->ss->map, hash, ids, ARRAY_LEN(ids));
	for (size_t i = 0; i < n; i++) {
		sqlite3_stmt *st = r->get_id;
		sqlite3_bind_int64(st, 1, ids[i]);
		int status = lookup_step(r, st, "link");
		if (status == STORE_OK && (size_t)sqlite3_column_bytes(st, 1) == len &&
		    memcmp(sqlite3_column_text(st, 1), code, len) == 0) {
			*out = row_to_link(st);
			r->map_found++;
			return lookup_done(st, STORE_OK);
		}
		lookup_done(st, status);
		if (status == STORE_ERR)
			return STORE_ERR;
	}
	r->map_missed++;
	return STORE_NOTFOUND;
}

static int sqlite_get(struct store_reader *r, const char *code, size_t len, struct link **out)
{
	sqlite3_stmt *st = r->get;
	snapshot(r);
	if (r->ss->map) {
		int status = get_mapped(r, code, len, out);
		if (status != STORE_NOTFOUND)
			return status;
	}
	sqlite3_bind_text(st, 1, code, (int)len, SQLITE_STATIC);
	int status = lookup_step(r, st, "link");
	if (status == STORE_OK) {
		*out = row_to_link(st);
		/* a link the map did not know: another process's, or one
		 * added while the map was being built or full */
		if (r->ss->map)
			map_add(r->ss, code, len, (*out)->id);
	}
	return lookup_done(st, status);
}

static int sqlite_list(struct store_reader *r, int64_t owner, int64_t before_id, int limit,
		       struct link ***out, int *n)
{
	sqlite3_stmt *st = owner == STORE_ANY_OWNER ? r->list : r->list_owner;
	snapshot(r);
	sqlite3_bind_int64(st, 1, before_id > 0 ? before_id : INT64_MAX);
	sqlite3_bind_int(st, 2, limit);
	if (owner != STORE_ANY_OWNER)
		sqlite3_bind_int64(st, 3, owner);
	struct link **v = xcalloc((size_t)limit + 1, sizeof(*v));
	int count = 0, rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && count < limit)
		v[count++] = row_to_link(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		log_error("unable to list links: %s", sqlite3_errmsg(r->db));
		sqlite_reader_release(r);
		store_links_free(v, count);
		return STORE_ERR;
	}
	*out = v;
	*n = count;
	return STORE_OK;
}

/* shortd.db's data version as this reader's snapshot sees it: SQLite moves
 * it whenever another connection (the writer, `shortd key` in another
 * process) committed to the file since the reader's last snapshot. */
static unsigned data_version(struct store_reader *r)
{
	unsigned v = 0;
	sqlite3_file_control(r->db, "main", SQLITE_FCNTL_DATA_VERSION, &v);
	return v;
}

/* Every API request reads its key's row (a revocation must hold from the
 * next request), which was 6% of a create. A row read before is used again
 * while shortd.db's data version is the one it was read at, that is while
 * no commit to the file has happened since, by anyone. The version is
 * current only inside a read transaction that has read something: BEGIN is
 * deferred, so in a snapshot just begun the row is read from the table. */
static int sqlite_key_get(struct store_reader *r, const char *key_id, struct api_key *out)
{
	sqlite3_stmt *st = r->key_get;
	snapshot(r);
	struct key_row *k = NULL;
	for (int i = 0; i < KEY_ROWS && !k && key_id[0]; i++)
		if (strcmp(r->keys[i].key.key_id, key_id) == 0)
			k = &r->keys[i];
	if (k && sqlite3_txn_state(r->db, "main") == SQLITE_TXN_READ &&
	    k->version == data_version(r)) {
		*out = k->key;
		return STORE_OK;
	}
	sqlite3_bind_text(st, 1, key_id, -1, SQLITE_STATIC);
	int status = lookup_step(r, st, "an API key");
	if (status == STORE_OK) {
		row_to_key(st, out);
		if (!k)
			k = &r->keys[r->next_key++ % KEY_ROWS];
		k->key = *out;
		k->version = data_version(r);
	}
	return lookup_done(st, status);
}

static int sqlite_key_list(struct store_reader *r, struct api_key **out, int *n)
{
	sqlite3_stmt *st = r->key_list;
	size_t cap = 16, count = 0;
	struct api_key *v = xmalloc(cap * sizeof(*v));
	int rc;
	snapshot(r);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (count == cap)
			v = xrealloc(v, (cap *= 2) * sizeof(*v));
		row_to_key(st, &v[count++]);
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		log_error("unable to list API keys: %s", sqlite3_errmsg(r->db));
		sqlite_reader_release(r);
		free(v);
		return STORE_ERR;
	}
	*out = v;
	*n = (int)count;
	return STORE_OK;
}

static int sqlite_idem_get(struct store_reader *r, int64_t owner, const char *idem_key,
			   int64_t now_ms, struct link **out, uint8_t hash[32])
{
	sqlite3_stmt *st = r->idem_get;
	snapshot(r);
	sqlite3_bind_int64(st, 1, owner);
	sqlite3_bind_text(st, 2, idem_key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now_ms - STORE_IDEM_TTL_MS);
	int status = lookup_step(r, st, "an idempotency key");
	if (status == STORE_OK) {
		*out = row_to_link(st);
		memset(hash, 0, 32);
		if (sqlite3_column_bytes(st, 9) == 32)
			memcpy(hash, sqlite3_column_blob(st, 9), 32);
	}
	return lookup_done(st, status);
}

static struct click_count *rows_push(struct click_rows *out, size_t *cap)
{
	if (out->n == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		out->rows = xrealloc(out->rows, *cap * sizeof(*out->rows));
	}
	struct click_count *c = &out->rows[out->n++];
	memset(c, 0, sizeof(*c));
	return c;
}

/* Copies a text column into out (cap bytes), cut if longer. */
static void column_name(sqlite3_stmt *st, int col, char *out, size_t cap)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	size_t n = (size_t)sqlite3_column_bytes(st, col);
	if (n >= cap)
		n = cap - 1;
	if (t)
		memcpy(out, t, n);
	out[t ? n : 0] = '\0';
}

static int sqlite_click_deltas(struct store_reader *r, uint64_t after_seq,
			       void (*fn)(void *ctx, uint64_t seq, const void *blob, size_t len),
			       void *ctx)
{
	int rc;
	snapshot(r);
	sqlite3_bind_int64(r->deltas, 1, (sqlite3_int64)after_seq);
	while ((rc = sqlite3_step(r->deltas)) == SQLITE_ROW)
		fn(ctx, (uint64_t)sqlite3_column_int64(r->deltas, 0), sqlite3_column_blob(r->deltas, 1),
		   (size_t)sqlite3_column_bytes(r->deltas, 1));
	sqlite3_reset(r->deltas);
	if (rc != SQLITE_DONE) {
		log_error("unable to read click deltas: %s", sqlite3_errmsg(r->db));
		sqlite_reader_release(r);
		return STORE_ERR;
	}
	return STORE_OK;
}

static int sqlite_clicks_read(struct store_reader *r, int64_t link_id, int32_t from_hour,
			      int32_t to_hour, int want_dims, struct click_rows *out)
{
	memset(out, 0, sizeof(*out));
	size_t cap = 0;
	int rc;
	/* One snapshot: the counters and the batch number agree. */
	snapshot(r);
	if (sqlite3_step(r->seq) != SQLITE_ROW) {
		sqlite3_reset(r->seq);
		goto fail;
	}
	out->seq = (uint64_t)sqlite3_column_int64(r->seq, 0);
	sqlite3_reset(r->seq);
	if (link_id) {
		sqlite3_bind_int64(r->hours, 1, link_id);
		sqlite3_bind_int(r->hours, 2, from_hour);
		sqlite3_bind_int(r->hours, 3, to_hour);
		while ((rc = sqlite3_step(r->hours)) == SQLITE_ROW) {
			struct click_count *c = rows_push(out, &cap);
			c->link_id = link_id;
			c->kind = STORE_CLICK_HOUR;
			c->bucket = sqlite3_column_int(r->hours, 0);
			c->humans = (uint64_t)sqlite3_column_int64(r->hours, 1);
			c->bots = (uint64_t)sqlite3_column_int64(r->hours, 2);
		}
		sqlite3_reset(r->hours);
		if (rc != SQLITE_DONE)
			goto fail;
	}
	if (link_id && want_dims) {
		sqlite3_bind_int64(r->days, 1, link_id);
		sqlite3_bind_int(r->days, 2, from_hour / 24);
		sqlite3_bind_int(r->days, 3, to_hour / 24);
		while ((rc = sqlite3_step(r->days)) == SQLITE_ROW) {
			struct click_count *c = rows_push(out, &cap);
			c->link_id = link_id;
			c->kind = STORE_CLICK_DAY;
			c->bucket = sqlite3_column_int(r->days, 0);
			column_name(r->days, 1, c->referrer, sizeof(c->referrer));
			column_name(r->days, 2, c->country, sizeof(c->country));
			column_name(r->days, 3, c->device, sizeof(c->device));
			column_name(r->days, 4, c->browser, sizeof(c->browser));
			column_name(r->days, 5, c->os, sizeof(c->os));
			c->humans = (uint64_t)sqlite3_column_int64(r->days, 6);
		}
		sqlite3_reset(r->days);
		if (rc != SQLITE_DONE)
			goto fail;
	}
	return STORE_OK;
fail:
	log_error("unable to read click counters: %s", sqlite3_errmsg(r->db));
	sqlite_reader_release(r);
	free(out->rows);
	memset(out, 0, sizeof(*out));
	return STORE_ERR;
}

static void sqlite_stats(struct store *s, struct store_stats *out)
{
	struct sqlite_store *ss = s->impl;
	memset(out, 0, sizeof(*out));
	for (int i = 0; i < 2; i++) {
		const struct writer *w = i ? &ss->clicks : &ss->links;
		hist_sum_add(&out->commit_latency, &w->commit_latency);
		hist_sum_add(&out->batch_size, &w->batch_size);
		out->commits += metric_read(&w->commits);
		out->commit_errors += metric_read(&w->commit_errors);
	}
	if (ss->map) {
		struct code_map_stats m;
		code_map_get_stats(ss->map, &m);
		out->map_entries = m.entries;
		out->map_bytes = m.bytes;
		out->map_builds = m.builds;
		out->map_found = metric_read(&ss->map_found);
		out->map_missed = metric_read(&ss->map_missed);
	}
}

static int sqlite_writable(struct store *s)
{
	struct sqlite_store *ss = s->impl;
	/* what a client's write depends on: a click commit that fails is
	 * retried with its counts kept, and counted apart */
	return ss->links.last_commit_ok;
}

const struct store_ops store_sqlite_ops = {
	.name = "sqlite",
	.open = sqlite_open,
	.close = sqlite_close,
	.reader_open = sqlite_reader_open,
	.reader_close = sqlite_reader_close,
	.reader_release = sqlite_reader_release,
	.get = sqlite_get,
	.list = sqlite_list,
	.key_get = sqlite_key_get,
	.key_list = sqlite_key_list,
	.idem_get = sqlite_idem_get,
	.submit = sqlite_submit,
	.writable = sqlite_writable,
	.clicks_read = sqlite_clicks_read,
	.click_deltas = sqlite_click_deltas,
	.stats = sqlite_stats,
	.map_codes = sqlite_map_codes,
};
