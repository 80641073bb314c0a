/*
 * store: where links live durably. One interface, several backends.
 *
 * A backend is a table of functions (struct store_ops) found by name with
 * store_find(); handlers only ever call the store_* wrappers below, which is
 * also where fault injection hooks in.
 *
 * Reads are asynchronous. A reader (struct store_reader) belongs to one
 * thread and, for a server's worker, to that worker's libuv loop. A read is
 * a struct store_read that the caller owns: it says what to read and
 * receives the answer. store_read() either answers at once (it returns the
 * status, and done is never called) or returns STORE_AGAIN: then the
 * backend calls rd->done(rd) later, exactly once, on the reader's loop
 * thread, from a callback of that loop (never from inside store_read), and
 * rd must stay where it is until then. A backend that can answer in
 * microseconds (SQLite's in-thread WAL reader) answers at once; a network
 * backend answers later; a test build (DELAYED_READS=1) makes SQLite answer
 * every read of a loop's reader later too, so that each suspended path runs
 * in every test. A reader opened without a loop (command-line tools,
 * start-up) always answers at once: its backend blocks if it must.
 *
 * Every read sees every write acknowledged before the read began. A reader
 * may keep a snapshot from one read to the next while nothing is committed;
 * store_reader_release() lets go of it (a worker calls it once per turn of
 * its loop).
 *
 * Writes are asynchronous too: store_submit() queues an op; the backend
 * commits it (many ops per transaction: group commit) and only then calls
 * op->done on its writer thread. A write is acknowledged to a client only
 * from op->done, so an acknowledged write is on disk.
 *
 * Status codes, for every function here: STORE_OK, STORE_NOTFOUND,
 * STORE_CONFLICT (unique code taken), STORE_GONE (deleted), STORE_ERR,
 * STORE_FULL (a write found the disk full; nothing of it was stored),
 * STORE_AGAIN (a read goes on; its done callback brings the answer).
 */
#ifndef SHORTD_STORE_H
#define SHORTD_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "auth/apikey.h"
#include "core/metrics.h"
#include "link/link.h"

struct uv_loop_s;

enum store_status {
	STORE_OK = 0,
	STORE_NOTFOUND,
	STORE_CONFLICT,
	STORE_GONE,
	STORE_ERR,
	STORE_FULL, /* no space left for the write: nothing was stored */
	STORE_AGAIN, /* a read is under way: its done callback follows */
};

enum store_op_kind {
	STORE_OP_INSERT,
	STORE_OP_UPDATE,
	STORE_OP_DELETE,
	STORE_OP_CLICK_DELTA, /* append one batch of click counters (a blob) */
	STORE_OP_CLICK_MERGE, /* add counters to the click tables, drop merged deltas */
	STORE_OP_KEY_INSERT,  /* a new API key (op->key) */
	STORE_OP_KEY_REVOKE,  /* revoke key op->key->id at op->key->revoked_at_ms */
	STORE_OP_SESSION_INSERT, /* a web session (op->session); drops expired ones */
	STORE_OP_SESSION_DELETE, /* the session of op->session->hash (else NOTFOUND) */
};

/* A web session: the SHA-256 of its token (never the token) and the row
 * id of the API key it acts for. */
struct store_session {
	uint8_t hash[32];
	int64_t key_row;
	int64_t created_at_ms, expires_at_ms;
};

/* Reading links of every owner (store_list, store_op.owner). */
#define STORE_ANY_OWNER (-1)
/* How long an Idempotency-Key is honoured. */
#define STORE_IDEM_TTL_MS (24LL * 3600 * 1000)

/* Click counters, as stored.
 * STORE_CLICK_HOUR: bucket is an hour (Unix ms / 3600000); humans, bots.
 * STORE_CLICK_DAY: bucket is a day (Unix ms / 86400000); one combination of
 *   referrer, country, device, browser and OS, its clicks in humans. Bot
 *   clicks have device "bot" and "-" in the other dimensions. The strings
 *   are NUL-terminated and contain no NUL. */
enum { STORE_CLICK_HOUR = 0, STORE_CLICK_DAY = 1 };
#define STORE_CLICK_REF_MAX 64

struct click_count {
	int64_t link_id;
	int32_t bucket;
	uint8_t kind;
	char referrer[STORE_CLICK_REF_MAX + 1];
	char country[8];
	char device[8];
	char browser[8];
	char os[12];
	uint64_t humans, bots;
};

/* Fields of an update (bit mask in store_op.fields). */
enum { STORE_F_URL = 1, STORE_F_EXPIRES = 2, STORE_F_REDIRECT = 4, STORE_F_FORWARD_QUERY = 8 };

/* Counters read for one link, and the last delta merged into them. */
struct click_rows {
	struct click_count *rows; /* the caller frees */
	size_t n;
	uint64_t seq;
};

