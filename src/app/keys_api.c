/*
 * keys_api: /api/v1/keys, admin keys only.
 *
 *   POST   /api/v1/keys        {"name": "...", "role": "admin"|"user"} -> 201,
 *                              the key itself in "key" (shown this once)
 *   GET    /api/v1/keys        every key, newest first (never a secret)
 *   DELETE /api/v1/keys/{id}   revoke: 204; 404 unknown; 410 revoked before
 *
 * Writes go through the store's writer like link writes: the answer is sent
 * from the worker once the write is committed.
 */
#include "app_internal.h"
#include "core/idgen.h"
#include "core/log.h"

#include <stdlib.h>
#include <string.h>

struct key_pending {
	struct store_op op;
	struct http_task task;
	struct http_exchange *ex;
	struct api_key key;
	char secret[APIKEY_LEN + 1]; /* POST: the new key, to show once */
};

json_t *app_key_to_json(const struct api_key *k)
{
	char created[32], revoked[32];
	time_format_rfc3339(k->created_at_ms, created, sizeof(created));
	if (k->revoked_at_ms)
		time_format_rfc3339(k->revoked_at_ms, revoked, sizeof(revoked));
	return json_pack("{s:s,s:s,s:s,s:s,s:o}", "id", k->key_id, "name", k->name, "role",
			 apikey_role_name(k->role), "created_at", created, "revoked_at",
			 k->revoked_at_ms ? json_string(revoked) : json_null());
}

static void on_key_reply(struct http_task *t)
{
	struct key_pending *p = (struct key_pending *)((char *)t - offsetof(struct key_pending, task));
	struct http_exchange *ex = p->ex;
	switch (p->op.status) {
	case STORE_OK:
		if (p->op.kind == STORE_OP_KEY_REVOKE) {
			http_respond(ex, 204, NULL, NULL, 0);
		} else {
			json_t *j = app_key_to_json(&p->key);
			json_object_set_new(j, "key", json_string(p->secret));
			reply_json(ex, 201, j, NULL, NULL);
		}
		break;
	case STORE_NOTFOUND:
		reply_error(ex, 404, "not_found", "no API key with this id");
		break;
	case STORE_GONE:
		reply_error(ex, 410, "gone", "this API key was revoked before");
		break;
	case STORE_CONFLICT:
		reply_error(ex, 503, "key_collision", "a new key collided with another, try again");
		break;
	default:
		reply_write_failed(ex, p->op.status);
		break;
	}
	explicit_bzero(p->secret, sizeof(p->secret));
	free(p);
	app_observe(ex);
	http_resume(ex);
}

static void on_key_done(struct store_op *op)
{
	struct key_pending *p = op->ctx;
	http_post(p->ex->worker, &p->task);
}

static int submit_key_op(struct http_exchange *ex, struct app *app, struct key_pending *p,
			 enum store_op_kind kind)
{
	p->ex = ex;
	p->task.run = on_key_reply;
	p->op.kind = kind;
	p->op.key = &p->key;
	store_submit(&app->store, &p->op, on_key_done, p);
	return HTTP_ASYNC;
}

static int create_key(struct http_exchange *ex, struct app *app)
{
	json_error_t jerr;
	json_t *root = ex->req->body_len ? json_parse(ex->req->body, ex->req->body_len,
						      JSON_REJECT_DUPLICATES, &jerr)
					 : NULL;
	const char *name = NULL, *role = NULL;
	if (!root || json_unpack(root, "{s:s,s:s!}", "name", &name, "role", &role) != 0) {
		json_decref(root);
		reply_error(ex, 400, "invalid_json",
			    "the body must be {\"name\": \"...\", \"role\": \"admin\" or \"user\"}");
		return HTTP_DONE;
	}
	size_t nlen = strlen(name);
	int r = apikey_role_parse(role);
	if (nlen == 0 || nlen > APIKEY_NAME_MAX || !r) {
		json_decref(root);
		if (!r)
			reply_field_error(ex, "role", "must be admin or user");
		else
			reply_field_error(ex, "name", "must be 1 to 64 bytes");
		return HTTP_DONE;
	}
	struct key_pending *p = try_calloc(1, sizeof(*p));
	if (!p) {
		json_decref(root);
		reply_error(ex, 503, "out_of_memory", "out of memory, try again");
		return HTTP_DONE;
	}
	memcpy(p->key.name, name, nlen + 1);
	json_decref(root);
	p->key.role = r;
	p->key.id = idgen_next(&app->idgen);
	p->key.created_at_ms = time_now_ms();
	if (apikey_generate(&p->key, p->secret, sizeof(p->secret)) != 0) {
		free(p);
		reply_error(ex, 503, "rng_unavailable", "no randomness available, try again");
		return HTTP_DONE;
	}
	return submit_key_op(ex, app, p, STORE_OP_KEY_INSERT);
}

static int list_keys(struct http_exchange *ex, struct app_worker *ws)
{
	struct api_key *keys = NULL;
	int n = 0;
	if (!ws->reader || store_key_list(&ws->app->store, ws->reader, &keys, &n) != STORE_OK) {
		reply_store_unavailable(ex);
		return HTTP_DONE;
	}
	json_t *arr = json_array();
	for (int i = 0; i < n; i++)
		json_array_append_new(arr, app_key_to_json(&keys[i]));
	free(keys);
	reply_json(ex, 200, json_pack("{s:o}", "keys", arr), NULL, NULL);
	return HTTP_DONE;
}

static int revoke_key(struct http_exchange *ex, struct app_worker *ws, const char *id, size_t len)
{
	char key_id[APIKEY_ID_LEN + 1];
	struct api_key k;
	int rc = STORE_NOTFOUND;
	if (len == APIKEY_ID_LEN && link_code_syntax_ok(id, len)) {
		memcpy(key_id, id, len);
		key_id[len] = '\0';
		rc = ws->reader ? store_key_get(&ws->app->store, ws->reader, key_id, &k) : STORE_ERR;
	}
	if (rc == STORE_NOTFOUND) {
		reply_error(ex, 404, "not_found", "no API key with this id");
		return HTTP_DONE;
	}
	if (rc != STORE_OK) {
		reply_store_unavailable(ex);
		return HTTP_DONE;
	}
	struct key_pending *p = try_calloc(1, sizeof(*p));
	if (!p) {
		reply_error(ex, 503, "out_of_memory", "out of memory, try again");
		return HTTP_DONE;
	}
	p->key = k;
	p->key.revoked_at_ms = time_now_ms();
	return submit_key_op(ex, ws->app, p, STORE_OP_KEY_REVOKE);
}

int keys_handle(struct http_exchange *ex, struct app_worker *ws, const char *rest, size_t len)
{
	enum http_method m = ex->req->method;
	struct principal who;
	ex->route = ROUTE_KEYS;
	const char *allow = len == 0 ? "GET, HEAD, POST, OPTIONS" : "DELETE, OPTIONS";
	if (m == HTTP_OPTIONS) {
		reply_options(ex, allow);
		return HTTP_DONE;
	}
	int known = len == 0 ? (m == HTTP_GET || m == HTTP_HEAD || m == HTTP_POST)
			     : m == HTTP_DELETE;
	if (!known) {
		reply_method_not_allowed(ex, allow);
		return HTTP_DONE;
	}
	if (app_authenticate(ex, ws, &who) || app_require(ex, &who, 1))
		return HTTP_DONE;
	if (len == 0)
		return m == HTTP_POST ? create_key(ex, ws->app) : list_keys(ex, ws);
	return revoke_key(ex, ws, rest + 1, len - 1);
}
