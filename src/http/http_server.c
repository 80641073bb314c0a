/*
 * http_server: see http_server.h for the design.
 *
 * Connection life cycle (all on the owning worker's thread):
 *   accept -> reading (parse head, then body) -> dispatch
 *     -> HTTP_DONE: next request, or
 *     -> HTTP_ASYNC: waiting until http_resume(); what arrives meanwhile
 *        (pipelined requests, EOF) is read into the room left in the
 *        input buffer, never growing or moving it (the request being
 *        answered points into it), and parsed after the answer
 *   -> close_after_write: stop parsing, flush, then shutdown(SHUT_WR) and
 *      "linger" (read and discard) until EOF or LINGER_MS, then close.
 * A connection is freed only in its close callback, and never while an
 * asynchronous request is waiting: a forced close of a waiting connection
 * is deferred until its task arrives.
 *
 * Sockets are watched with uv_poll_t, and read with recv() and written
 * with send() here, instead of libuv's streams: a stream reads and writes
 * with read() and write(), which pass through the kernel's file layer
 * before the socket's (about 2% of a cached redirect's CPU each way).
 */
#include "http_server.h"
#include "access_log.h"
#include "core/log.h"
#include "core/util.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define IN_INITIAL 4096
#define IN_MAX (HTTP_MAX_HEAD + HTTP_MAX_BODY + 16384)
#define SWEEP_MS 250
#define LINGER_MS 2000
/* A client that sends many requests and reads slowly holds at most this
 * much of our memory in answers, plus one answer (http_server.h). */
#define OUT_HIGH HTTP_OUT_HIGH
/* An output buffer that grew beyond this is freed once it is empty. */
#define OUT_KEEP 8192

enum phase { PH_HEAD = 0, PH_BODY, PH_WAIT, PH_LINGER, PH_STREAM };

struct conn {
	uv_poll_t poll; /* first: handle pointers cast back to conn */
	int fd;
	int events; /* what `poll` waits for: UV_READABLE, UV_WRITABLE */
	struct http_worker *w;
	struct conn *prev, *next;
	enum phase phase;
	unsigned writing : 1, close_after_write : 1, closed : 1, want_close : 1, peer_eof : 1,
		continue_sent : 1,
		failed : 1,     /* the socket reported an error: no more I/O */
		head_moved : 1, /* `in` was reallocated after the head was parsed */
		counted : 1;    /* counted in the server's per-address table */
	char *in;
	size_t in_len, in_cap;
	size_t pos;       /* start of the current request in `in` */
	size_t req_end;   /* end of the current request once its body is known */
	size_t rpos, wpos; /* chunked decoding cursors */
	struct http_chunked chunk;
	struct buf out;   /* responses not yet handed to the kernel */
	struct buf wbuf;  /* what the kernel had no room for, sent as it drains */
	size_t wbuf_sent;
	uint64_t opened_ms, req_start_ms, idle_since_ms, write_start_ms, linger_until_ms;
	unsigned long requests;
	size_t resp_mark; /* where the current response starts in `out` */
	int resp_status;
	struct http_request req;
	struct http_exchange ex;
	/* the handler's exchange_data_size bytes (ex.data) */
	max_align_t data[];
};

struct http_worker {
	struct http_server *srv;
	int idx;
	int fd;
	uv_loop_t loop;
	uv_thread_t thread;
	uv_poll_t listener;
	uv_async_t async;
	uv_timer_t sweep;
	uv_prepare_t turn; /* handler.turn_end, before each wait for events */
	int listener_open;
	int accept_paused; /* out of descriptors: resumed by the sweep */
	int accept_warned; /* once until an accept succeeds again */
	int stopping;
	pthread_mutex_t task_lock;
	struct http_task *tasks, *tasks_tail;
	struct conn *conns;
	size_t nconns;
	void *wstate;
	char date[64]; /* "Date: ...\r\n" */
	size_t date_len;
	time_t date_s;
	uint64_t rid_state; /* request id generator */
	int64_t wall_minus_mono_ns; /* worker_wall_ms() */
	uint64_t wall_read_ns;
	struct http_worker_stats stats;
};

struct http_server {
	struct http_server_config cfg;
	struct http_handler handler;
	struct http_worker *workers;
	int nworkers;
	atomic_int running;
	atomic_int draining;
	atomic_int forcing;
	atomic_long open_conns;
	atomic_long unsent; /* bytes in every connection's wbuf not yet sent */
	/* open connections per client address (--max-conns-per-ip): open
	 * addressing, a slot free when its count is 0 */
	pthread_mutex_t peers_lock;
	struct peer_slot *peers;
	size_t peers_mask, npeers;
	struct access_log *access_log;
	int started; /* http_server_start() ran: every worker's loop and thread */
};

struct peer_slot {
	uint8_t key[16];
	uint32_t count;
};

static int conn_process(struct conn *c);
static void conn_run(struct conn *c);
static void conn_flush(struct conn *c);
static void conn_close(struct conn *c);
static void conn_fail(struct conn *c);

/* ---- status lines ---------------------------------------------------- */

const char *http_status_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 417: return "Expectation Failed";
	case 422: return "Unprocessable Content";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	case 507: return "Insufficient Storage";
	default: return "Unknown";
	}
}

static void worker_update_date(struct http_worker *w)
{
	time_t now = time(NULL);
	if (now == w->date_s)
		return;
	w->date_s = now;
	struct tm tm;
	gmtime_r(&now, &tm);
	w->date_len = strftime(w->date, sizeof(w->date), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
}

/* ---- request ids --------------------------------------------------------- */

static int request_id_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_' || c == '.' || c == ':';
}

/* The client's X-Request-Id when it is 1..64 safe characters; otherwise
 * 16 hex digits from a per-worker generator (splitmix64 over a random
 * seed: no system call, no lock). */
static void set_request_id(struct conn *c)
{
	struct http_exchange *ex = &c->ex;
	const struct http_header *h =
		c->req.method != HTTP_M_NONE ? http_header_get(&c->req, HTTP_H_X_REQUEST_ID) : NULL;
	if (h && h->value_len > 0 && h->value_len <= HTTP_REQUEST_ID_MAX) {
		size_t i = 0;
		while (i < h->value_len && request_id_char(h->value[i]))
			i++;
		if (i == h->value_len) {
			memcpy(ex->request_id, h->value, i);
			ex->request_id[i] = '\0';
			ex->request_id_len = (uint8_t)i;
			return;
		}
	}
	uint64_t z = mix64(c->w->rid_state += 0x9e3779b97f4a7c15ULL);
	static const char hex[] = "0123456789abcdef";
	for (int i = 15; i >= 0; i--, z >>= 4)
		ex->request_id[i] = hex[z & 15];
	ex->request_id[16] = '\0';
	ex->request_id_len = 16;
}

