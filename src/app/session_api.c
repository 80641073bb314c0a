/*
 * session_api: signing in to the web UI with an API key.
 *
 *   POST   /api/v1/session   {"key": "shortd_..."} -> 201 with the key's
 *                            id, name, role and the session's expiry, and
 *                            Set-Cookie: shortd_session=TOKEN; Path=/;
 *                            Max-Age=--session-ttl-s; HttpOnly;
 *                            SameSite=Strict (; Secure with an https
 *                            --base-url)
 *   DELETE /api/v1/session   -> 204, the session ended, the cookie cleared
 *
 * The token is 32 random bytes (base64url); the store keeps only its
 * SHA-256, with the key's row and the expiry, so a copy of the database
 * opens no session. Both need X-Shortd-CSRF (auth.c says why), and the
 * sign-in a JSON body, so that another site cannot sign a browser in with
 * a key of its own either. The key is checked as for any API request, and
 * every later request reads it again through the session (auth.c), so
 * revoking the key ends its sessions at once.
 */
#include "reply.h"
#include "request.h"

#include <string.h>
#include <sys/random.h>

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* 32 random bytes as 43 base64url characters (no padding): 0, or -1. */
static int new_token(char out[SESSION_TOKEN_LEN + 1])
{
	unsigned char b[33] = {0};
	if (getrandom(b, 32, 0) != 32)
		return -1;
	size_t o = 0;
	for (size_t i = 0; i < 33; i += 3) {
		uint32_t v = (uint32_t)b[i] << 16 | (uint32_t)b[i + 1] << 8 | b[i + 2];
		for (int k = 3; k >= 0 && o < SESSION_TOKEN_LEN; k--)
			out[o++] = b64url[(v >> (6 * k)) & 63];
	}
	out[SESSION_TOKEN_LEN] = '\0';
	explicit_bzero(b, sizeof(b));
	return 0;
}

static int csrf_ok(struct app_req *r)
{
	if (http_header_get(r->ex->req, HTTP_H_X_SHORTD_CSRF))
		return 1;
	reply_error(r->ex, 403, "csrf_header_missing",
		    "signing in and out needs the header X-Shortd-CSRF: 1");
	return 0;
}

/* The session is stored (or not). */
static void created(struct app_req *r)
{
	struct app_write *w = &r->u.write;
	if (w->op.status != STORE_OK) {
		explicit_bzero(w->token, sizeof(w->token));
		reply_write_failed(r->ex, w->op.status);
		return;
	}
	char cookie[200], expires[32];
	app_session_cookie(r->app, w->token, r->app->cfg->session_ttl_s, cookie, sizeof(cookie));
	explicit_bzero(w->token, sizeof(w->token));
	time_format_rfc3339(w->session.expires_at_ms, expires, sizeof(expires));
	json_t *j = json_pack("{s:s,s:s,s:s,s:s}", "key_id", w->key.key_id, "name", w->key.name,
			      "role", apikey_role_name(w->key.role), "expires_at", expires);
	reply_json(r->ex, 201, j, "Set-Cookie", cookie);
	explicit_bzero(cookie, sizeof(cookie));
}

/* The key's row is read: the key in the body must hash to it. */
static void key_read(struct app_req *r)
{
	struct app_write *w = &r->u.write;
	if (r->rd.status == STORE_ERR) {
		explicit_bzero(w->secret, sizeof(w->secret));
		reply_store_unavailable(r->ex);
		return;
	}
	int ok = r->rd.status == STORE_OK &&
		 apikey_verify_memo(r->ws->keys, &r->rd.key, w->secret, strlen(w->secret));
	explicit_bzero(w->secret, sizeof(w->secret));
	if (!ok) {
		reply_error(r->ex, 401, "invalid_api_key",
			    "the API key is not valid (malformed, unknown or revoked)");
		return;
	}
	w->key = r->rd.key;
	if (new_token(w->token) != 0) {
		reply_error(r->ex, 503, "rng_unavailable", "no randomness available, try again");
		return;
	}
	memset(&w->session, 0, sizeof(w->session));
	apikey_sha256(w->token, SESSION_TOKEN_LEN, w->session.hash);
	w->session.key_row = w->key.id;
	w->session.created_at_ms = time_now_ms();
	w->session.expires_at_ms = w->session.created_at_ms + r->app->cfg->session_ttl_s * 1000LL;
	memset(&w->op, 0, sizeof(w->op));
	w->op.kind = STORE_OP_SESSION_INSERT;
	w->op.session = &w->session;
	req_write(r, created);
}

