/*
 * pg_writer: group commit on the PostgreSQL primary.
 *
 * A writer is a thread with its own connection to the primary. Ops queue
 * up while the previous transaction commits; the writer takes up to
 * commit_batch of them and sends BEGIN, every op's statements and COMMIT
 * in one pipeline (one round trip and one WAL flush for the whole batch,
 * with synchronous_commit as the server has it: on by default), and only
 * then calls each op's done(). Links are spread over --pg-pool writers by
 * their code (so two changes of one link stay in order), keys go to the
 * first, click deltas and merges to a writer of their own.
 *
 * Conflicts do not fail a batch: inserts use ON CONFLICT DO NOTHING, and
 * an insert whose row is not returned is STORE_CONFLICT. A run of inserts
 * is one statement (its columns as arrays). An UPDATE or DELETE
 * that changes no row is followed, in the same transaction, by a look at
 * the row, which tells "no such code" (or another owner's) from "deleted".
 * Any other error aborts the transaction: every op of the batch fails, as
 * with SQLite, and nothing of it is stored.
 *
 * Faults: while the primary's breaker is open, a batch fails at once
 * (503 for its clients, never a hung request). A connection that fails,
 * or a batch that gets no answer for --pg-timeout-ms, fails the batch and
 * opens the breaker; the outcome of a COMMIT cut off that way is unknown,
 * and its clients get 503, never 201. The next batch connects again (a
 * multi-host URI then finds the new primary after a failover).
 */
#include "pg_internal.h"
#include "core/fault.h"
#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rows of a merge per statement (an array a column). */
#define MERGE_CHUNK 5000

/* What each result of a batch belongs to. */
enum role { R_TX, R_EXPIRE, R_INSERTS, R_CHANGE, R_OWNER, R_KEY_INSERT, R_KEY_REVOKE,
	    R_KEY_EXISTS, R_SESSION_DELETE, R_PLAIN, R_LSN };

struct sent {
	struct store_op *op;
	enum role role;
	size_t count; /* R_INSERTS: the ops from op on that the statement holds */
};

struct batch {
	struct sent *v;
	size_t n, cap;
	int failed;         /* a statement failed: the transaction is lost */
	int full;           /* ... on a full disk */
};

static void sent_add(struct batch *b, struct store_op *op, enum role role)
{
	if (b->n == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 64;
		b->v = xrealloc(b->v, b->cap * sizeof(*b->v));
	}
	b->v[b->n++] = (struct sent){op, role, 1};
}

static int send_stmt(PGconn *pg, enum pg_stmt st, const struct pg_params *p)
{
	return PQsendQueryPrepared(pg, pg_stmts[st].name, p->n, p->v, p->len, p->fmt, 0);
}

/* An element of a text array literal: NULL, or s quoted. */
static void put_elem(struct buf *b, const char *s, size_t n, int first)
{
	if (!first)
		buf_lit(b, ",");
	if (!s) {
		buf_lit(b, "NULL");
		return;
	}
	buf_lit(b, "\"");
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '"' || s[i] == '\\')
			buf_lit(b, "\\");
		buf_append(b, s + i, 1);
	}
	buf_lit(b, "\"");
}

static void put_elem_int(struct buf *b, int64_t v, int null, int first)
{
	char num[24];
	size_t n = fmt_int(num, v);
	put_elem(b, null ? NULL : num, n, first);
}

/* A run of n inserts from op on, as one statement (PG_INSERT_MANY), after
 * the expiries of the Idempotency-Keys they use. */
