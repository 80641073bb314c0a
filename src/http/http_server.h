/*
 * http_server: connections on libuv loops, one loop per worker thread.
 *
 * Design: every worker owns a loop, a listening socket bound with
 * SO_REUSEPORT to the same address (the kernel spreads new connections), and
 * the connections it accepted; nothing about a connection is shared between
 * threads. Bytes are read into a per-connection buffer, requests are parsed
 * in place (http_parser), and responses are appended to an output buffer
 * that is written once per read: a pipelined batch is answered with one
 * write. While a write is pending, or a request waits for an asynchronous
 * result, the connection stops reading (backpressure) and handles no further
 * request, so responses keep request order.
 *
 * A handler answers at once (HTTP_DONE) or later (HTTP_ASYNC): then the
 * answer is written from a callback on the worker's own loop (an operation
 * the handler started there, or a task that another thread queued with
 * http_post()), which then calls http_resume(). Each connection carries
 * exchange_data_size bytes of the handler's (ex->data), where a waiting
 * request keeps its state; a connection is never freed while its request
 * waits, and the answers of a pipelined batch leave in request order.
 *
 * A handler may instead stream its answer (server-sent events): it starts
 * the response with http_stream_start() (no Content-Length; the body ends
 * when the connection does), writes to it with http_stream_write() when
 * it likes, and ends it with http_stream_end(). Such a connection serves
 * nothing else; what the client sends is read and dropped, so that its
 * close is seen at once; the handler's stream_closed() is called exactly
 * once when the connection goes, whoever closes it (the client, a write
 * that failed or found the client too slow, the handler, a drain). On a
 * drain every stream is ended (what was written is sent first).
 *
 * Limits: head HTTP_MAX_HEAD (431), body HTTP_MAX_BODY (413), headers and
 * body within --header-timeout-s (408), idle keep-alive --keepalive-timeout-s
 * (silent close), at most --max-conns open connections and --max-conns-per-ip
 * from one address (503 beyond), at most HTTP_OUT_HIGH answer bytes produced
 * ahead per connection and --max-unsent-mb held in all. After an
 * error answer the server shuts down its side and drains what the client
 * still sends for a moment ("lingering close"), so the client reads the
 * answer instead of a reset.
 */
#ifndef SHORTD_HTTP_SERVER_H
#define SHORTD_HTTP_SERVER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

#include "core/metrics.h"
#include "http_parser.h"

struct http_server;
struct http_worker;
struct http_exchange;

enum { HTTP_DONE = 0, HTTP_ASYNC = 1 };

struct http_handler {
	/* Called on each worker thread before it serves; returns its state. */
	void *(*worker_init)(void *app, struct http_worker *w, int idx);
	/* Optional: called on the worker's thread once it has stopped serving
	 * (draining, and its last connection closed), inside its loop: what
	 * the handler keeps on the loop (timers, sockets) is closed here, and
	 * the loop ends when all of it is. */
	void (*worker_stop)(void *wstate);
	/* Called after the worker's loop has ended. */
	void (*worker_release)(void *wstate);
	/* Answers ex->req with http_respond_*(); returns HTTP_DONE once it has
	 * answered, or HTTP_ASYNC: then the answer comes later, from a
	 * callback on this worker's loop, followed by http_resume(). */
	int (*handle)(struct http_exchange *ex, void *wstate);
	/* Optional: called once per turn of the worker's event loop, after the
	 * requests of the turn and before it waits for more. */
	void (*turn_end)(void *wstate);
	/* Optional: a streamed response's connection is closing (see above);
	 * after it the handler must not use ex again. */
	void (*stream_closed)(struct http_exchange *ex, void *wstate);
	/* Bytes of memory the handler keeps per connection (ex->data, zeroed
	 * when the connection opens, freed when it closes): where it keeps
	 * the state of a request that waits. */
	size_t exchange_data_size;
	void *app;
};

#define HTTP_REQUEST_ID_MAX 64

#define HTTP_EXTRA_MAX 512

struct http_exchange {
	struct http_request *req;
	struct http_worker *worker;
	void *wstate;
	uint64_t start_ns;     /* monotonic, when the request was complete */
	int64_t now_ms;        /* the wall clock then (Unix ms); both are read once
				* per batch of pipelined requests */
	int route;             /* the handler's label for metrics; 0 until set */
	void *data;            /* the handler's exchange_data_size bytes */
	uint8_t answered;      /* a response was finished for this request */
	uint8_t streaming;     /* the response is a stream (http_stream_start) */
	uint8_t request_id_len;
	char request_id[HTTP_REQUEST_ID_MAX + 1]; /* from X-Request-Id if sane, else generated */
	struct sockaddr_storage peer;             /* the socket's peer */
	/* The client, when the handler knows better than the peer (behind a
	 * trusted proxy): the access log shows it. Unset for each request. */
	struct sockaddr_storage client;
	uint8_t client_set;
	/* Header lines, CRLF-ended, that go on this request's response
	 * whatever it turns out to be (rate-limit state, CORS): see
	 * http_exchange_header(). Emptied when a request starts. */
	uint16_t extra_len;
	char extra[HTTP_EXTRA_MAX];
};

/* Adds "name: value" to every response of this request. 0, or -1 if the
 * value holds CR, LF or NUL or the room (HTTP_EXTRA_MAX) is used up. */
int http_exchange_header(struct http_exchange *ex, const char *name, const char *value);

