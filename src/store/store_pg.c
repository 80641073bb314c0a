/*
 * store_pg: the PostgreSQL backend (--pg URL), so that any number of
 * shortd share one primary and its streaming replicas.
 *
 * Design:
 *  - Writes: group commit on the primary by writer threads (pg_writer.c):
 *    many ops a transaction, sent in one pipeline, each acknowledged only
 *    after COMMIT returned (synchronous_commit as the server has it; on by
 *    default: the commit is in the primary's WAL on disk).
 *  - Reads never block a worker: each worker's reader talks to every
 *    server over connections on the worker's own loop, in nonblocking
 *    pipeline mode with prepared statements (pg_conn.c), and answers later
 *    (STORE_AGAIN).
 *  - Routing: a redirect's cache miss (rd->replica_ok) reads a replica, in
 *    turn over the healthy ones, and asks the primary when the replica has
 *    no such code (replicas lag: a link created a moment ago on another
 *    node must redirect at once) or fails. Such a read also carries the WAL
 *    position of this process's last commit of links or keys (write_lsn),
 *    and a replica that has not replayed that far answers no row: this
 *    node's own writes (a PATCH, a DELETE, a create) are never read back
 *    older from a lagging replica, even without a cache. Every other read (the API's:
 *    a link after its create or PATCH, a list, a key, an
 *    Idempotency-Key, click counts) reads the primary, which holds every
 *    acknowledged write: the simplest way to read one's own writes, and
 *    those reads are a small share of the traffic (a shortener's reads
 *    are redirects). Waiting for a replica to replay a write's LSN would
 *    save the primary those reads at the cost of a wait on every read
 *    after a write.
 *  - Faults: a circuit breaker per server (pg_server.c). While the
 *    primary's is open, writes fail at once (503) and /readyz says why;
 *    reads move to another replica, then to the primary; the workers'
 *    caches go on answering the links they hold. A primary given as a
 *    multi-host URI with target_session_attrs=read-write is found again
 *    after a failover by the next connection.
 *  - Clicks: deltas and merges go to the primary (per node: several
 *    nodes share the database; schema_pg.sql).
 *  - Schema: schema_pg.sql, applied at open when asked (pg_schema.c).
 * The backend's files are listed in pg_internal.h.
 */
#include "pg_internal.h"
#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

PGconn *pg_connect_blocking(struct pg_store *ps, int i, int bare, char *err, size_t errlen)
{
	PGconn *c = PQconnectStart(ps->conninfo[i]);
	uint64_t deadline = time_mono_ms() + (uint64_t)ps->timeout_ms;
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	while (c && PQstatus(c) != CONNECTION_BAD && st != PGRES_POLLING_OK &&
	       st != PGRES_POLLING_FAILED) {
		struct pollfd p = {.fd = PQsocket(c),
				   .events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT};
		uint64_t now = time_mono_ms();
		if (now >= deadline) {
			snprintf(err, errlen, "'%s': no connection within %d ms", ps->servers[i].name,
				 ps->timeout_ms);
			PQfinish(c);
			return NULL;
		}
		int n = poll(&p, 1, (int)(deadline - now));
		if (n < 0 && errno != EINTR)
			break;
		if (n > 0)
			st = PQconnectPoll(c);
	}
	if (!c || st != PGRES_POLLING_OK) {
		snprintf(err, errlen, "'%s': %s", ps->servers[i].name,
			 c ? PQerrorMessage(c) : "out of memory");
		PQfinish(c);
		return NULL;
	}
	if (!bare && pg_prepare_all(c, err, errlen) != 0) {
		PQfinish(c);
		return NULL;
	}
	return c;
}

static void pg_close(struct store *s);

