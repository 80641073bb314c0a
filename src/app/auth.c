/*
 * auth: who is calling the API, and what they may do.
 *
 * A request names its key in "Authorization: Bearer KEY" or "X-API-Key:
 * KEY". The key's row is read on every API request through the worker's
 * store reader (which keeps the rows it read while nothing is committed to
 * shortd.db), so a revocation by the API takes effect with the next request,
 * and one by `shortd key revoke` in another process at the latest when the
 * worker's loop turn ends (the reader keeps its snapshot for a turn, well
 * under a millisecond under load). A key already verified by this worker is
 * compared with the one sent instead of hashed again (apikey_verify_memo).
 * Redirects never authenticate.
 *
 * Rules: no key -> anonymous (only POST /api/v1/links accepts it, and only
 * with --allow-anonymous); a key that is malformed, unknown or revoked ->
 * 401; a user key asking for admin rights -> 403; a user key sees only its
 * own links (others answer 404, as if they did not exist).
 */
#include "app_internal.h"

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

int app_authenticate(struct http_exchange *ex, struct app_worker *ws, struct principal *p)
{
	memset(p, 0, sizeof(*p));
	size_t len;
	const char *key = sent_key(ex->req, &len);
	if (!key)
		return 0;
	char id[APIKEY_ID_LEN + 1];
	struct api_key k;
	int rc = STORE_NOTFOUND;
	if (apikey_parse(key, len, id) == 0) {
		if (!ws->reader) {
			reply_store_unavailable(ex);
			return -1;
		}
		rc = store_key_get(&ws->app->store, ws->reader, id, &k);
		if (rc == STORE_ERR) {
			reply_store_unavailable(ex);
			return -1;
		}
	}
	if (rc != STORE_OK || !apikey_verify_memo(ws->keys, &k, key, len)) {
		reply_json(ex, 401,
			   json_pack("{s:{s:s,s:s}}", "error", "code", "invalid_api_key", "message",
				     "the API key is not valid (malformed, unknown or revoked)"),
			   "WWW-Authenticate", challenge_invalid);
		return -1;
	}
	p->id = k.id;
	p->role = k.role;
	return 0;
}

int app_require(struct http_exchange *ex, const struct principal *p, int admin_only)
{
	if (!p->role) {
		reply_json(ex, 401,
			   json_pack("{s:{s:s,s:s}}", "error", "code", "missing_api_key", "message",
				     "this needs an API key: Authorization: Bearer KEY"),
			   "WWW-Authenticate", challenge);
		return -1;
	}
	if (admin_only && p->role != APIKEY_ADMIN) {
		reply_error(ex, 403, "forbidden", "this needs an admin key");
		return -1;
	}
	return 0;
}

int64_t principal_scope(const struct principal *p)
{
	return p->role == APIKEY_ADMIN ? STORE_ANY_OWNER : p->id;
}
