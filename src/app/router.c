/*
 * router: maps method and path to a handler; shared reply helpers.
 *
 * Routes:
 *   GET|HEAD /                      service name and version
 *   GET|HEAD /healthz               liveness
 *   /api/v1/links[/{code}]          links API (links_api.c)
 *   /api/v1/keys[/{id}]             API keys, admin only (keys_api.c)
 *   GET|HEAD /{code}                redirect (redirect.c)
 * Anything else is 404; a known path with another method is 405 with Allow.
 */
#include "app_internal.h"
#include "core/log.h"
#include "core/util.h"
#include "version.h"

#include <string.h>

static const char nosniff[] = "nosniff";
static const char no_referrer[] = "no-referrer";
static const char csp[] = "default-src 'none'; frame-ancestors 'none'";

/* Sends body[0..len) (len + 1 bytes writable: a newline ends it), or,
 * when body is NULL, the 503 of an answer that could not be built. */
static void reply_body(struct http_exchange *ex, int status, char *body, size_t len,
		       const char *extra_header, const char *extra_value)
{
	if (!body) {
		/* Some allocation for this answer failed: a partial body
		 * would be a lie. */
		static const char oom[] =
			"{\"error\":{\"code\":\"out_of_memory\",\"message\":\"out of memory, try again\"}}\n";
		http_respond_start(ex, 503);
		http_respond_header(ex, "X-Content-Type-Options", nosniff, sizeof(nosniff) - 1);
		http_respond_finish(ex, "application/json", oom, sizeof(oom) - 1);
		return;
	}
	http_respond_start(ex, status);
	http_respond_header(ex, "X-Content-Type-Options", nosniff, sizeof(nosniff) - 1);
	http_respond_header(ex, "Referrer-Policy", no_referrer, sizeof(no_referrer) - 1);
	http_respond_header(ex, "Content-Security-Policy", csp, sizeof(csp) - 1);
	if (extra_header && http_respond_header(ex, extra_header, extra_value, strlen(extra_value)))
		log_error("refused to write header '%s' with a line break", extra_header);
	body[len] = '\n'; /* replaces the NUL: the body is sent by length */
	http_respond_finish(ex, "application/json", body, len + 1);
}

void reply_json(struct http_exchange *ex, int status, json_t *j, const char *extra_header,
		const char *extra_value)
{
	char *body = alloc_failures ? NULL : json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (body && alloc_failures) {
		/* jansson 2.14 can finish a dump whose appends failed: never
		 * send what it made then. */
		free(body);
		body = NULL;
	}
	reply_body(ex, status, body, body ? strlen(body) : 0, extra_header, extra_value);
	free(body);
}

void reply_json_buf(struct http_exchange *ex, int status, struct buf *b,
		    const char *extra_header, const char *extra_value)
{
	int ok = !b->failed && !alloc_failures && buf_reserve(b, 1) == 0;
	reply_body(ex, status, ok ? b->p : NULL, b->len, extra_header, extra_value);
	buf_release(b);
}

void reply_error(struct http_exchange *ex, int status, const char *code, const char *msg)
{
	reply_json(ex, status, json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg),
		   NULL, NULL);
}

void reply_store_unavailable(struct http_exchange *ex)
{
	reply_error(ex, 503, "store_unavailable", "the link store is unavailable, try again");
}

void reply_write_failed(struct http_exchange *ex, int status)
{
	if (status == STORE_FULL)
		reply_error(ex, 507, "insufficient_storage",
			    "the disk is full: nothing was stored, try again later");
	else
		reply_store_unavailable(ex);
}

void reply_field_error(struct http_exchange *ex, const char *field, const char *msg)
{
	char full[512];
	snprintf(full, sizeof(full), "%s: %s", field, msg);
	reply_json(ex, 400,
		   json_pack("{s:{s:s,s:s,s:s}}", "error", "code", "invalid_field", "message", full,
			     "field", field),
		   NULL, NULL);
}

void reply_method_not_allowed(struct http_exchange *ex, const char *allow)
{
	reply_json(ex, 405,
		   json_pack("{s:{s:s,s:s}}", "error", "code", "method_not_allowed", "message",
			     "method not allowed on this resource"),
		   "Allow", allow);
}