static int pg_open(struct store *s, const struct store_config *cfg, char *err, size_t errlen)
{
	struct pg_store *ps = xcalloc(1, sizeof(*ps));
	s->impl = ps;
	ps->pool = cfg->pg_pool > 0 ? cfg->pg_pool : 1;
	ps->timeout_ms = cfg->pg_timeout_ms > 0 ? cfg->pg_timeout_ms : 2000;
	ps->node = cfg->node_id;
	ps->commit_batch = cfg->commit_batch;
	atomic_store(&ps->last_commit_ok, 1);
	if (pg_server_init(&ps->servers[0], cfg->pg_url, 1, err, errlen) != 0)
		goto fail;
	ps->nservers = 1;
	const char *rest = cfg->pg_replicas ? cfg->pg_replicas : "", *p;
	size_t n;
	while ((p = list_next(&rest, &n))) {
		if (ps->nservers == STORE_SERVERS_MAX) {
			snprintf(err, errlen, "at most %d replicas", STORE_SERVERS_MAX - 1);
			goto fail;
		}
		char *one = xstrndup(p, n);
		int rc = pg_server_init(&ps->servers[ps->nservers], one, 0, err, errlen);
		free(one);
		if (rc != 0)
			goto fail;
		ps->nservers++;
	}
	for (int i = 0; i < ps->nservers; i++)
		ps->conninfo[i] = pg_server_conninfo(&ps->servers[i], ps->timeout_ms);
	PGconn *c = pg_connect_blocking(ps, 0, 1, err, errlen);
	if (!c) {
		char why[400];
		snprintf(why, sizeof(why), "unable to connect to the PostgreSQL primary %s", err);
		snprintf(err, errlen, "%s", why);
		goto fail;
	}
	/* the schema, as SQLite makes its files: every command that opens
	 * the store applies what is missing (once: pg_schema.c) */
	int rc = pg_migrate(c, err, errlen);
	PQfinish(c);
	if (rc != 0)
		goto fail;
	ps->nwriters = ps->pool + 1;
	ps->writers = xcalloc((size_t)ps->nwriters, sizeof(*ps->writers));
	for (int i = 0; i < ps->nwriters; i++)
		if (pg_writer_start(&ps->writers[i], ps, i, i == ps->pool) != 0) {
			snprintf(err, errlen, "unable to start the writer threads");
			goto fail;
		}
	log_info("PostgreSQL primary '%s' (%d replica%s), %d connection%s a server per thread",
		 ps->servers[0].name, ps->nservers - 1, ps->nservers == 2 ? "" : "s", ps->pool,
		 ps->pool == 1 ? "" : "s");
	return STORE_OK;
fail:
	pg_close(s);
	return STORE_ERR;
}

static void pg_close(struct store *s)
{
	struct pg_store *ps = s->impl;
	if (!ps)
		return;
	for (int i = 0; ps->writers && i < ps->nwriters; i++)
		pg_writer_stop(&ps->writers[i]);
	free(ps->writers);
	for (int i = 0; i < STORE_SERVERS_MAX; i++) {
		pg_server_release(&ps->servers[i]);
		free(ps->conninfo[i]);
	}
	free(ps);
	s->impl = NULL;
}

static void pg_submit(struct store *s, struct store_op *op)
{
	struct pg_store *ps = s->impl;
	struct pg_writer *w;
	if (op->kind == STORE_OP_CLICK_DELTA || op->kind == STORE_OP_CLICK_MERGE)
		w = &ps->writers[ps->pool];
	else if (op->kind == STORE_OP_KEY_INSERT || op->kind == STORE_OP_KEY_REVOKE ||
		 op->kind == STORE_OP_SESSION_INSERT || op->kind == STORE_OP_SESSION_DELETE)
		w = &ps->writers[0];
	else /* a link's writes, in order, on the writer of its code */
		w = &ps->writers[hash_bytes(op->link->code, op->link->code_len, 0) % (uint64_t)ps->pool];
	pg_writer_submit(w, op);
}

static int pg_ready(struct store *s, char *why, size_t len)
{
	struct pg_store *ps = s->impl;
	struct pg_server *p = &ps->servers[0];
	if (pg_server_state(p) != STORE_BREAKER_OPEN) {
		if (atomic_load(&ps->last_commit_ok))
			return 1;
		snprintf(why, len, "the last commit of links or keys failed");
		return 0;
	}
	pthread_mutex_lock(&p->lock);
	snprintf(why, len, "the PostgreSQL primary '%s' is unreachable: %s", p->name, p->last_error);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

static void pg_stats(struct store *s, struct store_stats *out)
{
	struct pg_store *ps = s->impl;
	memset(out, 0, sizeof(*out));
	for (int i = 0; i < ps->nwriters; i++) {
		const struct pg_writer *w = &ps->writers[i];
		hist_sum_add(&out->commit_latency, &w->commit_latency);
		hist_sum_add(&out->batch_size, &w->batch_size);
		out->commits += metric_read(&w->commits);
		out->commit_errors += metric_read(&w->commit_errors);
	}
	for (int i = 0; i < ps->nservers; i++)
		pg_server_stats(&ps->servers[i], &out->servers[i]);
	out->nservers = ps->nservers;
}

static void reader_release(struct store_reader *r)
{
	(void)r; /* each read is its own statement: no snapshot is held */
}

const struct store_ops store_pg_ops = {
	.name = "pg",
	.open = pg_open,
	.close = pg_close,
	.reader_open = pg_reader_open,
	.reader_close = pg_reader_close,
	.reader_release = reader_release,
	.read = pg_read,
	.submit = pg_submit,
	.ready = pg_ready,
	.click_deltas = pg_click_deltas,
	.stats = pg_stats,
};
