/*
 * app: shortd's runtime state and HTTP handlers (router, redirects, the
 * links and stats API, health and metrics). Everything a handler needs
 * hangs off struct app, built once in main and passed explicitly;
 * struct app_worker is the per-thread part.
 */
#ifndef SHORTD_APP_H
#define SHORTD_APP_H

#include "cache/cache.h"
#include "clicks/clicks.h"
#include "core/config.h"
#include "core/idgen.h"
#include "core/metrics.h"
#include "http/http_server.h"
#include "link/link.h"
#include "store/store.h"

/* Routes, as labelled in metrics. */
enum app_route {
	ROUTE_OTHER = 0,
	ROUTE_REDIRECT,
	ROUTE_LINK_CREATE,
	ROUTE_LINK_LIST,
	ROUTE_LINK_GET,
	ROUTE_LINK_PATCH,
	ROUTE_LINK_DELETE,
	ROUTE_LINK_STATS,
	ROUTE_ROOT,
	ROUTE_HEALTHZ,
	ROUTE_READYZ,
	ROUTE_METRICS,
	ROUTE_KEYS,
	ROUTE_COUNT
};

/* Statuses counted one by one; anything else is counted as "other". */
#define APP_STATUSES                                                                       \
	{200, 201, 204, 301, 302, 307, 308, 400, 401, 403, 404, 405, 408, 409, 410, 413,   \
	 415, 422, 429, 431, 500, 501, 503, 505, 507}
#define APP_STATUS_COUNT 26 /* the list above and "other" */

/* Per-worker measurements; written by that worker alone. */
struct app_metrics {
	metric_counter requests[ROUTE_COUNT][APP_STATUS_COUNT];
	struct histogram latency[ROUTE_COUNT];
	struct histogram store_read;
};

struct app {
	const struct config *cfg;
	struct store store;
	struct cache *cache;
	struct clicks *clicks;     /* NULL with --analytics 0 */
	struct idgen idgen;
	struct url_policy policy;
	char base_url[1024];       /* no trailing '/' */
	struct http_server *srv;
	struct http_server *metrics_srv; /* NULL unless --metrics-listen */
	int nworkers;
	/* One per HTTP worker, allocated by main before the workers start
	 * (so a scrape never sees a missing one) and freed after they end. */
	struct app_worker *workers;
};

struct app_worker {
	struct app *app;
	struct store_reader *reader;
	struct click_ring *clicks; /* NULL with --analytics 0 */
	struct app_metrics metrics;
	int idx;
};

/* `shortd key ...` (argv[0] is "key"): the exit status. */
int app_key_command(int argc, char **argv);

/* The handler table for http_server_create(); handler.app must be set. */
extern const struct http_handler app_http_handler;
/* The handler of the --metrics-listen server: /metrics only. */
extern const struct http_handler app_metrics_handler;

#endif