static int send_inserts(PGconn *pg, struct batch *b, struct store_op *first, size_t n)
{
	struct pg_params p;
	struct store_op *op = first;
	for (size_t i = 0; i < n; i++, op = op->next) {
		if (!op->idem_key)
			continue;
		/* an expired use of this Idempotency-Key gives it up */
		pg_params_init(&p);
		pg_param_int(&p, op->link->owner);
		pg_param_text(&p, op->idem_key, strlen(op->idem_key));
		pg_param_int(&p, op->link->created_at_ms - STORE_IDEM_TTL_MS);
		if (!send_stmt(pg, PG_IDEM_EXPIRE, &p))
			return -1;
		sent_add(b, op, R_EXPIRE);
	}
	struct buf col[11];
	for (int c = 0; c < 11; c++) {
		buf_init(&col[c]);
		buf_lit(&col[c], "{");
	}
	op = first;
	for (size_t i = 0; i < n; i++, op = op->next) {
		const struct link *l = op->link;
		int f = i == 0;
		put_elem_int(&col[0], l->id, 0, f);
		put_elem(&col[1], l->code, l->code_len, f);
		put_elem(&col[2], l->url, l->url_len, f);
		put_elem_int(&col[3], l->redirect, 0, f);
		put_elem_int(&col[4], l->created_at_ms, 0, f);
		put_elem_int(&col[5], l->updated_at_ms, 0, f);
		put_elem_int(&col[6], l->expires_at_ms, !l->expires_at_ms, f);
		put_elem_int(&col[7], l->owner, 0, f);
		put_elem(&col[8], op->idem_key, op->idem_key ? strlen(op->idem_key) : 0, f);
		char hex[2 + 64 + 1];
		if (op->idem_key) {
			hex[0] = '\\';
			hex[1] = 'x';
			for (int k = 0; k < 32; k++)
				snprintf(hex + 2 + 2 * k, 3, "%02x", op->idem_hash[k]);
		}
		put_elem(&col[9], op->idem_key ? hex : NULL, 66, f);
		put_elem(&col[10], l->forward_query ? "t" : "f", 1, f);
	}
	pg_params_init(&p);
	for (int c = 0; c < 11; c++) {
		buf_lit(&col[c], "}");
		pg_param_text(&p, col[c].p, col[c].len);
	}
	int ok = send_stmt(pg, PG_INSERT_MANY, &p);
	for (int c = 0; c < 11; c++)
		buf_release(&col[c]);
	sent_add(b, first, R_INSERTS);
	b->v[b->n - 1].count = n;
	return ok ? 0 : -1;
}

static int id_cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* Waits until the socket is ready for events, or the deadline: 0, or -1. */
static int wait_io(PGconn *pg, short events, uint64_t deadline_ms)
{
	struct pollfd p = {.fd = PQsocket(pg), .events = events};
	for (;;) {
		uint64_t now = time_mono_ms();
		if (now >= deadline_ms)
			return -1;
		int n = poll(&p, 1, (int)(deadline_ms - now));
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -1;
	}
}


static int send_sql(PGconn *pg, const char *sql)
{
	return PQsendQueryParams(pg, sql, 0, NULL, NULL, NULL, NULL, 0);
}

/* A text array literal of n values, for unnest(). */
static void put_array_ints(struct buf *b, const struct click_count *const *rows, size_t n,
			   int which)
{
	buf_lit(b, "{");
	for (size_t i = 0; i < n; i++) {
		const struct click_count *c = rows[i];
		int64_t v = which == 0 ? c->link_id
			    : which == 1 ? c->bucket
			    : which == 2 ? (int64_t)c->humans
					 : (int64_t)c->bots;
		char num[24];
		if (i)
			buf_lit(b, ",");
		buf_append(b, num, fmt_int(num, v));
	}
	buf_lit(b, "}");
}

static void put_array_texts(struct buf *b, const struct click_count *const *rows, size_t n,
			    size_t offset)
{
	buf_lit(b, "{");
	for (size_t i = 0; i < n; i++) {
		const char *s = (const char *)rows[i] + offset;
		if (i)
			buf_lit(b, ",");
		buf_lit(b, "\"");
		for (; *s; s++) {
			if (*s == '"' || *s == '\\')
				buf_lit(b, "\\");
			buf_append(b, s, 1);
		}
		buf_lit(b, "\"");
	}
	buf_lit(b, "}");
}

/* A merge: its rows added up by key, as arrays, a chunk a statement; then
 * its deltas dropped and how far it goes recorded. */
