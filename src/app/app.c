/*
 * app: start-up and shutdown of the service (see app.h).
 *
 * app_open() builds in this order, and app_close() undoes in reverse:
 * base URL and target policy, trusted proxies, CORS origins, blocklist,
 * limits, GeoIP, store (migrations), code map, rate-limit table, cache,
 * click pipeline (it reads back what was not merged), HTTP servers (the
 * sockets are bound; the workers start in app_run). A step that fails
 * unwinds what came before it, through app_close(), which frees only what
 * was built.
 *
 * app_run(): signals on the main thread's loop. SIGTERM or SIGINT: stop
 * accepting, let in-flight requests finish for up to --drain-s (a second
 * signal cuts this short), close what is left. SIGHUP: reload the
 * blocklist. Then app_close() commits every queued write and click and
 * closes the database.
 */
#include "app_internal.h"
#include "link/blocklist.h"
#include "core/log.h"
#include "core/util.h"
#include "version.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

/* Splits "host:port" or "[v6]:port". host gets the bare address. */
/* A host name (localhost, a name of this machine) becomes the first
 * address it resolves to, numeric, as the server binds it. 0, or -1. */
static int resolve_listen_host(char *host, size_t cap)
{
	struct in6_addr a6;
	struct in_addr a4;
	if (inet_pton(AF_INET, host, &a4) == 1 || inet_pton(AF_INET6, host, &a6) == 1)
		return 0;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG}, *res;
	if (getaddrinfo(host, NULL, &hints, &res) != 0)
		return -1;
	char text[INET6_ADDRSTRLEN];
	const void *addr = res->ai_family == AF_INET
				   ? (const void *)&((struct sockaddr_in *)(void *)res->ai_addr)->sin_addr
				   : (const void *)&((struct sockaddr_in6 *)(void *)res->ai_addr)->sin6_addr;
	int ok = inet_ntop(res->ai_family, addr, text, sizeof(text)) != NULL;
	freeaddrinfo(res);
	if (!ok)
		return -1;
	snprintf(host, cap, "%s", text);
	return 0;
}

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
	if (*end || end == colon + 1 || p < 1 || p > 65535 || !host[0])
		return -1;
	*port = (int)p;
	return resolve_listen_host(host, cap);
}

/* On a database without keys, says how to make the first one. */
static void hint_first_key(struct store *s, const struct config *cfg)
{
	struct store_reader *r;
	struct store_read rd = {.kind = STORE_READ_KEYS};
	if (store_reader_open(s, NULL, &r) != STORE_OK)
		return;
	int rc = store_read(s, r, &rd);
	store_reader_close(s, r);
	if (rc == STORE_OK && rd.nkeys == 0)
		log_warn("no API keys yet: the API answers 401 until you make the first admin key with "
			 "`./shortd key create --name admin --role admin --data %s` (it prints the key once)",
			 cfg->data_dir);
	store_read_release(&rd);
}

/* Each connection is a descriptor: lift the soft limit to the hard one (a
 * 1024 default would undercut --max-conns). */
static void raise_fd_limit(int max_conns)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    (rlim_t)max_conns + 64 > rl.rlim_cur)
		log_warn("open file limit %lu is below --max-conns %d: connections beyond it "
			 "wait in the kernel's queue until a descriptor is free",
			 (unsigned long)rl.rlim_cur, max_conns);
}

/* What app_open() built so far, so that app_close() frees only that. */
struct app_built {
	int store;
};

struct app_full {
	struct app app;
	struct app_built built;
	char host[256];
	int port;
	char mhost[256]; /* --metrics-listen, when given */
	int mport;
	int lock_fd;     /* the data directory's serve.lock (SQLite), or -1 */
};

/* One server per data directory: an exclusive lock on DIR/serve.lock,
 * held until the process ends (the kernel lets go of it even after a
 * kill -9), the holder's pid written in it for the message of the next
 * one. `shortd key` and `shortd import` do not take it. */
