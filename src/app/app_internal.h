/*
 * app_internal: helpers shared by the handlers of the app layer.
 */
#ifndef SHORTD_APP_INTERNAL_H
#define SHORTD_APP_INTERNAL_H

#include <jansson.h>

#include "app.h"
#include "core/util.h"

/* {"error":{"code":code,"message":msg}} with status. */
void reply_error(struct http_exchange *ex, int status, const char *code, const char *msg);
/* 503 store_unavailable: nothing was stored, the client may retry. */
void reply_store_unavailable(struct http_exchange *ex);
/* A write that was not committed: 507 for STORE_FULL, else 503. */
void reply_write_failed(struct http_exchange *ex, int status);
/* 400 invalid_field, naming the field. */
void reply_field_error(struct http_exchange *ex, const char *field, const char *msg);
/* 405 with Allow. */
void reply_method_not_allowed(struct http_exchange *ex, const char *allow);
/* 204 with Allow, for OPTIONS. */
void reply_options(struct http_exchange *ex, const char *allow);
/* Sends j (the reference is stolen) as the JSON body. extra_header may be
 * NULL, else a "Name" with value extra_value. */
void reply_json(struct http_exchange *ex, int status, json_t *j, const char *extra_header,
		const char *extra_value);
/* Sends b's JSON text (a soft buffer, released here), or the 503 of an
 * answer that could not be built when an allocation for it failed. */
void reply_json_buf(struct http_exchange *ex, int status, struct buf *b,
		    const char *extra_header, const char *extra_value);
/* Appends the API representation of a link to b; with clicks, its
 * all-time counts {humans, bots} as "clicks" and "bot_clicks". */
void link_json(struct buf *b, const struct app *app, const struct link *l, const uint64_t *clicks);

int redirect_handle(struct http_exchange *ex, struct app_worker *ws, const char *code,
		    size_t len);
int links_handle(struct http_exchange *ex, struct app_worker *ws, const char *rest, size_t len);
/* GET /api/v1/links/{code}/stats, for links within scope */
int stats_handle(struct http_exchange *ex, struct app_worker *ws, const char *code, size_t len,
		 int64_t scope);

/* The raw value of name=value in the query (no percent-decoding);
 * returns its length, or -1 when absent. */
long app_query_param(const struct http_request *req, const char *name, const char **val);
/* Counts the answered request by ex->route and status, with its latency. */
void app_observe(struct http_exchange *ex);
/* 1 if the service should get traffic; else 0 with *why. */
int app_ready(const struct app *app, const char **why);
void app_metrics_render(struct app *app, struct buf *out);
void app_reply_metrics(struct http_exchange *ex, struct app *app);
/* Who calls the API (auth.c): a key, or anonymous (role 0, id 0). */
struct principal {
	int64_t id; /* api_keys.id; 0: anonymous */
	int role;   /* enum apikey_role; 0: anonymous */
};
/* 0 with *p (anonymous when no key was sent), or -1 after answering 401 (a
 * malformed, unknown or revoked key) or 503. */
int app_authenticate(struct http_exchange *ex, struct app_worker *ws, struct principal *p);
/* 0 if p holds a key (an admin key, with admin_only); else -1 after
 * answering 401 or 403. */
int app_require(struct http_exchange *ex, const struct principal *p, int admin_only);
/* Whose links p may see and change: STORE_ANY_OWNER (admin) or its own. */
int64_t principal_scope(const struct principal *p);
/* guard.c: client address, per-IP limit, CORS and RateLimit headers for
 * this request; 0 to go on, -1 once answered (429, or a CORS preflight). */
int app_guard(struct http_exchange *ex, struct app_worker *ws);
/* 1 after answering 429 if the client asked for unknown codes too often. */
int app_notfound_blocked(struct http_exchange *ex, struct app_worker *ws);
/* Counts a 404 for the client. */
void app_notfound_count(struct app_worker *ws);
/* The create limit of who (none for admin keys): 0, or -1 after 429. */
int app_create_guard(struct http_exchange *ex, struct app_worker *ws, const struct principal *who);

/* /api/v1/keys[/{id}] (keys_api.c); a key as the API shows it (no secret) */
json_t *app_key_to_json(const struct api_key *k);
int keys_handle(struct http_exchange *ex, struct app_worker *ws, const char *rest, size_t len);

/* The link of code for the API, if scope (an owner, or STORE_ANY_OWNER)
 * may see it: 0 with *out (one reference), or -1 after answering 404
 * (unknown, or another owner's), 410 (deleted) or 503 (store failing). */
int app_find_link(struct http_exchange *ex, struct app_worker *ws, const char *code, size_t len,
		  int64_t scope, struct link **out);
/* store_get through the worker's reader, timed into its metrics. */
int app_store_get(struct app_worker *ws, const char *code, size_t len, struct link **out);
/* All-time human and bot clicks of a link, committed or not; STORE_ERR
 * when they cannot be had (analytics off, store failing). */
int app_click_totals(struct app_worker *ws, int64_t link_id, uint64_t *humans, uint64_t *bots);

#endif
