/*
 * guard: what every request passes before its handler, and the limits a
 * handler asks for on its own.
 *
 *  - the client's address (clientip.h: the peer, or the forwarded client
 *    behind --trusted-proxies), kept in the request for the handler;
 *  - the per-IP limit (--ip-rate, --ip-burst) on every route: over it, 429;
 *  - on /api/: CORS (--cors-origins; preflights answered here) and the
 *    RateLimit-Limit, -Remaining and -Reset headers on every answer;
 *  - the 404 limit (--notfound-rate, per address; IPv6 per /64): a client
 *    that asked for unknown codes too often gets 429 for any code, found or
 *    not, until its budget refills, so that scanning for codes costs a
 *    minute per 30 guesses and learns nothing meanwhile. While blocked,
 *    only the cache is asked: each code not found there counts as one more
 *    unknown code, refused or not (a scan that goes on stays blocked: its
 *    debt grows by two seconds a guess, up to a day), a code found there
 *    costs nothing. Valid traffic pays a debt back:
 *    each live redirect of a client in debt repays a tenth of a 404, at
 *    most four budgets a minute in all (lane 2 caps it), so an address
 *    shared by many people (an office, a carrier's NAT), whose mistyped
 *    codes come with many good ones, keeps a budget that grows with its
 *    traffic, and a scanner with one known code cannot buy more than that;
 *  - the create limit per user key (--create-rate, --create-burst) or, for
 *    anonymous creates, per IP (--anon-create-*); admin keys are not limited.
 * Limits live in one rl_table (ratelimit.h), keyed by limiter and client.
 */
#include "reply.h"
#include "request.h"

#include <stdio.h>
#include <string.h>

static const char *const limiter_names[APP_LIMITERS] = {"ip", "notfound", "create",
							 "anon_create"};

const char *app_limiter_name(int i)
{
	return limiter_names[i];
}

/* The client's key: its per-request limit is lane 0, its 404s lane 1, the
 * repayment of its 404 debt by valid redirects lane 2. */
#define LANE_REQUESTS 0
#define LANE_NOTFOUND 1
#define LANE_REPAY 2
/* A live redirect repays this part of a 404; the repayments of a minute
 * come to at most REPAY_BUDGETS times the 404 budget. */
#define REPAY_SHARE 10
#define REPAY_BUDGETS 4

static uint64_t ip_key(const struct app_req *r, int limiter)
{
	uint8_t b[8];
	size_t n = client_limit_key(&r->client, b);
	return rl_key((unsigned)limiter, b, n);
}

/* RateLimit-* headers for res, replacing any this request already has. */
static void rl_headers(struct app_req *r, const struct rl_result *res)
{
	struct http_exchange *ex = r->ex;
	char v[24];
	ex->extra_len = r->rl_mark;
	fmt_int(v, res->limit);
	http_exchange_header(ex, "RateLimit-Limit", v);
	fmt_int(v, res->remaining);
	http_exchange_header(ex, "RateLimit-Remaining", v);
	fmt_int(v, res->reset_s);
	http_exchange_header(ex, "RateLimit-Reset", v);
}

static void too_many(struct app_req *r, int limiter, const struct rl_result *res)
{
	atomic_fetch_add_explicit(&r->app->limited[limiter], 1, memory_order_relaxed);
	rl_headers(r, res);
	char after[24], msg[160];
	long long wait = res->retry_after_s > 0 ? res->retry_after_s : 1;
	snprintf(after, sizeof(after), "%lld", wait);
	snprintf(msg, sizeof(msg), "too many %s: retry in %lld s",
		 limiter == APP_LIMIT_NOTFOUND ? "unknown codes asked for"
		 : limiter == APP_LIMIT_IP     ? "requests"
					       : "creates",
		 wait);
	reply_json(r->ex, 429,
		   json_pack("{s:{s:s,s:s,s:s}}", "error", "code", "rate_limited", "message", msg,
			     "limit", limiter_names[limiter]),
		   "Retry-After", after);
}

static int origin_allowed(const struct app *app, const struct http_header *o)
{
	if (!o || !app->cors.n)
		return 0;
	for (size_t i = 0; i < app->cors.n; i++) {
		const char *c = app->cors.v[i];
		if (strcmp(c, "*") == 0 || ascii_casecmp_n(o->value, o->value_len, c, strlen(c)) == 0)
			return 1;
	}
	return 0;
}

/* CORS headers of an API request; 1 if it was a preflight, now answered. */
static int cors(struct http_exchange *ex, const struct app *app)
{
	const struct http_request *req = ex->req;
	const struct http_header *o = http_header_get(req, HTTP_H_ORIGIN);
	if (!origin_allowed(app, o))
		return 0;
	char origin[256];
	snprintf(origin, sizeof(origin), "%.*s", (int)o->value_len, o->value);
	if (http_exchange_header(ex, "Access-Control-Allow-Origin", origin) != 0)
		return 0;
	http_exchange_header(ex, "Vary", "Origin");
	if (req->method == HTTP_OPTIONS && http_header_get(req, HTTP_H_AC_REQUEST_METHOD)) {
		http_exchange_header(ex, "Access-Control-Allow-Methods",
				     "GET, HEAD, POST, PATCH, DELETE");
		http_exchange_header(ex, "Access-Control-Allow-Headers",
				     "Authorization, Content-Type, Idempotency-Key, X-API-Key, "
				     "X-Request-Id");
		http_exchange_header(ex, "Access-Control-Max-Age", "600");
		http_respond(ex, 204, NULL, NULL, 0);
		return 1;
	}
	http_exchange_header(ex, "Access-Control-Expose-Headers",
			     "Location, Retry-After, RateLimit-Limit, RateLimit-Remaining, "
			     "RateLimit-Reset, X-Request-Id");
	return 0;
}