struct http_server_config {
	const char *host; /* numeric IPv4 or IPv6 (without brackets) */
	int port;
	int threads;
	int max_conns;
	/* Open connections from one client address (IPv6: one /64) before
	 * answering 503; 0: no cap. Peers for which exempt_peer() returns 1
	 * (trusted proxies, which carry many clients) have none. */
	int max_conns_per_ip;
	int (*exempt_peer)(const struct sockaddr_storage *peer, const void *arg);
	const void *exempt_arg;
	/* Answer bytes held for clients that do not read them, in total: a
	 * connection whose unsent answers would go beyond it is closed. Each
	 * connection holds at most HTTP_OUT_HIGH plus one answer. */
	size_t max_unsent_bytes;
	int header_timeout_ms;
	int send_timeout_ms; /* a write blocked this long closes the connection */
	int keepalive_timeout_ms;
	const char *access_log; /* file, "-" for stderr, NULL or "" for none */
};

/* A pipelined batch stops producing answers once this much output waits:
 * the rest is parsed after it is written. */
#define HTTP_OUT_HIGH (16 * 1024)

/* Statuses the server answers by itself (parser, limits, timeouts). */
#define HTTP_OWN_STATUSES {400, 408, 413, 414, 417, 431, 501, 503, 505}
#define HTTP_OWN_STATUS_COUNT 9
#define HTTP_OWN_503 7 /* its index above */

/* Connection counters of one worker (written by it alone). */
struct http_worker_stats {
	metric_counter accepted;
	metric_counter closed;
	metric_counter own_errors[HTTP_OWN_STATUS_COUNT]; /* by HTTP_OWN_STATUSES */
	metric_counter refused_total;  /* 503: --max-conns open connections */
	metric_counter refused_per_ip; /* 503: --max-conns-per-ip from one address */
	metric_counter slow_closed;    /* closed: their unsent answers over the total */
};

/* Sums of every worker's counters, and the open-connection gauge. */
struct http_stats {
	uint64_t accepted, closed, open;
	uint64_t own_errors[HTTP_OWN_STATUS_COUNT];
	uint64_t refused_total, refused_per_ip, slow_closed;
	uint64_t unsent_bytes; /* answers held for clients that have not read them */
	uint64_t peer_addresses; /* client addresses with open connections (capped ones) */
	uint64_t access_log_dropped;
};
void http_server_stats(struct http_server *srv, struct http_stats *out);

/* 0 if nothing listens on host:port yet; else -1 with err filled (the
 * sockets of http_server_create() share a port with SO_REUSEPORT, so a
 * second server would join the first one's port silently). */
int http_listen_free(const char *host, int port, char *err, size_t errlen);

/* Binds the listening sockets; returns 0, or -1 with err filled. */
int http_server_create(struct http_server **out, const struct http_server_config *cfg,
		       const struct http_handler *handler, char *err, size_t errlen);
/* Starts the worker threads (a failure to set one up aborts: the
 * sockets are already bound). Returns 0. */
int http_server_start(struct http_server *srv);
/* Stop accepting; finish in-flight requests; close idle connections. */
void http_server_drain(struct http_server *srv);
/* Close every connection now (after drain time ran out). */
void http_server_force_close(struct http_server *srv);
/* Number of worker threads still running. */
int http_server_running(struct http_server *srv);
/* Joins the workers (they must have stopped; a server never started has
 * none) and frees the server. */
void http_server_free(struct http_server *srv);
int http_server_draining(struct http_server *srv);
long http_server_open_conns(struct http_server *srv);

/* Response writing, on the worker thread. A response is written as: start,
 * any number of headers, finish (adds Date, Content-Length and Connection,
 * and the body unless the request was HEAD). */
void http_respond_start(struct http_exchange *ex, int status);
/* Adds "name: value". A value containing CR or LF is refused (returns -1)
 * and not written: no header can ever be split. */
int http_respond_header(struct http_exchange *ex, const char *name, const char *value,
			size_t vlen);
void http_respond_finish(struct http_exchange *ex, const char *content_type, const char *body,
			 size_t len);
/* A whole response with a JSON or text body in one call. */
void http_respond(struct http_exchange *ex, int status, const char *content_type,
		  const char *body, size_t len);
/* Drops a response begun with http_respond_start() but not finished. */
void http_respond_abort(struct http_exchange *ex);

/* Streams: after http_respond_start() and headers, ends the head (with
 * Content-Type and Connection: close) and makes the connection a stream
 * (see above). Then http_stream_write() sends data: 0, or -1 if the
 * connection is going (stream_closed() follows, if it has not come); a
 * client that leaves more than HTTP_STREAM_UNSENT_MAX unread is let go.
 * http_stream_end() sends what is left and closes. Worker thread only. */
#define HTTP_STREAM_UNSENT_MAX (64 * 1024)
void http_stream_start(struct http_exchange *ex, const char *content_type);
int http_stream_write(struct http_exchange *ex, const char *data, size_t len);
void http_stream_end(struct http_exchange *ex);

const char *http_status_reason(int status);

/* Status of the response being written or last written on ex. */
int http_exchange_status(const struct http_exchange *ex);
/* The client's IP address as text (no port) into out: ex->client if the
 * handler set it, else the peer's. Returns its length. */
size_t http_exchange_peer_ip(const struct http_exchange *ex, char *out, size_t cap);


/* Tasks posted to a worker's loop from any thread. */
struct http_task {
	void (*run)(struct http_task *t);
	struct http_task *next;
};
void http_post(struct http_worker *w, struct http_task *t);
/* Ends an HTTP_ASYNC exchange after its response was written (worker
 * thread; never from inside handle() for the same exchange). */
void http_resume(struct http_exchange *ex);
/* The worker's event loop (a uv_loop_t): its handler's asynchronous
 * operations run on it. */
struct uv_loop_s *http_worker_loop(struct http_worker *w);

#endif