static int lock_data_dir(const char *dir, int *fd_out, char *err, size_t errlen)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/serve.lock", dir);
	if (mkdir_p(dir) != 0) {
		snprintf(err, errlen, "unable to create data directory '%.300s': %s", dir,
			 strerror(errno));
		return -1;
	}
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		snprintf(err, errlen, "unable to create '%.300s': %s", path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		char pid[32] = "";
		ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		close(fd);
		snprintf(err, errlen,
			 "another shortd%s%s%s already serves the data directory '%.300s' (two servers on "
			 "one database would answer from two caches)",
			 pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "", dir);
		return -1;
	}
	char pid[32];
	int len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len)
		log_warn("unable to write the pid into '%s'", path);
	*fd_out = fd;
	return 0;
}

/* Connections from trusted proxies carry many clients: no per-address cap. */
static int peer_is_trusted_proxy(const struct sockaddr_storage *peer, const void *arg)
{
	return trusted_proxy(arg, peer);
}

static int open_http(struct app_full *f, int threads, char *err, size_t errlen, int *status)
{
	struct app *app = &f->app;
	const struct config *cfg = app->cfg;
	struct http_server_config hc = {
		.host = f->host,
		.port = f->port,
		.threads = threads,
		.max_conns = cfg->max_conns,
		.max_conns_per_ip = cfg->max_conns_per_ip,
		.exempt_peer = peer_is_trusted_proxy,
		.exempt_arg = &app->proxies,
		.max_unsent_bytes = (size_t)cfg->max_unsent_mb << 20,
		.header_timeout_ms = cfg->header_timeout_s * 1000,
		.send_timeout_ms = cfg->send_timeout_s * 1000,
		.keepalive_timeout_ms = cfg->keepalive_timeout_s * 1000,
		.access_log = cfg->access_log,
	};
	struct http_handler handler = app_http_handler;
	handler.app = app;
	if (http_server_create(&app->srv, &hc, &handler, err, errlen) != 0)
		return -1;
	(void)status;
	if (!cfg->metrics_listen[0])
		return 0;
	struct http_server_config mc = hc;
	mc.host = f->mhost;
	mc.port = f->mport;
	mc.threads = 1;
	mc.max_conns = 64;
	mc.max_conns_per_ip = 0;
	mc.access_log = NULL;
	struct http_handler mh = app_metrics_handler;
	mh.app = app;
	if (http_server_create(&app->metrics_srv, &mc, &mh, err, errlen) != 0) {
		char what[512];
		snprintf(what, sizeof(what), "metrics: %s", err);
		snprintf(err, errlen, "%s", what);
		return -1;
	}
	return 0;
}

void app_store_config(const struct config *cfg, struct store_config *out)
{
	memset(out, 0, sizeof(*out));
	out->backend = cfg->pg[0] ? "pg" : "sqlite";
	out->data_dir = cfg->data_dir;
	out->commit_batch = cfg->commit_batch;
	out->node_id = cfg->node_id;
	out->pg_url = cfg->pg;
	out->pg_replicas = cfg->pg_replicas;
	out->pg_pool = cfg->pg_pool;
	out->pg_timeout_ms = cfg->pg_timeout_ms;
}

struct app *app_open(const struct config *cfg, int *status)
{
	char err[512] = "";
	struct app_full *f = xcalloc(1, sizeof(*f));
	struct app *app = &f->app;
	app->cfg = cfg;
	f->lock_fd = -1;
	blocklist_slot_init(&app->blocklist);
	ui_init(); /* the web UI's files: hashed names, gzip copies */
	pthread_mutex_init(&app->sse_lock, NULL);
	*status = 2; /* bad options, until the options are all read */
	if (parse_listen(cfg->listen, f->host, sizeof(f->host), &f->port) != 0) {
		snprintf(err, sizeof(err),
			 "invalid listen address '%s': expected HOST:PORT or [IPv6]:PORT, HOST an address "
			 "or a name of this machine", cfg->listen);
		goto fail;
	}
	if (cfg->metrics_listen[0] &&
	    parse_listen(cfg->metrics_listen, f->mhost, sizeof(f->mhost), &f->mport) != 0) {
		snprintf(err, sizeof(err), "invalid metrics listen address '%s'", cfg->metrics_listen);
		goto fail;
	}
	/* Another server where this one would serve is a configuration
	 * error too: found before anything is opened. */
	if (http_listen_free(f->host, f->port, err, sizeof(err)) != 0 ||
	    (cfg->metrics_listen[0] && http_listen_free(f->mhost, f->mport, err, sizeof(err)) != 0))
		goto fail;