static void access_log_line(struct conn *c, size_t body_len)
{
	struct http_exchange *ex = &c->ex;
	struct buf line;
	buf_init(&line);
	char ts[40], ip[64];
	time_format_rfc3339(time_now_ms(), ts, sizeof(ts));
	http_exchange_peer_ip(ex, ip, sizeof(ip));
	uint64_t us = ex->start_ns ? (uv_hrtime() - ex->start_ns) / 1000 : 0;
	buf_printf(&line, "{\"ts\":\"%s\",\"request_id\":\"%s\",\"ip\":\"%s\",\"method\":\"%s\","
		   "\"path\":", ts, ex->request_id, ip,
		   c->req.method ? http_method_name(c->req.method) : "-");
	if (c->req.method && c->req.path)
		buf_put_json_string(&line, c->req.path, c->req.path_len);
	else
		buf_puts(&line, "null");
	buf_printf(&line, ",\"status\":%d,\"bytes\":%zu,\"duration_us\":%llu", c->resp_status,
		   body_len, (unsigned long long)us);
	static const enum http_known fields[] = {HTTP_H_USER_AGENT, HTTP_H_REFERER};
	static const char *const keys[] = {",\"ua\":", ",\"referer\":"};
	for (int i = 0; i < 2; i++) {
		const struct http_header *h = c->req.method ? http_header_get(&c->req, fields[i]) : NULL;
		buf_puts(&line, keys[i]);
		if (h)
			buf_put_json_string(&line, h->value, h->value_len);
		else
			buf_puts(&line, "null");
	}
	buf_puts(&line, "}\n");
	access_log_append(c->w->srv->access_log, c->w->idx, line.p, line.len);
	buf_release(&line);
}

/* ---- responses ------------------------------------------------------- */

static struct conn *ex_conn(struct http_exchange *ex)
{
	return (struct conn *)((char *)ex - offsetof(struct conn, ex));
}

/* "HTTP/1.1 NNN Reason\r\n" for every status, formatted once: snprintf
 * per response showed up in redirect profiles. */
struct status_line {
	char text[64];
	uint8_t len;
};
static struct status_line status_lines[600];
static pthread_once_t status_lines_once = PTHREAD_ONCE_INIT;

static void status_lines_init(void)
{
	for (int st = 100; st < 600; st++) {
		int n = snprintf(status_lines[st].text, sizeof(status_lines[st].text),
				 "HTTP/1.1 %d %s\r\n", st, http_status_reason(st));
		status_lines[st].len = (uint8_t)n;
	}
}

void http_respond_start(struct http_exchange *ex, int status)
{
	struct conn *c = ex_conn(ex);
	assert(status >= 100 && status < 600);
	c->resp_mark = c->out.len;
	c->resp_status = status;
	const struct status_line *sl = &status_lines[status];
	buf_reserve(&c->out, sl->len + c->w->date_len);
	memcpy(c->out.p + c->out.len, sl->text, sl->len);
	memcpy(c->out.p + c->out.len + sl->len, c->w->date, c->w->date_len);
	c->out.len += sl->len + c->w->date_len;
}

int http_respond_header(struct http_exchange *ex, const char *name, const char *value, size_t vlen)
{
	struct conn *c = ex_conn(ex);
	if (memchr(value, '\r', vlen) || memchr(value, '\n', vlen) || memchr(value, '\0', vlen))
		return -1;
	size_t nlen = strlen(name);
	buf_reserve(&c->out, nlen + vlen + 4);
	char *p = c->out.p + c->out.len;
	memcpy(p, name, nlen);
	p += nlen;
	*p++ = ':';
	*p++ = ' ';
	memcpy(p, value, vlen);
	p += vlen;
	*p++ = '\r';
	*p++ = '\n';
	c->out.len = (size_t)(p - c->out.p);
	c->out.p[c->out.len] = '\0';
	return 0;
}

void http_respond_abort(struct http_exchange *ex)
{
	struct conn *c = ex_conn(ex);
	c->out.len = c->resp_mark;
}

/* Copies n bytes to p; returns the end. */
static char *put(char *p, const void *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}
#define PUT_LIT(p, lit) put((p), "" lit, sizeof(lit) - 1)

/* The headers every answer of the request carries (its id, the extra
 * lines) and Content-Type, if any, at p (room reserved); returns the end. */
static inline char *put_common_headers(const struct conn *c, char *p, const char *content_type,
				       size_t ct_len)
{
	if (c->ex.request_id_len) {
		p = PUT_LIT(p, "X-Request-Id: ");
		p = put(p, c->ex.request_id, c->ex.request_id_len);
		p = PUT_LIT(p, "\r\n");
	}
	p = put(p, c->ex.extra, c->ex.extra_len);
	if (content_type) {
		p = PUT_LIT(p, "Content-Type: ");
		p = put(p, content_type, ct_len);
		p = PUT_LIT(p, "\r\n");
	}
	return p;
}

void http_respond_finish(struct http_exchange *ex, const char *content_type, const char *body,
			 size_t len)
{
	struct conn *c = ex_conn(ex);
	if (atomic_load_explicit(&c->w->srv->draining, memory_order_relaxed) || !c->req.keep_alive)
		c->close_after_write = 1;
	int with_body = c->req.method != HTTP_HEAD && len;
	size_t ct_len = content_type ? strlen(content_type) : 0;
	/* One reservation and one cursor: the fixed names and numbers below
	 * take at most 128 bytes. */
	if (buf_reserve(&c->out, 128 + (size_t)c->ex.request_id_len + c->ex.extra_len + ct_len +
					(with_body ? len : 0)) != 0)
		return; /* not for this buffer: it is not soft */
	char *p = put_common_headers(c, c->out.p + c->out.len, content_type, ct_len);
	/* RFC 9110 8.6: no Content-Length in a 204 (its body is empty). */
	assert(c->resp_status != 204 || len == 0);
	if (c->resp_status != 204) {
		p = PUT_LIT(p, "Content-Length: ");
		p += fmt_int(p, (int64_t)len);
		p = PUT_LIT(p, "\r\n");
	}
	if (c->close_after_write)
		p = PUT_LIT(p, "Connection: close\r\n\r\n");
	else if (c->req.minor == 0)
		p = PUT_LIT(p, "Connection: keep-alive\r\n\r\n");
	else
		p = PUT_LIT(p, "\r\n");
	if (with_body)
		p = put(p, body, len);
	c->out.len = (size_t)(p - c->out.p);
	c->out.p[c->out.len] = '\0';
	c->ex.answered = 1;
	if (c->w->srv->access_log)
		access_log_line(c, c->req.method != HTTP_HEAD ? len : 0);
}

