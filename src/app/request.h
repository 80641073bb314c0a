/*
 * request: one request's state, and how a handler waits without blocking
 * its worker.
 *
 * struct app_req lives in the memory the HTTP layer keeps per connection
 * (http_handler.exchange_data_size), so it stays where it is while its
 * request waits: a connection is never freed while a request on it waits
 * (http_server.c), and a worker's next pipelined request on the connection
 * starts only after this one is answered. worker.c resets it for every
 * request; nothing of one request is left for the next.
 *
 * A handler is a chain of steps (void step(struct app_req *)). A step
 * either answers (reply.h, http_respond_*) or starts one operation and
 * names the step that follows it:
 *   req_read()   a store read through the worker's reader;
 *   req_write()  a store write, committed on the store's writer thread;
 *   req_wait()   for another thread to hand the request back (a cache
 *                waiter woken by another worker's load).
 * An operation that completes at once (SQLite's reads) runs the next step
 * at once, on the same stack; one that completes later runs it from a
 * callback on this worker's loop, then calls req_settle(). Either way the
 * next step runs on the worker that owns the connection, and the one place
 * that ends a waiting request is req_settle(): once the exchange is
 * answered it counts the request and resumes the connection
 * (http_resume). Whether a request is answered is the exchange's to say
 * (ex->answered): that is the one way every handler says "done".
 *
 * Steps that check something and may answer by themselves (a guard, a
 * parse) return REQ_ANSWERED once they have, REQ_GO_ON otherwise.
 */
#ifndef SHORTD_REQUEST_H
#define SHORTD_REQUEST_H

#include "app_internal.h"

#include <sys/socket.h>

enum { REQ_GO_ON = 0, REQ_ANSWERED = 1 };

#define IDEM_KEY_MAX 255

/* Who calls the API (auth.c): a key, or anonymous (role 0, id 0). */
struct principal {
	int64_t id; /* api_keys.id; 0: anonymous */
	int role;   /* enum apikey_role; 0: anonymous */
};

/* A web session's token: 32 random bytes in base64url (session_api.c);
 * its cookie. */
#define SESSION_TOKEN_LEN 43
#define SESSION_COOKIE "shortd_session"

/* A write the request waits for, and what its answer needs. */
struct app_write {
	struct store_op op;
	int random_code, attempts; /* a create with a generated code */
	char idem_key[IDEM_KEY_MAX + 1]; /* op.idem_key points here */
	struct api_key key;              /* keys API: op.key points here */
	char secret[APIKEY_LEN + 1];     /* a new key, shown once */
	struct store_session session;    /* sessions API: op.session points here */
	char token[SESSION_TOKEN_LEN + 1]; /* a new session's, for its cookie */
};

/* A read of click counters, and the range a stats answer covers. */
struct app_clicks {
	struct clicks_query q;
	int hourly;
	int64_t first, last; /* the range, in hours or days */
	int64_t to_ms;
};

/* The longest search of a link list (GET /api/v1/links?q=), decoded. */
#define LINK_SEARCH_MAX 200

/* A QR code's options (qr_api.c). */
struct app_qr {
	int png;    /* else SVG */
	int size;   /* pixels */
	int margin; /* modules */
	char ecc;   /* L, M, Q or H */
};

/* An event stream (events_api.c): its link's live counts, and its place
 * in the worker's list. */
struct app_sse {
	int64_t link_id; /* 0: not a stream (any more) */
	int64_t key;
	uint64_t base_h, base_b; /* the watch counters when it opened */
	uint64_t sent_h, sent_b; /* clicks since then, as last sent */
	uint64_t last_write_ms;
	struct app_req *prev, *next;
};

struct app_req;
typedef void (*req_step)(struct app_req *r);