void reply_options(struct http_exchange *ex, const char *allow)
{
	http_respond_start(ex, 204);
	http_respond_header(ex, "Allow", allow, strlen(allow));
	http_respond_finish(ex, NULL, NULL, 0);
}

static void put_time(struct buf *b, int64_t ms)
{
	char t[32];
	buf_lit(b, "\"");
	buf_append(b, t, time_format_rfc3339(ms, t, sizeof(t)));
	buf_lit(b, "\"");
}

void link_json(struct buf *b, const struct app *app, const struct link *l, const uint64_t *clicks)
{
	buf_reserve(b, 256 + l->url_len + l->code_len * 2 + strlen(app->base_url));
	buf_lit(b, "{\"code\":");
	buf_put_json_string(b, l->code, l->code_len);
	buf_lit(b, ",\"short_url\":\"");
	buf_put_json_chars(b, app->base_url, strlen(app->base_url));
	buf_lit(b, "/");
	buf_put_json_chars(b, l->code, l->code_len);
	buf_lit(b, "\",\"url\":");
	buf_put_json_string(b, l->url, l->url_len);
	buf_lit(b, ",\"redirect\":");
	buf_putu64(b, (uint64_t)l->redirect);
	buf_lit(b, ",\"created_at\":");
	put_time(b, l->created_at_ms);
	buf_lit(b, ",\"updated_at\":");
	put_time(b, l->updated_at_ms);
	buf_lit(b, ",\"expires_at\":");
	if (l->expires_at_ms)
		put_time(b, l->expires_at_ms);
	else
		buf_lit(b, "null");
	if (clicks) {
		buf_lit(b, ",\"clicks\":");
		buf_putu64(b, clicks[0]);
		buf_lit(b, ",\"bot_clicks\":");
		buf_putu64(b, clicks[1]);
	}
	buf_lit(b, "}");
}

long app_query_param(const struct http_request *req, const char *name, const char **val)
{
	size_t n = strlen(name), i = 0;
	const char *q = req->query;
	while (q && i < req->query_len) {
		size_t s = i;
		while (i < req->query_len && q[i] != '&')
			i++;
		if (i - s > n && memcmp(q + s, name, n) == 0 && q[s + n] == '=') {
			*val = q + s + n + 1;
			return (long)(i - s - n - 1);
		}
		i++;
	}
	return -1;
}

static int path_is(const struct http_request *req, const char *p)
{
	size_t n = strlen(p);
	return req->path_len == n && memcmp(req->path, p, n) == 0;
}

/* GET|HEAD-only resources; OPTIONS and other methods answered here. */
static int get_only(struct http_exchange *ex)
{
	enum http_method m = ex->req->method;
	if (m == HTTP_GET || m == HTTP_HEAD)
		return 1;
	if (m == HTTP_OPTIONS)
		reply_options(ex, "GET, HEAD, OPTIONS");
	else
		reply_method_not_allowed(ex, "GET, HEAD, OPTIONS");
	return 0;
}

