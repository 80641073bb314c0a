/*
 * app_internal: the state the files of the app layer share, and the
 * steps every request can take.
 *
 * Files (one concern each; dependencies point down this list):
 *   app.c         start-up and shutdown (app_open, app_run, app_close)
 *   worker.c      a worker thread's state, and each request's entry
 *   routes.c      the route table: dispatch, 405 with Allow, OPTIONS,
 *                 metrics labels
 *   redirect.c    GET /{code}, the hot path
 *   links_api.c   /api/v1/links[/{code}]
 *   stats_api.c   /api/v1/links/{code}/stats
 *   keys_api.c    /api/v1/keys[/{id}]
 *   service.c     /, /healthz, /readyz, /metrics
 *   create.c      choosing a new link's code and retrying a collision
 *                 (shared with `shortd import`)
 *   request.c     a request's life: reads and writes it waits for
 *   auth.c        who calls (API keys)
 *   guard.c       limits, client address, CORS
 *   observe.c     request metrics, /metrics, readiness
 *   reply.c       error and JSON answers
 *   link_json.c   a link as the API shows it
 *   clientip.c    the client behind trusted proxies
 */
#ifndef SHORTD_APP_INTERNAL_H
#define SHORTD_APP_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include <uv.h>

#include "app.h"
#include "app/clientip.h"
#include "cache/cache.h"
#include "clicks/clicks.h"
#include "clicks/geoip.h"
#include "core/config.h"
#include "core/idgen.h"
#include "core/metrics.h"
#include "http/http_server.h"
#include "link/blocklist.h"
#include "link/link.h"
#include "ratelimit/ratelimit.h"
#include "routes.h"
#include "store/store.h"

/* The rate limiters (guard.c). */
enum { APP_LIMIT_IP, APP_LIMIT_NOTFOUND, APP_LIMIT_CREATE, APP_LIMIT_ANON, APP_LIMITERS };
/* not a limiter of its own (it refuses nothing): how fast valid redirects
 * may repay a client's 404 debt (guard.c) */
#define APP_LIMIT_REPAY APP_LIMITERS

/* --cors-origins, parsed. */
struct app_cors {
	char **v;
	size_t n;
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

/* Keys with event streams open at once (each key's share is limited). */
#define APP_SSE_KEYS 1024

struct app {
	const struct config *cfg;
	struct store store;
	struct cache *cache;
	struct clicks *clicks;     /* NULL with --analytics 0 */
	struct geoip *geo;         /* NULL without a country database */
	struct idgen idgen;
	struct url_policy policy;
	struct blocklist_slot blocklist; /* --blocklist, reloaded on SIGHUP */
	char base_url[1024];       /* no trailing '/' */
	struct http_server *srv;
	struct http_server *metrics_srv; /* NULL unless --metrics-listen */
	struct rl_table *rl;             /* every limiter's buckets */
	struct rl_limit limits[APP_LIMITERS + 1]; /* and APP_LIMIT_REPAY */
	_Atomic uint64_t limited[APP_LIMITERS]; /* requests refused 429, by limiter */
	struct trusted_proxies proxies;
	struct app_cors cors;
	int nworkers;
	/* One per HTTP worker, allocated before the workers start (so a
	 * scrape never sees a missing one) and freed after they end. */
	struct app_worker *workers;
	/* server-sent event streams (events_api.c): open in all, and per key */
	atomic_int sse_open;
	pthread_mutex_t sse_lock;
	struct app_sse_key {
		int64_t key;
		int n;
	} sse_keys[APP_SSE_KEYS];
};

/* A worker thread's part (worker.c). */
struct app_req;
struct app_worker {
	struct app *app;
	struct app_req *streams;     /* this worker's event streams */
	uv_timer_t sse_timer;        /* their updates and heartbeats */
	int sse_timer_on;
	struct store_reader *reader; /* on this worker's loop; NULL once stopped */
	struct click_ring *clicks;   /* NULL with --analytics 0 */
	struct app_metrics metrics;
	int idx;
	struct apikey_memo keys[APIKEY_MEMO_SLOTS]; /* verified by this worker */
};

/* The handler table of the HTTP workers (worker.c), and of the
 * --metrics-listen server (observe.c: /metrics only). */
extern const struct http_handler app_http_handler;

/* events_api.c: the worker's event streams. */
void events_worker_init(struct app_worker *ws, uv_loop_t *loop);
void events_worker_stop(struct app_worker *ws);
void events_stream_closed(struct http_exchange *ex, void *wstate);
extern const struct http_handler app_metrics_handler;

/* guard.c */
/* --cors-origins: 0, or -1 if an entry is not * or scheme://host[:port]. */
int app_cors_parse(const char *list, struct app_cors *out);
void app_cors_release(struct app_cors *c);
const char *app_limiter_name(int limiter);

/* observe.c */
/* 1 if the service should get traffic; else 0 with *why. */
int app_ready(const struct app *app, const char **why);
/* 200 with the metrics in Prometheus text format 0.0.4. */
void app_reply_metrics(struct http_exchange *ex, struct app *app);

#endif
