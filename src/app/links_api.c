/*
 * links_api: /api/v1/links (create, list) and /api/v1/links/{code} (read,
 * change, delete).
 *
 * Writes are asynchronous: the request is validated here, turned into a
 * store_op and submitted; the handler returns HTTP_ASYNC. When the op is
 * committed, on_store_done() runs on the store's writer thread: it updates
 * the cache there, in commit order (two PATCHes of one link can then never
 * leave the older value cached), and posts the reply task to the worker
 * that owns the connection. Nothing is acknowledged before it is committed.
 */
#include "app_internal.h"
#include "core/log.h"
#include "link/blocklist.h"
#include "link/link_input.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LIST_DEFAULT 50
#define LIST_MAX 1000
#define CODE_ATTEMPTS 5
#define IDEM_KEY_MAX 255

struct pending {
	struct store_op op;
	struct http_task task;
	struct http_exchange *ex;
	struct app *app;
	int random_code;
	int attempts;
	char idem_key[IDEM_KEY_MAX + 1]; /* op.idem_key points here */
};

static int idem_replay(struct http_exchange *ex, struct app_worker *ws, int64_t owner,
		       const char *key, const uint8_t body_hash[32]);

int app_random_code(char *code, size_t n)
{
	do {
		if (code_random(code, n) != 0)
			return -1;
	} while (link_code_reserved(code, n));
	return 0;
}

static int content_type_ok(const struct http_request *req)
{
	const struct http_header *h = http_header_get(req, HTTP_H_CONTENT_TYPE);
	if (!h)
		return 1; /* absent: the body must still parse as JSON */
	size_t n = h->value_len;
	const char *semi = memchr(h->value, ';', n);
	if (semi)
		n = (size_t)(semi - h->value);
	while (n && (h->value[n - 1] == ' ' || h->value[n - 1] == '\t'))
		n--;
	return ascii_casecmp_n(h->value, n, "application/json", 16) == 0;
}

/* Parses the body into in (released by the caller in any case); on
 * failure the error reply is written and -1 returned. */
static int parse_input(struct http_exchange *ex, struct app *app, int is_patch,
		       struct link_input *in)
{
	const struct http_request *req = ex->req;
	struct link_input_error err;
	if (!content_type_ok(req)) {
		memset(in, 0, sizeof(*in));
		reply_error(ex, 415, "unsupported_media_type", "Content-Type must be application/json (with curl: -H 'Content-Type: application/json')");
		return -1;
	}
	if (link_input_parse(req->body, req->body_len, is_patch, &app->policy, time_now_ms(), in,
			     &err) == 0) {
		if (!in->url.len)
			return 0;
		/* well-formed, but not a place this service sends people */
		const char *why;
		struct blocklist *bl = blocklist_current();
		int ok = link_target_allowed(in->url.p, bl, app->cfg->deny_private_targets, &why);
		blocklist_unref(bl);
		if (ok == 0)
			return 0;
		char msg[160];
		snprintf(msg, sizeof(msg), "url: %s", why);
		reply_json(ex, 403,
			   json_pack("{s:{s:s,s:s,s:s}}", "error", "code", "target_blocked", "message",
				     msg, "field", "url"),
			   NULL, NULL);
		return -1;
	}
	if (err.field)
		reply_field_error(ex, err.field, err.msg);
	else
		reply_error(ex, 400, "invalid_json", err.msg);
	return -1;
}

/* The link as JSON; with a worker (reads), its all-time click counts. */
static void send_link(struct http_exchange *ex, struct app *app, int status, const struct link *l,
		      struct app_worker *ws)
{
	struct buf b, location;
	buf_init_soft(&b);
	uint64_t clicks[2];
	int counted = ws && app_click_totals(ws, l->id, &clicks[0], &clicks[1]) == STORE_OK;
	link_json(&b, app, l, counted ? clicks : NULL);
	if (status != 201) {
		reply_json_buf(ex, status, &b, NULL, NULL);
		return;
	}
	buf_init_soft(&location);
	buf_puts(&location, app->base_url);
	buf_lit(&location, "/api/v1/links/");
	buf_append(&location, l->code, l->code_len);
	if (location.failed)
		b.failed = 1;
	reply_json_buf(ex, status, &b, "Location", location.p ? location.p : "");
	buf_release(&location);
}

static void pending_free(struct pending *p)
{
	if (p->op.link)
		link_unref(p->op.link);
	if (p->op.result)
		link_unref(p->op.result);
	free(p);
}

/* Writer thread: keep the cache in commit order, then hand over. */
static void on_store_done(struct store_op *op)
{
	struct pending *p = op->ctx;
	if (op->status == STORE_OK && op->result)
		cache_put(p->app->cache, op->result, time_mono_ms());
	http_post(p->ex->worker, &p->task);
}

