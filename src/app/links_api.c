/*
 * links_api: /api/v1/links (create, list) and /api/v1/links/{code} (read,
 * change, delete).
 *
 * Every handler first authenticates (a key read: request.h says how a
 * request waits for it). Writes are validated here, turned into a store op
 * and submitted (req_write); the answer is sent once the op is committed,
 * and the cache is updated on the writer thread in commit order before
 * that. Nothing is acknowledged before it is committed.
 */
#include "create.h"
#include "link_json.h"
#include "reply.h"
#include "request.h"
#include "core/log.h"
#include "link/blocklist.h"
#include "link/link_input.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LIST_DEFAULT 50
#define LIST_MAX 1000

static struct create_rules rules_of(struct app *app)
{
	return (struct create_rules){&app->idgen, app->cfg->code_length, app->cfg->redirect_status,
				     app->cfg->forward_query};
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

/* Parses the body into in (released by the caller in any case):
 * REQ_GO_ON, or REQ_ANSWERED after the error reply. */
static int parse_input(struct app_req *r, int is_patch, struct link_input *in)
{
	struct http_exchange *ex = r->ex;
	const struct http_request *req = ex->req;
	struct app *app = r->app;
	struct link_input_error err;
	if (!content_type_ok(req)) {
		memset(in, 0, sizeof(*in));
		reply_error(ex, 415, "unsupported_media_type", "Content-Type must be application/json (with curl: -H 'Content-Type: application/json')");
		return REQ_ANSWERED;
	}
	if (link_input_parse(req->body, req->body_len, is_patch, &app->policy, time_now_ms(), in,
			     &err) == 0) {
		if (!in->url.len)
			return REQ_GO_ON;
		/* well-formed, but not a place this service sends people */
		const char *why;
		struct blocklist *bl = blocklist_current(&app->blocklist);
		int ok = link_target_allowed(in->url.p, bl, app->cfg->deny_private_targets, &why);
		blocklist_unref(bl);
		if (ok == 0)
			return REQ_GO_ON;
		char msg[160];
		snprintf(msg, sizeof(msg), "url: %s", why);
		reply_json(ex, 403,
			   json_pack("{s:{s:s,s:s,s:s}}", "error", "code", "target_blocked", "message",
				     msg, "field", "url"),
			   NULL, NULL);
		return REQ_ANSWERED;
	}
	if (err.field)
		reply_field_error(ex, err.field, err.msg);
	else
		reply_error(ex, 400, "invalid_json", err.msg);
	return REQ_ANSWERED;
}

/* The link as JSON, with its click counts when it has some to show. */
static void send_link(struct app_req *r, int status, const struct link *l, const uint64_t *clicks)
{
	struct app *app = r->app;
	struct buf b, location;
	buf_init_soft(&b);
	link_json(&b, app->base_url, l, clicks);
	if (status != 201) {
		reply_json_buf(r->ex, status, &b, NULL, NULL);
		return;
	}
	buf_init_soft(&location);
	buf_puts(&location, app->base_url);
	buf_lit(&location, "/api/v1/links/");
	buf_append(&location, l->code, l->code_len);
	if (location.failed)
		b.failed = 1;
	reply_json_buf(r->ex, status, &b, "Location", location.p ? location.p : "");
	buf_release(&location);
}

/* ---- finding one link ---------------------------------------------------- */

static void found(struct app_req *r)
{
	struct http_exchange *ex = r->ex;
	int64_t scope = app_scope(r);
	struct link *l = r->rd.link;
	r->rd.link = NULL;
	int rc = r->rd.status;
	if (rc == STORE_OK && scope != STORE_ANY_OWNER && l->owner != scope)
		rc = STORE_NOTFOUND;
	if (rc == STORE_NOTFOUND) {
		reply_error(ex, 404, "not_found", "no link with this code");
	} else if (rc != STORE_OK) {
		reply_store_unavailable(ex);
	} else if (l->deleted_at_ms) {
		reply_error(ex, 410, "gone", "this link was deleted");
	} else {
		r->link = l;
		r->then(r);
		return;
	}
	if (l)
		link_unref(l);
}

void app_find_link(struct app_req *r, req_step then)
{
	r->rd.kind = STORE_READ_LINK;
	r->rd.code = r->arg;
	r->rd.code_len = r->arg_len;
	r->then = then;
	req_read(r, found);
}

/* ---- GET /api/v1/links/{code} ---------------------------------------------- */

static void get_counted(struct app_req *r)
{
	struct clicks_query *q = &r->u.clicks.q;
	uint64_t clicks[2] = {0, 0};
	for (size_t i = 0; q->status == STORE_OK && i < q->rows.n; i++) {
		if (q->rows.rows[i].kind != STORE_CLICK_HOUR)
			continue;
		clicks[0] += q->rows.rows[i].humans;
		clicks[1] += q->rows.rows[i].bots;
	}
	/* analytics off or failing: the link without counts */
	send_link(r, 200, r->link, q->status == STORE_OK ? clicks : NULL);
	free(q->rows.rows);
	link_unref(r->link);
	r->link = NULL;
}

static void get_found(struct app_req *r)
{
	struct clicks_query *q = &r->u.clicks.q;
	q->link_id = r->link->id;
	q->from_hour = 0;
	q->to_hour = INT32_MAX - 1;
	q->want_dims = 0;
	req_clicks(r, get_counted);
}

static void get_authed(struct app_req *r)
{
	if (app_require(r, 0) == REQ_GO_ON)
		app_find_link(r, get_found);
}

void links_get(struct app_req *r)
{
	app_authenticate(r, get_authed);
}

/* ---- GET /api/v1/links ------------------------------------------------------- */

/* A page cursor: the last id of the page in base62, and a check character
 * (the id's hash, base62), so that a made-up or cut cursor is a 400
 * instead of a page that looks empty. */
static char cursor_check(uint64_t id)
{
	return base62_alphabet[hash_bytes(&id, sizeof(id), 0x6375727372) % 62];
}

static size_t cursor_encode(uint64_t id, char *out, size_t cap)
{
	size_t n = base62_encode(id, out, cap - 1);
	out[n] = cursor_check(id);
	return n + 1;
}

static int cursor_decode(const char *s, size_t len, uint64_t *id)
{
	return len >= 2 && base62_decode(s, len - 1, id) == 0 && *id > 0 && *id <= INT64_MAX &&
			       s[len - 1] == cursor_check(*id)
		       ? 0
		       : -1;
}

static int hex_digit(char c)
{
	return c >= '0' && c <= '9' ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
				      : -1;
}

static void list_read(struct app_req *r)
{
	struct store_read *rd = &r->rd;
	int limit = rd->limit - 1;
	if (rd->status != STORE_OK) {
		reply_store_unavailable(r->ex);
		return;
	}
	struct buf b;
	buf_init_soft(&b);
	buf_lit(&b, "{\"links\":[");
	for (int i = 0; i < rd->nlinks && i < limit; i++) {
		if (i)
			buf_lit(&b, ",");
		link_json(&b, r->app->base_url, rd->links[i], NULL);
	}
	buf_lit(&b, "],\"next_cursor\":");
	if (rd->nlinks > limit) {
		char cur[16];
		size_t cl = cursor_encode((uint64_t)rd->links[limit - 1]->id, cur, sizeof(cur));
		buf_put_json_string(&b, cur, cl);
	} else {
		buf_lit(&b, "null");
	}
	buf_lit(&b, "}");
	store_read_release(rd);
	reply_json_buf(r->ex, 200, &b, NULL, NULL);
}

static void list_authed(struct app_req *r)
{
	const struct http_request *req = r->ex->req;
	const char *v;
	long vl;
	int limit = LIST_DEFAULT;
	uint64_t before = 0;
	if (app_require(r, 0) != REQ_GO_ON)
		return;
	if ((vl = app_query_param(req, "limit", &v)) >= 0) {
		long n = 0;
		int ok = vl > 0 && vl <= 4;
		for (long i = 0; ok && i < vl; i++) {
			ok = v[i] >= '0' && v[i] <= '9';
			n = n * 10 + (v[i] - '0');
		}
		if (!ok || n < 1 || n > LIST_MAX) {
			reply_field_error(r->ex, "limit", "must be an integer from 1 to 1000");
			return;
		}
		limit = (int)n;
	}
	if ((vl = app_query_param(req, "cursor", &v)) >= 0) {
		if (cursor_decode(v, (size_t)vl, &before) != 0) {
			reply_field_error(r->ex, "cursor", "is not a cursor returned by this API");
			return;
		}
	}
	r->rd.q = NULL;
	if ((vl = app_query_param(req, "q", &v)) >= 0) {
		/* percent-decoded, ASCII letters in lower case */
		size_t o = 0;
		for (long i = 0; i < vl; i++) {
			int c = (unsigned char)v[i];
			if (c == '%' && i + 2 < vl && hex_digit(v[i + 1]) >= 0 && hex_digit(v[i + 2]) >= 0) {
				c = hex_digit(v[i + 1]) << 4 | hex_digit(v[i + 2]);
				i += 2;
			} else if (c == '+') {
				c = ' ';
			}
			if (c == 0 || o == LINK_SEARCH_MAX) {
				reply_field_error(r->ex, "q", c ? "must be at most 200 bytes" : "must not hold NUL");
				return;
			}
			r->u.q[o++] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
		}
		r->u.q[o] = '\0';
		if (o)
			r->rd.q = r->u.q;
	}
	r->rd.kind = STORE_READ_LINKS;
	r->rd.owner = app_scope(r);
	r->rd.before_id = (int64_t)before;
	r->rd.limit = limit + 1; /* one more says whether a next page exists */
	req_read(r, list_read);
}

void links_list(struct app_req *r)
{
	app_authenticate(r, list_authed);
}

/* ---- writes ---------------------------------------------------------------- */

/* A write of l (its reference passes to the op) by r's scope; the op's
 * other fields are the caller's (cleared, or an Idempotency-Key). */
static void write_link(struct app_req *r, enum store_op_kind kind, struct link *l, unsigned fields,
		       req_step next)
{
	struct store_op *op = &r->u.write.op;
	op->kind = kind;
	op->link = l;
	op->owner = kind == STORE_OP_INSERT ? l->owner : app_scope(r);
	op->fields = fields;
	req_write(r, next);
}

static void write_release(struct app_write *w)
{
	if (w->op.link)
		link_unref(w->op.link);
	if (w->op.result)
		link_unref(w->op.result);
	w->op.link = w->op.result = NULL;
}

/* PATCH and DELETE are committed (or not). */
static void changed(struct app_req *r)
{
	struct app_write *w = &r->u.write;
	switch (w->op.status) {
	case STORE_OK:
		if (w->op.kind == STORE_OP_DELETE)
			http_respond(r->ex, 204, NULL, NULL, 0);
		else
			send_link(r, 200, w->op.result, NULL);
		break;
	case STORE_NOTFOUND:
		reply_error(r->ex, 404, "not_found", "no link with this code");
		break;
	case STORE_GONE:
		reply_error(r->ex, 410, "gone", "this link was deleted");
		break;
	default:
		reply_write_failed(r->ex, w->op.status);
		break;
	}
	write_release(w);
}

static void patch_authed(struct app_req *r)
{
	struct link_input in;
	if (app_require(r, 0) != REQ_GO_ON)
		return;
	if (parse_input(r, 1, &in) != REQ_GO_ON) {
		link_input_release(&in);
		return;
	}
	struct link *l = link_new(r->arg, r->arg_len, in.url.p ? in.url.p : "", in.url.len);
	l->updated_at_ms = time_now_ms();
	l->expires_at_ms = in.expires_at_ms;
	l->redirect = in.redirect;
	l->forward_query = in.forward_query;
	unsigned fields = (in.url.len ? STORE_F_URL : 0u) | (in.has_expires ? STORE_F_EXPIRES : 0u) |
			  (in.has_redirect ? STORE_F_REDIRECT : 0u) |
			  (in.has_forward_query ? STORE_F_FORWARD_QUERY : 0u);
	link_input_release(&in);
	memset(&r->u.write.op, 0, sizeof(r->u.write.op));
	write_link(r, STORE_OP_UPDATE, l, fields, changed);
}

void links_patch(struct app_req *r)
{
	app_authenticate(r, patch_authed);
}

static void delete_authed(struct app_req *r)
{
	if (app_require(r, 0) != REQ_GO_ON)
		return;
	struct link *l = link_new(r->arg, r->arg_len, "", 0);
	l->deleted_at_ms = l->updated_at_ms = time_now_ms();
	memset(&r->u.write.op, 0, sizeof(r->u.write.op));
	write_link(r, STORE_OP_DELETE, l, 0, changed);
}

void links_delete(struct app_req *r)
{
	app_authenticate(r, delete_authed);
}

/* ---- POST /api/v1/links ------------------------------------------------------ */

/* The Idempotency-Key header into w->idem_key ("" if absent):
 * REQ_GO_ON, or REQ_ANSWERED after 400. */
static int idem_key_of(struct app_req *r)
{
	char *out = r->u.write.idem_key;
	out[0] = '\0';
	const struct http_header *h = http_header_get(r->ex->req, HTTP_H_IDEMPOTENCY_KEY);
	if (!h)
		return REQ_GO_ON;
	int ok = h->value_len >= 1 && h->value_len <= IDEM_KEY_MAX;
	for (size_t i = 0; ok && i < h->value_len; i++)
		ok = h->value[i] > 0x20 && h->value[i] < 0x7f;
	if (!ok) {
		reply_field_error(r->ex, "Idempotency-Key",
				  "must be 1 to 255 visible ASCII characters (a UUID, say)");
		return REQ_ANSWERED;
	}
	memcpy(out, h->value, h->value_len);
	out[h->value_len] = '\0';
	return REQ_GO_ON;
}

/* The Idempotency-Key's earlier use is read: answer as the first create
 * was answered (or 422 if the body differs), or, unused, go on with then
 * (r->then). */
static void idem_read(struct app_req *r)
{
	struct store_read *rd = &r->rd;
	struct app_write *w = &r->u.write;
	if (rd->status == STORE_NOTFOUND) {
		r->then(r);
		return;
	}
	if (rd->status != STORE_OK)
		reply_store_unavailable(r->ex);
	else if (memcmp(rd->idem_hash, w->op.idem_hash, 32) != 0)
		reply_error(r->ex, 422, "idempotency_key_reused",
			    "this Idempotency-Key was used with a different request body");
	else
		send_link(r, 201, rd->link, NULL);
	store_read_release(rd);
	write_release(w);
}

static void idem_lookup(struct app_req *r, req_step then)
{
	r->rd.kind = STORE_READ_IDEM;
	r->rd.owner = r->who.id;
	r->rd.idem_key = r->u.write.idem_key;
	r->rd.now_ms = time_now_ms();
	r->then = then;
	req_read(r, idem_read);
}

static void created(struct app_req *r);

/* The alias's row, read after its create conflicted: a deleted link's
 * alias is never given again, and the answer says so. */
static void alias_read(struct app_req *r)
{
	struct store_read *rd = &r->rd;
	int deleted = rd->status == STORE_OK && rd->link && rd->link->deleted_at_ms;
	store_read_release(rd);
	if (deleted)
		reply_error(r->ex, 409, "alias_deleted",
			    "this alias belonged to a link that was deleted: codes are never reused");
	else
		reply_error(r->ex, 409, "alias_taken", "this alias is already taken");
	write_release(&r->u.write);
}

/* A conflict that no earlier use of the Idempotency-Key explains: a
 * generated code collided (draw another), or the alias is taken (by a
 * link, or by one that was deleted: read to tell which). */
static void conflict(struct app_req *r)
{
	struct app_write *w = &r->u.write;
	if (w->random_code) {
		struct create_rules rules = rules_of(r->app);
		if (create_retry(&rules, &w->op, &w->attempts)) {
			req_write(r, created);
			return;
		}
		reply_error(r->ex, 503, "code_space_exhausted", "no free code found, try again");
		write_release(w);
		return;
	}
	r->rd.kind = STORE_READ_LINK;
	r->rd.code = w->op.link->code; /* the op holds the link until write_release */
	r->rd.code_len = w->op.link->code_len;
	r->rd.replica_ok = 0;
	req_read(r, alias_read);
}

static void created(struct app_req *r)
{
	struct app_write *w = &r->u.write;
	switch (w->op.status) {
	case STORE_OK:
		send_link(r, 201, w->op.result, NULL);
		break;
	case STORE_CONFLICT:
		/* A concurrent create with the same Idempotency-Key may have
		 * won: then answer as its retry would be answered. */
		if (w->op.idem_key)
			idem_lookup(r, conflict);
		else
			conflict(r);
		return;
	default:
		reply_write_failed(r->ex, w->op.status);
		break;
	}
	write_release(w);
}

/* No earlier use of the Idempotency-Key (or none sent): parse, then
 * write. */
static void create_write(struct app_req *r)
{
	struct app_write *w = &r->u.write;
	struct link_input in;
	if (parse_input(r, 0, &in) != REQ_GO_ON) {
		link_input_release(&in);
		return;
	}
	struct create_rules rules = rules_of(r->app);
	struct link *l = create_link(&rules, &in, r->who.id, time_now_ms(), &w->random_code);
	link_input_release(&in);
	if (!l) {
		reply_error(r->ex, 503, "rng_unavailable", "no randomness available, try again");
		return;
	}
	write_link(r, STORE_OP_INSERT, l, 0, created);
}

static void create_authed(struct app_req *r)
{
	struct app_write *w = &r->u.write;
	if (!r->app->cfg->allow_anonymous && app_require(r, 0) != REQ_GO_ON)
		return;
	if (app_create_guard(r) != REQ_GO_ON || idem_key_of(r) != REQ_GO_ON)
		return;
	w->random_code = 0;
	w->attempts = 0;
	memset(&w->op, 0, sizeof(w->op));
	if (!w->idem_key[0]) {
		create_write(r);
		return;
	}
	apikey_sha256(r->ex->req->body, r->ex->req->body_len, w->op.idem_hash);
	w->op.idem_key = w->idem_key;
	idem_lookup(r, create_write);
}

void links_create(struct app_req *r)
{
	app_authenticate(r, create_authed);
}