static int send_merge(PGconn *pg, struct pg_store *ps, struct batch *b, struct store_op *op)
{
	size_t n = op->nclicks;
	const struct click_count **v = xmalloc((n ? n : 1) * sizeof(*v));
	for (size_t i = 0; i < n; i++)
		v[i] = &op->clicks[i];
	qsort(v, n, sizeof(*v), store_click_cmp);
	/* one row a key: the first of each run carries the run's sums */
	struct click_count *sums = xmalloc((n ? n : 1) * sizeof(*sums));
	size_t m = 0;
	for (size_t i = 0, j; i < n; i = j) {
		sums[m] = *v[i];
		sums[m].humans = sums[m].bots = 0;
		for (j = i; j < n && store_click_cmp(&v[i], &v[j]) == 0; j++) {
			sums[m].humans += v[j]->humans;
			sums[m].bots += v[j]->bots;
		}
		m++;
	}
	int ok = 1;
	size_t hours = 0;
	while (hours < m && sums[hours].kind == STORE_CLICK_HOUR)
		hours++; /* sorted: hours first */
	for (int table = 0; table < 2 && ok; table++) {
		size_t lo = table ? hours : 0, hi = table ? m : hours;
		for (size_t at = lo; at < hi && ok; at += MERGE_CHUNK) {
			size_t k = hi - at < MERGE_CHUNK ? hi - at : MERGE_CHUNK;
			const struct click_count **rows = xmalloc(k * sizeof(*rows));
			for (size_t i = 0; i < k; i++)
				rows[i] = &sums[at + i];
			struct buf arr[8];
			int ncols = table ? 8 : 4;
			struct pg_params p;
			pg_params_init(&p);
			for (int col = 0; col < ncols; col++) {
				buf_init(&arr[col]);
				if (!table)
					put_array_ints(&arr[col], rows, k, col);
				else if (col < 2)
					put_array_ints(&arr[col], rows, k, col);
				else if (col == 7)
					put_array_ints(&arr[col], rows, k, 2); /* clicks = humans */
				else
					put_array_texts(&arr[col], rows, k,
							col == 2   ? offsetof(struct click_count, referrer)
							: col == 3 ? offsetof(struct click_count, country)
							: col == 4 ? offsetof(struct click_count, device)
							: col == 5 ? offsetof(struct click_count, browser)
								   : offsetof(struct click_count, os));
				pg_param_text(&p, arr[col].p, arr[col].len);
			}
			ok = send_stmt(pg, table ? PG_MERGE_DAYS : PG_MERGE_HOURS, &p);
			for (int col = 0; col < ncols; col++)
				buf_release(&arr[col]);
			free(rows);
			sent_add(b, op, R_PLAIN);
		}
	}
	free(sums);
	free(v);
	struct pg_params p;
	pg_params_init(&p);
	pg_param_int(&p, ps->node);
	pg_param_int(&p, (int64_t)op->click_seq);
	ok = ok && send_stmt(pg, PG_DELTA_DROP, &p) && send_stmt(pg, PG_FLUSH_SEQ, &p);
	sent_add(b, op, R_PLAIN);
	sent_add(b, op, R_PLAIN);
	return ok ? 0 : -1;
}

