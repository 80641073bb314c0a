/*
 * main: start-up, signals and orderly shutdown of shortd.
 *
 * Start-up: options -> store (migrations) -> cache -> listening sockets ->
 * worker threads. Shutdown on SIGTERM or SIGINT: stop accepting, let
 * in-flight requests finish for up to --drain-s (a second signal cuts this
 * short), close what is left, commit every queued write, close the
 * database, exit 0. Exit codes: 0 clean, 1 run-time failure (cannot listen,
 * cannot open the database), 2 bad options.
 */
#include "app/app.h"
#include "link/blocklist.h"
#include "clicks/geoip.h"
#include "core/log.h"
#include "core/util.h"
#include "version.h"

#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

struct lifecycle {
	uv_loop_t *loop;
	struct app *app;
	uv_signal_t sigterm, sigint, sighup;
	uv_timer_t drain_timer, poll_timer;
	int signals;
};

static void close_all(struct lifecycle *lc)
{
	uv_close((uv_handle_t *)&lc->sigterm, NULL);
	uv_close((uv_handle_t *)&lc->sigint, NULL);
	uv_close((uv_handle_t *)&lc->sighup, NULL);
	uv_close((uv_handle_t *)&lc->drain_timer, NULL);
	uv_close((uv_handle_t *)&lc->poll_timer, NULL);
}

static void on_poll(uv_timer_t *t)
{
	struct lifecycle *lc = t->data;
	if (http_server_running(lc->app->srv) == 0) {
		/* The main server is done: the metrics server can go too. */
		if (lc->app->metrics_srv) {
			http_server_drain(lc->app->metrics_srv);
			http_server_force_close(lc->app->metrics_srv);
			if (http_server_running(lc->app->metrics_srv) > 0)
				return;
		}
		close_all(lc);
	}
}

static void on_drain_timeout(uv_timer_t *t)
{
	struct lifecycle *lc = t->data;
	log_warn("drain time over: closing %ld open connections",
		 http_server_open_conns(lc->app->srv));
	http_server_force_close(lc->app->srv);
}

/* SIGHUP: read --blocklist again; a file that does not load leaves the
 * previous list in force. */
static void on_sighup(uv_signal_t *s, int signum)
{
	(void)signum;
	struct lifecycle *lc = s->data;
	const char *path = lc->app->cfg->blocklist;
	if (!path[0]) {
		log_info("SIGHUP: no --blocklist to reload");
		return;
	}
	struct blocklist *b;
	char err[512];
	if (blocklist_load(path, &b, err, sizeof(err)) != 0) {
		log_error("SIGHUP: %s; the previous blocklist stays in force", err);
		return;
	}
	log_info("SIGHUP: blocklist '%s' reloaded, %zu domains", path, blocklist_size(b));
	blocklist_install(b);
}

static void on_signal(uv_signal_t *s, int signum)
{
	struct lifecycle *lc = s->data;
	if (lc->signals++ == 0) {
		log_info("received signal %d: draining for up to %d s", signum,
			 lc->app->cfg->drain_s);
		http_server_drain(lc->app->srv);
		uv_timer_start(&lc->drain_timer, on_drain_timeout,
			       (uint64_t)lc->app->cfg->drain_s * 1000, 0);
		uv_timer_start(&lc->poll_timer, on_poll, 20, 20);
	} else {
		log_info("received signal %d again: closing now", signum);
		http_server_force_close(lc->app->srv);
	}
}

/* Splits "host:port" or "[v6]:port". host gets the bare address. */
static int parse_listen(const char *s, char *host, size_t cap, int *port)
{
	const char *colon;
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (!rb || rb[1] != ':' || (size_t)(rb - s - 1) >= cap)
			return -1;
		memcpy(host, s + 1, (size_t)(rb - s - 1));
		host[rb - s - 1] = '\0';
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || (size_t)(colon - s) >= cap || colon == s)
			return -1;
		memcpy(host, s, (size_t)(colon - s));
		host[colon - s] = '\0';
	}
	char *end;
	long p = strtol(colon + 1, &end, 10);
	if (*end || end == colon + 1 || p < 1 || p > 65535)
		return -1;
	*port = (int)p;
	return 0;
}

/* On a database without keys, says how to make the first one. */
static void hint_first_key(struct store *s, const struct config *cfg)
{
	struct store_reader *r;
	struct api_key *keys;
	int n = -1;
	if (store_reader_open(s, &r) != STORE_OK)
		return;
	if (store_key_list(s, r, &keys, &n) == STORE_OK)
		free(keys);
	store_reader_close(s, r);
	if (n == 0)
		log_warn("no API keys yet: the API answers 401 until you make the first admin key with "
			 "`./shortd key create --name admin --role admin --data %s` (it prints the key once)",
			 cfg->data_dir);
}

