/*
 * pg_reader: reads from PostgreSQL (see store_pg.c for the routing rules).
 *
 * A worker's reader holds --pg-pool connections to each server, on the
 * worker's loop (pg_conn.c), and answers every read later (STORE_AGAIN,
 * then rd->done from a callback of that loop). A read that may use a
 * replica (rd->replica_ok: a redirect's cache miss) goes to the replicas
 * in turn, starting with the next one for each read, then to the primary:
 * it moves on when a server's breaker is open, its connection fails or it
 * does not answer in time, and a STORE_NOTFOUND from a replica is asked
 * again of the primary (a replica lags: a link created a moment ago on
 * another node must still redirect). Every other read goes to the primary,
 * which holds every acknowledged write. Within a server, the connection
 * with the fewest reads queued takes it.
 *
 * A reader without a loop (command-line tools, start-up) has one blocking
 * connection to the primary.
 *
 * rd->step counts the servers tried; rd->server is where the replicas'
 * turn started for this read.
 */
#include "pg_internal.h"
#include "core/fault.h"
#include "core/log.h"
#include "core/util.h"

#include <stdlib.h>
#include <string.h>

struct store_reader {
	struct pg_store *ps;
	uv_loop_t *loop;       /* NULL: blocking */
	PGconn *blocking;
	struct pg_conn *conns; /* nservers x pool */
};

/* The server of rd's try number `step`: the replicas in turn from
 * rd->server, then the primary; -1 when none is left. */
static int server_of(const struct pg_store *ps, const struct store_read *rd, int step)
{
	int nrep = rd->replica_ok ? ps->nservers - 1 : 0;
	if (step < nrep)
		return 1 + (rd->server + step) % nrep;
	return step == nrep ? 0 : -1;
}

static void on_answer(struct pg_conn *c, struct store_read *rd, int status, int failed);

/* Queues rd on server i's least busy connection: 0, or -1. */
static int send_to(struct store_reader *r, struct store_read *rd, int i)
{
	struct pg_store *ps = r->ps;
	struct pg_conn *best = NULL;
	for (int k = 0; k < ps->pool; k++) {
		struct pg_conn *c = &r->conns[i * ps->pool + k];
		if (!best || pg_conn_load(c) < pg_conn_load(best))
			best = c;
	}
	return pg_conn_send(best, rd, ps->node);
}

/* Tries the servers from rd->step on: 0 once queued, -1 when none took it. */
static int route(struct store_reader *r, struct store_read *rd)
{
	for (int i; (i = server_of(r->ps, rd, rd->step)) >= 0; rd->step++)
		if (send_to(r, rd, i) == 0)
			return 0;
	return -1;
}

/* A server answered rd, or failed it. */
static void on_answer(struct pg_conn *c, struct store_read *rd, int status, int failed)
{
	struct store_reader *r = c->data;
	struct pg_store *ps = r->ps;
	int at = server_of(ps, rd, rd->step);
	if (status == STORE_NOTFOUND && at > 0) {
		/* a replica may not have the row yet: the primary has */
		metric_add_shared(&ps->servers[at].fallbacks, 1);
		rd->step = ps->nservers - 1;
		if (route(r, rd) == 0)
			return;
	} else if (failed) {
		store_read_release(rd); /* a partial answer */
		rd->step++;
		if (route(r, rd) == 0)
			return;
		status = STORE_ERR;
	}
	rd->status = status;
	rd->done(rd);
}

int pg_read(struct store_reader *r, struct store_read *rd)
{
	if (fault_hit(FAULT_READ)) {
		log_error("unable to read: injected fault");
		return STORE_ERR;
	}
	if (!r->loop) {
		/* blocking: the primary */
		struct pg_params p;
		enum pg_stmt st = pg_read_params(rd, r->ps->node, &p);
		PGresult *res = PQexecPrepared(r->blocking, pg_stmts[st].name, p.n, p.v, p.len, p.fmt, 0);
		int rc = pg_read_take(rd, res);
		if (rc == STORE_ERR)
			log_error("unable to read: %s", PQerrorMessage(r->blocking));
		PQclear(res);
		return rc;
	}
	rd->step = 0;
	rd->server = 0;
	int nrep = r->ps->nservers - 1;
	if (rd->replica_ok && nrep > 0)
		rd->server = (int)(atomic_fetch_add_explicit(&r->ps->rr, 1, memory_order_relaxed) %
				   (unsigned)nrep);
	return route(r, rd) == 0 ? STORE_AGAIN : STORE_ERR;
}

int pg_reader_open(struct store *s, uv_loop_t *loop, struct store_reader **out)
{
	struct pg_store *ps = s->impl;
	struct store_reader *r = xcalloc(1, sizeof(*r));
	r->ps = ps;
	r->loop = loop;
	if (!loop) {
		char err[300];
		r->blocking = pg_connect_blocking(ps, 0, 0, err, sizeof(err));
		if (!r->blocking) {
			log_error("unable to open a database reader: %s", err);
			free(r);
			return STORE_ERR;
		}
		*out = r;
		return STORE_OK;
	}
	r->conns = xcalloc((size_t)(ps->nservers * ps->pool), sizeof(*r->conns));
	for (int i = 0; i < ps->nservers; i++)
		for (int k = 0; k < ps->pool; k++) {
			struct pg_conn *c = &r->conns[i * ps->pool + k];
			pg_conn_init(c, &ps->servers[i], loop, ps->conninfo[i], ps->timeout_ms,
				     on_answer, r);
			c->write_lsn = &ps->write_lsn;
		}
	*out = r;
	return STORE_OK;
}

void pg_reader_close(struct store_reader *r)
{
	if (!r)
		return;
	if (r->blocking)
		PQfinish(r->blocking);
	for (int i = 0; r->conns && i < r->ps->nservers * r->ps->pool; i++)
		pg_conn_close(&r->conns[i]);
	free(r->conns);
	free(r);
}

int pg_click_deltas(struct store_reader *r, uint64_t after_seq,
		    void (*fn)(void *ctx, uint64_t seq, const void *blob, size_t len), void *ctx)
{
	struct pg_params p;
	pg_params_init(&p);
	pg_param_int(&p, r->ps->node);
	pg_param_int(&p, (int64_t)after_seq);
	const struct pg_stmt_def *d = &pg_stmts[PG_CLICK_DELTAS];
	/* binary results: the deltas' bytes as they are */
	PGresult *res = PQexecPrepared(r->blocking, d->name, p.n, p.v, p.len, p.fmt, 1);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_error("unable to read click deltas: %s", PQerrorMessage(r->blocking));
		PQclear(res);
		return STORE_ERR;
	}
	for (int i = 0; i < PQntuples(res); i++) {
		const unsigned char *s = (const unsigned char *)PQgetvalue(res, i, 0);
		uint64_t seq = 0;
		for (int b = 0; b < 8; b++) /* int8, network order */
			seq = seq << 8 | s[b];
		fn(ctx, seq, PQgetvalue(res, i, 1), (size_t)PQgetlength(res, i, 1));
	}
	PQclear(res);
	return STORE_OK;
}
