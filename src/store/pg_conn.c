/*
 * pg_conn: one PostgreSQL connection on a worker's libuv loop, in libpq's
 * nonblocking pipeline mode.
 *
 * Connecting: PQconnectStart(), then PQconnectPoll() whenever the socket
 * is ready for what it asked. A multi-host URI (or a server that refuses
 * the first address) makes libpq move to another socket during connect,
 * which may get the same descriptor number: the uv_poll handle is made
 * again after every step, never trusted. Once connected, every statement
 * is prepared (pg_sql.c), sent at once without waiting for the answers,
 * and the reads queued meanwhile follow them.
 *
 * Reads: each read is one prepared statement and a sync, sent as soon as
 * it is queued, so many reads share a round trip (libpq's pipeline: a
 * worker's misses of one turn of its loop go out in one write). Answers
 * come in the order the reads were sent, so the queue is a FIFO: the head
 * is the read whose answer comes next. Per read: its result, a NULL (the
 * end of its results), its sync.
 *
 * Deadlines: a timer at the head's deadline (sent time + --pg-timeout-ms),
 * or the connect deadline. A server that misses one, or a connection that
 * fails, breaks the connection: its server's breaker opens
 * (pg_server_failed), every read queued on it is handed back as failed
 * (the reader tries another server), and the next read on this connection
 * once the breaker allows reconnects it.
 *
 * Memory: the poll and timer handles are allocated, and freed in their
 * close callbacks, so that a connection can go while libuv still holds a
 * handle's close.
 */
#include "pg_internal.h"
#include "core/log.h"
#include "core/util.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void on_io(uv_poll_t *h, int status, int events);
static void on_timer(uv_timer_t *t);
static void broken(struct pg_conn *c, const char *why, int server_failed);

static void free_handle(uv_handle_t *h)
{
	free(h);
}

static void poll_drop(struct pg_conn *c)
{
	if (c->poll) {
		uv_close((uv_handle_t *)c->poll, free_handle);
		c->poll = NULL;
	}
	c->sock = -1;
	c->events = 0;
}

/* Watches libpq's socket for events (made again: see the file's head). */
static int poll_set(struct pg_conn *c, int events, int remake)
{
	int sock = PQsocket(c->pg);
	if (sock < 0)
		return -1;
	if (remake || sock != c->sock)
		poll_drop(c);
	if (!c->poll) {
		c->poll = xmalloc(sizeof(*c->poll));
		if (uv_poll_init_socket(c->loop, c->poll, sock) != 0) {
			free(c->poll);
			c->poll = NULL;
			return -1;
		}
		c->poll->data = c;
		c->sock = sock;
		c->events = 0;
	}
	if (events != c->events) {
		c->events = events;
		uv_poll_start(c->poll, events, on_io);
	}
	return 0;
}

/* The timer at the next deadline: the connect's, or the head read's. */
static void arm(struct pg_conn *c)
{
	uint64_t due_ms = 0;
	if (c->state == PGC_CONNECTING)
		due_ms = c->connect_deadline_ms;
	else if (c->head && c->head != c->unsent)
		due_ms = c->head->due_ns / 1000000;
	if (!due_ms) {
		uv_timer_stop(c->timer);
		return;
	}
	uint64_t now = uv_now(c->loop);
	uv_timer_start(c->timer, on_timer, due_ms > now ? due_ms - now : 0, 0);
}

void pg_conn_init(struct pg_conn *c, struct pg_server *server, uv_loop_t *loop,
		  const char *conninfo, int timeout_ms, pg_conn_done done, void *data)
{
	memset(c, 0, sizeof(*c));
	c->server = server;
	c->loop = loop;
	c->conninfo = xstrdup(conninfo);
	c->timeout_ms = timeout_ms;
	c->done = done;
	c->data = data;
	c->sock = -1;
	c->timer = xmalloc(sizeof(*c->timer));
	uv_timer_init(loop, c->timer);
	c->timer->data = c;
}

int pg_conn_load(const struct pg_conn *c)
{
	return c->inflight;
}

