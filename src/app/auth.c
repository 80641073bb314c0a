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

void app_authenticate(struct app_req *r, req_step next)
{
	memset(&r->who, 0, sizeof(r->who));
	size_t len;
	const char *key = sent_key(r->ex->req, &len);
	if (!key) {
		next(r);
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