static int route(struct http_exchange *ex, struct app_worker *ws)
{
	const struct http_request *req = ex->req;
	struct app *app = ws->app;

	if (req->asterisk) {
		reply_options(ex, "GET, HEAD, POST, PATCH, DELETE, OPTIONS");
		return HTTP_DONE;
	}
	/* Named routes first: they are reserved words, so no alias can
	 * shadow them. */
	if (path_is(req, "/")) {
		ex->route = ROUTE_ROOT;
		if (get_only(ex))
			reply_json(ex, 200,
				   json_pack("{s:s,s:s,s:s}", "service", "shortd", "version",
					     SHORTD_VERSION, "api", "/api/v1/links"),
				   NULL, NULL);
		return HTTP_DONE;
	}
	if (path_is(req, "/healthz")) {
		ex->route = ROUTE_HEALTHZ;
		if (get_only(ex))
			reply_json(ex, 200, json_pack("{s:s}", "status", "ok"), NULL, NULL);
		return HTTP_DONE;
	}
	if (path_is(req, "/readyz")) {
		ex->route = ROUTE_READYZ;
		const char *why;
		if (!get_only(ex))
			return HTTP_DONE;
		if (app_ready(app, &why))
			reply_json(ex, 200, json_pack("{s:s}", "status", "ready"), NULL, NULL);
		else
			reply_error(ex, 503, "not_ready", why);
		return HTTP_DONE;
	}
	if (path_is(req, "/metrics") && !app->metrics_srv) {
		ex->route = ROUTE_METRICS;
		if (get_only(ex))
			app_reply_metrics(ex, app);
		return HTTP_DONE;
	}
	if (req->path_len >= 13 && memcmp(req->path, "/api/v1/links", 13) == 0 &&
	    (req->path_len == 13 || req->path[13] == '/'))
		return links_handle(ex, ws, req->path + 13, req->path_len - 13);
	if (req->path_len >= 12 && memcmp(req->path, "/api/v1/keys", 12) == 0 &&
	    (req->path_len == 12 || req->path[12] == '/'))
		return keys_handle(ex, ws, req->path + 12, req->path_len - 12);
	/* /{code}: the hot path. */
	if (req->path_len > 1 && link_code_syntax_ok(req->path + 1, req->path_len - 1)) {
		ex->route = ROUTE_REDIRECT;
		if (get_only(ex))
			return redirect_handle(ex, ws, req->path + 1, req->path_len - 1);
		return HTTP_DONE;
	}
	reply_error(ex, 404, "not_found", "no such resource");
	return HTTP_DONE;
}

static int handle(struct http_exchange *ex, void *wstate)
{
	if (app_guard(ex, wstate) != 0) {
		app_observe(ex);
		return HTTP_DONE;
	}
	int r = route(ex, wstate);
	if (r == HTTP_DONE)
		app_observe(ex);
	return r; /* an asynchronous request is observed when it is answered */
}

static void *worker_init(void *appv, int idx)
{
	struct app *app = appv;
	struct app_worker *ws = &app->workers[idx];
	ws->app = app;
	ws->idx = idx;
	ws->clicks = app->clicks ? clicks_ring(app->clicks, idx) : NULL;
	if (store_reader_open(&app->store, &ws->reader) != STORE_OK) {
		log_error("worker %d has no database reader; reads will fail", idx);
		ws->reader = NULL;
	}
	return ws;
}

static void worker_release(void *wstate)
{
	struct app_worker *ws = wstate;
	if (ws->reader)
		store_reader_close(&ws->app->store, ws->reader);
	ws->reader = NULL; /* ws itself stays readable for a last scrape */
}

/* The end of a turn of the worker's loop: its reader lets go of its
 * snapshot, so that none is held while the worker waits for events (an old
 * snapshot keeps checkpoints from emptying the WAL). */
static void turn_end(void *wstate)
{
	struct app_worker *ws = wstate;
	if (ws->reader)
		store_reader_release(&ws->app->store, ws->reader);
}

int app_find_link(struct http_exchange *ex, struct app_worker *ws, const char *code, size_t len,
		  int64_t scope, struct link **out)
{
	struct link *l = NULL;
	int rc = app_store_get(ws, code, len, &l);
	if (rc == STORE_OK && scope != STORE_ANY_OWNER && l->owner != scope) {
		link_unref(l);
		rc = STORE_NOTFOUND;
	}
	if (rc == STORE_NOTFOUND) {
		reply_error(ex, 404, "not_found", "no link with this code");
		return -1;
	}
	if (rc != STORE_OK) {
		reply_store_unavailable(ex);
		return -1;
	}
	if (l->deleted_at_ms) {
		link_unref(l);
		reply_error(ex, 410, "gone", "this link was deleted");
		return -1;
	}
	*out = l;
	return 0;
}

int app_store_get(struct app_worker *ws, const char *code, size_t len, struct link **out)
{
	if (!ws->reader)
		return STORE_ERR;
	uint64_t t0 = time_mono_ns();
	int rc = store_get(&ws->app->store, ws->reader, code, len, out);
	hist_observe(&ws->metrics.store_read, time_mono_ns() - t0);
	return rc;
}

const struct http_handler app_http_handler = {
	.worker_init = worker_init,
	.worker_release = worker_release,
	.handle = handle,
	.turn_end = turn_end,
};