/* Sends every read not sent yet. 0, or -1 (the connection broke). */
static int send_pending(struct pg_conn *c)
{
	for (struct store_read *rd = c->unsent; rd; rd = rd->next) {
		struct pg_params p;
		rd->parts = 1;
		uint64_t lsn = atomic_load_explicit(c->write_lsn, memory_order_acquire);
		if (!c->server->primary && rd->kind == STORE_READ_LINK && lsn) {
			/* the gate (pg_sql.c): a replica behind this process's
			 * writes must not answer for them */
			char pos[40];
			snprintf(pos, sizeof(pos), "%X/%X", (unsigned)(lsn >> 32), (unsigned)lsn);
			const char *v[1] = {pos};
			if (!PQsendQueryPrepared(c->pg, pg_stmts[PG_LSN_GATE].name, 1, v, NULL, NULL, 0)) {
				broken(c, PQerrorMessage(c->pg), 1);
				return -1;
			}
			rd->parts = 2;
		}
		enum pg_stmt st = pg_read_params(rd, c->node, &p);
		if (!PQsendQueryPrepared(c->pg, pg_stmts[st].name, p.n, p.v, p.len, p.fmt, 0) ||
		    !PQpipelineSync(c->pg)) {
			broken(c, PQerrorMessage(c->pg), 1);
			return -1;
		}
		rd->due_ns = uv_hrtime() + (uint64_t)c->timeout_ms * 1000000;
	}
	c->unsent = NULL;
	int f = PQflush(c->pg);
	if (f < 0) {
		broken(c, PQerrorMessage(c->pg), 1);
		return -1;
	}
	if (poll_set(c, UV_READABLE | (f ? UV_WRITABLE : 0), 0) != 0) {
		broken(c, "no socket to watch", 1);
		return -1;
	}
	arm(c);
	return 0;
}

/* Connected: prepare every statement, then send what waited. */
static void connected(struct pg_conn *c)
{
	if (PQsetnonblocking(c->pg, 1) != 0 || !PQenterPipelineMode(c->pg)) {
		broken(c, PQerrorMessage(c->pg), 1);
		return;
	}
	for (int i = 0; i < PG_NSTMTS; i++)
		if (!PQsendPrepare(c->pg, pg_stmts[i].name, pg_stmts[i].sql, pg_stmts[i].nparams,
				   NULL)) {
			broken(c, PQerrorMessage(c->pg), 1);
			return;
		}
	if (!PQpipelineSync(c->pg)) {
		broken(c, PQerrorMessage(c->pg), 1);
		return;
	}
	c->preparing = 1; /* results up to that sync are the prepares' */
	c->state = PGC_READY;
	atomic_fetch_add_explicit(&c->server->conns, 1, memory_order_relaxed);
	pg_server_ok(c->server);
	send_pending(c);
}

/* One step of the connect: 0 while it goes on or is done, -1 after it
 * failed (the connection is broken). */
static int connect_step(struct pg_conn *c)
{
	switch (PQconnectPoll(c->pg)) {
	case PGRES_POLLING_OK:
		connected(c);
		return 0;
	case PGRES_POLLING_READING:
		if (poll_set(c, UV_READABLE, 1) == 0)
			return 0;
		break;
	case PGRES_POLLING_WRITING:
		if (poll_set(c, UV_WRITABLE, 1) == 0)
			return 0;
		break;
	default:
		break;
	}
	char why[300];
	snprintf(why, sizeof(why), "connect: %s", c->pg ? PQerrorMessage(c->pg) : "out of memory");
	broken(c, why, 1);
	return -1;
}

static int start_connect(struct pg_conn *c)
{
	c->pg = PQconnectStart(c->conninfo);
	if (!c->pg || PQstatus(c->pg) == CONNECTION_BAD) {
		char why[300];
		snprintf(why, sizeof(why), "connect: %s", c->pg ? PQerrorMessage(c->pg) : "out of memory");
		broken(c, why, 1);
		return -1;
	}
	c->state = PGC_CONNECTING;
	c->connect_deadline_ms = uv_now(c->loop) + (uint64_t)c->timeout_ms;
	arm(c);
	/* libpq says: behave as if the last poll asked for writing */
	if (poll_set(c, UV_WRITABLE, 1) != 0) {
		broken(c, "connect: no socket", 1);
		return -1;
	}
	return 0;
}

int pg_conn_send(struct pg_conn *c, struct store_read *rd, int node)
{
	c->node = node;
	if (c->state == PGC_IDLE || c->state == PGC_BROKEN) {
		if (pg_server_state(c->server) == STORE_BREAKER_OPEN || start_connect(c) != 0)
			return -1;
	}
	rd->next = NULL;
	if (c->tail)
		c->tail->next = rd;
	else
		c->head = rd;
	c->tail = rd;
	if (!c->unsent)
		c->unsent = rd;
	c->inflight++;
	if (c->state == PGC_READY)
		send_pending(c);
	return 0;
}

/* The head read's answer is complete: it leaves the queue, then its done. */
static void complete_head(struct pg_conn *c, int status)
{
	struct store_read *rd = c->head;
	c->head = rd->next;
	if (!c->head)
		c->tail = NULL;
	c->inflight--;
	rd->next = NULL;
	uint64_t sent = rd->due_ns - (uint64_t)c->timeout_ms * 1000000;
	pg_server_observe(c->server, uv_hrtime() - sent, status == STORE_ERR);
	c->done(c, rd, status, 0);
}