int app_guard(struct app_req *r)
{
	struct app *app = r->app;
	struct http_exchange *ex = r->ex;
	const struct http_request *req = ex->req;
	client_addr(&app->proxies, req, &ex->peer, &r->client);
	if (app->proxies.n) { /* the access log names the client, not the proxy */
		ex->client = r->client;
		ex->client_set = 1;
	}
	int api = req->path_len >= 5 && memcmp(req->path, "/api/", 5) == 0;
	if (api && cors(ex, app)) {
		ex->route = ROUTE_OTHER;
		return REQ_ANSWERED;
	}
	r->rl_mark = ex->extra_len;
	r->now_us = (int64_t)(ex->start_ns / 1000);
	const struct rl_limit *ip = &app->limits[APP_LIMIT_IP], *nf = &app->limits[APP_LIMIT_NOTFOUND];
	if (!ip->interval_us && !nf->interval_us)
		return REQ_GO_ON;
	/* both limits of this client in one lookup */
	struct rl_result res;
	int peek = rl_take_and_peek(app->rl, ip, nf, ip_key(r, APP_LIMIT_IP), r->now_us, &res);
	r->notfound_blocked = nf->interval_us && !(peek & RL_PEEK_OK);
	r->notfound_debt = nf->interval_us && (peek & RL_PEEK_DEBT);
	if (!res.allowed) {
		too_many(r, APP_LIMIT_IP, &res);
		return REQ_ANSWERED;
	}
	if (api && ip->interval_us)
		rl_headers(r, &res);
	return REQ_GO_ON;
}

void app_notfound_refuse(struct app_req *r, int found)
{
	struct app *app = r->app;
	const struct rl_limit *lim = &app->limits[APP_LIMIT_NOTFOUND];
	uint64_t key = ip_key(r, APP_LIMIT_IP);
	struct rl_result res;
	if (found) {
		app_notfound_repay(r);
		rl_peek_lane(app->rl, lim, key, LANE_NOTFOUND, r->now_us, &res);
		res.allowed = 0;
	} else {
		/* one more unknown code: refused, and its debt grows, so a
		 * scan that goes on stays blocked (for a day at most) */
		rl_charge_lane(app->rl, lim, key, LANE_NOTFOUND, 86400 * (int64_t)1000000,
			       r->now_us, &res);
	}
	too_many(r, APP_LIMIT_NOTFOUND, &res);
}

void app_notfound_repay(struct app_req *r)
{
	if (!r->notfound_debt)
		return; /* the common case: no debt, no second lookup */
	struct app *app = r->app;
	const struct rl_limit *lim = &app->limits[APP_LIMIT_NOTFOUND];
	rl_repay(app->rl, ip_key(r, APP_LIMIT_IP), LANE_NOTFOUND, lim->interval_us / REPAY_SHARE,
		 &app->limits[APP_LIMIT_REPAY], LANE_REPAY, r->now_us);
}

void app_notfound_count(struct app_req *r)
{
	struct app *app = r->app;
	const struct rl_limit *lim = &app->limits[APP_LIMIT_NOTFOUND];
	struct rl_result res;
	if (lim->interval_us)
		rl_take_lane(app->rl, lim, ip_key(r, APP_LIMIT_IP), LANE_NOTFOUND, r->now_us, &res);
}

int app_create_guard(struct app_req *r)
{
	struct app *app = r->app;
	if (r->who.role == APIKEY_ADMIN)
		return REQ_GO_ON;
	int limiter = r->who.role ? APP_LIMIT_CREATE : APP_LIMIT_ANON;
	const struct rl_limit *lim = &app->limits[limiter];
	if (!lim->interval_us)
		return REQ_GO_ON;
	uint64_t key = r->who.role ? rl_key(APP_LIMIT_CREATE, &r->who.id, sizeof(r->who.id))
				   : ip_key(r, APP_LIMIT_ANON);
	struct rl_result res;
	rl_take(app->rl, lim, key, r->now_us, &res);
	if (!res.allowed) {
		too_many(r, limiter, &res);
		return REQ_ANSWERED;
	}
	rl_headers(r, &res);
	return REQ_GO_ON;
}

int app_cors_parse(const char *list, struct app_cors *out)
{
	out->v = NULL;
	out->n = 0;
	const char *rest = list ? list : "", *p;
	size_t n;
	while ((p = list_next(&rest, &n))) {
		/* an origin: * or scheme://host[:port], no path */
		const char *host = n > 8 && strncmp(p, "https://", 8) == 0  ? p + 8
				   : n > 7 && strncmp(p, "http://", 7) == 0 ? p + 7
									    : NULL;
		int ok = (n == 1 && *p == '*') ||
			 (host && host < p + n && !memchr(host, '/', (size_t)(p + n - host)));
		if (!ok || n >= 256) {
			app_cors_release(out);
			return -1;
		}
		out->v = xrealloc(out->v, (out->n + 1) * sizeof(*out->v));
		out->v[out->n++] = xstrndup(p, n);
	}
	return 0;
}

void app_cors_release(struct app_cors *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->v[i]);
	free(c->v);
	c->v = NULL;
	c->n = 0;
}
