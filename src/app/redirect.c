/*
 * redirect: GET|HEAD /{code}, the hot path.
 *
 * L1 cache (single-flight load from the store on a miss) -> state check at
 * serve time (deleted or expired: 410) -> the link's status with Location
 * -> the click into this worker's ring (GET only: HEAD is not a click).
 * No allocation or system call on a cache hit: the cache copies the link
 * out under its shard lock, with no reference count to touch, and the
 * response is appended to the connection's output buffer and leaves with
 * the rest of its pipelined batch.
 */
#include "app_internal.h"

#include <string.h>

static const char cache_control[] = "private, max-age=90";

static int load(void *ctx, const char *code, size_t len, struct link **out)
{
	struct app_worker *ws = ctx;
	switch (app_store_get(ws, code, len, out)) {
	case STORE_OK:
		return CACHE_FOUND;
	case STORE_NOTFOUND:
		return CACHE_NOTFOUND;
	default:
		return CACHE_ERROR;
	}
}

int redirect_handle(struct http_exchange *ex, struct app_worker *ws, const char *code, size_t len)
{
	struct app *app = ws->app;
	struct cache_link l;
	if (app_notfound_blocked(ex, ws))
		return HTTP_DONE;
	int rc = cache_get(app->cache, code, len, ex->start_ns / 1000000, load, ws, &l);
	if (rc == CACHE_NOTFOUND) {
		app_notfound_count(ws);
		reply_error(ex, 404, "not_found", "no link with this code");
		return HTTP_DONE;
	}
	if (rc != CACHE_FOUND) {
		reply_store_unavailable(ex);
		return HTTP_DONE;
	}
	int64_t now = ex->now_ms;
	switch (link_state_of(l.expires_at_ms, l.deleted, now)) {
	case LINK_DELETED:
		reply_error(ex, 410, "gone", "this link was deleted");
		break;
	case LINK_EXPIRED:
		reply_error(ex, 410, "expired", "this link has expired");
		break;
	case LINK_LIVE:
		http_respond_start(ex, l.redirect);
		if (http_respond_header(ex, "Location", l.url, l.url_len) != 0) {
			/* Validation makes this impossible; never split a header. */
			http_respond_abort(ex);
			reply_error(ex, 500, "internal", "invalid stored target");
			return HTTP_DONE;
		}
		http_respond_header(ex, "Cache-Control", cache_control, sizeof(cache_control) - 1);
		http_respond_finish(ex, NULL, NULL, 0);
		if (ws->clicks && ex->req->method == HTTP_GET) {
			const struct http_header *ua = http_header_get(ex->req, HTTP_H_USER_AGENT);
			const struct http_header *ref = http_header_get(ex->req, HTTP_H_REFERER);
			clicks_record(ws->clicks, l.id, now, ua ? ua->value : "", ua ? ua->value_len : 0,
				      ref ? ref->value : NULL, ref ? ref->value_len : 0,
				      (const struct sockaddr *)&ws->client);
		}
		break;
	}
	return HTTP_DONE;
}