/* Worker thread: answer the client. */
static void on_reply(struct http_task *t)
{
	struct pending *p = (struct pending *)((char *)t - offsetof(struct pending, task));
	struct http_exchange *ex = p->ex;
	struct app *app = p->app;
	switch (p->op.status) {
	case STORE_OK:
		if (p->op.kind == STORE_OP_DELETE)
			http_respond(ex, 204, NULL, NULL, 0);
		else
			send_link(ex, app, p->op.kind == STORE_OP_INSERT ? 201 : 200, p->op.result, NULL);
		break;
	case STORE_CONFLICT:
		/* A concurrent create with the same Idempotency-Key won: answer
		 * as its retry would be answered. */
		if (p->op.idem_key &&
		    idem_replay(ex, ex->wstate, p->op.link->owner, p->idem_key, p->op.idem_hash) != 0)
			break;
		if (p->random_code && ++p->attempts < CODE_ATTEMPTS) {
			/* A generated code collided: draw another and retry. */
			char code[LINK_CODE_MAX];
			size_t n = (size_t)app->cfg->code_length;
			if (app_random_code(code, n) == 0) {
				struct link *old = p->op.link;
				p->op.link = link_with_code(old, code, n);
				link_unref(old);
				store_submit(&p->app->store, &p->op, on_store_done, p);
				return;
			}
		}
		if (p->random_code)
			reply_error(ex, 503, "code_space_exhausted", "no free code found, try again");
		else
			reply_error(ex, 409, "alias_taken", "this alias is already taken");
		break;
	case STORE_NOTFOUND:
		reply_error(ex, 404, "not_found", "no link with this code");
		break;
	case STORE_GONE:
		reply_error(ex, 410, "gone", "this link was deleted");
		break;
	default:
		reply_write_failed(ex, p->op.status);
		break;
	}
	pending_free(p);
	app_observe(ex);
	http_resume(ex);
}

/* Queues a write of l (its reference passes to the write); HTTP_ASYNC, or
 * HTTP_DONE with 503 when there is no memory for it. */
/* A write of l (its reference passes to the write) by owner scope, or
 * NULL after answering 503 when there is no memory for it. */
static struct pending *pending_new(struct http_exchange *ex, struct app *app,
				   enum store_op_kind k, struct link *l, int64_t scope)
{
	struct pending *p = try_calloc(1, sizeof(*p));
	if (!p) {
		link_unref(l);
		reply_error(ex, 503, "out_of_memory", "out of memory, try again");
		return NULL;
	}
	p->ex = ex;
	p->app = app;
	p->op.kind = k;
	p->op.link = l;
	p->op.owner = scope;
	p->task.run = on_reply;
	return p;
}

static int start_write(struct http_exchange *ex, struct app *app, enum store_op_kind k,
		       struct link *l, unsigned fields, int64_t scope)
{
	struct pending *p = pending_new(ex, app, k, l, scope);
	if (!p)
		return HTTP_DONE;
	p->op.fields = fields;
	store_submit(&p->app->store, &p->op, on_store_done, p);
	return HTTP_ASYNC;
}

/* The Idempotency-Key header: 0 and the key in out ("" if absent), or -1
 * after answering 400. */
static int idem_key_of(struct http_exchange *ex, char out[IDEM_KEY_MAX + 1])
{
	out[0] = '\0';
	const struct http_header *h = http_header_get(ex->req, HTTP_H_IDEMPOTENCY_KEY);
	if (!h)
		return 0;
	int ok = h->value_len >= 1 && h->value_len <= IDEM_KEY_MAX;
	for (size_t i = 0; ok && i < h->value_len; i++)
		ok = h->value[i] > 0x20 && h->value[i] < 0x7f;
	if (!ok) {
		reply_field_error(ex, "Idempotency-Key",
				  "must be 1 to 255 visible ASCII characters (a UUID, say)");
		return -1;
	}
	memcpy(out, h->value, h->value_len);
	out[h->value_len] = '\0';
	return 0;
}

/* A create with an Idempotency-Key already used by owner: 1 after
 * answering with the first result (or 422 if the body differs), 0 if the
 * key is unused, -1 after answering 503. */
