/*
 * observe: request accounting, GET /metrics (Prometheus text format 0.0.4)
 * and the readiness answer.
 *
 * Each worker counts its own requests by route and status and its own
 * latencies; a scrape sums them with the cache's, the store's, the click
 * pipeline's and the HTTP server's counters. Nothing on the request path
 * takes a lock for this.
 */
#include "request.h"
#include "version.h"

#include <string.h>
#include <uv.h>

static const int statuses[] = APP_STATUSES;

static int status_index(int status)
{
	for (int i = 0; i < APP_STATUS_COUNT - 1; i++)
		if (statuses[i] == status)
			return i;
	return APP_STATUS_COUNT - 1;
}

void app_observe(struct app_req *r)
{
	struct http_exchange *ex = r->ex;
	struct app_worker *ws = r->ws;
	int route = ex->route >= 0 && ex->route < ROUTE_COUNT ? ex->route : ROUTE_OTHER;
	metric_add(&ws->metrics.requests[route][status_index(http_exchange_status(ex))], 1);
	hist_observe(&ws->metrics.latency[route], uv_hrtime() - ex->start_ns);
}

int app_ready(const struct app *app, const char **why)
{
	if (http_server_draining(app->srv)) {
		*why = "shutting down";
		return 0;
	}
	static __thread char reason[256];
	if (!store_ready((struct store *)&app->store, reason, sizeof(reason))) {
		*why = reason;
		return 0;
	}
	return 1;
}

static void counter(struct buf *o, const char *name, const char *help, uint64_t v)
{
	metrics_family(o, name, "counter", help);
	metrics_sample(o, name, NULL, v);
}

static void gauge(struct buf *o, const char *name, const char *help, uint64_t v)
{
	metrics_family(o, name, "gauge", help);
	metrics_sample(o, name, NULL, v);
}

