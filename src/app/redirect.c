/*
 * redirect: GET|HEAD /{code}, the hot path.
 *
 * L1 cache -> state check at serve time (deleted or expired: 410) -> the
 * link's status with Location -> the click into this worker's ring (GET
 * only: HEAD is not a click). No allocation or system call on a cache hit:
 * the cache copies the link out under its shard lock, with no reference
 * count to touch, and the response is appended to the connection's output
 * buffer and leaves with the rest of its pipelined batch.
 *
 * A miss is single-flight (cache.h): the first request for the code reads
 * the store (request.h: at once with SQLite, later with a network store)
 * and ends the cache's flight with what it read; every other request for
 * the code meanwhile, on any worker, waits on that flight without
 * blocking its worker and is handed back to it (req_wake) with the same
 * answer. A failed read answers 503 to all of them.
 *
 * A link with forward_query passes the request's query string on: it goes
 * after the target's own query (joined by '&') and before its fragment.
 */
#include "reply.h"
#include "request.h"

#include <string.h>

static const char cache_control[] = "private, max-age=90";

/* The longest request-target the parser takes (http_parser.c: 414 above). */
#define QUERY_MAX 8192

/* url with the query q appended, into out (url_len + 1 + qlen bytes):
 * https://t/p?a=1#f with b=2 gives https://t/p?a=1&b=2#f. */
static size_t with_query(const char *url, size_t url_len, const char *q, size_t qlen, char *out)
{
	const char *hash = memchr(url, '#', url_len);
	size_t head = hash ? (size_t)(hash - url) : url_len, n = head;
	memcpy(out, url, head);
	if (!memchr(url, '?', head))
		out[n++] = '?';
	else if (url[head - 1] != '?' && url[head - 1] != '&')
		out[n++] = '&';
	memcpy(out + n, q, qlen);
	n += qlen;
	memcpy(out + n, url + head, url_len - head);
	return n + url_len - head;
}

/* Location with the request's query; apart, so that its buffer is not in
 * the frame of every redirect. */
__attribute__((noinline)) static int location_forwarded(struct http_exchange *ex,
							 const struct cache_link *l)
{
	char loc[LINK_URL_MAX + 1 + QUERY_MAX];
	const struct http_request *req = ex->req;
	if (req->query_len > QUERY_MAX)
		return http_respond_header(ex, "Location", l->url, l->url_len);
	size_t n = with_query(l->url, l->url_len, req->query, req->query_len, loc);
	return http_respond_header(ex, "Location", loc, n);
}

static void answer(struct app_req *r, const struct cache_link *l)
{
	struct http_exchange *ex = r->ex;
	int64_t now = ex->now_ms;
	switch (link_state_of(l->expires_at_ms, l->deleted, now)) {
	case LINK_DELETED:
		reply_error(ex, 410, "gone", "this link was deleted");
		return;
	case LINK_EXPIRED:
		reply_error(ex, 410, "expired", "this link has expired");
		return;
	case LINK_LIVE:
		break;
	}
	http_respond_start(ex, l->redirect);
	if (l->forward_query && ex->req->query_len ? location_forwarded(ex, l) != 0
	    : http_respond_header(ex, "Location", l->url, l->url_len) != 0) {
		/* Validation makes this impossible; never split a header. */
		http_respond_abort(ex);
		reply_error(ex, 500, "internal", "invalid stored target");
		return;
	}
	http_respond_header(ex, "Cache-Control", cache_control, sizeof(cache_control) - 1);
	http_respond_finish(ex, NULL, NULL, 0);
	app_notfound_repay(r);
	struct app_worker *ws = r->ws;
	if (ws->clicks && ex->req->method == HTTP_GET) {
		const struct http_header *ua = http_header_get(ex->req, HTTP_H_USER_AGENT);
		const struct http_header *ref = http_header_get(ex->req, HTTP_H_REFERER);
		clicks_record(ws->clicks, l->id, now, ua ? ua->value : "", ua ? ua->value_len : 0,
			      ref ? ref->value : NULL, ref ? ref->value_len : 0,
			      (const struct sockaddr *)&r->client);
	}
}

/* The answer of a load (ours or another request's), as the cache says it. */
static void answer_loaded(struct app_req *r, int result, const struct link *l)
{
	if (result == CACHE_NOTFOUND) {
		app_notfound_count(r);
		reply_error(r->ex, 404, "not_found", "no link with this code");
	} else if (result != CACHE_FOUND) {
		reply_store_unavailable(r->ex);
	} else {
		struct cache_link copy;
		cache_link_from(l, &copy);
		answer(r, &copy);
	}
}

/* Our load's read is answered: the flight ends with it. */
static void loaded(struct app_req *r)
{
	int result = r->rd.status == STORE_OK	    ? CACHE_FOUND
		     : r->rd.status == STORE_NOTFOUND ? CACHE_NOTFOUND
						      : CACHE_ERROR;
	cache_load_done(r->app->cache, r->flight, result, r->rd.link, time_mono_ms());
	answer_loaded(r, result, r->rd.link);
	store_read_release(&r->rd);
}

/* Another request's load ended (back on our worker). */
static void woken(struct app_req *r)
{
	struct cache_waiter *w = &r->u.waiter;
	answer_loaded(r, w->result, w->link);
	if (w->link)
		link_unref(w->link);
}

/* The loader's thread: hand the request back to its own worker. */
static void wake(struct cache_waiter *w)
{
	req_wake((struct app_req *)((char *)w - offsetof(struct app_req, u.waiter)));
}

void redirect_get(struct app_req *r)
{
	struct cache_link l;
	if (r->notfound_blocked) {
		/* 429 whatever the code (a scan learns nothing); only the
		 * cache is asked, so a blocked scan costs no store read */
		int found = cache_peek(r->app->cache, r->arg, r->arg_len,
				       r->ex->start_ns / 1000000) == CACHE_FOUND;
		app_notfound_refuse(r, found);
		return;
	}
	r->u.waiter.wake = wake;
	switch (cache_get(r->app->cache, r->arg, r->arg_len, r->ex->start_ns / 1000000, &l,
			  &r->u.waiter, &r->flight)) {
	case CACHE_FOUND:
		answer(r, &l);
		return;
	case CACHE_NOTFOUND:
		app_notfound_count(r);
		reply_error(r->ex, 404, "not_found", "no link with this code");
		return;
	case CACHE_WAIT:
		req_wait(r, woken);
		return;
	default: /* CACHE_LOAD */
		r->rd.kind = STORE_READ_LINK;
		r->rd.code = r->arg;
		r->rd.code_len = r->arg_len;
		r->rd.replica_ok = 1; /* a lagging replica's "no such code" is asked again */
		req_read(r, loaded);
	}
}