/* An op's statements into the pipeline. */
static int send_op(PGconn *pg, struct pg_store *ps, struct batch *b, struct store_op *op)
{
	struct pg_params p;
	pg_params_init(&p);
	struct link *l = op->link;
	switch (op->kind) {
	case STORE_OP_INSERT:
		return send_inserts(pg, b, op, 1);
	case STORE_OP_UPDATE:
	case STORE_OP_DELETE:
		pg_param_text(&p, l->code, l->code_len);
		if (op->kind == STORE_OP_UPDATE) {
			pg_param_text(&p, op->fields & STORE_F_URL ? "t" : "f", 1);
			pg_param_text(&p, l->url, l->url_len);
			pg_param_text(&p, op->fields & STORE_F_EXPIRES ? "t" : "f", 1);
			if (l->expires_at_ms)
				pg_param_int(&p, l->expires_at_ms);
			else
				pg_param_null(&p);
			pg_param_text(&p, op->fields & STORE_F_REDIRECT ? "t" : "f", 1);
			pg_param_int(&p, l->redirect);
			pg_param_int(&p, l->updated_at_ms);
		} else {
			pg_param_int(&p, l->deleted_at_ms);
		}
		pg_param_int(&p, op->owner);
		if (op->kind == STORE_OP_UPDATE) {
			pg_param_text(&p, op->fields & STORE_F_FORWARD_QUERY ? "t" : "f", 1);
			pg_param_text(&p, l->forward_query ? "t" : "f", 1);
		}
		if (!send_stmt(pg, op->kind == STORE_OP_UPDATE ? PG_UPDATE : PG_DELETE, &p))
			return -1;
		sent_add(b, op, R_CHANGE);
		pg_params_init(&p);
		pg_param_text(&p, l->code, l->code_len);
		sent_add(b, op, R_OWNER);
		return send_stmt(pg, PG_LINK_OWNER, &p) ? 0 : -1;
	case STORE_OP_KEY_INSERT: {
		const struct api_key *k = op->key;
		const char *role = apikey_role_name(k->role);
		pg_param_int(&p, k->id);
		pg_param_text(&p, k->key_id, strlen(k->key_id));
		pg_param_text(&p, k->name, strlen(k->name));
		pg_param_text(&p, role, strlen(role));
		pg_param_bytes(&p, k->hash, sizeof(k->hash));
		pg_param_int(&p, k->created_at_ms);
		sent_add(b, op, R_KEY_INSERT);
		return send_stmt(pg, PG_KEY_INSERT, &p) ? 0 : -1;
	}
	case STORE_OP_KEY_REVOKE:
		pg_param_int(&p, op->key->id);
		pg_param_int(&p, op->key->revoked_at_ms);
		if (!send_stmt(pg, PG_KEY_REVOKE, &p))
			return -1;
		sent_add(b, op, R_KEY_REVOKE);
		pg_params_init(&p);
		pg_param_int(&p, op->key->id);
		sent_add(b, op, R_KEY_EXISTS);
		return send_stmt(pg, PG_KEY_EXISTS, &p) ? 0 : -1;
	case STORE_OP_SESSION_INSERT: {
		const struct store_session *s = op->session;
		pg_param_int(&p, s->created_at_ms);
		sent_add(b, op, R_PLAIN);
		if (!send_stmt(pg, PG_SESSION_PURGE, &p))
			return -1;
		pg_params_init(&p);
		pg_param_bytes(&p, s->hash, sizeof(s->hash));
		pg_param_int(&p, s->key_row);
		pg_param_int(&p, s->created_at_ms);
		pg_param_int(&p, s->expires_at_ms);
		sent_add(b, op, R_PLAIN);
		return send_stmt(pg, PG_SESSION_INSERT, &p) ? 0 : -1;
	}
	case STORE_OP_SESSION_DELETE:
		pg_param_bytes(&p, op->session->hash, sizeof(op->session->hash));
		sent_add(b, op, R_SESSION_DELETE);
		return send_stmt(pg, PG_SESSION_DELETE, &p) ? 0 : -1;
	case STORE_OP_CLICK_DELTA:
		pg_param_int(&p, ps->node);
		pg_param_int(&p, (int64_t)op->click_seq);
		pg_param_bytes(&p, op->blob, op->blob_len);
		sent_add(b, op, R_PLAIN);
		return send_stmt(pg, PG_DELTA_ADD, &p) ? 0 : -1;
	case STORE_OP_CLICK_MERGE:
		return send_merge(pg, ps, b, op);
	}
	return -1;
}

/* What a result says for its op (a failed statement fails the batch). */
static void take(struct batch *b, const struct sent *s, PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);
	struct store_op *op = s->op;
	if (st == PGRES_PIPELINE_ABORTED)
		return;
	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
		if (!b->failed)
			log_error("PostgreSQL: %s", PQresultErrorMessage(res));
		const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		b->failed = 1;
		b->full = b->full || (code && strcmp(code, "53100") == 0); /* disk_full */
		return;
	}
	int rows = PQntuples(res);
	switch (s->role) {
	case R_INSERTS: {
		/* the ids inserted: an op whose id is not among them conflicted */
		int64_t *ids = xmalloc(((size_t)rows + 1) * sizeof(*ids));
		for (int i = 0; i < rows; i++)
			ids[i] = strtoll(PQgetvalue(res, i, 0), NULL, 10);
		qsort(ids, (size_t)rows, sizeof(*ids), id_cmp);
		for (size_t i = 0; i < s->count; i++, op = op->next) {
			int64_t id = op->link->id;
			int in = bsearch(&id, ids, (size_t)rows, sizeof(*ids), id_cmp) != NULL;
			op->status = in ? STORE_OK : STORE_CONFLICT;
			if (in)
				op->result = link_ref(op->link);
		}
		free(ids);
		break;
	}
	case R_CHANGE:
		if (rows == 1) {
			op->status = STORE_OK;
			op->result = pg_row_link(res, 0);
		}
		break;
	case R_OWNER:
		if (op->result)
			break;
		if (rows == 0)
			op->status = STORE_NOTFOUND;
		else {
			int64_t owner = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
			op->status = op->owner != STORE_ANY_OWNER && owner != op->owner ? STORE_NOTFOUND
											: STORE_GONE;
		}
		break;
	case R_KEY_INSERT:
		op->status = rows == 1 ? STORE_OK : STORE_CONFLICT;
		break;
	case R_KEY_REVOKE:
		if (rows == 1)
			op->status = STORE_OK;
		else
			op->status = STORE_NOTFOUND; /* or GONE: the next result says */
		break;
	case R_KEY_EXISTS:
		if (op->status != STORE_OK && rows == 1)
			op->status = STORE_GONE;
		break;
	case R_SESSION_DELETE:
		op->status = rows == 1 ? STORE_OK : STORE_NOTFOUND;
		break;
	case R_PLAIN:
		op->status = STORE_OK;
		break;
	default:
		break;
	}
}