static void metrics_render(struct app *app, struct buf *o)
{
	char labels[256];
	metrics_family(o, "shortd_build_info", "gauge", "Version of this shortd.");
	metrics_sample(o, "shortd_build_info", "version=\"" SHORTD_VERSION "\"", 1);

	/* requests and latencies, summed over workers */
	metrics_family(o, "shortd_http_requests_total", "counter",
		       "Requests answered by a handler, by route and status.");
	for (int r = 0; r < ROUTE_COUNT; r++) {
		for (int s = 0; s < APP_STATUS_COUNT; s++) {
			uint64_t n = 0;
			for (int w = 0; w < app->nworkers; w++)
				n += metric_read(&app->workers[w].metrics.requests[r][s]);
			if (!n)
				continue;
			if (s == APP_STATUS_COUNT - 1)
				snprintf(labels, sizeof(labels), "route=\"%s\",status=\"other\"",
					 app_route_label(r));
			else
				snprintf(labels, sizeof(labels), "route=\"%s\",status=\"%d\"", app_route_label(r),
					 statuses[s]);
			metrics_sample(o, "shortd_http_requests_total", labels, n);
		}
	}
	metrics_family(o, "shortd_http_request_duration_seconds", "histogram",
		       "Time from a complete request to its response, by route.");
	for (int r = 0; r < ROUTE_COUNT; r++) {
		struct hist_sum h;
		memset(&h, 0, sizeof(h));
		for (int w = 0; w < app->nworkers; w++)
			hist_sum_add(&h, &app->workers[w].metrics.latency[r]);
		if (!h.count)
			continue;
		snprintf(labels, sizeof(labels), "route=\"%s\"", app_route_label(r));
		metrics_histogram(o, "shortd_http_request_duration_seconds", labels, &h, 0);
	}

	struct http_stats hs;
	http_server_stats(app->srv, &hs);
	static const int own[] = HTTP_OWN_STATUSES;
	metrics_family(o, "shortd_http_protocol_errors_total", "counter",
		       "Requests refused by the HTTP layer itself (malformed, too large, timed out, "
		       "over the connection cap), by status.");
	for (int i = 0; i < HTTP_OWN_STATUS_COUNT; i++) {
		snprintf(labels, sizeof(labels), "status=\"%d\"", own[i]);
		metrics_sample(o, "shortd_http_protocol_errors_total", labels, hs.own_errors[i]);
	}
	counter(o, "shortd_http_connections_accepted_total", "Connections accepted.", hs.accepted);
	gauge(o, "shortd_http_connections_open", "Connections open now.", hs.open);
	metrics_family(o, "shortd_http_connections_refused_total", "counter",
		       "Connections answered 503 at once, by limit (total: --max-conns, "
		       "per_address: --max-conns-per-ip).");
	metrics_sample(o, "shortd_http_connections_refused_total", "limit=\"total\"",
		       hs.refused_total);
	metrics_sample(o, "shortd_http_connections_refused_total", "limit=\"per_address\"",
		       hs.refused_per_ip);
	gauge(o, "shortd_http_client_addresses", "Client addresses (IPv6: /64s) with connections "
	      "open, trusted proxies aside.", hs.peer_addresses);
	gauge(o, "shortd_http_unsent_bytes",
	      "Answer bytes held for clients that have not read them yet.", hs.unsent_bytes);
	counter(o, "shortd_http_slow_readers_closed_total",
		"Connections closed because their unread answers would go over --max-unsent-mb.",
		hs.slow_closed);
	counter(o, "shortd_access_log_dropped_total",
		"Access log lines dropped because the log could not keep up.", hs.access_log_dropped);
	gauge(o, "shortd_draining", "1 while shutting down.", (uint64_t)http_server_draining(app->srv));
	gauge(o, "shortd_sse_streams_open", "Live click streams (GET .../events) open now.",
	      (uint64_t)atomic_load(&app->sse_open));

	metrics_family(o, "shortd_rate_limited_total", "counter",
		       "Requests answered 429, by limiter (ip, notfound, create, anon_create).");
	for (int i = 0; i < APP_LIMITERS; i++) {
		char lim[48];
		snprintf(lim, sizeof(lim), "limiter=\"%s\"", app_limiter_name(i));
		metrics_sample(o, "shortd_rate_limited_total", lim,
			       atomic_load_explicit(&app->limited[i], memory_order_relaxed));
	}
	if (app->rl)
		gauge(o, "shortd_rate_limit_clients", "Clients the rate limiters hold a debt for.",
		      rl_table_used(app->rl, (int64_t)(time_mono_ns() / 1000)));

	struct cache_stats cs;
	cache_get_stats(app->cache, &cs);
	counter(o, "shortd_cache_hits_total", "Redirect lookups answered by the cache.", cs.hits);
	counter(o, "shortd_cache_negative_hits_total",
		"Lookups answered by a cached 'no such code'.", cs.negative_hits);
	counter(o, "shortd_cache_misses_total", "Lookups not answered by the cache.", cs.misses);
	counter(o, "shortd_cache_loads_total", "Store reads made for cache misses.", cs.loads);
	counter(o, "shortd_cache_waits_total",
		"Misses that waited for another thread's read of the same code.", cs.waits);
	counter(o, "shortd_cache_evictions_total", "Entries evicted to stay within the size.",
		cs.evictions);
	counter(o, "shortd_cache_expirations_total", "Entries dropped after their TTL.",
		cs.expirations);
	gauge(o, "shortd_cache_entries", "Entries in the cache.", cs.entries);
	gauge(o, "shortd_cache_bytes", "Bytes held by the cache.", cs.bytes);
	gauge(o, "shortd_cache_max_bytes", "Size limit of the cache.", cs.max_bytes);

	struct hist_sum rd;
	memset(&rd, 0, sizeof(rd));
	for (int w = 0; w < app->nworkers; w++)
		hist_sum_add(&rd, &app->workers[w].metrics.store_read);
	metrics_family(o, "shortd_store_read_duration_seconds", "histogram",
		       "Time from the start of a store read (a cache miss, a key, a list, ...) to its answer.");
	metrics_histogram(o, "shortd_store_read_duration_seconds", NULL, &rd, 0);
	struct store_stats ss;
	store_get_stats(&app->store, &ss);
	metrics_family(o, "shortd_store_commit_duration_seconds", "histogram",
		       "Time of a write transaction, fsync included.");
	metrics_histogram(o, "shortd_store_commit_duration_seconds", NULL, &ss.commit_latency, 0);
	metrics_family(o, "shortd_store_commit_batch_size", "histogram",
		       "Writes committed per transaction (group commit).");
	metrics_histogram(o, "shortd_store_commit_batch_size", NULL, &ss.batch_size, 1);
	counter(o, "shortd_store_commits_total", "Transactions committed.", ss.commits);
	counter(o, "shortd_store_commit_errors_total", "Transactions that failed.", ss.commit_errors);
	char why[256];
	gauge(o, "shortd_store_writable", "1 if the store takes writes of links and keys.",
	      (uint64_t)store_ready(&app->store, why, sizeof(why)));
	if (ss.nservers) {
		static const struct {
			const char *name, *type, *help;
		} fam[] = {
			{"shortd_pg_queries_total", "counter",
			 "Statements and write batches sent to each PostgreSQL server."},
			{"shortd_pg_errors_total", "counter",
			 "Those that failed (an error, a lost connection, no answer in time)."},
			{"shortd_pg_replica_fallbacks_total", "counter",
			 "Reads a replica did not answer with a row, asked again of the primary."},
			{"shortd_pg_connections", "gauge", "Connections open to each server."},
			{"shortd_pg_breaker_state", "gauge",
			 "Each server's circuit breaker: 0 closed, 1 open (left alone), 2 half-open."},
		};
		for (size_t f = 0; f < sizeof(fam) / sizeof(fam[0]); f++) {
			metrics_family(o, fam[f].name, fam[f].type, fam[f].help);
			for (int i = 0; i < ss.nservers; i++) {
				const struct store_server_stats *v = &ss.servers[i];
				uint64_t x = f == 0 ? v->queries : f == 1 ? v->errors
					     : f == 2 ? v->fallbacks : f == 3 ? v->conns
									 : (uint64_t)v->breaker;
				snprintf(labels, sizeof(labels), "server=\"%s\",role=\"%s\"", v->name,
					 v->role);
				metrics_sample(o, fam[f].name, labels, x);
			}
		}
		metrics_family(o, "shortd_pg_duration_seconds", "histogram",
			       "Time of each read and write batch on each PostgreSQL server.");
		for (int i = 0; i < ss.nservers; i++) {
			snprintf(labels, sizeof(labels), "server=\"%s\",role=\"%s\"", ss.servers[i].name,
				 ss.servers[i].role);
			metrics_histogram(o, "shortd_pg_duration_seconds", labels, &ss.servers[i].latency, 0);
		}
	}
	gauge(o, "shortd_code_map_links", "Links in the code map (--code-map).", ss.map_entries);
	gauge(o, "shortd_code_map_bytes", "Memory of the code map's table.", ss.map_bytes);
	counter(o, "shortd_code_map_builds_total", "Tables of the code map built.", ss.map_builds);
	counter(o, "shortd_code_map_found_total",
		"Cache misses whose row the code map found (one B-tree read).", ss.map_found);
	counter(o, "shortd_code_map_missed_total",
		"Cache misses the code map did not answer (the code index was read).",
		ss.map_missed);

	struct clicks_stats ks;
	memset(&ks, 0, sizeof(ks));
	if (app->clicks)
		clicks_get_stats(app->clicks, &ks);
	counter(o, "shortd_clicks_recorded_total", "Clicks recorded by redirects.", ks.recorded);
	counter(o, "shortd_clicks_dropped_total",
		"Clicks dropped because a worker's click buffer was full.", ks.dropped);
	counter(o, "shortd_clicks_flushed_total", "Clicks committed to the store (as deltas).",
		ks.flushed);
	gauge(o, "shortd_clicks_pending", "Clicks counted but not committed yet.", ks.pending);
	counter(o, "shortd_click_flushes_total", "Click deltas committed.", ks.flushes);
	counter(o, "shortd_click_flush_errors_total", "Click deltas that failed (and are retried).",
		ks.flush_errors);
	counter(o, "shortd_click_merges_total", "Merges of deltas into the per-link tables.",
		ks.merges);
	counter(o, "shortd_click_merge_errors_total", "Merges that failed (and are retried).",
		ks.merge_errors);
	gauge(o, "shortd_click_unmerged_counters", "Counters held in memory until the next merge.",
	      ks.unmerged_counters);
}

void app_reply_metrics(struct http_exchange *ex, struct app *app)
{
	struct buf o;
	buf_init(&o);
	metrics_render(app, &o);
	http_respond_start(ex, 200);
	http_respond_finish(ex, "text/plain; version=0.0.4; charset=utf-8", o.p, o.len);
	buf_release(&o);
}

/* --metrics-listen: a one-thread server answering /metrics only. */
static void *metrics_worker_init(void *app, struct http_worker *w, int idx)
{
	(void)w;
	(void)idx;
	return app;
}

static int metrics_handle(struct http_exchange *ex, void *wstate)
{
	struct app *app = wstate;
	const struct http_request *req = ex->req;
	if (req->path_len == 8 && memcmp(req->path, "/metrics", 8) == 0 &&
	    (req->method == HTTP_GET || req->method == HTTP_HEAD)) {
		app_reply_metrics(ex, app);
	} else {
		static const char body[] = "{\"error\":{\"code\":\"not_found\",\"message\":\"only /metrics is served here\"}}\n";
		http_respond(ex, 404, "application/json", body, sizeof(body) - 1);
	}
	return HTTP_DONE;
}

const struct http_handler app_metrics_handler = {
	.worker_init = metrics_worker_init,
	.handle = metrics_handle,
};
