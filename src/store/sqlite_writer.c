/*
 * sqlite_writer: the SQLite backend's writers and group commit (see
 * store_sqlite.c for the design).
 *
 * A writer is a connection owned by one thread. Ops queue up while the
 * previous transaction commits; the writer takes up to commit_batch of
 * them, runs them in one BEGIN IMMEDIATE ... COMMIT, and only then calls
 * each op's done(): many inserts per fsync. There are two writers: links
 * and API keys (shortd.db), and click counters (clicks.db).
 * Invariant: an op's status is STORE_OK only if its transaction committed.
 * If a statement error makes SQLite roll the whole transaction back (disk
 * full, I/O error), the rest of the batch is failed, not run in autocommit.
 */
#include "sqlite_internal.h"
#include "core/fault.h"
#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	sqlite3_bind_int(st, 11, l->forward_query);
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
		sqlite3_bind_int(st, 10, !!(op->fields & STORE_F_FORWARD_QUERY));
		sqlite3_bind_int(st, 11, l->forward_query);
	} else {
		st = ss->del;
		sqlite3_bind_text(st, 1, l->code, (int)l->code_len, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, l->deleted_at_ms);
		sqlite3_bind_int64(st, 3, op->owner);
	}
	int rc = sqlite3_step(st), status;
	if (rc == SQLITE_ROW) {
		op->result = sqlite_row_to_link(st);
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

/* Adds rows sorted by store_click_cmp to the click tables: the rows of
 * one key (a link's hour with several combinations, say) lie side by side,
 * and are added up into one upsert. */
static int click_upserts(struct sqlite_store *ss, const struct click_count *const *rows, size_t n)
{
	for (size_t i = 0, j; i < n; i = j) {
		const struct click_count *c = rows[i];
		uint64_t humans = 0, bots = 0;
		for (j = i; j < n && !store_click_cmp(&rows[i], &rows[j]); j++) {
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
	qsort(order, op->nclicks, sizeof(*order), store_click_cmp);
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

/* A new session; expired ones go first (sessions_expiry finds them). */
static int op_session_insert(struct sqlite_store *ss, struct store_op *op)
{
	const struct store_session *s = op->session;
	sqlite3_bind_int64(ss->session_purge, 1, s->created_at_ms);
	int status = step_done(ss->session_purge, "drop expired sessions");
	if (status != STORE_OK)
		return status;
	sqlite3_stmt *st = ss->session_insert;
	sqlite3_bind_blob(st, 1, s->hash, sizeof(s->hash), SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, s->key_row);
	sqlite3_bind_int64(st, 3, s->created_at_ms);
	sqlite3_bind_int64(st, 4, s->expires_at_ms);
	return step_done(st, "insert a session");
}

static int op_session_delete(struct sqlite_store *ss, struct store_op *op)
{
	sqlite3_stmt *st = ss->session_delete;
	sqlite3_bind_blob(st, 1, op->session->hash, sizeof(op->session->hash), SQLITE_STATIC);
	int status = step_done(st, "delete a session");
	if (status == STORE_OK && sqlite3_changes(ss->links.db) == 0)
		return STORE_NOTFOUND;
	return status;
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
		case STORE_OP_SESSION_INSERT:
			op->status = op_session_insert(ss, op);
			break;
		case STORE_OP_SESSION_DELETE:
			op->status = op_session_delete(ss, op);
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
			sqlite_map_add(ss, op->result->code, op->result->code_len, op->result->id);
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
void sqlite_click_writer_setup(void)
{
	struct sched_param sp = {0};
	if (sched_setscheduler(0, SCHED_IDLE, &sp) != 0)
		log_warn("unable to run the click writer at SCHED_IDLE: %s", strerror(errno));
}

void sqlite_writer_init(struct writer *w, struct sqlite_store *ss, void (*setup)(void))
{
	w->ss = ss;
	w->setup = setup;
	w->last_commit_ok = 1;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
}

int sqlite_writer_start(struct writer *w)
{
	if (pthread_create(&w->thread, NULL, writer_main, w) != 0)
		return -1;
	w->started = 1;
	return 0;
}

/* Runs the ops queued, then ends the thread. */
void sqlite_writer_stop(struct writer *w)
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

void sqlite_writer_close(struct writer *w, const char *path)
{
	if (w->db && sqlite3_close(w->db) != SQLITE_OK)
		log_error("unable to close database '%s': %s", path, sqlite3_errmsg(w->db));
	w->db = NULL;
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
}

void sqlite_submit(struct store *s, struct store_op *op)
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

/* The writers' statements, on their connections. */
int sqlite_writer_prepare(struct sqlite_store *ss, char *err, size_t errlen)
{
	if (sqlite_prepare(ss->links.db,
		    "INSERT INTO links (id, code, url, redirect, created_at, updated_at, expires_at,"
		    " owner, idem_key, idem_hash, forward_query)"
		    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
		    &ss->insert, err, errlen) ||
	    sqlite_prepare(ss->links.db,
		    "UPDATE links SET url = CASE WHEN ?2 THEN ?3 ELSE url END,"
		    " expires_at = CASE WHEN ?4 THEN ?5 ELSE expires_at END,"
		    " redirect = CASE WHEN ?6 THEN ?7 ELSE redirect END, updated_at = ?8,"
		    " forward_query = CASE WHEN ?10 THEN ?11 ELSE forward_query END"
		    " WHERE code = ?1 AND deleted_at IS NULL AND (?9 < 0 OR owner = ?9)"
		    " RETURNING " LINK_COLUMNS,
		    &ss->update, err, errlen) ||
	    sqlite_prepare(ss->links.db,
		    "UPDATE links SET deleted_at = ?2, updated_at = ?2"
		    " WHERE code = ?1 AND deleted_at IS NULL AND (?3 < 0 OR owner = ?3)"
		    " RETURNING " LINK_COLUMNS,
		    &ss->del, err, errlen) ||
	    sqlite_prepare(ss->links.db, "SELECT owner FROM links WHERE code = ?1", &ss->exists, err, errlen) ||
	    sqlite_prepare(ss->links.db,
		    "UPDATE links SET idem_key = NULL, idem_hash = NULL"
		    " WHERE owner = ?1 AND idem_key = ?2 AND created_at < ?3",
		    &ss->idem_expire, err, errlen) ||
	    sqlite_prepare(ss->links.db,
		    "INSERT INTO api_keys (id, key_id, name, role, hash, created_at)"
		    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
		    &ss->key_insert, err, errlen) ||
	    sqlite_prepare(ss->links.db,
		    "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
		    &ss->key_revoke, err, errlen) ||
	    sqlite_prepare(ss->links.db, "SELECT 1 FROM api_keys WHERE id = ?1", &ss->key_exists, err,
		    errlen) ||
	    sqlite_prepare(ss->links.db,
		    "INSERT INTO sessions (hash, key_row, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
		    &ss->session_insert, err, errlen) ||
	    sqlite_prepare(ss->links.db, "DELETE FROM sessions WHERE expires_at < ?1",
		    &ss->session_purge, err, errlen) ||
	    sqlite_prepare(ss->links.db, "DELETE FROM sessions WHERE hash = ?1", &ss->session_delete,
		    err, errlen))
		return -1;
	if (sqlite_prepare(ss->clicks.db,
		    "INSERT INTO click_hours (link_id, hour, humans, bots)"
		    " VALUES (?1, ?2, ?3, ?4)"
		    " ON CONFLICT (link_id, hour) DO UPDATE SET humans = humans + excluded.humans,"
		    " bots = bots + excluded.bots",
		    &ss->click_hour, err, errlen) ||
	    sqlite_prepare(ss->clicks.db,
		    "INSERT INTO click_days"
		    " (link_id, day, referrer, country, device, browser, os, clicks)"
		    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
		    " ON CONFLICT (link_id, day, referrer, country, device, browser, os)"
		    " DO UPDATE SET clicks = clicks + excluded.clicks",
		    &ss->click_day, err, errlen) ||
	    sqlite_prepare(ss->clicks.db, "UPDATE click_flush SET seq = ?1 WHERE id = 1", &ss->click_seq,
		    err, errlen) ||
	    sqlite_prepare(ss->clicks.db, "INSERT INTO click_deltas (seq, data) VALUES (?1, ?2)",
		    &ss->delta_add, err, errlen) ||
	    sqlite_prepare(ss->clicks.db, "DELETE FROM click_deltas WHERE seq <= ?1", &ss->delta_drop, err,
		    errlen))
		return -1;
	return 0;
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
#define CHECKPOINT_PAGES SQLITE_CHECKPOINT_PAGES
#define RESTART_PAGES SQLITE_RESTART_PAGES
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

int sqlite_on_wal_commit(void *ctx, sqlite3 *db, const char *schema, int pages)
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