static int serve(const struct config *cfg)
{
	char host[256], err[512];
	int port;
	if (parse_listen(cfg->listen, host, sizeof(host), &port) != 0) {
		fprintf(stderr, "shortd: invalid listen address '%s': expected HOST:PORT or [IPv6]:PORT\n",
			cfg->listen);
		return 2;
	}
	struct app app;
	memset(&app, 0, sizeof(app));
	app.cfg = cfg;
	int v6 = strchr(host, ':') != NULL;
	int wildcard = strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0;
	if (cfg->base_url[0]) {
		snprintf(app.base_url, sizeof(app.base_url), "%s", cfg->base_url);
	} else {
		snprintf(app.base_url, sizeof(app.base_url), v6 && !wildcard ? "http://[%s]:%d" : "http://%s:%d",
			 wildcard ? "localhost" : host, port);
	}
	size_t bl = strlen(app.base_url);
	while (bl > 0 && app.base_url[bl - 1] == '/')
		app.base_url[--bl] = '\0';
	char self_host[300];
	snprintf(self_host, sizeof(self_host), v6 ? "[%s]" : "%s", host);
	const char *why;
	if (url_policy_init(&app.policy, app.base_url, self_host, port, &why) != 0) {
		fprintf(stderr, "shortd: invalid base URL '%s': %s\n", app.base_url, why);
		return 2;
	}
	if (trusted_proxies_parse(cfg->trusted_proxies, &app.proxies, err, sizeof(err)) != 0) {
		fprintf(stderr, "shortd: %s\n", err);
		return 2;
	}
	if (app_cors_parse(cfg->cors_origins, &app.cors) != 0) {
		fprintf(stderr, "shortd: --cors-origins: each origin must be * or scheme://host[:port]\n");
		trusted_proxies_release(&app.proxies);
		return 2;
	}
	if (cfg->blocklist[0]) {
		struct blocklist *b;
		if (blocklist_load(cfg->blocklist, &b, err, sizeof(err)) != 0) {
			fprintf(stderr, "shortd: %s\n", err);
			trusted_proxies_release(&app.proxies);
			app_cors_release(&app.cors);
			return 2;
		}
		log_info("blocklist '%s': %zu domains (SIGHUP reloads it)", cfg->blocklist,
			 blocklist_size(b));
		blocklist_install(b);
	}
	app.limits[APP_LIMIT_IP] = rl_limit_make(cfg->ip_rate, 1, cfg->ip_burst);
	app.limits[APP_LIMIT_NOTFOUND] = rl_limit_make(cfg->notfound_rate, 60, cfg->notfound_rate);
	app.limits[APP_LIMIT_CREATE] = rl_limit_make(cfg->create_rate, 60, cfg->create_burst);
	app.limits[APP_LIMIT_ANON] = rl_limit_make(cfg->anon_create_rate, 60, cfg->anon_create_burst);

	/* Each connection is a descriptor: lift the soft limit to the hard
	 * one (a 1024 default would undercut --max-conns). */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    (rlim_t)cfg->max_conns + 64 > rl.rlim_cur)
		log_warn("open file limit %lu is below --max-conns %d: connections beyond it "
			 "wait in the kernel's queue until a descriptor is free",
			 (unsigned long)rl.rlim_cur, cfg->max_conns);

	int threads = cfg->threads;
	if (threads == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		threads = n > 0 ? (int)n : 1;
	}
	struct geoip *geo = NULL;
	if (cfg->analytics && strcmp(cfg->geoip, "off") != 0) {
		const char *used = cfg->geoip;
		if (strcmp(cfg->geoip, "auto") == 0)
			geo = geoip_open_auto(&used);
		else if (!(geo = geoip_open(cfg->geoip, err, sizeof(err)))) {
			fprintf(stderr, "shortd: %s\n", err);
			trusted_proxies_release(&app.proxies);
			app_cors_release(&app.cors);
			blocklist_install(NULL);
			return 2;
		}
		if (geo)
			log_info("click countries from '%s'", used);
		else
			log_info("no GeoIP database found (--geoip): click countries are 'unknown'");
	}
	int rc = 1;
	if (store_open(&app.store, "sqlite", cfg->data_dir, cfg->commit_batch, err, sizeof(err)) !=
	    STORE_OK) {
		log_error("%s", err);
		geoip_close(geo);
		trusted_proxies_release(&app.proxies);
		app_cors_release(&app.cors);
		blocklist_install(NULL);
		return 1;
	}
	if (cfg->code_map)
		store_map_codes(&app.store);
	app.rl = rl_table_new((size_t)cfg->ratelimit_entries);
	idgen_init(&app.idgen, (unsigned)cfg->node_id, time_now_ms);
	hint_first_key(&app.store, cfg);
	app.cache = cache_new((size_t)cfg->cache_mb << 20, (uint64_t)cfg->cache_ttl_s * 1000,
			      (uint64_t)cfg->negative_ttl_s * 1000);

	app.nworkers = threads;
	app.workers = xcalloc((size_t)threads, sizeof(*app.workers));
	if (cfg->analytics) {
		app.clicks = clicks_new(&app.store, threads, cfg->flush_ms, cfg->merge_s * 1000, geo);
		struct store_reader *r;
		if (store_reader_open(&app.store, &r) != STORE_OK || clicks_start(app.clicks, r) != 0) {
			log_error("unable to start the click aggregator");
			goto out_store;
		}
		store_reader_close(&app.store, r);
	}

	struct http_server_config hc = {
		.host = host,
		.port = port,
		.threads = threads,
		.max_conns = cfg->max_conns,
		.header_timeout_ms = cfg->header_timeout_s * 1000,
		.send_timeout_ms = cfg->send_timeout_s * 1000,
		.keepalive_timeout_ms = cfg->keepalive_timeout_s * 1000,
		.access_log = cfg->access_log,
	};
	struct http_handler handler = app_http_handler;
	handler.app = &app;
	if (http_server_create(&app.srv, &hc, &handler, err, sizeof(err)) != 0) {
		log_error("%s", err);
		goto out_store;
	}
	char mhost[256];
	int mport = 0;
	if (cfg->metrics_listen[0]) {
		if (parse_listen(cfg->metrics_listen, mhost, sizeof(mhost), &mport) != 0) {
			fprintf(stderr, "shortd: invalid metrics listen address '%s'\n", cfg->metrics_listen);
			rc = 2;
			goto out_store;
		}
		struct http_server_config mc = hc;
		mc.host = mhost;
		mc.port = mport;
		mc.threads = 1;
		mc.max_conns = 64;
		mc.access_log = NULL;
		struct http_handler mh = app_metrics_handler;
		mh.app = &app;
		if (http_server_create(&app.metrics_srv, &mc, &mh, err, sizeof(err)) != 0) {
			log_error("metrics: %s", err);
			goto out_store;
		}
	}

	uv_loop_t *loop = uv_default_loop();
	struct lifecycle lc = {.loop = loop, .app = &app};
	uv_signal_init(loop, &lc.sigterm);
	uv_signal_init(loop, &lc.sigint);
	uv_signal_init(loop, &lc.sighup);
	lc.sigterm.data = lc.sigint.data = lc.sighup.data = &lc;
	uv_signal_start(&lc.sigterm, on_signal, SIGTERM);
	uv_signal_start(&lc.sigint, on_signal, SIGINT);
	uv_signal_start(&lc.sighup, on_sighup, SIGHUP);
	uv_timer_init(loop, &lc.drain_timer);
	uv_timer_init(loop, &lc.poll_timer);
	lc.drain_timer.data = lc.poll_timer.data = &lc;

	if (http_server_start(app.srv) != 0 ||
	    (app.metrics_srv && http_server_start(app.metrics_srv) != 0))
		goto out_store;
	log_info("shortd %s listening on http://%s:%d with %d threads, short links at %s/",
		 SHORTD_VERSION, v6 ? self_host : host, port, threads, app.base_url);
	if (app.metrics_srv)
		log_info("metrics on http://%s/metrics", cfg->metrics_listen);

	uv_run(loop, UV_RUN_DEFAULT);
	http_server_free(app.srv);
	if (app.metrics_srv)
		http_server_free(app.metrics_srv);
	rc = 0;
