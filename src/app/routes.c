/*
 * routes: see routes.h. The table below is the whole of shortd's HTTP
 * surface; docs/api.md describes each route.
 *
 * Matching: a pattern is a '/'-separated list of segments, each literal or
 * a parameter ("{code}": link_code_syntax_ok, "{id}": any non-empty
 * segment); the path matches when every segment does. The first route
 * whose pattern matches names the resource; the routes after it with the
 * same pattern (they stand side by side) are its other methods. A method it has runs its handler; OPTIONS
 * answers 204 with Allow; any other method, 405 with the same Allow.
 * Named routes precede "/{code}", and their names are reserved words
 * (link_code_reserved), so no alias can shadow them.
 *
 * Cost: a redirect is the last route, but a path is compared only with
 * the patterns whose first segment can have its length (worked out once,
 * at the first dispatch): /healthz and /metrics are refused by their
 * first bytes, and /{code} matches (a scan of every pattern cost a
 * redirect 370 instructions).
 */
#include "routes.h"
#include "reply.h"
#include "request.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define M(m) (1u << (m))
#define GET (M(HTTP_GET) | M(HTTP_HEAD))

static const struct route routes[ROUTE_COUNT] = {
	[ROUTE_OTHER] = {0, NULL, "other", NULL, NULL},
	[ROUTE_ROOT] = {GET, "/", "root", service_root, NULL},
	[ROUTE_STATIC] = {GET, "/static/{file}", "static", ui_static, NULL},
	[ROUTE_API_INDEX] = {GET, "/api/v1", "api_index", service_api_index, ""},
	[ROUTE_HEALTHZ] = {GET, "/healthz", "healthz", service_healthz, NULL},
	[ROUTE_READYZ] = {GET, "/readyz", "readyz", service_readyz, NULL},
	[ROUTE_METRICS] = {GET, "/metrics", "metrics", service_metrics, NULL},
	[ROUTE_LINK_LIST] = {GET, "/api/v1/links", "link_list", links_list, "limit cursor q"},
	[ROUTE_LINK_CREATE] = {M(HTTP_POST), "/api/v1/links", "link_create", links_create, ""},
	[ROUTE_LINK_GET] = {GET, "/api/v1/links/{code}", "link_get", links_get, ""},
	[ROUTE_LINK_PATCH] = {M(HTTP_PATCH), "/api/v1/links/{code}", "link_patch", links_patch, ""},
	[ROUTE_LINK_DELETE] = {M(HTTP_DELETE), "/api/v1/links/{code}", "link_delete", links_delete,
			       ""},
	[ROUTE_LINK_STATS] = {GET, "/api/v1/links/{code}/stats", "link_stats", stats_get,
			      "interval from to"},
	[ROUTE_LINK_EVENTS] = {GET, "/api/v1/links/{code}/events", "link_events", events_get, ""},
	[ROUTE_LINK_QR] = {GET, "/api/v1/links/{code}/qr", "link_qr", qr_get, "format size margin ecc"},
	[ROUTE_SESSION_CREATE] = {M(HTTP_POST), "/api/v1/session", "session_create", session_create,
				  ""},
	[ROUTE_SESSION_GET] = {GET, "/api/v1/session", "session_get", session_get, ""},
	[ROUTE_SESSION_DELETE] = {M(HTTP_DELETE), "/api/v1/session", "session_delete",
				  session_delete, ""},
	[ROUTE_KEY_LIST] = {GET, "/api/v1/keys", "key_list", keys_list, ""},
	[ROUTE_KEY_CREATE] = {M(HTTP_POST), "/api/v1/keys", "key_create", keys_create, ""},
	[ROUTE_KEY_REVOKE] = {M(HTTP_DELETE), "/api/v1/keys/{id}", "key_revoke", keys_revoke, ""},
	[ROUTE_REDIRECT] = {GET, "/{code}", "redirect", redirect_get, NULL},
};

const char *app_route_label(int route)
{
	return route > 0 && route < ROUTE_COUNT ? routes[route].label : "other";
}

/* What matching needs of a pattern, worked out once (a pattern has at
 * most one parameter): the literal part before it (the whole pattern if
 * there is none), the literal tail after it, and the routes to try for
 * each length of a path's first segment, in table order, so that a path
 * is compared with two or three patterns instead of every one. */
#define SEG1_MAX (LINK_CODE_MAX + 1) /* every longer first segment */

struct compiled {
	size_t lit_len;
	int param;       /* 0: none, 1: {code}, 2: {id} */
	const char *tail;
	size_t tail_len;
	int resource;    /* the first route with the same pattern */
	char c1;         /* the byte after the leading '/', if literal; else 0 */
};
static struct compiled compiled[ROUTE_COUNT];
static uint8_t candidates[SEG1_MAX + 1][ROUTE_COUNT]; /* route ids, 0-ended */
static pthread_once_t compiled_once = PTHREAD_ONCE_INIT;

static void compile(void)
{
	int n[SEG1_MAX + 1] = {0};
	for (int i = 1; i < ROUTE_COUNT; i++) {
		struct compiled *k = &compiled[i];
		const char *path = routes[i].path, *brace = strchr(path, '{');
		k->lit_len = brace ? (size_t)(brace - path) : strlen(path);
		k->param = !brace ? 0 : strncmp(brace, "{code}", 6) == 0 ? 1 : 2;
		k->tail = brace ? strchr(brace, '}') + 1 : path + k->lit_len;
		k->tail_len = strlen(k->tail);
		k->resource = i;
		k->c1 = brace == path + 1 ? 0 : path[1];
		while (k->resource > 1 && strcmp(routes[k->resource - 1].path, path) == 0)
			k->resource--;
		const char *slash = strchr(path + 1, '/');
		size_t seg1 = slash ? (size_t)(slash - path - 1) : strlen(path) - 1;
		for (size_t len = 0; len <= SEG1_MAX; len++)
			if ((brace == path + 1 || len == seg1) && k->resource == i) /* once a pattern */
				candidates[len][n[len]++] = (uint8_t)i;
	}
}

