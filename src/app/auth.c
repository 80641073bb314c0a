/*
 * auth: who is calling the API, and what they may do.
 *
 * A request names its key in "Authorization: Bearer KEY" or "X-API-Key:
 * KEY". The key's row is read on every API request through the worker's
 * store reader, like any read (request.h: the request waits, without
 * blocking the worker, when the store answers later), so a revocation by
 * the API takes effect with the next request, and one by `shortd key
 * revoke` in another process at the latest when the worker's loop turn
 * ends (an SQLite reader keeps its snapshot for a turn, well under a
 * millisecond under load; PostgreSQL's replicas lag by their replay). A
 * key already verified by this worker is compared with the one sent
 * instead of hashed again (apikey_verify_memo).
 * Redirects never authenticate.
 *
 * A browser signed in to the web UI sends no key but the session cookie
 * (session_api.c): its token's SHA-256 finds the session and, through it,
 * the key's row, read on every request like a key's, so revoking the key
 * or ending the session is at once. Such a request that changes something
 * (any method but GET, HEAD and OPTIONS) must also carry the header
 * X-Shortd-CSRF: a page of another site can make a browser send the
 * cookie (SameSite aside), but not a custom header without a CORS
 * preflight, which shortd grants only to --cors-origins and never with
 * credentials.
 *
 * Rules: no key -> anonymous (only POST /api/v1/links accepts it, and only
 * with --allow-anonymous); a key that is malformed, unknown or revoked ->
 * 401; a user key asking for admin rights -> 403; a user key sees only its
 * own links (others answer 404, as if they did not exist).
 */
#include "reply.h"
#include "request.h"

#include <string.h>

static const char challenge[] = "Bearer realm=\"shortd\"";
static const char challenge_invalid[] = "Bearer realm=\"shortd\", error=\"invalid_token\"";

/* The key sent with the request, or NULL. */
static const char *sent_key(const struct http_request *req, size_t *len)
{
	const struct http_header *h = http_header_get(req, HTTP_H_AUTHORIZATION);
	if (h) {
		if (h->value_len > 7 && ascii_casecmp_n(h->value, 7, "Bearer ", 7) == 0) {
			const char *v = h->value + 7;
			size_t n = h->value_len - 7;
			while (n && *v == ' ') {
				v++;
				n--;
			}
			*len = n;
			return v;
		}
		*len = h->value_len; /* another scheme: refused as invalid below */
		return h->value;
	}
	h = http_header_get(req, HTTP_H_X_API_KEY);
	if (h) {
		*len = h->value_len;
		return h->value;
	}
	return NULL;
}

const char *app_session_token(const struct http_request *req, size_t *len)
{
	const struct http_header *h = http_header_get(req, HTTP_H_COOKIE);
	static const char name[] = SESSION_COOKIE "=";
	for (size_t i = 0; h && i < h->value_len;) {
		while (i < h->value_len && (h->value[i] == ' ' || h->value[i] == ';'))
			i++;
		size_t s = i;
		while (i < h->value_len && h->value[i] != ';')
			i++;
		if (i - s > sizeof(name) - 1 && memcmp(h->value + s, name, sizeof(name) - 1) == 0) {
			*len = i - s - (sizeof(name) - 1);
			while (*len && h->value[s + sizeof(name) - 1 + *len - 1] == ' ')
				(*len)--;
			return h->value + s + sizeof(name) - 1;
		}
	}
	return NULL;
}

void app_session_cookie(const struct app *app, const char *token, long max_age_s, char *out,
			size_t cap)
{
	int secure = strncmp(app->base_url, "https://", 8) == 0;
	snprintf(out, cap, SESSION_COOKIE "=%s; Path=/; Max-Age=%ld; HttpOnly; SameSite=Strict%s",
		 token ? token : "", token ? max_age_s : 0L, secure ? "; Secure" : "");
}

static int token_shape_ok(const char *t, size_t len)
{
	if (len != SESSION_TOKEN_LEN)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = t[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return 0;
	}
	return 1;
}