void http_stream_start(struct http_exchange *ex, const char *content_type)
{
	struct conn *c = ex_conn(ex);
	c->close_after_write = 0; /* the stream's end closes it */
	size_t ct_len = strlen(content_type);
	buf_reserve(&c->out, 96 + (size_t)c->ex.request_id_len + c->ex.extra_len + ct_len);
	char *p = put_common_headers(c, c->out.p + c->out.len, content_type, ct_len);
	p = PUT_LIT(p, "Connection: close\r\n\r\n");
	c->out.len = (size_t)(p - c->out.p);
	c->out.p[c->out.len] = '\0';
	c->ex.answered = 1;
	c->ex.streaming = 1;
	c->phase = PH_STREAM;
	if (c->w->srv->access_log)
		access_log_line(c, 0);
	if (!c->want_close)
		conn_flush(c);
}

int http_stream_write(struct http_exchange *ex, const char *data, size_t len)
{
	struct conn *c = ex_conn(ex);
	if (c->closed || c->failed || c->want_close || c->close_after_write ||
	    c->phase != PH_STREAM)
		return -1;
	size_t unsent = c->out.len + (c->writing ? c->wbuf.len - c->wbuf_sent : 0);
	if (unsent + len > HTTP_STREAM_UNSENT_MAX) {
		metric_add(&c->w->stats.slow_closed, 1);
		c->out.len = 0;
		conn_fail(c);
		return -1;
	}
	buf_append(&c->out, data, len);
	conn_flush(c);
	return c->closed || c->failed ? -1 : 0;
}

void http_stream_end(struct http_exchange *ex)
{
	struct conn *c = ex_conn(ex);
	if (c->closed || c->phase != PH_STREAM)
		return;
	c->close_after_write = 1;
	conn_flush(c);
}

int http_exchange_header(struct http_exchange *ex, const char *name, const char *value)
{
	size_t nlen = strlen(name), vlen = strlen(value);
	if (strpbrk(value, "\r\n") || ex->extra_len + nlen + vlen + 4 > sizeof(ex->extra))
		return -1;
	char *p = ex->extra + ex->extra_len;
	memcpy(p, name, nlen);
	p[nlen] = ':';
	p[nlen + 1] = ' ';
	memcpy(p + nlen + 2, value, vlen);
	memcpy(p + nlen + 2 + vlen, "\r\n", 2);
	ex->extra_len = (uint16_t)(ex->extra_len + nlen + vlen + 4);
	return 0;
}

void http_respond(struct http_exchange *ex, int status, const char *content_type, const char *body,
		  size_t len)
{
	http_respond_start(ex, status);
	http_respond_finish(ex, content_type, body, len);
}

/* An error found by the server itself (parser, limits, timeouts): JSON body,
 * and the connection closes, since what follows on it cannot be trusted. */
static void conn_error(struct conn *c, int status, const char *code, const char *msg)
{
	c->ex.extra_len = 0; /* the server's own answer: nothing of the handler's */
	char body[512];
	int n = snprintf(body, sizeof(body), "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}\n", code,
			 msg);
	static const int own[] = HTTP_OWN_STATUSES;
	for (int i = 0; i < HTTP_OWN_STATUS_COUNT; i++)
		if (own[i] == status)
			metric_add(&c->w->stats.own_errors[i], 1);
	c->close_after_write = 1;
	c->req.keep_alive = 0;
	if (c->phase == PH_HEAD)
		set_request_id(c); /* the head did not parse: a fresh id */
	http_respond(&c->ex, status, "application/json", body, (size_t)n);
}

static const char *status_code_name(int status)
{
	switch (status) {
	case 400: return "bad_request";
	case 408: return "request_timeout";
	case 413: return "body_too_large";
	case 414: return "uri_too_long";
	case 417: return "expectation_failed";
	case 431: return "headers_too_large";
	case 501: return "not_implemented";
	case 505: return "http_version_not_supported";
	default: return "error";
	}
}

/* ---- reading ----------------------------------------------------------- */

/* Where the next read goes; a zero length when there is no room. */
static char *conn_read_buf(struct conn *c, size_t *len)
{
	if (c->phase == PH_LINGER || c->phase == PH_STREAM) {
		static __thread char sink[16384];
		*len = sizeof(sink);
		return sink;
	}
	/* While waiting (PH_WAIT) nothing grows: the request being answered
	 * points into c->in. */
	if (c->phase != PH_WAIT && c->in_cap - c->in_len < 2048 && c->in_cap < IN_MAX) {
		size_t cap = c->in_cap ? c->in_cap * 2 : IN_INITIAL;
		if (cap > IN_MAX)
			cap = IN_MAX;
		char *old = c->in, *in = try_realloc(c->in, cap);
		if (in) {
			c->in = in;
			c->in_cap = cap;
			if (c->in != old && c->phase == PH_BODY)
				c->head_moved = 1;
		}
	}
	*len = c->in_cap - c->in_len;
	return c->in + c->in_len;
}

static void on_io(uv_poll_t *h, int status, int events);

/* Reading goes on while an answer is awaited (HTTP_ASYNC), as long as the
 * input buffer has room: stopping and starting it around every write cost
 * two epoll_ctl() calls, 2.6% of an API create. Writing waits for room in
 * the kernel only while something is left over (c->writing), and reading
 * stops meanwhile. */
static void conn_update_poll(struct conn *c)
{
	int read = !c->closed && !c->failed && !c->want_close && !c->writing && !c->peer_eof &&
		   (c->phase == PH_LINGER || (c->phase == PH_STREAM && !c->close_after_write) ||
		    (!c->close_after_write && (c->phase != PH_WAIT || c->in_len < c->in_cap)));
	int events = (read ? UV_READABLE : 0) | (c->writing && !c->failed ? UV_WRITABLE : 0);
	if (events == c->events || c->closed)
		return;
	c->events = events;
	if (events)
		uv_poll_start(&c->poll, events, on_io);
	else
		uv_poll_stop(&c->poll);
}

/* The last response is out: stop sending, keep reading (and discarding)
 * until the peer closes, so that unread request bytes do not turn our
 * close into a reset that destroys the response in flight. */
static void conn_linger(struct conn *c)
{
	if (c->closed)
		return;
	if (c->peer_eof || shutdown(c->fd, SHUT_WR) != 0) {
		conn_close(c);
		return;
	}
	c->phase = PH_LINGER;
	c->linger_until_ms = uv_now(&c->w->loop) + LINGER_MS;
	conn_update_poll(c);
}

/* One recv() into the input buffer, and what it brought is answered. The
 * socket is polled level-triggered: what one call leaves is read on the
 * next turn of the loop. */