static int idem_replay(struct http_exchange *ex, struct app_worker *ws, int64_t owner,
		       const char *key, const uint8_t body_hash[32])
{
	struct link *l = NULL;
	uint8_t hash[32];
	int rc = ws->reader ? store_idem_get(&ws->app->store, ws->reader, owner, key,
					     time_now_ms(), &l, hash)
			    : STORE_ERR;
	if (rc == STORE_NOTFOUND)
		return 0;
	if (rc != STORE_OK) {
		reply_store_unavailable(ex);
		return -1;
	}
	if (memcmp(hash, body_hash, 32) != 0)
		reply_error(ex, 422, "idempotency_key_reused",
			    "this Idempotency-Key was used with a different request body");
	else
		send_link(ex, ws->app, 201, l, NULL);
	link_unref(l);
	return 1;
}

static int create(struct http_exchange *ex, struct app_worker *ws, const struct principal *who)
{
	struct app *app = ws->app;
	char idem[IDEM_KEY_MAX + 1];
	uint8_t body_hash[32];
	if (app_create_guard(ex, ws, who) != 0 || idem_key_of(ex, idem) != 0)
		return HTTP_DONE;
	if (idem[0]) {
		apikey_sha256(ex->req->body, ex->req->body_len, body_hash);
		if (idem_replay(ex, ws, who->id, idem, body_hash) != 0)
			return HTTP_DONE;
	}
	struct link_input in;
	if (parse_input(ex, app, 0, &in) != 0) {
		link_input_release(&in);
		return HTTP_DONE;
	}
	char code[LINK_CODE_MAX];
	size_t code_len;
	if (in.alias) {
		code_len = strlen(in.alias);
		memcpy(code, in.alias, code_len);
	} else {
		code_len = (size_t)app->cfg->code_length;
		if (app_random_code(code, code_len) != 0) {
			link_input_release(&in);
			reply_error(ex, 503, "rng_unavailable", "no randomness available, try again");
			return HTTP_DONE;
		}
	}
	struct link *l = link_new(code, code_len, in.url.p, in.url.len);
	l->id = idgen_next(&app->idgen);
	l->created_at_ms = l->updated_at_ms = time_now_ms();
	l->expires_at_ms = in.expires_at_ms;
	l->redirect = in.has_redirect ? in.redirect : app->cfg->redirect_status;
	l->owner = who->id;
	int random = in.alias == NULL;
	link_input_release(&in);
	struct pending *p = pending_new(ex, app, STORE_OP_INSERT, l, who->id);
	if (!p)
		return HTTP_DONE;
	p->random_code = random;
	if (idem[0]) {
		memcpy(p->idem_key, idem, sizeof(idem));
		p->op.idem_key = p->idem_key;
		memcpy(p->op.idem_hash, body_hash, 32);
	}
	store_submit(&p->app->store, &p->op, on_store_done, p);
	return HTTP_ASYNC;
}

static int patch(struct http_exchange *ex, struct app *app, const char *code, size_t len,
		 int64_t scope)
{
	struct link_input in;
	if (parse_input(ex, app, 1, &in) != 0) {
		link_input_release(&in);
		return HTTP_DONE;
	}
	struct link *l = link_new(code, len, in.url.p ? in.url.p : "", in.url.len);
	l->updated_at_ms = time_now_ms();
	l->expires_at_ms = in.expires_at_ms;
	l->redirect = in.redirect;
	unsigned fields = (in.url.len ? STORE_F_URL : 0u) | (in.has_expires ? STORE_F_EXPIRES : 0u) |
			  (in.has_redirect ? STORE_F_REDIRECT : 0u);
	link_input_release(&in);
	return start_write(ex, app, STORE_OP_UPDATE, l, fields, scope);
}

static int del(struct http_exchange *ex, struct app *app, const char *code, size_t len,
	       int64_t scope)
{
	struct link *l = link_new(code, len, "", 0);
	l->deleted_at_ms = l->updated_at_ms = time_now_ms();
	return start_write(ex, app, STORE_OP_DELETE, l, 0, scope);
}

static int get_one(struct http_exchange *ex, struct app_worker *ws, const char *code, size_t len,
		   int64_t scope)
{
	struct link *l;
	if (app_find_link(ex, ws, code, len, scope, &l) == 0) {
		send_link(ex, ws->app, 200, l, ws);
		link_unref(l);
	}
	return HTTP_DONE;
}

