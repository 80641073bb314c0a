/*
 * sqlite_reader: the SQLite backend's readers (see store_sqlite.c).
 *
 * One reader a thread, with its own connection and prepared statements.
 * A reader keeps its snapshot from one read to the next while the writers
 * end no transaction (commit_gen), so a read always sees every write
 * acknowledged before it began.
 *
 * Every read answers at once, on the calling thread: SQLite's WAL reader
 * takes microseconds, and a hop to a thread pool would cost more than the
 * read. The DELAYED_READS test build (make DELAYED_READS=1) makes a loop's
 * reader answer every read later instead: the read is queued, and a timer
 * on the reader's loop runs it SHORTD_READ_DELAY_US microseconds later
 * (default 1000) and calls its done(), oldest first, as a network backend
 * would; so every suspended path of the server runs in every test. The
 * read itself runs when the timer fires, so what it sees is the database
 * then, as with a server that answers late. The fault point "read"
 * (core/fault.h) fails a read where it runs.
 */
#include "sqlite_internal.h"
#include "core/fault.h"
#include "core/log.h"
#include "core/util.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int sqlite_reader_open(struct store *s, uv_loop_t *loop, struct store_reader **out)
{
	struct sqlite_store *ss = s->impl;
	struct store_reader *r = xcalloc(1, sizeof(*r));
	r->loop = loop;
	char err[256];
	r->ss = ss;
	if (sqlite3_open_v2(ss->path, &r->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
			    sqlite_vfs_name()) !=
		    SQLITE_OK ||
	    /* before the first statement: reading the schema waits, as any
	     * read does, while a restart's recovery holds the WAL */
	    sqlite3_busy_timeout(r->db, BUSY_TIMEOUT_MS) != SQLITE_OK ||
	    sqlite_attach_clicks(r->db, ss->clicks_path, err, sizeof(err)) ||
	    sqlite_exec(r->db, "PRAGMA query_only=1", err, sizeof(err)) ||
	    /* As much of the file as SQLite maps (it caps this at its
	     * compile-time limit, 2 GiB in Debian's build): a page read
	     * beyond the map is a pread() and a copy. */
	    sqlite_exec(r->db, "PRAGMA mmap_size=1099511627776", err, sizeof(err)) ||
	    sqlite_exec(r->db, "PRAGMA clicks.mmap_size=1099511627776", err, sizeof(err)) ||
	    sqlite_prepare(r->db, "BEGIN", &r->begin, err, sizeof(err)) ||
	    sqlite_prepare(r->db, "COMMIT", &r->end, err, sizeof(err)) ||
	    sqlite_prepare(r->db, "SELECT " LINK_COLUMNS " FROM links WHERE code = ?1", &r->get, err,
		    sizeof(err)) ||
	    sqlite_prepare(r->db, "SELECT " LINK_COLUMNS " FROM links WHERE id = ?1", &r->get_id, err,
		    sizeof(err)) ||
	    sqlite_prepare(r->db,
		    "SELECT " LINK_COLUMNS " FROM links WHERE deleted_at IS NULL AND id < ?1"
		    " AND (?4 IS NULL OR instr(lower(code), ?4) OR instr(lower(url), ?4))"
		    " ORDER BY id DESC LIMIT ?2",
		    &r->list, err, sizeof(err)) ||
	    sqlite_prepare(r->db,
		    "SELECT " LINK_COLUMNS " FROM links WHERE owner = ?3 AND id < ?1"
		    " AND deleted_at IS NULL"
		    " AND (?4 IS NULL OR instr(lower(code), ?4) OR instr(lower(url), ?4))"
		    " ORDER BY id DESC LIMIT ?2",
		    &r->list_owner, err, sizeof(err)) ||
	    sqlite_prepare(r->db, "SELECT " KEY_COLUMNS " FROM api_keys WHERE key_id = ?1", &r->key_get,
		    err, sizeof(err)) ||
	    sqlite_prepare(r->db,
		    "SELECT " KEY_COLUMNS ", (SELECT expires_at FROM sessions WHERE hash = ?1)"
		    " FROM api_keys WHERE id = (SELECT key_row FROM sessions WHERE hash = ?1)",
		    &r->session_get, err, sizeof(err)) ||
	    sqlite_prepare(r->db, "SELECT " KEY_COLUMNS " FROM api_keys ORDER BY id DESC", &r->key_list,
		    err, sizeof(err)) ||
	    sqlite_prepare(r->db,
		    "SELECT " LINK_COLUMNS ", idem_hash FROM links"
		    " WHERE owner = ?1 AND idem_key = ?2 AND created_at >= ?3",
		    &r->idem_get, err, sizeof(err)) ||
	    sqlite_prepare(r->db,
		    "SELECT hour, humans, bots FROM clicks.click_hours WHERE link_id = ?1"
		    " AND hour BETWEEN ?2 AND ?3",
		    &r->hours, err, sizeof(err)) ||
	    sqlite_prepare(r->db,
		    "SELECT day, referrer, country, device, browser, os, clicks"
		    " FROM clicks.click_days WHERE link_id = ?1 AND day BETWEEN ?2 AND ?3",
		    &r->days, err, sizeof(err)) ||
	    sqlite_prepare(r->db, "SELECT seq FROM clicks.click_flush WHERE id = 1", &r->seq, err,
		    sizeof(err)) ||
	    sqlite_prepare(r->db, "SELECT seq, data FROM clicks.click_deltas WHERE seq > ?1 ORDER BY seq",
		    &r->deltas, err, sizeof(err))) {
		log_error("unable to open a database reader: %s", r->db ? sqlite3_errmsg(r->db) : "");
		sqlite_reader_close(r);
		return STORE_ERR;
	}
	*out = r;
	return STORE_OK;
}