static void conn_read(struct conn *c)
{
	size_t room;
	char *p = conn_read_buf(c, &room);
	if (room == 0 && c->phase == PH_WAIT) {
		conn_update_poll(c); /* full while waiting: http_resume() */
		return;
	}
	/* No room otherwise means no memory for a bigger buffer: treated as
	 * the end of the input (n == 0). */
	ssize_t n = 0;
	if (room > 0) {
		do
			n = recv(c->fd, p, room, 0);
		while (n < 0 && errno == EINTR);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
	}
	if (c->phase == PH_LINGER || c->phase == PH_STREAM) {
		if (n <= 0)
			conn_close(c); /* a stream's client left */
		return;
	}
	if (n <= 0) {
		/* EOF or an error: answer what was received before it, then
		 * close: conn_run() does, now or, if a request is waiting,
		 * after its answer. */
		c->peer_eof = 1;
		conn_update_poll(c);
		if (c->phase != PH_WAIT)
			conn_run(c);
		return;
	}
	if (c->in_len == c->pos && c->phase == PH_HEAD)
		c->req_start_ms = uv_now(&c->w->loop);
	c->in_len += (size_t)n;
	conn_run(c);
}

/* ---- writing ----------------------------------------------------------- */

/* send() without blocking or SIGPIPE. Returns the bytes the kernel took,
 * 0 if it had no room, or -1 on an error (the peer is gone). */
static ssize_t send_now(int fd, const char *p, size_t len)
{
	ssize_t n;
	do
		n = send(fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	return n;
}

static void unsent_sub(struct conn *c, size_t n)
{
	atomic_fetch_sub_explicit(&c->w->srv->unsent, (long)n, memory_order_relaxed);
}

/* The socket failed (an error, or the peer is gone): no more I/O on it,
 * nothing left to write, and the connection closes (when a waiting request
 * is answered, if one is). */
static void conn_fail(struct conn *c)
{
	c->failed = 1;
	if (c->writing)
		unsent_sub(c, c->wbuf.len - c->wbuf_sent);
	c->writing = 0;
	conn_close(c);
}

/* A buffer emptied: kept for the next answers unless it grew large. */
static void buf_empty(struct buf *b)
{
	if (b->cap > OUT_KEEP)
		buf_release(b);
	else
		b->len = 0;
}

/* The socket has room again: sends more of what was left over, and once
 * all of it is gone parses the requests that arrived meanwhile. */
static void conn_write_more(struct conn *c)
{
	ssize_t n = send_now(c->fd, c->wbuf.p + c->wbuf_sent, c->wbuf.len - c->wbuf_sent);
	if (n < 0) {
		conn_fail(c);
		return;
	}
	c->wbuf_sent += (size_t)n;
	unsent_sub(c, (size_t)n);
	if (c->wbuf_sent < c->wbuf.len)
		return;
	c->writing = 0;
	buf_empty(&c->wbuf);
	c->wbuf_sent = 0;
	conn_run(c);
	conn_update_poll(c);
}

static void conn_flush(struct conn *c)
{
	if (c->closed || c->writing)
		return;
	if (c->out.len == 0) {
		if (c->close_after_write && c->phase != PH_WAIT)
			conn_linger(c);
		else
			conn_update_poll(c);
		return;
	}
	ssize_t n = send_now(c->fd, c->out.p, c->out.len);
	if (n == (ssize_t)c->out.len) {
		buf_empty(&c->out);
		if (c->close_after_write && c->phase != PH_WAIT)
			conn_linger(c);
		else
			conn_update_poll(c);
		return;
	}
	if (n < 0) {
		conn_fail(c);
		return;
	}
	/* The kernel took part of it: keep the rest, stop reading, and send
	 * it as the socket drains; unless the answers held for clients that
	 * do not read would go over the total: then this one is let go. */
	struct http_server *srv = c->w->srv;
	size_t left = c->out.len - (size_t)n;
	long held = atomic_fetch_add_explicit(&srv->unsent, (long)left, memory_order_relaxed);
	if ((size_t)held + left > srv->cfg.max_unsent_bytes && srv->cfg.max_unsent_bytes) {
		atomic_fetch_sub_explicit(&srv->unsent, (long)left, memory_order_relaxed);
		metric_add(&c->w->stats.slow_closed, 1);
		c->out.len = 0;
		conn_fail(c);
		return;
	}
	struct buf t = c->wbuf;
	c->wbuf = c->out;
	c->wbuf_sent = (size_t)n;
	c->out = t;
	buf_empty(&c->out);
	if (c->wbuf.cap > OUT_KEEP && left <= OUT_KEEP) {
		/* what is left waits, perhaps long: in a buffer of its size */
		char *p = try_malloc(left + 1);
		if (p) {
			memcpy(p, c->wbuf.p + n, left);
			p[left] = '\0';
			buf_release(&c->wbuf);
			c->wbuf.p = p;
			c->wbuf.len = left;
			c->wbuf.cap = left + 1;
			c->wbuf_sent = 0;
		}
	}
	c->writing = 1;
	c->write_start_ms = uv_now(&c->w->loop);
	conn_update_poll(c);
}

static void on_io(uv_poll_t *h, int status, int events)
{
	struct conn *c = (struct conn *)h;
	if (status < 0) {
		c->events = 0; /* libuv has stopped the handle */
		conn_fail(c);
		return;
	}
	if ((events & UV_WRITABLE) && c->writing)
		conn_write_more(c);
	if ((events & UV_READABLE) && (c->events & UV_READABLE) && !c->closed)
		conn_read(c);
}

/* ---- request processing -------------------------------------------------- */

static void request_done(struct conn *c)
{
	c->pos = c->req_end;
	c->phase = PH_HEAD;
	c->requests++;
	uint64_t now = uv_now(&c->w->loop);
	c->idle_since_ms = now;
	c->req_start_ms = c->in_len > c->pos ? now : 0;
	c->continue_sent = 0;
	if (c->w->stopping)
		c->close_after_write = 1;
}

/* Moves the unparsed bytes to the front of the buffer. Only between
 * requests or before a request's body is touched: parsed pointers into the
 * buffer are dropped and the head is parsed again. */
static void conn_compact(struct conn *c)
{
	if (c->pos == 0)
		return;
	size_t left = c->in_len - c->pos;
	memmove(c->in, c->in + c->pos, left);
	c->in_len = left;
	c->pos = 0;
}

/* The wall clock at monotonic time mono_ns. CLOCK_REALTIME is read again
 * once a second, so a batch of requests reads one clock instead of two
 * (each read costs about 22 ns here; three a request were 1.5% of a cached
 * redirect's CPU), and a step of the wall clock shows within a second. */
static int64_t worker_wall_ms(struct http_worker *w, uint64_t mono_ns)
{
	if (w->wall_read_ns == 0 || mono_ns - w->wall_read_ns >= 1000000000u) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		w->wall_minus_mono_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec - (int64_t)mono_ns;
		w->wall_read_ns = mono_ns;
	}
	return ((int64_t)mono_ns + w->wall_minus_mono_ns) / 1000000;
}

/* Parses and answers buffered requests; 1 if it stopped because OUT_HIGH
 * bytes of answers wait to be written. */
