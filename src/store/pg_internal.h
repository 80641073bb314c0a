/*
 * pg_internal: what the files of the PostgreSQL backend share (see
 * store_pg.c for its design). Nothing outside src/store/pg_*.c and
 * store_pg.c includes this.
 *
 *   store_pg.c   open, close, readiness, statistics, the backend's table
 *   pg_server.c  the configured servers: circuit breakers and figures
 *   pg_sql.c     the statements, and rows read into links, keys, counters
 *   pg_conn.c    a nonblocking connection on a worker's loop, pipelined
 *   pg_reader.c  reads: routing to replicas and the primary, failover
 *   pg_writer.c  writer threads: group commit on the primary
 *   pg_schema.c  migrations, under an advisory lock
 */
#ifndef SHORTD_PG_INTERNAL_H
#define SHORTD_PG_INTERNAL_H

#include "store.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <uv.h>

/* ---- servers (pg_server.c) ------------------------------------------------ */

/* A server's circuit breaker: closed while it answers; open for a while
 * (backoff_ms, doubling from PG_BACKOFF_MIN_MS to PG_BACKOFF_MAX_MS, with
 * jitter) after a connection to it failed or a query on it timed out,
 * during which nothing is sent to it: reads go elsewhere and writes fail
 * at once; half-open once that while is over: connections are tried
 * again, and the first that succeeds closes it. */
#define PG_BACKOFF_MIN_MS 100
#define PG_BACKOFF_MAX_MS 5000

struct pg_server {
	char *conninfo;   /* the URI, as configured */
	char name[96];    /* host:port of its first host, for logs and labels */
	int primary;
	pthread_mutex_t lock; /* the breaker's */
	int open;             /* the breaker is open (until open_until_ms) */
	uint64_t open_until_ms, backoff_ms;
	char last_error[200];
	/* figures, written by every thread that uses the server */
	metric_counter queries, errors, fallbacks;
	struct histogram latency;
	atomic_long conns;
};

/* Parses conninfo (a URI or key=value string) and sets up s. 0, or -1 with
 * err filled in. */
int pg_server_init(struct pg_server *s, const char *conninfo, int primary, char *err,
		   size_t errlen);
void pg_server_release(struct pg_server *s);
/* STORE_BREAKER_*: whether anything may be sent to s now (not open). */
int pg_server_state(struct pg_server *s);
/* A connection to s worked (it connected, or a query answered). */
void pg_server_ok(struct pg_server *s);
/* A connection to s failed, or a query on it timed out: the breaker opens
 * (again, for twice as long). why is logged once per opening. */
void pg_server_failed(struct pg_server *s, const char *why);
void pg_server_observe(struct pg_server *s, uint64_t ns, int error);
void pg_server_stats(struct pg_server *s, struct store_server_stats *out);
/* A connection string for s with the session settings shortd needs
 * (statement_timeout, the application name), malloc'd. */
char *pg_server_conninfo(const struct pg_server *s, int timeout_ms);

/* ---- statements and rows (pg_sql.c) --------------------------------------- */

enum pg_stmt {
	PG_LINK_GET,
	PG_LSN_GATE,
	PG_LINKS_ALL,
	PG_LINKS_OWNER,
	PG_KEY_GET,
	PG_KEYS,
	PG_IDEM_GET,
	PG_CLICKS,
	PG_CLICK_DELTAS,
	PG_INSERT_MANY,
	PG_IDEM_EXPIRE,
	PG_UPDATE,
	PG_DELETE,
	PG_LINK_OWNER,
	PG_KEY_INSERT,
	PG_KEY_REVOKE,
	PG_KEY_EXISTS,
	PG_SESSION_GET,
	PG_SESSION_PURGE,
	PG_SESSION_INSERT,
	PG_SESSION_DELETE,
	PG_DELTA_ADD,
	PG_DELTA_DROP,
	PG_FLUSH_SEQ,
	PG_MERGE_HOURS,
	PG_MERGE_DAYS,
	PG_NSTMTS
};

struct pg_stmt_def {
	const char *name, *sql;
	int nparams;
};
extern const struct pg_stmt_def pg_stmts[PG_NSTMTS];

/* Up to 12 parameters of a statement, and their storage. Text
 * parameters are NUL-terminated (libpq ignores a text parameter's
 * length). */
struct pg_params {
	const char *v[12];
	int len[12];
	int fmt[12];
	int n;
	char num[12][24];
	char code[LINK_CODE_MAX + 1]; /* a code that was not NUL-terminated */
};
void pg_params_init(struct pg_params *p);
void pg_param_int(struct pg_params *p, int64_t v);
/* s[n] must be NUL. */
void pg_param_text(struct pg_params *p, const char *s, size_t n);
void pg_param_null(struct pg_params *p);
void pg_param_bytes(struct pg_params *p, const void *b, size_t n); /* binary */

/* The parameters of a read (its kind's statement). */
enum pg_stmt pg_read_params(const struct store_read *rd, int node, struct pg_params *p);
/* Takes the result of rd's statement into rd's answer: STORE_OK,
 * STORE_NOTFOUND or STORE_ERR. */