static void free_reader(struct store_reader *r);

/* The timer's memory goes once libuv is done with it, and the reader's
 * with it. */
static void on_timer_closed(uv_handle_t *h)
{
	struct store_reader *r = h->data;
	free(h);
	free_reader(r);
}

void sqlite_reader_close(struct store_reader *r)
{
	if (!r)
		return;
	assert(!r->delayed); /* the worker stops with no request waiting */
	if (r->timer) {
		uv_close((uv_handle_t *)r->timer, on_timer_closed);
		return;
	}
	free_reader(r);
}

static void free_reader(struct store_reader *r)
{
	sqlite3_stmt *all[] = {r->get,	   r->get_id, r->list,  r->list_owner, r->key_get,
			       r->key_list, r->idem_get, r->session_get, r->hours, r->days,
			       r->seq,	   r->deltas, r->begin,	    r->end};
	for (size_t i = 0; i < ARRAY_LEN(all); i++)
		sqlite3_finalize(all[i]);
	sqlite3_close(r->db); /* ends a snapshot still held */
	free(r);
}

void sqlite_reader_release(struct store_reader *r)
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
			*out = sqlite_row_to_link(st);
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

static int read_link(struct store_reader *r, const char *code, size_t len, struct link **out)
{
	sqlite3_stmt *st = r->get;
	if (r->ss->map) {
		int status = get_mapped(r, code, len, out);
		if (status != STORE_NOTFOUND)
			return status;
	}
	sqlite3_bind_text(st, 1, code, (int)len, SQLITE_STATIC);
	int status = lookup_step(r, st, "link");
	if (status == STORE_OK) {
		*out = sqlite_row_to_link(st);
		/* a link the map did not know: another process's, or one
		 * added while the map was being built or full */
		if (r->ss->map)
			sqlite_map_add(r->ss, code, len, (*out)->id);
	}
	return lookup_done(st, status);
}

static int read_links(struct store_reader *r, int64_t owner, int64_t before_id, int limit,
		      const char *q, struct link ***out, int *n)
{
	sqlite3_stmt *st = owner == STORE_ANY_OWNER ? r->list : r->list_owner;
	sqlite3_bind_int64(st, 1, before_id > 0 ? before_id : INT64_MAX);
	sqlite3_bind_int(st, 2, limit);
	if (owner != STORE_ANY_OWNER)
		sqlite3_bind_int64(st, 3, owner);
	if (q)
		sqlite3_bind_text(st, 4, q, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 4);
	struct link **v = xcalloc((size_t)limit + 1, sizeof(*v));
	int count = 0, rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && count < limit)
		v[count++] = sqlite_row_to_link(st);
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
static int read_key(struct store_reader *r, const char *key_id, struct api_key *out)
{
	sqlite3_stmt *st = r->key_get;
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
		sqlite_row_to_key(st, out);
		if (!k)
			k = &r->keys[r->next_key++ % KEY_ROWS];
		k->key = *out;
		k->version = data_version(r);
	}
	return lookup_done(st, status);
}

/* A session's key and expiry (read from the table each time: a session
 * is asked for on every request of its browser, and its key may have been
 * revoked a moment ago). */
static int read_session(struct store_reader *r, const uint8_t hash[32], struct api_key *out,
			int64_t *expires_ms)
{
	sqlite3_stmt *st = r->session_get;
	sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC);
	int status = lookup_step(r, st, "a session");
	if (status == STORE_OK) {
		sqlite_row_to_key(st, out);
		*expires_ms = sqlite3_column_int64(st, KEY_NCOLUMNS);
	}
	return lookup_done(st, status);
}