out_store:
	if (app.clicks)
		clicks_stop(app.clicks); /* drains and commits every click */
	store_close(&app.store); /* commits every queued write first */
	clicks_free(app.clicks);
	geoip_close(geo);
	free(app.workers);
	if (app.cache)
		cache_free(app.cache);
	rl_table_free(app.rl);
	blocklist_install(NULL);
	trusted_proxies_release(&app.proxies);
	app_cors_release(&app.cors);
	uv_loop_close(uv_default_loop());
	if (rc == 0)
		log_info("shut down cleanly");
	return rc;
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "--help-markdown") == 0) {
		config_print_markdown(stdout); /* the options table of docs/operations.md */
		return 0;
	}
	if (argc > 1 && strcmp(argv[1], "key") == 0)
		return app_key_command(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "import") == 0)
		return app_import_command(argc - 1, argv + 1);
	int first = 1;
	if (argc > 1 && strcmp(argv[1], "serve") == 0)
		first = 2;
	struct config cfg;
	char err[512];
	switch (config_load(&cfg, argc, argv, first, err, sizeof(err))) {
	case CONFIG_HELP:
		config_print_help(stdout, "shortd");
		config_release(&cfg);
		return 0;
	case CONFIG_VERSION:
		printf("shortd %s\n", SHORTD_VERSION);
		config_release(&cfg);
		return 0;
	case CONFIG_ERR:
		fprintf(stderr, "shortd: %s\n", err);
		config_release(&cfg);
		return 2;
	case CONFIG_OK:
		break;
	}
	enum log_level lvl;
	if (log_level_parse(cfg.log_level, &lvl) == 0)
		log_threshold = lvl;
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	/* JSON is request-path memory: a failed allocation answers 503, except
	 * while jansson parses, where it aborts (util.h, json_alloc). */
	json_set_alloc_funcs(json_alloc, free);
	int rc = serve(&cfg);
	curl_global_cleanup();
	config_release(&cfg);
	return rc;
}