/* 401 for a session that ended; the browser forgets its cookie. */
static void session_ended(struct app_req *r)
{
	char cookie[200];
	app_session_cookie(r->app, NULL, 0, cookie, sizeof(cookie));
	reply_json(r->ex, 401,
		   json_pack("{s:{s:s,s:s}}", "error", "code", "invalid_session", "message",
			     "the session has ended (signed out, expired, or its key revoked): "
			     "sign in again"),
		   "Set-Cookie", cookie);
}

static void unauthorized(struct app_req *r)
{
	reply_json(r->ex, 401,
		   json_pack("{s:{s:s,s:s}}", "error", "code", "invalid_api_key", "message",
			     "the API key is not valid (malformed, unknown or revoked)"),
		   "WWW-Authenticate", challenge_invalid);
}

/* The key's row is read: the key sent must hash to it. */
static void key_read(struct app_req *r)
{
	size_t len;
	const char *key = sent_key(r->ex->req, &len);
	if (r->rd.status == STORE_ERR) {
		reply_store_unavailable(r->ex);
		return;
	}
	if (r->rd.status != STORE_OK || !apikey_verify_memo(r->ws->keys, &r->rd.key, key, len)) {
		unauthorized(r);
		return;
	}
	r->who.id = r->rd.key.id;
	r->who.role = r->rd.key.role;
	r->then(r);
}

/* The session's key is read: it must be valid, and the session live. */
static void session_read(struct app_req *r)
{
	const struct http_request *req = r->ex->req;
	if (r->rd.status == STORE_ERR) {
		reply_store_unavailable(r->ex);
		return;
	}
	if (r->rd.status != STORE_OK || r->rd.key.revoked_at_ms ||
	    r->rd.session_expires_ms <= time_now_ms()) {
		session_ended(r);
		return;
	}
	if (req->method != HTTP_GET && req->method != HTTP_HEAD && req->method != HTTP_OPTIONS &&
	    !http_header_get(req, HTTP_H_X_SHORTD_CSRF)) {
		reply_error(r->ex, 403, "csrf_header_missing",
			    "a request signed in by the session cookie that changes something needs "
			    "the header X-Shortd-CSRF: 1");
		return;
	}
	r->who.id = r->rd.key.id;
	r->who.role = r->rd.key.role;
	r->by_session = 1;
	r->then(r);
}

void app_authenticate(struct app_req *r, req_step next)
{
	memset(&r->who, 0, sizeof(r->who));
	r->by_session = 0;
	size_t len;
	const char *key = sent_key(r->ex->req, &len);
	if (!key) {
		const char *token = app_session_token(r->ex->req, &len);
		if (!token) {
			next(r);
			return;
		}
		if (!token_shape_ok(token, len)) {
			session_ended(r);
			return;
		}
		apikey_sha256(token, len, r->session_hash);
		r->rd.kind = STORE_READ_SESSION;
		r->rd.session_hash = r->session_hash;
		r->then = next;
		req_read(r, session_read);
		return;
	}
	if (apikey_parse(key, len, r->key_id) != 0) {
		unauthorized(r);
		return;
	}
	r->rd.kind = STORE_READ_KEY;
	r->rd.key_id = r->key_id;
	r->then = next;
	req_read(r, key_read);
}

int app_require(struct app_req *r, int admin_only)
{
	if (!r->who.role) {
		reply_json(r->ex, 401,
			   json_pack("{s:{s:s,s:s}}", "error", "code", "missing_api_key", "message",
				     "this needs an API key: Authorization: Bearer KEY"),
			   "WWW-Authenticate", challenge);
		return REQ_ANSWERED;
	}
	if (admin_only && r->who.role != APIKEY_ADMIN) {
		reply_error(r->ex, 403, "forbidden", "this needs an admin key");
		return REQ_ANSWERED;
	}
	return REQ_GO_ON;
}

int64_t app_scope(const struct app_req *r)
{
	return r->who.role == APIKEY_ADMIN ? STORE_ANY_OWNER : r->who.id;
}