struct store_op {
	enum store_op_kind kind;
	/* INSERT: the new row (the op owns one reference). UPDATE: the new
	 * values of `fields` and the code. DELETE: the code and
	 * deleted_at_ms. CLICK_*: unused. */
	struct link *link;
	unsigned fields;
	/* UPDATE, DELETE: only a link of this owner (else STORE_NOTFOUND), or
	 * STORE_ANY_OWNER. */
	int64_t owner;
	/* INSERT: the Idempotency-Key (NULL: none) and SHA-256 of the body. */
	const char *idem_key;
	uint8_t idem_hash[32];
	/* KEY_*: the key (owned by the submitter). */
	struct api_key *key;
	/* SESSION_*: the session (owned by the submitter). */
	const struct store_session *session;
	/* CLICK_DELTA: the encoded batch (owned by the submitter) and its
	 * number. CLICK_MERGE: counters to add (owned by the submitter); deltas
	 * up to click_seq are then dropped, and click_seq recorded. */
	const void *blob;
	size_t blob_len;
	const struct click_count *clicks;
	size_t nclicks;
	uint64_t click_seq;
	/* out: */
	int status;
	struct link *result; /* the row after the write (one reference), or NULL */
	/* Called on the writer thread once the op is committed or failed. */
	void (*done)(struct store_op *op);
	void *ctx;
	struct store_op *next; /* queue link, the backend's */
};

struct store;
struct store_reader;

/* What a read asks for. */
enum store_read_kind {
	/* The link of code[0..code_len), deleted or not: link. */
	STORE_READ_LINK,
	/* Live (not deleted) links of owner (or STORE_ANY_OWNER) with id <
	 * before_id (0: from the newest), newest first, at most limit, and
	 * with q (if not NULL) in their code or URL, ASCII letters in any
	 * case: links and nlinks (freed with store_links_free()). */
	STORE_READ_LINKS,
	/* The key whose public id is key_id (revoked or not): key. */
	STORE_READ_KEY,
	/* Every key, newest first: keys (the caller frees) and nkeys. */
	STORE_READ_KEYS,
	/* The link created by owner with the Idempotency-Key idem_key in the
	 * last STORE_IDEM_TTL_MS before now_ms, and the hash of its body:
	 * link and idem_hash. */
	STORE_READ_IDEM,
	/* Counters of link_id in hours [from_hour, to_hour] (and their days
	 * when want_dims), and the number of the last delta merged into them,
	 * from one snapshot; link_id 0 reads only that number: clicks. */
	STORE_READ_CLICKS,
	/* The key of the session whose token hashes to session_hash (revoked
	 * or not), and the session's expiry: key and session_expires_ms. */
	STORE_READ_SESSION,
};

/* One read, owned by the caller. The strings it points to must stay
 * valid until it is answered. */
struct store_read {
	enum store_read_kind kind;
	/* the question */
	const char *code;     /* LINK: code_len bytes */
	size_t code_len;
	const char *key_id;   /* KEY: NUL-terminated */
	const char *idem_key; /* IDEM: NUL-terminated */
	int64_t owner;        /* LINKS, IDEM */
	int64_t before_id;    /* LINKS */
	int limit;            /* LINKS */
	const char *q;        /* LINKS: NUL-terminated, in lower case; NULL: any */
	int64_t now_ms;       /* IDEM */
	int64_t link_id;      /* CLICKS */
	const uint8_t *session_hash; /* SESSION: 32 bytes */
	/* 1: a replica may answer (it may lag a moment behind the primary; a
	 * STORE_NOTFOUND there is asked again of the primary). 0, the
	 * default: the answer must hold every write acknowledged before the
	 * read began, on any node. */
	int replica_ok;
	int32_t from_hour, to_hour;
	int want_dims;
	/* the answer: status, and on STORE_OK what the kind says */
	int status;
	struct link *link;    /* one reference, the caller's */
	struct link **links;
	int nlinks;
	struct api_key key;
	int64_t session_expires_ms;
	struct api_key *keys;
	int nkeys;
	uint8_t idem_hash[32];
	struct click_rows clicks;
	/* Called on the reader's loop when store_read() returned STORE_AGAIN. */
	void (*done)(struct store_read *rd);
	void *data;
	/* the backend's, while the read is under way */
	struct store_read *next;
	uint64_t due_ns;
	int step, server, parts;
};

/* A database server's figures (network backends), for /metrics. */
#define STORE_SERVERS_MAX 9
enum { STORE_BREAKER_CLOSED = 0, STORE_BREAKER_OPEN = 1, STORE_BREAKER_HALF_OPEN = 2 };
struct store_server_stats {
	char name[96];       /* host:port */
	const char *role;    /* "primary" or "replica" */
	uint64_t queries, errors;
	uint64_t fallbacks;  /* replica reads asked again of the primary */
	struct hist_sum latency;
	uint64_t conns;      /* connections open now */
	int breaker;         /* STORE_BREAKER_* */
};