static int list(struct http_exchange *ex, struct app_worker *ws, int64_t scope)
{
	const struct http_request *req = ex->req;
	const char *v;
	long vl;
	int limit = LIST_DEFAULT;
	uint64_t before = 0;
	if ((vl = app_query_param(req, "limit", &v)) >= 0) {
		long n = 0;
		int ok = vl > 0 && vl <= 4;
		for (long i = 0; ok && i < vl; i++) {
			ok = v[i] >= '0' && v[i] <= '9';
			n = n * 10 + (v[i] - '0');
		}
		if (!ok || n < 1 || n > LIST_MAX) {
			reply_field_error(ex, "limit", "must be an integer from 1 to 1000");
			return HTTP_DONE;
		}
		limit = (int)n;
	}
	if ((vl = app_query_param(req, "cursor", &v)) >= 0) {
		if (base62_decode(v, (size_t)vl, &before) != 0 || before == 0 || before > INT64_MAX) {
			reply_field_error(ex, "cursor", "is not a cursor returned by this API");
			return HTTP_DONE;
		}
	}
	struct link **links = NULL;
	int n = 0;
	if (!ws->reader || store_list(&ws->app->store, ws->reader, scope, (int64_t)before,
				      limit + 1, &links, &n) != STORE_OK) {
		reply_store_unavailable(ex);
		return HTTP_DONE;
	}
	struct buf b;
	buf_init_soft(&b);
	buf_lit(&b, "{\"links\":[");
	for (int i = 0; i < n && i < limit; i++) {
		if (i)
			buf_lit(&b, ",");
		link_json(&b, ws->app, links[i], NULL);
	}
	buf_lit(&b, "],\"next_cursor\":");
	if (n > limit) {
		char cur[16];
		size_t cl = base62_encode((uint64_t)links[limit - 1]->id, cur, sizeof(cur));
		buf_put_json_string(&b, cur, cl);
	} else {
		buf_lit(&b, "null");
	}
	buf_lit(&b, "}");
	store_links_free(links, n);
	reply_json_buf(ex, 200, &b, NULL, NULL);
	return HTTP_DONE;
}

int links_handle(struct http_exchange *ex, struct app_worker *ws, const char *rest, size_t len)
{
	enum http_method m = ex->req->method;
	struct app *app = ws->app;
	struct principal who;
	if (len == 0) {
		ex->route = m == HTTP_POST ? ROUTE_LINK_CREATE : ROUTE_LINK_LIST;
		switch (m) {
		case HTTP_GET:
		case HTTP_HEAD:
			if (app_authenticate(ex, ws, &who) || app_require(ex, &who, 0))
				return HTTP_DONE;
			return list(ex, ws, principal_scope(&who));
		case HTTP_POST:
			if (app_authenticate(ex, ws, &who) ||
			    (!app->cfg->allow_anonymous && app_require(ex, &who, 0)))
				return HTTP_DONE;
			return create(ex, ws, &who);
		case HTTP_OPTIONS:
			reply_options(ex, "GET, HEAD, POST, OPTIONS");
			return HTTP_DONE;
		default:
			reply_method_not_allowed(ex, "GET, HEAD, POST, OPTIONS");
			return HTTP_DONE;
		}
	}
	const char *code = rest + 1;
	size_t clen = len - 1;
	const char *slash = memchr(code, '/', clen);
	if (slash && (size_t)(code + clen - slash) == 6 && memcmp(slash, "/stats", 6) == 0 &&
	    link_code_syntax_ok(code, (size_t)(slash - code))) {
		ex->route = ROUTE_LINK_STATS;
		if (m == HTTP_GET || m == HTTP_HEAD) {
			if (app_authenticate(ex, ws, &who) || app_require(ex, &who, 0))
				return HTTP_DONE;
			return stats_handle(ex, ws, code, (size_t)(slash - code), principal_scope(&who));
		}
		if (m == HTTP_OPTIONS)
			reply_options(ex, "GET, HEAD, OPTIONS");
		else
			reply_method_not_allowed(ex, "GET, HEAD, OPTIONS");
		return HTTP_DONE;
	}
	ex->route = m == HTTP_PATCH ? ROUTE_LINK_PATCH : m == HTTP_DELETE ? ROUTE_LINK_DELETE : ROUTE_LINK_GET;
	if (!link_code_syntax_ok(code, clen)) {
		reply_error(ex, 404, "not_found", "no such resource");
		return HTTP_DONE;
	}
	if (m == HTTP_OPTIONS) {
		reply_options(ex, "GET, HEAD, PATCH, DELETE, OPTIONS");
		return HTTP_DONE;
	}
	if (m != HTTP_GET && m != HTTP_HEAD && m != HTTP_PATCH && m != HTTP_DELETE) {
		reply_method_not_allowed(ex, "GET, HEAD, PATCH, DELETE, OPTIONS");
		return HTTP_DONE;
	}
	if (app_authenticate(ex, ws, &who) || app_require(ex, &who, 0))
		return HTTP_DONE;
	int64_t scope = principal_scope(&who);
	switch (m) {
	case HTTP_PATCH:
		return patch(ex, app, code, clen, scope);
	case HTTP_DELETE:
		return del(ex, app, code, clen, scope);
	default:
		return get_one(ex, ws, code, clen, scope);
	}
}