/* Takes every result that has arrived. */
static void take_results(struct pg_conn *c)
{
	while (c->state == PGC_READY && !PQisBusy(c->pg)) {
		if (!c->preparing && (!c->head || c->head == c->unsent))
			break; /* nothing asked: PQgetResult() would say nothing */
		PGresult *res = PQgetResult(c->pg);
		ExecStatusType st = res ? PQresultStatus(res) : PGRES_EMPTY_QUERY;
		if (c->preparing) {
			if (res && st != PGRES_COMMAND_OK && st != PGRES_PIPELINE_SYNC) {
				char why[300];
				snprintf(why, sizeof(why), "prepare: %s", PQresultErrorMessage(res));
				PQclear(res);
				broken(c, why, 0);
				return;
			}
			if (st == PGRES_PIPELINE_SYNC)
				c->preparing = 0;
			PQclear(res);
			continue;
		}
		if (c->stage == 0) { /* a result of the head read */
			if (!res) {
				broken(c, "a result went missing", 0);
				return;
			}
			int last = c->part == c->head->parts - 1;
			if (st != PGRES_TUPLES_OK) {
				if (st != PGRES_PIPELINE_ABORTED)
					log_error("PostgreSQL '%s': %s", c->server->name,
						  PQresultErrorMessage(res));
				c->head_status = STORE_ERR;
			} else if (!last) {
				/* the gate: no, the replica is behind: "not here",
				 * and the primary is asked */
				int ok = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
				c->head_status = ok ? STORE_OK : STORE_NOTFOUND;
			} else if (c->part == 0 || c->head_status == STORE_OK) {
				c->head_status = pg_read_take(c->head, res);
			}
			PQclear(res);
			c->part++;
			c->stage = 1;
		} else if (c->stage == 1) { /* the end of that statement's results */
			if (res)
				PQclear(res); /* a statement answers one result: not reached */
			else
				c->stage = c->part < c->head->parts ? 0 : 2;
		} else { /* its sync */
			PQclear(res);
			if (st != PGRES_PIPELINE_SYNC) {
				broken(c, "the pipeline lost its place", 0);
				return;
			}
			c->stage = 0;
			c->part = 0;
			complete_head(c, c->head_status);
			arm(c);
		}
	}
}

static void on_io(uv_poll_t *h, int status, int events)
{
	struct pg_conn *c = h->data;
	if (status < 0 && c->state != PGC_CONNECTING) {
		broken(c, uv_strerror(status), 1);
		return;
	}
	if (c->state == PGC_CONNECTING) {
		connect_step(c);
		return;
	}
	if (c->state != PGC_READY)
		return;
	if (events & UV_WRITABLE) {
		int f = PQflush(c->pg);
		if (f < 0) {
			broken(c, PQerrorMessage(c->pg), 1);
			return;
		}
		if (!f && poll_set(c, UV_READABLE, 0) != 0) {
			broken(c, "no socket to watch", 1);
			return;
		}
	}
	if (events & UV_READABLE) {
		if (!PQconsumeInput(c->pg)) {
			broken(c, PQerrorMessage(c->pg), 1);
			return;
		}
		take_results(c);
	}
}

static void on_timer(uv_timer_t *t)
{
	struct pg_conn *c = t->data;
	char why[120];
	if (c->state == PGC_CONNECTING)
		snprintf(why, sizeof(why), "no connection within %d ms", c->timeout_ms);
	else
		snprintf(why, sizeof(why), "no answer within %d ms", c->timeout_ms);
	broken(c, why, 1);
}

/* The connection is gone: every read on it is handed back as failed. */
static void broken(struct pg_conn *c, const char *why, int server_failed)
{
	if (server_failed)
		pg_server_failed(c->server, why);
	else
		log_error("PostgreSQL '%s': %s; reconnecting", c->server->name, why);
	if (c->state == PGC_READY)
		atomic_fetch_sub_explicit(&c->server->conns, 1, memory_order_relaxed);
	poll_drop(c);
	if (c->pg)
		PQfinish(c->pg);
	c->pg = NULL;
	c->state = PGC_BROKEN;
	c->stage = 0;
	c->part = 0;
	c->preparing = 0;
	uv_timer_stop(c->timer);
	/* handed back from a list of their own: a done() may queue a read on
	 * this connection again (it then reconnects once allowed) */
	struct store_read *rd = c->head;
	c->head = c->tail = c->unsent = NULL;
	c->inflight = 0;
	while (rd) {
		struct store_read *next = rd->next;
		rd->next = NULL;
		pg_server_observe(c->server, 0, 1);
		c->done(c, rd, STORE_ERR, 1);
		rd = next;
	}
}

void pg_conn_close(struct pg_conn *c)
{
	assert(!c->head);
	if (c->state == PGC_READY)
		atomic_fetch_sub_explicit(&c->server->conns, 1, memory_order_relaxed);
	poll_drop(c);
	if (c->pg)
		PQfinish(c->pg);
	c->pg = NULL;
	uv_close((uv_handle_t *)c->timer, free_handle);
	c->timer = NULL;
	free(c->conninfo);
	c->conninfo = NULL;
	c->state = PGC_IDLE;
}