static int conn_process(struct conn *c)
{
	uint64_t batch_ns = 0; /* the clocks, read once for the batch */
	int64_t batch_ms = 0;
	struct http_server *srv = c->w->srv;
	while (!c->closed && !c->close_after_write && c->phase != PH_WAIT && c->phase != PH_LINGER &&
	       c->phase != PH_STREAM && c->out.len < OUT_HIGH) {
		char *base = c->in + c->pos;
		size_t avail = c->in_len - c->pos;
		int status;
		const char *why;
		if (c->phase == PH_HEAD) {
			if (avail == 0)
				break;
			int rc = http_parse_head(base, avail, &c->req, &status, &why);
			if (rc == HTTP_PARSE_AGAIN) {
				if (c->pos) {
					conn_compact(c);
					continue;
				}
				break;
			}
			if (rc == HTTP_PARSE_ERROR) {
				/* what parsed stays: the log shows it, and a
				 * HEAD's answer carries no content */
				c->ex.start_ns = uv_hrtime();
				c->ex.now_ms = time_now_ms();
				conn_error(c, status, status_code_name(status), why);
				break;
			}
			size_t need = c->req.head_len +
				      (c->req.content_length > 0 ? (size_t)c->req.content_length : 0);
			if (c->pos && (c->req.chunked || avail < need)) {
				conn_compact(c); /* room for the body */
				continue;
			}
			c->phase = PH_BODY;
			set_request_id(c);
			c->ex.extra_len = 0;
			c->req_start_ms = c->req_start_ms ? c->req_start_ms : uv_now(&c->w->loop);
			if (c->req.chunked) {
				http_chunked_init(&c->chunk);
				c->rpos = c->wpos = c->pos + c->req.head_len;
			}
		}
		/* PH_BODY */
		if (c->req.chunked) {
			int rc = http_chunked_decode(&c->chunk, c->in, &c->rpos, c->in_len, &c->wpos,
						     HTTP_MAX_BODY, &status, &why);
			if (rc == HTTP_PARSE_ERROR) {
				conn_error(c, status, status_code_name(status), why);
				break;
			}
			if (rc == HTTP_PARSE_AGAIN) {
				/* Drop consumed framing so the buffer holds only
				 * the decoded body and the undecoded tail. */
				size_t tail = c->in_len - c->rpos;
				memmove(c->in + c->wpos, c->in + c->rpos, tail);
				c->in_len = c->wpos + tail;
				c->rpos = c->wpos;
				if (c->req.expect_continue && !c->continue_sent) {
					c->continue_sent = 1;
					buf_puts(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
				}
				break;
			}
			c->req.body = c->in + c->pos + c->req.head_len;
			c->req.body_len = c->wpos - (c->pos + c->req.head_len);
			c->req_end = c->rpos;
		} else {
			size_t cl = c->req.content_length > 0 ? (size_t)c->req.content_length : 0;
			if (avail < c->req.head_len + cl) {
				if (c->req.expect_continue && !c->continue_sent) {
					c->continue_sent = 1;
					buf_puts(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
				}
				break;
			}
			c->req.body = cl ? base + c->req.head_len : NULL;
			c->req.body_len = cl;
			c->req_end = c->pos + c->req.head_len + cl;
		}
		if (c->head_moved) {
			/* The parsed strings pointed into the old buffer: parse
			 * the (unchanged) head bytes again, keep the body. */
			const char *body = c->req.body;
			size_t body_len = c->req.body_len;
			int rc = http_parse_head(c->in + c->pos, c->req.head_len, &c->req, &status, &why);
			assert(rc == HTTP_PARSE_OK);
			(void)rc;
			c->req.body = body;
			c->req.body_len = body_len;
			c->head_moved = 0;
		}
		if (!batch_ns) {
			batch_ns = uv_hrtime();
			batch_ms = worker_wall_ms(c->w, batch_ns);
		}
		c->ex.start_ns = batch_ns;
		c->ex.now_ms = batch_ms;
		c->ex.route = 0;
		c->ex.answered = 0;
		c->ex.client_set = 0;
		log_set_request_id(c->ex.request_id);
		alloc_failures = 0; /* counted per request (util.h) */
		c->ex.streaming = 0;
		int r = srv->handler.handle(&c->ex, c->w->wstate);
		log_set_request_id(NULL);
		if (c->ex.streaming)
			break; /* the connection is the stream's now */
		assert(r == HTTP_ASYNC || c->ex.answered);
		if (r == HTTP_ASYNC) {
			c->phase = PH_WAIT;
			break;
		}
		request_done(c);
	}
	if (c->phase == PH_HEAD && c->pos == c->in_len) {
		c->pos = c->in_len = 0;
	}
	return !c->closed && !c->close_after_write && c->out.len >= OUT_HIGH;
}

/* Answers what is buffered and writes it out, again while a batch stopped
 * at OUT_HIGH and its output left at once. */
static void conn_run(struct conn *c)
{
	int full;
	do {
		full = conn_process(c);
		/* after an EOF: everything before it is answered */
		if (c->peer_eof && !full && c->phase != PH_WAIT && c->phase != PH_STREAM)
			c->close_after_write = 1;
		conn_flush(c);
	} while (full && !c->closed && !c->writing);
}

void http_resume(struct http_exchange *ex)
{
	struct conn *c = ex_conn(ex);
	if (c->ex.streaming) {
		/* the request became a stream while it waited */
		if (c->want_close || c->peer_eof)
			conn_close(c);
		return;
	}
	assert(c->phase == PH_WAIT);
	request_done(c);
	if (c->want_close) {
		conn_close(c);
		return;
	}
	conn_run(c);
}

/* ---- connections per client address ---------------------------------- */

/* The address a connection counts against: IPv4 (also when mapped into
 * IPv6) as ::ffff:a.b.c.d, IPv6 as its /64. 0, or -1 for another family. */
static int peer_key(const struct sockaddr_storage *ss, uint8_t key[16])
{
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	memset(key, 0, 16);
	if (ss->ss_family == AF_INET) {
		memcpy(key, mapped, 12);
		memcpy(key + 12, &((const struct sockaddr_in *)(const void *)ss)->sin_addr, 4);
		return 0;
	}
	if (ss->ss_family != AF_INET6)
		return -1;
	const uint8_t *a = ((const struct sockaddr_in6 *)(const void *)ss)->sin6_addr.s6_addr;
	memcpy(key, a, memcmp(a, mapped, 12) == 0 ? 16 : 8);
	return 0;
}

static size_t peer_find(const struct http_server *srv, const uint8_t key[16])
{
	size_t i = hash_bytes(key, 16, 0) & srv->peers_mask;
	while (srv->peers[i].count && memcmp(srv->peers[i].key, key, 16) != 0)
		i = (i + 1) & srv->peers_mask;
	return i;
}

/* One more connection from key: 1, or 0 if it has its cap already. The
 * table has room: it holds at most --max-conns keys in twice the slots. */
static int peer_enter(struct http_server *srv, const uint8_t key[16])
{
	pthread_mutex_lock(&srv->peers_lock);
	size_t i = peer_find(srv, key);
	struct peer_slot *p = &srv->peers[i];
	int ok = p->count < (uint32_t)srv->cfg.max_conns_per_ip;
	if (ok) {
		if (!p->count++) {
			memcpy(p->key, key, 16);
			srv->npeers++;
		}
	}
	pthread_mutex_unlock(&srv->peers_lock);
	return ok;
}

/* One connection from key less; a slot that empties is filled again from
 * the run after it, so that every key stays reachable from its hash. */
static void peer_leave(struct http_server *srv, const uint8_t key[16])
{
	pthread_mutex_lock(&srv->peers_lock);
	size_t i = peer_find(srv, key);
	assert(srv->peers[i].count > 0);
	if (--srv->peers[i].count == 0) {
		srv->npeers--;
		for (size_t j = (i + 1) & srv->peers_mask; srv->peers[j].count;
		     j = (j + 1) & srv->peers_mask) {
			size_t home = hash_bytes(srv->peers[j].key, 16, 0) & srv->peers_mask;
			/* j's key may move to i if i lies on its way from home */
			if (((j - home) & srv->peers_mask) >= ((j - i) & srv->peers_mask)) {
				srv->peers[i] = srv->peers[j];
				srv->peers[j].count = 0;
				i = j;
			}
		}
	}
	pthread_mutex_unlock(&srv->peers_lock);
}

/* ---- connection life cycle ------------------------------------------------ */

static void on_conn_closed(uv_handle_t *h)
{
	struct conn *c = (struct conn *)h;
	close(c->fd);
	buf_release(&c->out);
	buf_release(&c->wbuf);
	free(c->in);
	free(c);
}

static void conn_close(struct conn *c)
{
	if (c->closed)
		return;
	if (c->phase == PH_WAIT) {
		/* A task still refers to this connection: close when it lands. */
		c->want_close = 1;
		conn_update_poll(c);
		return;
	}
	c->closed = 1;
	struct http_worker *w = c->w;
	if (c->ex.streaming) {
		c->ex.streaming = 0;
		if (w->srv->handler.stream_closed)
			w->srv->handler.stream_closed(&c->ex, w->wstate);
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	w->nconns--;
	metric_add(&w->stats.closed, 1);
	atomic_fetch_sub_explicit(&w->srv->open_conns, 1, memory_order_relaxed);
	if (c->writing)
		unsent_sub(c, c->wbuf.len - c->wbuf_sent);
	c->writing = 0;
	if (c->counted) {
		uint8_t key[16];
		peer_key(&c->ex.peer, key);
		peer_leave(w->srv, key);
	}
	uv_close((uv_handle_t *)&c->poll, on_conn_closed);
}

static const char busy_response[] =
	"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
	"Content-Length: 82\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
	"{\"error\":{\"code\":\"too_many_connections\",\"message\":\"too many open connections\"}}\n";
static const char per_ip_response[] =
	"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
	"Content-Length: 107\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
	"{\"error\":{\"code\":\"too_many_connections\",\"message\":\"too many open connections "
	"from your address\"}}\n";
static const char nomem_response[] =
	"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
	"Content-Length: 72\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
	"{\"error\":{\"code\":\"out_of_memory\",\"message\":\"out of memory, try again\"}}\n";

/* A connection refused with a 503: the answer fits in the socket's
 * buffer, and a peer that is gone makes no difference. */
static void refuse(int fd, const char *r, size_t len)
{
	send_now(fd, r, len);
	close(fd);
}

static void conn_open(struct http_worker *w, int fd, const struct sockaddr_storage *peer,
		      socklen_t plen)
{
	struct http_server *srv = w->srv;
	long open = atomic_fetch_add_explicit(&srv->open_conns, 1, memory_order_relaxed);
	struct conn *c = NULL;
	uint8_t key[16];
	int capped = srv->cfg.max_conns_per_ip > 0 && peer_key(peer, key) == 0 &&
		     !(srv->cfg.exempt_peer && srv->cfg.exempt_peer(peer, srv->cfg.exempt_arg));
	int full = open >= srv->cfg.max_conns || w->stopping;
	int too_many = !full && capped && !peer_enter(srv, key);
	if (full || too_many || !(c = try_calloc(1, sizeof(*c) + srv->handler.exchange_data_size)) ||
	    uv_poll_init_socket(&w->loop, &c->poll, fd) != 0) {
		atomic_fetch_sub_explicit(&srv->open_conns, 1, memory_order_relaxed);
		metric_add(&w->stats.own_errors[HTTP_OWN_503], 1);
		if (capped && !full && !too_many)
			peer_leave(srv, key);
		if (full) {
			metric_add(&w->stats.refused_total, 1);
			refuse(fd, busy_response, sizeof(busy_response) - 1);
		} else if (too_many) {
			metric_add(&w->stats.refused_per_ip, 1);
			refuse(fd, per_ip_response, sizeof(per_ip_response) - 1);
		} else {
			refuse(fd, nomem_response, sizeof(nomem_response) - 1);
		}
		free(c);
		return;
	}
	c->counted = capped ? 1 : 0;
	c->fd = fd;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (plen > 0 && plen <= sizeof(c->ex.peer))
		memcpy(&c->ex.peer, peer, plen);
	else
		c->ex.peer.ss_family = AF_UNSPEC;
	metric_add(&w->stats.accepted, 1);
	c->w = w;
	c->ex.req = &c->req;
	c->ex.data = c->data;
	c->ex.worker = w;
	c->ex.wstate = w->wstate;
	c->opened_ms = c->idle_since_ms = uv_now(&w->loop);
	buf_init(&c->out);
	buf_init(&c->wbuf);
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	w->nconns++;
	conn_update_poll(c);
}

/* Accepts what is waiting. Out of descriptors or kernel memory, accepting
 * pauses until the next sweep: the level-triggered listener would
 * otherwise wake the loop again at once, and the connections wait in the
 * kernel's queue meanwhile. */
static void on_listen(uv_poll_t *h, int status, int events)
{
	(void)events;
	struct http_worker *w = h->data;
	if (status < 0) {
		w->accept_paused = 1; /* libuv stopped the handle; the sweep restarts it */
		return;
	}
	for (;;) {
		struct sockaddr_storage peer;
		socklen_t plen = sizeof(peer);
		int fd = accept4(w->fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			w->accept_warned = 0;
			conn_open(w, fd, &peer, plen);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED || errno == EPERM || errno == EPROTO)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			if (!w->accept_warned)
				log_warn("worker %d: accept: %s; accepting again in %d ms", w->idx,
					 strerror(errno), SWEEP_MS);
			w->accept_paused = w->accept_warned = 1;
			uv_poll_stop(&w->listener);
		}
		return;
	}
}

static void conn_timeout(struct conn *c)
{
	c->req.method = HTTP_M_NONE;
	c->req.minor = 1;
	c->phase = PH_HEAD;
	c->ex.start_ns = 0;
	conn_error(c, 408, "request_timeout", "request not received in time");
	conn_flush(c);
}

/* Runs every SWEEP_MS: deadlines of all connections, and the Date header. */
static void on_sweep(uv_timer_t *t)
{
	struct http_worker *w = t->data;
	struct http_server *srv = w->srv;
	worker_update_date(w);
	if (w->accept_paused && w->listener_open) {
		w->accept_paused = 0;
		uv_poll_start(&w->listener, UV_READABLE, on_listen);
	}
	uint64_t now = uv_now(&w->loop);
	struct conn *next;
	for (struct conn *c = w->conns; c; c = next) {
		next = c->next;
		if (c->closed || c->phase == PH_WAIT)
			continue;
		if (c->writing) {
			if (now - c->write_start_ms > (uint64_t)srv->cfg.send_timeout_ms)
				conn_close(c);
			continue;
		}
		if (c->phase == PH_LINGER) {
			if (now >= c->linger_until_ms)
				conn_close(c);
			continue;
		}
		if (c->phase == PH_STREAM) {
			if (w->stopping)
				http_stream_end(&c->ex);
			continue; /* no request timeouts: it answers for as long as it lives */
		}
		if (c->close_after_write)
			continue;
		if (w->stopping && c->phase == PH_HEAD && c->in_len == c->pos) {
			conn_close(c);
			continue;
		}
		uint64_t hto = (uint64_t)srv->cfg.header_timeout_ms;
		if (c->phase == PH_BODY || c->in_len > c->pos) {
			if (now - c->req_start_ms >= hto)
				conn_timeout(c);
		} else if (c->requests == 0) {
			if (now - c->opened_ms >= hto)
				conn_timeout(c);
		} else if (now - c->idle_since_ms >= (uint64_t)srv->cfg.keepalive_timeout_ms) {
			conn_close(c);
		}
	}
	if (w->stopping && w->nconns == 0) {
		if (srv->handler.worker_stop)
			srv->handler.worker_stop(w->wstate);
		uv_close((uv_handle_t *)&w->sweep, NULL);
		uv_close((uv_handle_t *)&w->async, NULL);
		uv_close((uv_handle_t *)&w->turn, NULL);
	}
}

/* ---- cross-thread tasks and control ---------------------------------------- */

void http_post(struct http_worker *w, struct http_task *t)
{
	t->next = NULL;
	pthread_mutex_lock(&w->task_lock);
	if (w->tasks_tail)
		w->tasks_tail->next = t;
	else
		w->tasks = t;
	w->tasks_tail = t;
	pthread_mutex_unlock(&w->task_lock);
	uv_async_send(&w->async);
}

static void on_listener_closed(uv_handle_t *h)
{
	struct http_worker *w = h->data;
	close(w->fd);
	w->fd = -1;
}

static void worker_stop_accepting(struct http_worker *w)
{
	if (w->listener_open) {
		w->listener_open = 0;
		uv_close((uv_handle_t *)&w->listener, on_listener_closed);
	}
}

static void on_async(uv_async_t *a)
{
	struct http_worker *w = a->data;
	struct http_server *srv = w->srv;
	pthread_mutex_lock(&w->task_lock);
	struct http_task *t = w->tasks;
	w->tasks = w->tasks_tail = NULL;
	pthread_mutex_unlock(&w->task_lock);
	while (t) {
		struct http_task *next = t->next;
		alloc_failures = 0; /* a task answers one request: its own count */
		t->run(t);
		t = next;
	}
	if (atomic_load(&srv->draining) && !w->stopping) {
		w->stopping = 1;
		worker_stop_accepting(w);
		/* Idle connections go now; busy ones after their response;
		 * streams end (what was written is sent first). */
		struct conn *next;
		for (struct conn *c = w->conns; c; c = next) {
			next = c->next;
			if (c->phase == PH_HEAD && c->in_len == c->pos && !c->writing)
				conn_close(c);
			else if (c->phase == PH_STREAM)
				http_stream_end(&c->ex);
		}
	}
	if (atomic_load(&srv->forcing)) {
		struct conn *next;
		for (struct conn *c = w->conns; c; c = next) {
			next = c->next;
			conn_close(c);
		}
	}
}

static void on_turn_end(uv_prepare_t *p)
{
	struct http_worker *w = p->data;
	w->srv->handler.turn_end(w->wstate);
}

static void worker_main(void *arg)
{
	struct http_worker *w = arg;
	struct http_server *srv = w->srv;
	if (srv->handler.worker_init)
		w->wstate = srv->handler.worker_init(srv->handler.app, w, w->idx);
	uv_run(&w->loop, UV_RUN_DEFAULT);
	if (srv->handler.worker_release)
		srv->handler.worker_release(w->wstate);
	atomic_fetch_sub(&srv->running, 1);
}

/* ---- server ------------------------------------------------------------------ */

/* The socket address of host (numeric) and port; 0, or -1 with err. */
static int listen_address(const char *host, int port, struct sockaddr_storage *ss, socklen_t *sl,
			  char *err, size_t errlen)
{
	memset(ss, 0, sizeof(*ss));
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)port);
		*sl = sizeof(*a4);
	} else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		*sl = sizeof(*a6);
	} else {
		snprintf(err, errlen, "listen address '%s' is not a numeric IPv4 or IPv6 address",
			 host);
		return -1;
	}
	return 0;
}

