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
#include "app/clientip.h"
#include "link/link.h"
#include "ratelimit/ratelimit.h"
#include "store/store.h"

#include <stdatomic.h>

/* The rate limiters (guard.c). */
enum { APP_LIMIT_IP, APP_LIMIT_NOTFOUND, APP_LIMIT_CREATE, APP_LIMIT_ANON, APP_LIMITERS };

/* --cors-origins, parsed. */
struct app_cors {
	char **v;
	size_t n;
};

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
	struct rl_table *rl;             /* every limiter's buckets */
	struct rl_limit limits[APP_LIMITERS];
	_Atomic uint64_t limited[APP_LIMITERS]; /* requests refused 429, by limiter */
	struct trusted_proxies proxies;
	struct app_cors cors;
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
	/* The request being handled now, synchronously (set by app_guard):
	 * its client, and where its RateLimit headers start in ex->extra. */
	struct sockaddr_storage client;
	uint16_t rl_mark;
	int notfound_blocked; /* over the 404 budget: every code answers 429 */
	int64_t now_us;       /* the request's monotonic time, for the limiters */
	struct apikey_memo keys[APIKEY_MEMO_SLOTS]; /* verified by this worker */
};

/* --cors-origins: 0, or -1 if an entry is not * or scheme://host[:port]. */
int app_cors_parse(const char *list, struct app_cors *out);
void app_cors_release(struct app_cors *c);
const char *app_limiter_name(int limiter);
/* A random code of n characters that is not a reserved word (a route like
 * /healthz), for a create or an import: 0, or -1 without randomness. */
int app_random_code(char *code, size_t n);

/* `shortd key ...` (argv[0] is "key"): the exit status. */
int app_key_command(int argc, char **argv);
/* `shortd import FILE ...` (argv[0] is "import"): the exit status. */
int app_import_command(int argc, char **argv);

/* The handler table for http_server_create(); handler.app must be set. */
extern const struct http_handler app_http_handler;
/* The handler of the --metrics-listen server: /metrics only. */
extern const struct http_handler app_metrics_handler;

#endif
