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
 * A handler answers at once (HTTP_DONE) or later (HTTP_ASYNC): then another
 * thread hands the result back with http_post(), which queues a task on the
 * worker's loop; the task writes the response and calls http_resume().
 *
 * Limits: head HTTP_MAX_HEAD (431), body HTTP_MAX_BODY (413), headers and
 * body within --header-timeout-s (408), idle keep-alive --keepalive-timeout-s
 * (silent close), at most --max-conns open connections (503 beyond). After an
 * error answer the server shuts down its side and drains what the client
 * still sends for a moment ("lingering close"), so the client reads the
 * answer instead of a reset.
 */
#ifndef SHORTD_HTTP_SERVER_H
#define SHORTD_HTTP_SERVER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "http_parser.h"

struct http_server;
struct http_worker;
struct http_exchange;

enum { HTTP_DONE = 0, HTTP_ASYNC = 1 };

struct http_handler {
	/* Called on each worker thread before it serves; returns its state. */
	void *(*worker_init)(void *app, int idx);
	void (*worker_release)(void *wstate);
	/* Answers ex->req with http_respond_*(); returns HTTP_DONE or HTTP_ASYNC. */
	int (*handle)(struct http_exchange *ex, void *wstate);
	void *app;
};

struct http_exchange {
	struct http_request *req;
	struct http_worker *worker;
	void *wstate;
	uint64_t start_ms; /* monotonic */
};

struct http_server_config {
	const char *host; /* numeric IPv4 or IPv6 (without brackets) */
	int port;
	int threads;
	int max_conns;
	int header_timeout_ms;
	int keepalive_timeout_ms;
};

/* Binds the listening sockets; returns 0, or -1 with err filled. */
int http_server_create(struct http_server **out, const struct http_server_config *cfg,
		       const struct http_handler *handler, char *err, size_t errlen);
/* Starts the worker threads. */
int http_server_start(struct http_server *srv);
/* Stop accepting; finish in-flight requests; close idle connections. */
void http_server_drain(struct http_server *srv);
/* Close every connection now (after drain time ran out). */
void http_server_force_close(struct http_server *srv);
/* Number of worker threads still running. */
int http_server_running(struct http_server *srv);
/* Joins the workers (they must have stopped) and frees the server. */
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
/* Closes the connection after this response (no keep-alive). */
void http_respond_close(struct http_exchange *ex);

const char *http_status_reason(int status);

/* Tasks posted to a worker's loop from any thread. */
struct http_task {
	void (*run)(struct http_task *t);
	struct http_task *next;
};
void http_post(struct http_worker *w, struct http_task *t);
/* Ends an HTTP_ASYNC exchange after its response was written (worker thread). */
void http_resume(struct http_exchange *ex);

#endif