static int read_keys(struct store_reader *r, struct api_key **out, int *n)
{
	sqlite3_stmt *st = r->key_list;
	size_t cap = 16, count = 0;
	struct api_key *v = xmalloc(cap * sizeof(*v));
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (count == cap)
			v = xrealloc(v, (cap *= 2) * sizeof(*v));
		sqlite_row_to_key(st, &v[count++]);
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

static int read_idem(struct store_reader *r, int64_t owner, const char *idem_key, int64_t now_ms,
		     struct link **out, uint8_t hash[32])
{
	sqlite3_stmt *st = r->idem_get;
	sqlite3_bind_int64(st, 1, owner);
	sqlite3_bind_text(st, 2, idem_key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now_ms - STORE_IDEM_TTL_MS);
	int status = lookup_step(r, st, "an idempotency key");
	if (status == STORE_OK) {
		*out = sqlite_row_to_link(st);
		memset(hash, 0, 32);
		if (sqlite3_column_bytes(st, LINK_NCOLUMNS) == 32)
			memcpy(hash, sqlite3_column_blob(st, LINK_NCOLUMNS), 32);
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

int sqlite_click_deltas(struct store_reader *r, uint64_t after_seq,
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

/* One snapshot: the counters and the batch number agree. */
static int read_clicks(struct store_reader *r, int64_t link_id, int32_t from_hour, int32_t to_hour,
		       int want_dims, struct click_rows *out)
{
	memset(out, 0, sizeof(*out));
	size_t cap = 0;
	int rc;
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

/* Runs rd now, on this thread. */
static int run_read(struct store_reader *r, struct store_read *rd)
{
	if (fault_hit(FAULT_READ)) {
		log_error("unable to read: injected fault");
		return STORE_ERR;
	}
	snapshot(r);
	switch (rd->kind) {
	case STORE_READ_LINK:
		return read_link(r, rd->code, rd->code_len, &rd->link);
	case STORE_READ_LINKS:
		return read_links(r, rd->owner, rd->before_id, rd->limit, rd->q, &rd->links,
				  &rd->nlinks);
	case STORE_READ_KEY:
		return read_key(r, rd->key_id, &rd->key);
	case STORE_READ_KEYS:
		return read_keys(r, &rd->keys, &rd->nkeys);
	case STORE_READ_IDEM:
		return read_idem(r, rd->owner, rd->idem_key, rd->now_ms, &rd->link, rd->idem_hash);
	case STORE_READ_CLICKS:
		return read_clicks(r, rd->link_id, rd->from_hour, rd->to_hour, rd->want_dims,
				   &rd->clicks);
	case STORE_READ_SESSION:
		return read_session(r, rd->session_hash, &rd->key, &rd->session_expires_ms);
	}
	return STORE_ERR;
}

#ifdef SHORTD_DELAYED_READS
static uint64_t read_delay_ns(void)
{
	static uint64_t ns;
	if (!ns) {
		const char *v = getenv("SHORTD_READ_DELAY_US");
		long us = v ? atol(v) : 1000;
		ns = (uint64_t)(us > 0 ? us : 1) * 1000;
	}
	return ns;
}

static void on_delay(uv_timer_t *t);

static void arm(struct store_reader *r)
{
	uint64_t now = uv_hrtime(), due = r->delayed->due_ns;
	uv_timer_start(r->timer, on_delay, due > now ? (due - now + 999999) / 1000000 : 0, 0);
}

/* Answers every read that is due, oldest first. A done() may start
 * another read (queued behind). */
static void on_delay(uv_timer_t *t)
{
	struct store_reader *r = t->data;
	uint64_t now = uv_hrtime();
	while (r->delayed && r->delayed->due_ns <= now) {
		struct store_read *rd = r->delayed;
		r->delayed = rd->next;
		if (!r->delayed)
			r->delayed_tail = NULL;
		rd->next = NULL;
		rd->status = run_read(r, rd);
		rd->done(rd);
	}
	if (r->delayed)
		arm(r);
}

/* Queues rd to be run and answered after the delay. */
static int delay(struct store_reader *r, struct store_read *rd)
{
	if (!r->timer) {
		r->timer = xmalloc(sizeof(*r->timer));
		uv_timer_init(r->loop, r->timer);
		r->timer->data = r;
	}
	rd->due_ns = uv_hrtime() + read_delay_ns();
	rd->next = NULL;
	if (r->delayed_tail)
		r->delayed_tail->next = rd;
	else
		r->delayed = rd;
	r->delayed_tail = rd;
	if (r->delayed == rd)
		arm(r);
	return STORE_AGAIN;
}
#endif

int sqlite_read(struct store_reader *r, struct store_read *rd)
{
#ifdef SHORTD_DELAYED_READS
	if (r->loop)
		return delay(r, rd);
#endif
	return run_read(r, rd);
}