/* Raises the store's write_lsn to a pg_lsn result ("16/B374D848"). */
static void note_lsn(struct pg_store *ps, const PGresult *res)
{
	unsigned hi, lo;
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
	    sscanf(PQgetvalue(res, 0, 0), "%X/%X", &hi, &lo) != 2)
		return;
	uint64_t lsn = (uint64_t)hi << 32 | lo;
	uint64_t cur = atomic_load(&ps->write_lsn);
	while (cur < lsn && !atomic_compare_exchange_weak(&ps->write_lsn, &cur, lsn))
		;
}

static void fail_all(struct store_op *batch, int status)
{
	for (struct store_op *op = batch; op; op = op->next) {
		op->status = status;
		if (op->result) {
			link_unref(op->result);
			op->result = NULL;
		}
	}
}

static void drop_connection(struct pg_writer *w)
{
	if (w->pg) {
		PQfinish(w->pg);
		w->pg = NULL;
		atomic_fetch_sub_explicit(&w->ps->servers[0].conns, 1, memory_order_relaxed);
	}
}

/* Runs one batch: 0 committed (each op has its status), or -1 with every
 * op failed. */
static int run(struct pg_writer *w, struct store_op *batch, struct batch *b)
{
	struct pg_store *ps = w->ps;
	struct pg_server *primary = &ps->servers[0];
	char err[300];
	if (pg_server_state(primary) == STORE_BREAKER_OPEN) {
		drop_connection(w);
		return -1; /* fail fast */
	}
	if (!w->pg) {
		if (!(w->pg = pg_connect_blocking(ps, 0, 0, err, sizeof(err)))) {
			pg_server_failed(primary, err);
			return -1;
		}
		atomic_fetch_add_explicit(&primary->conns, 1, memory_order_relaxed);
		if (PQsetnonblocking(w->pg, 1) != 0 || !PQenterPipelineMode(w->pg)) {
			pg_server_failed(primary, PQerrorMessage(w->pg));
			drop_connection(w);
			return -1;
		}
	}
	PGconn *pg = w->pg;
	b->n = 0;
	b->failed = b->full = 0;
	int ok = send_sql(pg, "BEGIN");
	sent_add(b, NULL, R_TX);
	for (struct store_op *op = batch; op; op = op->next) {
		op->status = STORE_ERR;
		op->result = NULL;
	}
	for (struct store_op *op = batch; ok && op;) {
		/* a run of inserts is one statement (PG_INSERT_MANY); other ops
		 * keep their place between runs */
		size_t n = 1;
		struct store_op *last = op;
		while (op->kind == STORE_OP_INSERT && last->next && last->next->kind == STORE_OP_INSERT) {
			last = last->next;
			n++;
		}
		ok = (op->kind == STORE_OP_INSERT ? send_inserts(pg, b, op, n) : send_op(pg, ps, b, op)) == 0;
		op = last->next;
	}
	/* the test build's commit fault rolls the batch back: nothing of it
	 * is stored, as when a COMMIT fails */
	enum fault_kind fk = fault_hit(FAULT_COMMIT);
	if (fk)
		log_error("unable to commit: injected fault");
	ok = ok && send_sql(pg, fk ? "ROLLBACK" : "COMMIT");
	sent_add(b, NULL, R_TX);
	/* where the WAL is once this is committed: replicas that have not
	 * replayed that far are not asked for links (pg_reader.c) */
	if (!w->clicks) {
		ok = ok && send_sql(pg, "SELECT pg_current_wal_insert_lsn()");
		sent_add(b, NULL, R_LSN);
	}
	ok = ok && PQpipelineSync(pg);
	/* the deadline moves with every answer: a big merge takes long, a
	 * server that stops answering does not */
	uint64_t deadline = time_mono_ms() + (uint64_t)ps->timeout_ms;
	int f;
	while (ok && (f = PQflush(pg)) != 0) {
		if (f < 0 || wait_io(pg, POLLOUT | POLLIN, deadline) != 0 || !PQconsumeInput(pg))
			ok = 0;
	}
	size_t next = 0;
	int synced = 0;
	while (ok && !synced) {
		while (PQisBusy(pg)) {
			if (wait_io(pg, POLLIN, deadline) != 0 || !PQconsumeInput(pg)) {
				ok = 0;
				break;
			}
		}
		if (!ok)
			break;
		PGresult *res = PQgetResult(pg);
		if (!res)
			continue; /* the end of one statement's results */
		deadline = time_mono_ms() + (uint64_t)ps->timeout_ms;
		if (PQresultStatus(res) == PGRES_PIPELINE_SYNC) {
			synced = 1;
		} else if (next < b->n) {
			const struct sent *s = &b->v[next++];
			if (s->op)
				take(b, s, res);
			else if (s->role == R_LSN)
				note_lsn(ps, res);
			else if (PQresultStatus(res) != PGRES_COMMAND_OK &&
				 PQresultStatus(res) != PGRES_PIPELINE_ABORTED)
				take(b, s, res); /* BEGIN or COMMIT failed */
		}
		PQclear(res);
	}
	if (!ok) {
		snprintf(err, sizeof(err), "%s",
			 PQstatus(pg) == CONNECTION_BAD ? PQerrorMessage(pg)
							: "no answer in time (the outcome of the batch is unknown)");
		pg_server_failed(primary, err);
		drop_connection(w);
		return -1;
	}
	pg_server_ok(primary);
	if (fk == FAULT_ENOSPC)
		b->full = 1;
	if (fk || b->failed || next < b->n)
		return -1;
	return 0;
}

