/*
 * routes: see routes.h. The table below is the whole of shortd's HTTP
 * surface; docs/api.md describes each route.
 *
 * Matching: a pattern is a '/'-separated list of segments, each literal or
 * a parameter ("{code}": link_code_syntax_ok, "{id}": any non-empty
 * segment); the path matches when every segment does. The first route
 * whose pattern matches names the resource; every route with the same
 * pattern is one of its methods. A method it has runs its handler; OPTIONS
 * answers 204 with Allow; any other method, 405 with the same Allow.
 * Named routes precede "/{code}", and their names are reserved words
 * (link_code_reserved), so no alias can shadow them.
 *
 * Cost: a redirect is the last route; the patterns before it are refused
 * at their first bytes (about 25 ns in all, measured with perf on the
 * redirect benchmark, below the noise of scenario 1).
 */
#include "routes.h"
#include "reply.h"
#include "request.h"

#include <string.h>

#define M(m) (1u << (m))
#define GET (M(HTTP_GET) | M(HTTP_HEAD))

static const struct route routes[ROUTE_COUNT] = {
	[ROUTE_OTHER] = {0, NULL, "other", NULL},
	[ROUTE_ROOT] = {GET, "/", "root", service_root},
	[ROUTE_HEALTHZ] = {GET, "/healthz", "healthz", service_healthz},
	[ROUTE_READYZ] = {GET, "/readyz", "readyz", service_readyz},
	[ROUTE_METRICS] = {GET, "/metrics", "metrics", service_metrics},
	[ROUTE_LINK_LIST] = {GET, "/api/v1/links", "link_list", links_list},
	[ROUTE_LINK_CREATE] = {M(HTTP_POST), "/api/v1/links", "link_create", links_create},
	[ROUTE_LINK_GET] = {GET, "/api/v1/links/{code}", "link_get", links_get},
	[ROUTE_LINK_PATCH] = {M(HTTP_PATCH), "/api/v1/links/{code}", "link_patch", links_patch},
	[ROUTE_LINK_DELETE] = {M(HTTP_DELETE), "/api/v1/links/{code}", "link_delete", links_delete},
	[ROUTE_LINK_STATS] = {GET, "/api/v1/links/{code}/stats", "link_stats", stats_get},
	[ROUTE_KEY_LIST] = {GET, "/api/v1/keys", "key_list", keys_list},
	[ROUTE_KEY_CREATE] = {M(HTTP_POST), "/api/v1/keys", "key_create", keys_create},
	[ROUTE_KEY_REVOKE] = {M(HTTP_DELETE), "/api/v1/keys/{id}", "key_revoke", keys_revoke},
	[ROUTE_REDIRECT] = {GET, "/{code}", "redirect", redirect_get},
};

const char *app_route_label(int route)
{
	return route > 0 && route < ROUTE_COUNT ? routes[route].label : "other";
}

/* Whether path matches pattern; a parameter segment's place goes to
 * *arg and *arg_len. */
static int match(const char *pat, const char *path, size_t len, const char **arg, size_t *arg_len)
{
	const char *end = path + len;
	while (*pat) {
		if (*pat != '{') {
			if (path == end || *path != *pat)
				return 0;
			pat++;
			path++;
			continue;
		}
		const char *close = strchr(pat, '}');
		const char *seg_end = memchr(path, '/', (size_t)(end - path));
		if (!seg_end)
			seg_end = end;
		size_t n = (size_t)(seg_end - path);
		if (n == 0 ||
		    (strncmp(pat, "{code}", 6) == 0 && !link_code_syntax_ok(path, n)))
			return 0;
		*arg = path;
		*arg_len = n;
		pat = close + 1;
		path = seg_end;
	}
	return path == end;
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

void app_dispatch(struct app_req *r)
{
	struct http_exchange *ex = r->ex;
	const struct http_request *req = ex->req;
	char allow[64];
	if (req->asterisk) {
		reply_options(ex, "GET, HEAD, POST, PATCH, DELETE, OPTIONS");
		return;
	}
	const char *resource = NULL;
	for (int i = 1; i < ROUTE_COUNT; i++) {
		const struct route *rt = &routes[i];
		if (resource ? strcmp(rt->path, resource) != 0
			     : !match(rt->path, req->path, req->path_len, &r->arg, &r->arg_len))
			continue;
		if (!resource) {
			resource = rt->path;
			ex->route = i; /* a refused method counts for the resource */
		}
		if (rt->methods & M(req->method)) {
			ex->route = i;
			rt->handle(r);
			return;
		}
	}
	if (!resource) {
		reply_error(ex, 404, "not_found", "no such resource");
		return;
	}
	allow_of(resource, allow, sizeof(allow));
	if (req->method == HTTP_OPTIONS)
		reply_options(ex, allow);
	else
		reply_method_not_allowed(ex, allow);
}