	const char *host = f->host;
	int port = f->port;
	int v6 = strchr(host, ':') != NULL;
	int wildcard = strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0;
	if (cfg->base_url[0])
		snprintf(app->base_url, sizeof(app->base_url), "%s", cfg->base_url);
	else
		snprintf(app->base_url, sizeof(app->base_url),
			 v6 && !wildcard ? "http://[%s]:%d" : "http://%s:%d",
			 wildcard ? "localhost" : host, port);
	size_t bl = strlen(app->base_url);
	while (bl > 0 && app->base_url[bl - 1] == '/')
		app->base_url[--bl] = '\0';
	char self_host[300];
	snprintf(self_host, sizeof(self_host), v6 ? "[%s]" : "%s", host);
	const char *why;
	if (url_policy_init(&app->policy, app->base_url, self_host, port, &why) != 0) {
		snprintf(err, sizeof(err), "invalid base URL '%s': %s", app->base_url, why);
		goto fail;
	}
	if (url_policy_lookalikes(&app->policy, cfg->idn_restriction, cfg->lookalike_domains, err,
				  sizeof(err)) != 0)
		goto fail;
	if (trusted_proxies_parse(cfg->trusted_proxies, &app->proxies, err, sizeof(err)) != 0)
		goto fail;
	if (app_cors_parse(cfg->cors_origins, &app->cors) != 0) {
		snprintf(err, sizeof(err),
			 "--cors-origins: each origin must be * or scheme://host[:port]");
		goto fail;
	}
	if (cfg->blocklist[0]) {
		struct blocklist *b;
		if (blocklist_load(cfg->blocklist, &b, err, sizeof(err)) != 0)
			goto fail;
		log_info("blocklist '%s': %zu domains (SIGHUP reloads it)", cfg->blocklist,
			 blocklist_size(b));
		blocklist_install(&app->blocklist, b);
	}
	app->limits[APP_LIMIT_IP] = rl_limit_make(cfg->ip_rate, 1, cfg->ip_burst);
	app->limits[APP_LIMIT_NOTFOUND] = rl_limit_make(cfg->notfound_rate, 60, cfg->notfound_rate);
	/* repayments of a tenth of a 404 each: four budgets a minute */
	app->limits[APP_LIMIT_REPAY] = rl_limit_make(40L * cfg->notfound_rate, 60,
						     40L * cfg->notfound_rate);
	app->limits[APP_LIMIT_CREATE] = rl_limit_make(cfg->create_rate, 60, cfg->create_burst);
	app->limits[APP_LIMIT_ANON] = rl_limit_make(cfg->anon_create_rate, 60, cfg->anon_create_burst);
	if (cfg->analytics && strcmp(cfg->geoip, "off") != 0) {
		const char *used = cfg->geoip;
		if (strcmp(cfg->geoip, "auto") == 0)
			app->geo = geoip_open_auto(&used);
		else if (!(app->geo = geoip_open(cfg->geoip, err, sizeof(err))))
			goto fail;
		if (app->geo)
			log_info("click countries from '%s'", used);
		else
			log_info("no GeoIP database found (--geoip): click countries are 'unknown'");
	}
	/* Last of the checks, so that bad options leave no directory behind. */
	if (!cfg->pg[0] && lock_data_dir(cfg->data_dir, &f->lock_fd, err, sizeof(err)) != 0)
		goto fail;
	raise_fd_limit(cfg->max_conns);
	int threads = cfg->threads;
	if (threads == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		threads = n > 0 ? (int)n : 1;
	}

