/*
 * routes: the one route table. Each route is a method set, a path pattern
 * and a handler; dispatch, the 405 answer with its Allow header, OPTIONS
 * and the route labels of the metrics all come from it (routes.c).
 */
#ifndef SHORTD_ROUTES_H
#define SHORTD_ROUTES_H

struct app_req;
struct http_request;

/* A route's id: its place in the table, and its metrics label. */
enum app_route {
	ROUTE_OTHER = 0, /* no route: refused before or by dispatch */
	ROUTE_ROOT,
	ROUTE_STATIC,
	ROUTE_API_INDEX,
	ROUTE_HEALTHZ,
	ROUTE_READYZ,
	ROUTE_METRICS,
	ROUTE_LINK_LIST,
	ROUTE_LINK_CREATE,
	ROUTE_LINK_GET,
	ROUTE_LINK_PATCH,
	ROUTE_LINK_DELETE,
	ROUTE_LINK_STATS,
	ROUTE_LINK_QR,
	ROUTE_LINK_EVENTS,
	ROUTE_SESSION_CREATE,
	ROUTE_SESSION_GET,
	ROUTE_SESSION_DELETE,
	ROUTE_KEY_LIST,
	ROUTE_KEY_CREATE,
	ROUTE_KEY_REVOKE,
	ROUTE_REDIRECT,
	ROUTE_COUNT
};

/* A handler: answers r now, or starts what it waits for (request.h). */
typedef void (*route_handler)(struct app_req *r);

struct route {
	unsigned methods; /* 1u << enum http_method; GET serves HEAD too */
	/* Literal segments, and "{code}" (a link code: link_code_syntax_ok)
	 * or "{id}" (any segment): the request's r->arg. Routes are tried in
	 * table order, so named paths come before "/{code}". */
	const char *path;
	const char *label;
	route_handler handle;
	/* The query parameters it takes, space-separated ("" none): any other
	 * is a 400 naming it. NULL: any query (pages, and the redirect, whose
	 * query may go on to the target). */
	const char *params;
};

/* Finds r's route and runs its handler, or answers 404, 405 (with Allow)
 * or OPTIONS (204 with Allow) itself. */
void app_dispatch(struct app_req *r);
/* The metrics label of a route id. */
const char *app_route_label(int route);

/* The handlers, by file. */
void redirect_get(struct app_req *r);
void links_list(struct app_req *r);
void links_create(struct app_req *r);
void links_get(struct app_req *r);
void links_patch(struct app_req *r);
void links_delete(struct app_req *r);
void stats_get(struct app_req *r);
void qr_get(struct app_req *r);
void events_get(struct app_req *r);
void session_create(struct app_req *r);
void session_get(struct app_req *r);
void service_api_index(struct app_req *r);
/* ui.c: the web UI's page and files. */
void ui_init(void);
int ui_wants_page(const struct http_request *req);
void ui_page(struct app_req *r);
void ui_static(struct app_req *r);
void session_delete(struct app_req *r);
void keys_list(struct app_req *r);
void keys_create(struct app_req *r);
void keys_revoke(struct app_req *r);
void service_root(struct app_req *r);
void service_healthz(struct app_req *r);
void service_readyz(struct app_req *r);
void service_metrics(struct app_req *r);

#endif