int http_listen_free(const char *host, int port, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	if (listen_address(host, port, &ss, &sl, err, errlen) != 0)
		return -1;
	/* Without SO_REUSEPORT: a bind then fails while any socket listens
	 * there (SO_REUSEADDR only lets it past connections in TIME_WAIT). */
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "unable to create a socket: %s", strerror(errno));
		return -1;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	int rc = bind(fd, (struct sockaddr *)&ss, sl);
	int e = errno;
	close(fd);
	if (rc == 0)
		return 0;
	if (e == EADDRINUSE)
		snprintf(err, errlen,
			 "another process already listens on %s%s%s:%d (a second shortd would share "
			 "its port and answer half of its requests)",
			 ss.ss_family == AF_INET6 ? "[" : "", host, ss.ss_family == AF_INET6 ? "]" : "",
			 port);
	else
		snprintf(err, errlen, "unable to listen on '%s' port %d: %s", host, port, strerror(e));
	return -1;
}

static int make_listen_socket(const struct http_server_config *cfg, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	if (listen_address(cfg->host, cfg->port, &ss, &sl, err, errlen) != 0)
		return -1;
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, errlen, "unable to create a socket: %s", strerror(errno));
		return -1;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
	    bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 4096) != 0) {
		snprintf(err, errlen, "unable to listen on '%s' port %d: %s", cfg->host, cfg->port,
			 strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int http_server_create(struct http_server **out, const struct http_server_config *cfg,
		       const struct http_handler *handler, char *err, size_t errlen)
{
	pthread_once(&status_lines_once, status_lines_init);
	struct http_server *srv = xcalloc(1, sizeof(*srv));
	srv->cfg = *cfg;
	pthread_mutex_init(&srv->peers_lock, NULL);
	if (cfg->max_conns_per_ip > 0) {
		size_t slots = 64;
		while (slots < 2 * (size_t)cfg->max_conns)
			slots *= 2;
		srv->peers = xcalloc(slots, sizeof(*srv->peers));
		srv->peers_mask = slots - 1;
	}
	srv->handler = *handler;
	srv->nworkers = cfg->threads;
	srv->workers = xcalloc((size_t)srv->nworkers, sizeof(*srv->workers));
	for (int i = 0; i < srv->nworkers; i++) {
		struct http_worker *w = &srv->workers[i];
		w->srv = srv;
		w->idx = i;
		w->fd = make_listen_socket(cfg, err, errlen);
		if (w->fd < 0) {
			srv->nworkers = i; /* the ones bound so far */
			http_server_free(srv);
			return -1;
		}
	}
	if (cfg->access_log && cfg->access_log[0]) {
		srv->access_log = access_log_open(cfg->access_log, srv->nworkers, err, errlen);
		if (!srv->access_log) {
			http_server_free(srv);
			return -1;
		}
	}
	*out = srv;
	return 0;
}

int http_server_start(struct http_server *srv)
{
	for (int i = 0; i < srv->nworkers; i++) {
		struct http_worker *w = &srv->workers[i];
		uv_loop_init(&w->loop);
		pthread_mutex_init(&w->task_lock, NULL);
		w->listener.data = w;
		if (uv_poll_init_socket(&w->loop, &w->listener, w->fd) != 0 ||
		    uv_poll_start(&w->listener, UV_READABLE, on_listen) != 0) {
			/* a bound socket libuv cannot watch: not a state to
			 * unwind from (the workers before it are set up) */
			log_error("unable to listen on worker %d", i);
			abort();
		}
		w->listener_open = 1;
		uv_async_init(&w->loop, &w->async, on_async);
		w->async.data = w;
		uv_timer_init(&w->loop, &w->sweep);
		w->sweep.data = w;
		uv_timer_start(&w->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
		uv_prepare_init(&w->loop, &w->turn);
		w->turn.data = w;
		if (srv->handler.turn_end)
			uv_prepare_start(&w->turn, on_turn_end);
		worker_update_date(w);
		w->rid_state = random_seed();
	}
	atomic_store(&srv->running, srv->nworkers);
	for (int i = 0; i < srv->nworkers; i++) {
		if (uv_thread_create(&srv->workers[i].thread, worker_main, &srv->workers[i]) != 0) {
			log_error("unable to start worker thread %d", i);
			abort();
		}
	}
	srv->started = 1;
	return 0;
}

void http_server_drain(struct http_server *srv)
{
	atomic_store(&srv->draining, 1);
	for (int i = 0; i < srv->nworkers && srv->started; i++)
		uv_async_send(&srv->workers[i].async);
}

void http_server_force_close(struct http_server *srv)
{
	atomic_store(&srv->draining, 1);
	atomic_store(&srv->forcing, 1);
	for (int i = 0; i < srv->nworkers && srv->started; i++)
		uv_async_send(&srv->workers[i].async);
}

int http_server_running(struct http_server *srv)
{
	return atomic_load(&srv->running);
}

int http_server_draining(struct http_server *srv)
{
	return atomic_load_explicit(&srv->draining, memory_order_relaxed);
}

long http_server_open_conns(struct http_server *srv)
{
	return atomic_load_explicit(&srv->open_conns, memory_order_relaxed);
}

void http_server_free(struct http_server *srv)
{
	for (int i = 0; i < srv->nworkers && !srv->started; i++)
		close(srv->workers[i].fd); /* bound, never served */
	for (int i = 0; i < srv->nworkers && srv->started; i++) {
		struct http_worker *w = &srv->workers[i];
		uv_thread_join(&w->thread);
		uv_loop_close(&w->loop);
		pthread_mutex_destroy(&w->task_lock);
	}
	access_log_close(srv->access_log);
	free(srv->workers);
	free(srv->peers);
	pthread_mutex_destroy(&srv->peers_lock);
	free(srv);
}

void http_server_stats(struct http_server *srv, struct http_stats *out)
{
	memset(out, 0, sizeof(*out));
	for (int i = 0; i < srv->nworkers; i++) {
		const struct http_worker_stats *st = &srv->workers[i].stats;
		out->accepted += metric_read(&st->accepted);
		out->closed += metric_read(&st->closed);
		out->refused_total += metric_read(&st->refused_total);
		out->refused_per_ip += metric_read(&st->refused_per_ip);
		out->slow_closed += metric_read(&st->slow_closed);
		for (int j = 0; j < HTTP_OWN_STATUS_COUNT; j++)
			out->own_errors[j] += metric_read(&st->own_errors[j]);
	}
	long open = atomic_load_explicit(&srv->open_conns, memory_order_relaxed);
	out->open = open > 0 ? (uint64_t)open : 0;
	long unsent = atomic_load_explicit(&srv->unsent, memory_order_relaxed);
	out->unsent_bytes = unsent > 0 ? (uint64_t)unsent : 0;
	if (srv->peers) {
		pthread_mutex_lock(&srv->peers_lock);
		out->peer_addresses = srv->npeers;
		pthread_mutex_unlock(&srv->peers_lock);
	}
	out->access_log_dropped = srv->access_log ? access_log_dropped(srv->access_log) : 0;
}

uv_loop_t *http_worker_loop(struct http_worker *w)
{
	return &w->loop;
}

int http_exchange_status(const struct http_exchange *ex)
{
	const struct conn *c = (const struct conn *)((const char *)ex - offsetof(struct conn, ex));
	return c->resp_status;
}

size_t http_exchange_peer_ip(const struct http_exchange *ex, char *out, size_t cap)
{
	const struct sockaddr_storage *ss = ex->client_set ? &ex->client : &ex->peer;
	const void *addr = NULL;
	if (ss->ss_family == AF_INET)
		addr = &((const struct sockaddr_in *)ss)->sin_addr;
	else if (ss->ss_family == AF_INET6)
		addr = &((const struct sockaddr_in6 *)ss)->sin6_addr;
	if (!addr || !inet_ntop(ss->ss_family, addr, out, (socklen_t)cap))
		snprintf(out, cap, "unknown");
	return strlen(out);
}
