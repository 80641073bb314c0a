/*
 * keys_api: /api/v1/keys, admin keys only.
 *
 *   POST   /api/v1/keys        {"name": "...", "role": "admin"|"user"} -> 201,
 *                              the key itself in "key" (shown this once)
 *   GET    /api/v1/keys        every key, newest first (never a secret)
 *   DELETE /api/v1/keys/{id}   revoke: 204; 404 unknown; 410 revoked before
 *
 * Writes go through the store's writer like link writes (req_write): the
 * answer is sent from the worker once the write is committed. A new key's
 * secret stays in the request's memory only until it is answered.
 */
#include "reply.h"
#include "request.h"
#include "core/idgen.h"
#include "core/log.h"

#include <stdlib.h>
#include <string.h>

static json_t *key_json(const struct api_key *k)
{
	char created[32], revoked[32];
	time_format_rfc3339(k->created_at_ms, created, sizeof(created));
	if (k->revoked_at_ms)
		time_format_rfc3339(k->revoked_at_ms, revoked, sizeof(revoked));
	return json_pack("{s:s,s:s,s:s,s:s,s:o}", "id", k->key_id, "name", k->name, "role",
			 apikey_role_name(k->role), "created_at", created, "revoked_at",
			 k->revoked_at_ms ? json_string(revoked) : json_null());
}

/* A key op is committed (or not). */
static void key_written(struct app_req *r)
{
	struct app_write *w = &r->u.write;
	struct http_exchange *ex = r->ex;
	switch (w->op.status) {
	case STORE_OK:
		if (w->op.kind == STORE_OP_KEY_REVOKE) {
			http_respond(ex, 204, NULL, NULL, 0);
		} else {
			json_t *j = key_json(&w->key);
			json_object_set_new(j, "key", json_string(w->secret));
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
		reply_write_failed(ex, w->op.status);
		break;
	}
	explicit_bzero(w->secret, sizeof(w->secret));
}

static void write_key(struct app_req *r, enum store_op_kind kind)
{
	struct app_write *w = &r->u.write;
	memset(&w->op, 0, sizeof(w->op));
	w->op.kind = kind;
	w->op.key = &w->key;
	req_write(r, key_written);
}

static void create_authed(struct app_req *r)
{
	struct http_exchange *ex = r->ex;
	struct app_write *w = &r->u.write;
	if (app_require(r, 1) != REQ_GO_ON)
		return;
	json_error_t jerr;
	json_t *root = ex->req->body_len ? json_parse(ex->req->body, ex->req->body_len,
						      JSON_REJECT_DUPLICATES, &jerr)
					 : NULL;
	const char *name = NULL, *role = NULL;
	if (!root || json_unpack(root, "{s:s,s:s!}", "name", &name, "role", &role) != 0) {
		json_decref(root);
		reply_error(ex, 400, "invalid_json",
			    "the body must be {\"name\": \"...\", \"role\": \"admin\" or \"user\"}");
		return;
	}
	size_t nlen = strlen(name);
	int role_id = apikey_role_parse(role);
	if (nlen == 0 || nlen > APIKEY_NAME_MAX || !text_printable(name, nlen) || !role_id) {
		json_decref(root);
		if (!role_id)
			reply_field_error(ex, "role", "must be admin or user");
		else
			reply_field_error(ex, "name", APIKEY_NAME_RULE);
		return;
	}
	memset(&w->key, 0, sizeof(w->key));
	memcpy(w->key.name, name, nlen + 1);
	json_decref(root);
	w->key.role = role_id;
	w->key.id = idgen_next(&r->app->idgen);
	w->key.created_at_ms = time_now_ms();
	if (apikey_generate(&w->key, w->secret, sizeof(w->secret)) != 0) {
		reply_error(ex, 503, "rng_unavailable", "no randomness available, try again");
		return;
	}
	write_key(r, STORE_OP_KEY_INSERT);
}

void keys_create(struct app_req *r)
{
	app_authenticate(r, create_authed);
}

static void listed(struct app_req *r)
{
	struct store_read *rd = &r->rd;
	if (rd->status != STORE_OK) {
		reply_store_unavailable(r->ex);
		return;
	}
	json_t *arr = json_array();
	for (int i = 0; i < rd->nkeys; i++)
		json_array_append_new(arr, key_json(&rd->keys[i]));
	store_read_release(rd);
	reply_json(r->ex, 200, json_pack("{s:o}", "keys", arr), NULL, NULL);
}

static void list_authed(struct app_req *r)
{
	if (app_require(r, 1) != REQ_GO_ON)
		return;
	r->rd.kind = STORE_READ_KEYS;
	req_read(r, listed);
}

void keys_list(struct app_req *r)
{
	app_authenticate(r, list_authed);
}

static void revoke_found(struct app_req *r)
{
	if (r->rd.status == STORE_NOTFOUND) {
		reply_error(r->ex, 404, "not_found", "no API key with this id");
		return;
	}
	if (r->rd.status != STORE_OK) {
		reply_store_unavailable(r->ex);
		return;
	}
	r->u.write.key = r->rd.key;
	r->u.write.key.revoked_at_ms = time_now_ms();
	write_key(r, STORE_OP_KEY_REVOKE);
}

static void revoke_authed(struct app_req *r)
{
	if (app_require(r, 1) != REQ_GO_ON)
		return;
	if (r->arg_len != APIKEY_ID_LEN || !link_code_syntax_ok(r->arg, r->arg_len)) {
		reply_error(r->ex, 404, "not_found", "no API key with this id");
		return;
	}
	memcpy(r->key_id, r->arg, r->arg_len);
	r->key_id[r->arg_len] = '\0';
	r->rd.kind = STORE_READ_KEY;
	r->rd.key_id = r->key_id;
	req_read(r, revoke_found);
}

void keys_revoke(struct app_req *r)
{
	app_authenticate(r, revoke_authed);
}