/* The same bytes? Paths and patterns all start with '/': the byte after
 * it, where most candidates differ, is compared inline. */
static int same(const char *a, const char *b, size_t n)
{
	if (n <= 1)
		return n == 0 || a[0] == b[0];
	return a[1] == b[1] && memcmp(a, b, n) == 0;
}

/* Whether path matches route i; its parameter's place goes to *arg and
 * *arg_len. slash: the path's first '/' after the leading one, or NULL. */
static int match(int i, const char *path, size_t len, const char *slash, const char **arg,
		 size_t *arg_len)
{
	const struct compiled *k = &compiled[i];
	if (!k->param)
		return len == k->lit_len && same(path, routes[i].path, len);
	if (len <= k->lit_len || !same(path, routes[i].path, k->lit_len))
		return 0;
	const char *seg = path + k->lit_len, *end = path + len;
	const char *seg_end = k->lit_len == 1 ? slash : memchr(seg, '/', (size_t)(end - seg));
	if (!seg_end)
		seg_end = end;
	size_t n = (size_t)(seg_end - seg);
	if (n == 0 || (k->param == 1 && !link_code_syntax_ok(seg, n)) ||
	    (size_t)(end - seg_end) != k->tail_len || !same(seg_end, k->tail, k->tail_len))
		return 0;
	*arg = seg;
	*arg_len = n;
	return 1;
}

/* "GET, HEAD, POST, OPTIONS": the methods of every route with pattern. */
static void allow_of(const char *pattern, char *out, size_t cap)
{
	static const enum http_method order[] = {HTTP_GET, HTTP_HEAD, HTTP_POST, HTTP_PATCH,
						 HTTP_DELETE};
	unsigned methods = 0;
	for (int i = 1; i < ROUTE_COUNT; i++)
		if (strcmp(routes[i].path, pattern) == 0)
			methods |= routes[i].methods;
	size_t n = 0;
	out[0] = '\0';
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		if (methods & M(order[i]))
			n += (size_t)snprintf(out + n, cap - n, "%s, ", http_method_name(order[i]));
	snprintf(out + n, cap - n, "OPTIONS");
}

/* 1 after answering 400 if the query has a parameter the route does not
 * take: a misspelt or unsupported one (?q=, ?sort=) must not be ignored
 * silently. A parameter is its name up to '=' or '&'. */
static int unknown_param(struct app_req *r, const struct route *rt)
{
	const struct http_request *req = r->ex->req;
	const char *q = req->query;
	for (size_t i = 0; q && i < req->query_len;) {
		size_t s = i;
		while (i < req->query_len && q[i] != '&' && q[i] != '=')
			i++;
		size_t n = i - s;
		while (i < req->query_len && q[i] != '&')
			i++;
		i++;
		if (n == 0)
			continue; /* "?" or "a=1&&b=2": nothing named */
		const char *p = rt->params;
		int known = 0;
		while (*p && !known) {
			size_t len = strcspn(p, " ");
			known = len == n && memcmp(p, q + s, n) == 0;
			p += len + (p[len] == ' ');
		}
		if (known)
			continue;
		char name[72], msg[128];
		snprintf(name, sizeof(name), "%.*s", n > 64 ? 64 : (int)n, q + s);
		snprintf(msg, sizeof(msg), "unknown query parameter (this route takes %s)",
			 rt->params[0] ? rt->params : "none");
		reply_field_error(r->ex, name, msg);
		return 1;
	}
	return 0;
}

void app_dispatch(struct app_req *r)
{
	struct http_exchange *ex = r->ex;
	const struct http_request *req = ex->req;
	char allow[64];
	if (req->asterisk) {
		reply_options(ex, "GET, HEAD, POST, PATCH, DELETE, OPTIONS");
		return;
	}
	pthread_once(&compiled_once, compile);
	const char *slash = req->path_len > 1 ? memchr(req->path + 1, '/', req->path_len - 1) : NULL;
	size_t seg1 = slash ? (size_t)(slash - req->path - 1) : req->path_len - 1;
	const uint8_t *cand = candidates[seg1 < SEG1_MAX ? seg1 : SEG1_MAX];
	char c1 = req->path_len > 1 ? req->path[1] : 0;
	for (; *cand; cand++) {
		const struct compiled *k = &compiled[*cand];
		if ((!k->c1 || k->c1 == c1) &&
		    match(*cand, req->path, req->path_len, slash, &r->arg, &r->arg_len))
			break;
	}
	/* the resource's methods: the routes with its pattern, side by side */
	int resource = *cand;
	for (int i = resource; i && i < ROUTE_COUNT && compiled[i].resource == resource; i++) {
		const struct route *rt = &routes[i];
		if (rt->methods & M(req->method)) {
			ex->route = i;
			if (rt->params && req->query && unknown_param(r, rt))
				return;
			rt->handle(r);
			return;
		}
	}
	ex->route = resource; /* a refused method counts for the resource */
	if (!resource) {
		reply_error(ex, 404, "not_found", "no such resource");
		return;
	}
	allow_of(routes[resource].path, allow, sizeof(allow));
	if (req->method == HTTP_OPTIONS)
		reply_options(ex, allow);
	else
		reply_method_not_allowed(ex, allow);
}