void session_create(struct app_req *r)
{
	struct http_exchange *ex = r->ex;
	struct app_write *w = &r->u.write;
	const struct http_header *ct = http_header_get(ex->req, HTTP_H_CONTENT_TYPE);
	if (!ct || ct->value_len < 16 || ascii_casecmp_n(ct->value, 16, "application/json", 16) != 0) {
		reply_error(ex, 415, "unsupported_media_type", "Content-Type must be application/json");
		return;
	}
	if (!csrf_ok(r))
		return;
	json_error_t jerr;
	json_t *root = ex->req->body_len ? json_parse(ex->req->body, ex->req->body_len,
						      JSON_REJECT_DUPLICATES, &jerr)
					 : NULL;
	const char *key = NULL;
	if (!root || json_unpack(root, "{s:s!}", "key", &key) != 0) {
		json_decref(root);
		reply_error(ex, 400, "invalid_json", "the body must be {\"key\": \"shortd_...\"}");
		return;
	}
	size_t len = strlen(key);
	if (len > APIKEY_LEN || apikey_parse(key, len, r->key_id) != 0) {
		json_decref(root);
		reply_error(ex, 401, "invalid_api_key",
			    "the API key is not valid (malformed, unknown or revoked)");
		return;
	}
	memcpy(w->secret, key, len + 1);
	json_decref(root);
	r->rd.kind = STORE_READ_KEY;
	r->rd.key_id = r->key_id;
	req_read(r, key_read);
}

/* Who the session is: the key it acts for (read by app_authenticate). */
static void get_authed(struct app_req *r)
{
	if (!r->by_session) {
		reply_error(r->ex, 401, "no_session", "not signed in");
		return;
	}
	char expires[32];
	time_format_rfc3339(r->rd.session_expires_ms, expires, sizeof(expires));
	reply_json(r->ex, 200,
		   json_pack("{s:s,s:s,s:s,s:s}", "key_id", r->rd.key.key_id, "name", r->rd.key.name,
			     "role", apikey_role_name(r->rd.key.role), "expires_at", expires),
		   NULL, NULL);
}

void session_get(struct app_req *r)
{
	app_authenticate(r, get_authed);
}

static void deleted(struct app_req *r)
{
	int status = r->u.write.op.status;
	if (status != STORE_OK && status != STORE_NOTFOUND) {
		reply_write_failed(r->ex, status);
		return;
	}
	char cookie[200];
	app_session_cookie(r->app, NULL, 0, cookie, sizeof(cookie));
	http_respond_start(r->ex, 204);
	http_respond_header(r->ex, "Set-Cookie", cookie, strlen(cookie));
	http_respond_finish(r->ex, NULL, NULL, 0);
}

static void delete_authed(struct app_req *r)
{
	struct app_write *w = &r->u.write;
	if (!r->by_session) {
		reply_error(r->ex, 401, "no_session", "no session to end: sign in first");
		return;
	}
	memset(&w->session, 0, sizeof(w->session));
	memcpy(w->session.hash, r->session_hash, sizeof(w->session.hash));
	memset(&w->op, 0, sizeof(w->op));
	w->op.kind = STORE_OP_SESSION_DELETE;
	w->op.session = &w->session;
	req_write(r, deleted);
}

void session_delete(struct app_req *r)
{
	app_authenticate(r, delete_authed);
}