	*status = 1; /* from here on, failures are the run time's */
	struct store_config sc;
	app_store_config(cfg, &sc);
	if (store_open(&app->store, &sc, err, sizeof(err)) != STORE_OK)
		goto fail;
	f->built.store = 1;
	if (cfg->code_map)
		store_map_codes(&app->store);
	app->rl = rl_table_new((size_t)cfg->ratelimit_entries);
	idgen_init(&app->idgen, (unsigned)cfg->node_id, time_now_ms);
	hint_first_key(&app->store, cfg);
	app->cache = cache_new((size_t)cfg->cache_mb << 20, (uint64_t)cfg->cache_ttl_s * 1000,
			       (uint64_t)cfg->negative_ttl_s * 1000);
	app->nworkers = threads;
	app->workers = xcalloc((size_t)threads, sizeof(*app->workers));
	if (cfg->analytics) {
		app->clicks = clicks_new(&app->store, threads, cfg->flush_ms, cfg->merge_s * 1000,
					 app->geo);
		struct store_reader *r;
		int ok = store_reader_open(&app->store, NULL, &r) == STORE_OK;
		if (ok) {
			ok = clicks_start(app->clicks, r) == 0;
			store_reader_close(&app->store, r);
		}
		if (!ok) {
			snprintf(err, sizeof(err), "unable to start the click aggregator");
			goto fail;
		}
	}
	if (open_http(f, threads, err, sizeof(err), status) != 0)
		goto fail;
	return app;
fail:
	if (*status == 2)
		fprintf(stderr, "shortd: %s\n", err);
	else
		log_error("%s", err);
	app_close(app);
	return NULL;
}

struct lifecycle {
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
	struct app *app = lc->app;
	if (http_server_running(app->srv) > 0)
		return;
	/* The main server is done: the metrics server can go too. */
	if (app->metrics_srv) {
		http_server_drain(app->metrics_srv);
		http_server_force_close(app->metrics_srv);
		if (http_server_running(app->metrics_srv) > 0)
			return;
	}
	close_all(lc);
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
	blocklist_install(&lc->app->blocklist, b);
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

int app_run(struct app *app)
{
	const struct config *cfg = app->cfg;
	struct app_full *f = (struct app_full *)app;
	uv_loop_t *loop = uv_default_loop();
	struct lifecycle lc = {.app = app};
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
	if (http_server_start(app->srv) != 0 ||
	    (app->metrics_srv && http_server_start(app->metrics_srv) != 0)) {
		close_all(&lc);
		uv_run(loop, UV_RUN_DEFAULT);
		return 1;
	}
	int v6 = strchr(f->host, ':') != NULL;
	log_info("shortd %s listening on http://%s%s%s:%d with %d threads, short links at %s/",
		 SHORTD_VERSION, v6 ? "[" : "", f->host, v6 ? "]" : "", f->port, app->nworkers,
		 app->base_url);
	if (app->metrics_srv)
		log_info("metrics on http://%s/metrics", cfg->metrics_listen);
	uv_run(loop, UV_RUN_DEFAULT);
	return 0;
}

void app_close(struct app *app)
{
	struct app_full *f = (struct app_full *)app;
	if (app->srv)
		http_server_free(app->srv); /* joins the workers */
	if (app->metrics_srv)
		http_server_free(app->metrics_srv);
	if (app->clicks)
		clicks_stop(app->clicks); /* drains and commits every click */
	if (f->built.store)
		store_close(&app->store); /* commits every queued write first */
	clicks_free(app->clicks);
	geoip_close(app->geo);
	free(app->workers);
	if (app->cache)
		cache_free(app->cache);
	rl_table_free(app->rl);
	blocklist_slot_release(&app->blocklist);
	pthread_mutex_destroy(&app->sse_lock);
	url_policy_release(&app->policy);
	trusted_proxies_release(&app->proxies);
	app_cors_release(&app->cors);
	uv_loop_close(uv_default_loop());
	if (f->lock_fd >= 0)
		close(f->lock_fd); /* the last: the store is closed */
	free(f);
}