static void run_batch(struct pg_writer *w, struct store_op *batch, struct batch *b)
{
	uint64_t t0 = time_mono_ns();
	size_t nops = 0;
	for (struct store_op *op = batch; op; op = op->next)
		nops++;
	hist_observe_value(&w->batch_size, nops);
	int rc = run(w, batch, b);
	if (rc != 0)
		fail_all(batch, b->full ? STORE_FULL : STORE_ERR);
	if (!w->clicks)
		atomic_store(&w->ps->last_commit_ok, rc == 0);
	metric_add(rc == 0 ? &w->commits : &w->commit_errors, 1);
	uint64_t ns = time_mono_ns() - t0;
	hist_observe(&w->commit_latency, ns);
	pg_server_observe(&w->ps->servers[0], ns, rc != 0);
	struct store_op *next;
	for (struct store_op *op = batch; op; op = next) {
		next = op->next;
		op->done(op); /* may free op */
	}
}

static void *writer_main(void *arg)
{
	struct pg_writer *w = arg;
	struct batch b = {0};
	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (!w->head && !w->stopping)
			pthread_cond_wait(&w->cond, &w->lock);
		if (!w->head)
			break;
		struct store_op *batch = w->head, *last = batch;
		for (int n = 1; n < w->ps->commit_batch && last->next; n++)
			last = last->next;
		w->head = last->next;
		if (!w->head)
			w->tail = NULL;
		last->next = NULL;
		pthread_mutex_unlock(&w->lock);
		run_batch(w, batch, &b);
		pthread_mutex_lock(&w->lock);
	}
	pthread_mutex_unlock(&w->lock);
	drop_connection(w);
	free(b.v);
	return NULL;
}

int pg_writer_start(struct pg_writer *w, struct pg_store *ps, int idx, int clicks)
{
	w->ps = ps;
	w->idx = idx;
	w->clicks = clicks;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	if (pthread_create(&w->thread, NULL, writer_main, w) != 0)
		return -1;
	w->started = 1;
	return 0;
}

void pg_writer_submit(struct pg_writer *w, struct store_op *op)
{
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

void pg_writer_stop(struct pg_writer *w)
{
	if (!w->started)
		return;
	pthread_mutex_lock(&w->lock);
	w->stopping = 1;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	w->started = 0;
}