int pg_read_take(struct store_read *rd, const PGresult *res);
/* A row of a links query from column 0 (one reference for the caller). */
struct link *pg_row_link(const PGresult *res, int row);
/* A bytea column (\x hex) of exactly n bytes into out; else zeros. 0, or
 * -1 if it was not n bytes. */
int pg_col_bytes(const PGresult *res, int row, int col, uint8_t *out, size_t n);
/* Prepares every statement on a connection in blocking mode: 0, or -1
 * with err. */
int pg_prepare_all(PGconn *c, char *err, size_t errlen);

/* ---- connections on a loop (pg_conn.c) ------------------------------------- */

/* What a connection is doing. */
enum { PGC_IDLE = 0, PGC_CONNECTING, PGC_READY, PGC_BROKEN };

struct pg_conn;
/* Called when a read queued on c is answered (status, or STORE_ERR with
 * failed set when the connection or server failed and the read may go
 * elsewhere). */
typedef void (*pg_conn_done)(struct pg_conn *c, struct store_read *rd, int status, int failed);

struct pg_conn {
	struct pg_server *server;
	uv_loop_t *loop;
	char *conninfo;
	PGconn *pg;
	int state;
	int sock;             /* the socket poll watches, -1: none */
	uv_poll_t *poll;      /* re-made when PQsocket() changes */
	int events;
	uv_timer_t *timer;    /* the oldest read's deadline; the connect deadline */
	int timeout_ms;
	uint64_t connect_deadline_ms;
	struct store_read *head, *tail; /* sent, in order; then waiting to be sent */
	struct store_read *unsent;      /* the first not sent yet (within the list) */
	int inflight;
	int node;             /* this process's --node-id (click reads) */
	int preparing;        /* the prepares' results come first */
	int stage;            /* head read: 0 a result, 1 its NULL, 2 the sync */
	int part;             /* head read: which of its statements answers next */
	int head_status;      /* what the head's results said */
	_Atomic uint64_t *write_lsn; /* the store's: this process's last commit */
	pg_conn_done done;
	void *data;
	int closing;
};

/* Sets up c (not connected: the first read connects it). */
void pg_conn_init(struct pg_conn *c, struct pg_server *server, uv_loop_t *loop,
		  const char *conninfo, int timeout_ms, pg_conn_done done, void *data);
/* Queues rd (pg_read_params) on c; it is sent once c is connected. 0, or
 * -1 if c cannot take it now (its server's breaker is open). */
int pg_conn_send(struct pg_conn *c, struct store_read *rd, int node);
/* Reads queued on c. */
int pg_conn_load(const struct pg_conn *c);
/* Closes c; its handles' memory goes once the loop is done with them.
 * Queued reads must have been answered. */
void pg_conn_close(struct pg_conn *c);

/* ---- writers (pg_writer.c) -------------------------------------------------- */

struct pg_store;
struct pg_writer {
	struct pg_store *ps;
	int idx;
	int clicks;           /* the click writer */
	PGconn *pg;
	pthread_t thread;
	int started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct store_op *head, *tail;
	int stopping;
	/* owned by the writer's thread */
	struct histogram commit_latency, batch_size;
	metric_counter commits, commit_errors;
};
int pg_writer_start(struct pg_writer *w, struct pg_store *ps, int idx, int clicks);
void pg_writer_submit(struct pg_writer *w, struct store_op *op);
/* Runs the ops queued, then ends the thread. */
void pg_writer_stop(struct pg_writer *w);

/* ---- the store (store_pg.c) ---------------------------------------------------- */

struct pg_store {
	struct pg_server servers[STORE_SERVERS_MAX]; /* [0]: the primary */
	int nservers;
	int pool;
	int timeout_ms;
	int node;
	int commit_batch;
	char *conninfo[STORE_SERVERS_MAX]; /* with the session settings */
	struct pg_writer *writers; /* pool links writers, then the click writer */
	int nwriters;
	atomic_uint rr; /* spreads readers over replicas */
	atomic_int last_commit_ok; /* of a batch of links or keys */
	/* The WAL position just after this process's last commit of links or
	 * keys: a replica that has not replayed up to it answers no row, and
	 * the read asks the primary (store_pg.c, "Routing"). */
	_Atomic uint64_t write_lsn;
};

/* A blocking connection to server i (for start-up, tools and writers),
 * with every statement prepared unless bare: NULL with err. */
PGconn *pg_connect_blocking(struct pg_store *ps, int i, int bare, char *err, size_t errlen);

/* pg_reader.c */
int pg_reader_open(struct store *s, uv_loop_t *loop, struct store_reader **out);
void pg_reader_close(struct store_reader *r);
int pg_read(struct store_reader *r, struct store_read *rd);
int pg_click_deltas(struct store_reader *r, uint64_t after_seq,
		    void (*fn)(void *ctx, uint64_t seq, const void *blob, size_t len), void *ctx);

/* pg_schema.c: applies the migrations of schema_pg.sql, under the advisory
 * lock. 0, or -1 with err. */
int pg_migrate(PGconn *c, char *err, size_t errlen);

#endif