struct app_req {
	/* what every request touches, together */
	struct http_exchange *ex;
	struct app_worker *ws;
	struct app *app;
	const char *arg; /* the path's {code} or {id}, arg_len bytes */
	size_t arg_len;
	int64_t now_us;           /* monotonic, for the limiters (guard.c) */
	uint16_t rl_mark;         /* where its RateLimit headers start */
	uint8_t notfound_blocked; /* over the 404 budget: every code answers 429 */
	uint8_t notfound_debt;    /* its 404 budget is not full: live redirects repay it */
	uint8_t waiting;          /* handle() returned HTTP_ASYNC */
	struct principal who;     /* set by app_authenticate() */
	struct link *link;        /* a link a handler holds between steps */
	struct sockaddr_storage client; /* the client, behind trusted proxies */
	/* What the request waits for, and the step after it; then: where a
	 * helper chain of steps (authentication, finding a link) goes on. */
	req_step next, then;
	uint64_t read_start_ns;
	struct store_read rd;
	struct http_task task;
	char key_id[APIKEY_ID_LEN + 1]; /* the key being authenticated */
	uint8_t session_hash[32];       /* the session being authenticated */
	int by_session;                 /* who came from a session cookie */
	struct cache_flight *flight;    /* redirect: the load it makes */
	union {
		struct cache_waiter waiter; /* redirect: the load it waits for */
		struct app_clicks clicks;   /* link and stats reads */
		struct app_write write;     /* API writes */
		struct app_qr qr;           /* a QR code's options */
		struct app_sse sse;         /* an event stream */
		char q[LINK_SEARCH_MAX + 1]; /* a list's search, for its read */
	} u;
};

/* Runs r->rd (kind and question filled in) through the worker's reader,
 * then next(r) with the answer in r->rd: now, or later from the loop. */
void req_read(struct app_req *r, req_step next);
/* Submits r->u.write.op (kind and fields filled in), then next(r) on this
 * worker once it is committed or failed. Link writes put their result in
 * the cache on the writer thread, in commit order. */
void req_write(struct app_req *r, req_step next);
/* Starts r->u.clicks.q (question filled in), then next(r) with its answer. */
void req_clicks(struct app_req *r, req_step next);
/* The request waits for another thread, which calls req_wake(r); next(r)
 * then runs on this worker. */
void req_wait(struct app_req *r, req_step next);
/* Any thread: hands r back to its worker (a task on its loop). */
void req_wake(struct app_req *r);
/* After a later step: if r is answered, counts it and resumes its
 * connection (r may then be reused at once for the next request). */
void req_settle(struct app_req *r);

/* auth.c: who calls: the API key sent, else the session of the cookie.
 * Then next(r), now or after the key is read; or an answer: 401 (a
 * malformed, unknown or revoked key, or a session that ended), 403 (a
 * session's request that changes something without X-Shortd-CSRF) or
 * 503. */
void app_authenticate(struct app_req *r, req_step next);
/* REQ_GO_ON if r->who holds a key (an admin key, with admin_only); else
 * REQ_ANSWERED after 401 or 403. */
int app_require(struct app_req *r, int admin_only);
/* Whose links r->who may see and change: STORE_ANY_OWNER (admin) or its
 * own. */
int64_t app_scope(const struct app_req *r);
/* The session token of the request's cookie, or NULL. */
const char *app_session_token(const struct http_request *req, size_t *len);
/* Set-Cookie for the session cookie: token for max_age_s, or (token
 * NULL) its removal. */
void app_session_cookie(const struct app *app, const char *token, long max_age_s, char *out,
			size_t cap);

/* links_api.c: the link of r->arg, if r->who may see it: then(r) with
 * r->link (one reference, the handler's to drop), or an answer: 404
 * (unknown, or another owner's), 410 (deleted) or 503. */
void app_find_link(struct app_req *r, req_step then);

/* guard.c: client address, per-IP limit, CORS and RateLimit headers;
 * REQ_GO_ON, or REQ_ANSWERED (429, or a CORS preflight). */
int app_guard(struct app_req *r);
/* The 429 of a client over its 404 budget (r->notfound_blocked), for a
 * code found in the cache (found: costs nothing, repays) or not (counts as
 * one more unknown code). */
void app_notfound_refuse(struct app_req *r, int found);
/* Counts a 404 for the client. */
void app_notfound_count(struct app_req *r);
/* A live redirect: repays part of the client's 404 debt, if it has one. */
void app_notfound_repay(struct app_req *r);
/* The create limit of r->who (none for admin keys). */
int app_create_guard(struct app_req *r);

/* observe.c: counts the answered request by route and status, with its
 * latency. */
void app_observe(struct app_req *r);

/* The raw value of name=value in the query (no percent-decoding);
 * returns its length, or -1 when absent. */
long app_query_param(const struct http_request *req, const char *name, const char **val);

#endif