/* Writer-side measurements (group commit), summed for /metrics. */
struct store_stats {
	struct hist_sum commit_latency; /* ns per COMMIT, fsync included */
	struct hist_sum batch_size;     /* ops per transaction */
	uint64_t commits, commit_errors;
	/* The code map (store_map_codes), all 0 without one: */
	uint64_t map_entries, map_bytes, map_builds;
	uint64_t map_found;  /* gets the map's ids answered */
	uint64_t map_missed; /* gets that read the code index (none matched) */
	struct store_server_stats servers[STORE_SERVERS_MAX];
	int nservers;        /* 0 for SQLite */
};

/* How to open a store. */
struct store_config {
	const char *backend;     /* "sqlite" or "pg" */
	const char *data_dir;    /* sqlite: the directory of its files */
	int commit_batch;        /* most writes in one transaction */
	int node_id;             /* this process's --node-id: a shared store keeps its
				  * click deltas apart from other nodes' */
	const char *pg_url;      /* pg: the primary, a libpq URI (several hosts
				  * with target_session_attrs=read-write follow a
				  * failover) */
	const char *pg_replicas; /* pg: hot standbys' URIs, comma-separated; "" none */
	int pg_pool;             /* pg: connections per server per thread */
	int pg_timeout_ms;       /* pg: connect and statement timeout */
};

struct store_ops {
	const char *name;
	int (*open)(struct store *s, const struct store_config *c, char *err, size_t errlen);
	void (*close)(struct store *s);
	int (*reader_open)(struct store *s, struct uv_loop_s *loop, struct store_reader **out);
	void (*reader_close)(struct store_reader *r);
	void (*reader_release)(struct store_reader *r);
	/* The answer, or STORE_AGAIN (see above). */
	int (*read)(struct store_reader *r, struct store_read *rd);
	void (*submit)(struct store *s, struct store_op *op);
	/* 1 if writes can be taken; else 0 with why (a sentence). */
	int (*ready)(struct store *s, char *why, size_t len);
	/* Calls fn for every delta numbered above after_seq, in order (a
	 * reader without a loop; start-up only). */
	int (*click_deltas)(struct store_reader *r, uint64_t after_seq,
			    void (*fn)(void *ctx, uint64_t seq, const void *blob, size_t len),
			    void *ctx);
	void (*stats)(struct store *s, struct store_stats *out);
	/* Optional: starts keeping which row holds each code in memory. */
	int (*map_codes)(struct store *s);
};

struct store {
	const struct store_ops *ops;
	void *impl;
};

const struct store_ops *store_find(const char *name);

int store_open(struct store *s, const struct store_config *c, char *err, size_t errlen);
/* Keeps which row holds each short code in memory (store/code_map.h),
 * built in the background from the database, so that a get reads one
 * B-tree instead of two; 11-23 bytes a link. For the server, not for
 * one-shot commands. STORE_ERR if the backend has no such map. */
int store_map_codes(struct store *s);
/* Commits every queued write, then closes. Every reader is closed first. */
void store_close(struct store *s);
/* A reader for the calling thread. With a loop, it belongs to that loop
 * (reads may answer later, on it); without one (NULL), every read
 * answers at once. */
int store_reader_open(struct store *s, struct uv_loop_s *loop, struct store_reader **out);
/* Closes r. A loop's reader must have no read under way; it lets go of
 * its loop's handles, and the loop ends only once they are closed. */
void store_reader_close(struct store *s, struct store_reader *r);
/* Ends the snapshot r holds, if any; its next read takes a new one. */
void store_reader_release(struct store *s, struct store_reader *r);
/* Starts rd (kind and question filled in, done set for a loop's reader):
 * its status, or STORE_AGAIN and rd->done(rd) later. The answer fields
 * are cleared first. */
int store_read(struct store *s, struct store_reader *r, struct store_read *rd);
/* Frees what a finished read holds (link, links, keys, click rows), so
 * that one function releases every kind. */
void store_read_release(struct store_read *rd);
/* Queues op: done(op) runs on the writer thread, with op->ctx = ctx, once
 * it is committed or has failed. op->status starts as STORE_ERR and
 * op->result as NULL, so an op can be submitted again (a retry). */
void store_submit(struct store *s, struct store_op *op, void (*done)(struct store_op *op),
		  void *ctx);
void store_links_free(struct link **links, int n);
/* 1 if the store takes writes; else 0 with why (for /readyz). */
int store_ready(struct store *s, char *why, size_t len);
void store_get_stats(struct store *s, struct store_stats *out);
/* The order of a merge's rows (qsort of const struct click_count *): by
 * table (hours first), then the key's columns, so that a backend walks each
 * index in order and finds the rows of one key side by side. */
int store_click_cmp(const void *a, const void *b);
int store_click_deltas(struct store *s, struct store_reader *r, uint64_t after_seq,
		       void (*fn)(void *ctx, uint64_t seq, const void *blob, size_t len), void *ctx);

#endif
