/*
 * link_input: see link_input.h.
 */
#include "link_input.h"

#include <stdio.h>
#include <string.h>

static int fail(struct link_input_error *err, const char *field, const char *msg)
{
	err->field = field;
	snprintf(err->msg, sizeof(err->msg), "%s", msg);
	return -1;
}

void link_input_release(struct link_input *in)
{
	json_decref(in->root);
	in->root = NULL;
	buf_release(&in->url);
}

static int parse_field(const char *key, json_t *v, int is_patch, const struct url_policy *pol,
		       int64_t now_ms, int *has_ttl, struct link_input *in,
		       struct link_input_error *err)
{
	const char *why;
	if (strcmp(key, "url") == 0) {
		if (!json_is_string(v))
			return fail(err, "url", "must be a string");
		if (link_url_normalize(json_string_value(v), json_string_length(v), pol, &in->url,
				       &why) != 0)
			return fail(err, "url", why);
	} else if (strcmp(key, "alias") == 0 && !is_patch) {
		if (json_is_null(v))
			return 0;
		if (!json_is_string(v))
			return fail(err, "alias", "must be a string");
		if (link_alias_check(json_string_value(v), json_string_length(v), &why) != 0)
			return fail(err, "alias", why);
		in->alias = json_string_value(v);
	} else if (strcmp(key, "expires_at") == 0) {
		in->has_expires = 1;
		if (json_is_null(v)) {
			in->expires_at_ms = 0;
			return 0;
		}
		if (!json_is_string(v) || time_parse_rfc3339(json_string_value(v), json_string_length(v),
							     &in->expires_at_ms) != 0)
			return fail(err, "expires_at",
				    "must be an RFC 3339 date-time such as 2030-01-31T12:00:00Z, or null");
		if (in->expires_at_ms <= now_ms)
			return fail(err, "expires_at", "must be in the future");
	} else if (strcmp(key, "ttl_s") == 0) {
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > LINK_TTL_MAX_S)
			return fail(err, "ttl_s", "must be an integer number of seconds from 1 to 315360000");
		*has_ttl = 1;
		in->expires_at_ms = now_ms + (int64_t)json_integer_value(v) * 1000;
	} else if (strcmp(key, "redirect") == 0) {
		json_int_t r = json_is_integer(v) ? json_integer_value(v) : 0;
		if (r != 301 && r != 302 && r != 307 && r != 308)
			return fail(err, "redirect", "must be 301, 302, 307 or 308");
		in->has_redirect = 1;
		in->redirect = (int)r;
	} else {
		return fail(err, key,
			    is_patch && (strcmp(key, "alias") == 0 || strcmp(key, "code") == 0)
				    ? "unknown field (a link's code cannot be changed)"
				    : "unknown field");
	}
	return 0;
}

int link_input_parse(const char *body, size_t len, int is_patch, const struct url_policy *pol,
		     int64_t now_ms, struct link_input *in, struct link_input_error *err)
{
	memset(in, 0, sizeof(*in));
	buf_init(&in->url);
	err->field = NULL;
	err->msg[0] = '\0';
	if (len == 0)
		return fail(err, NULL, "request body must be a JSON object");
	json_error_t jerr;
	in->root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	if (!in->root) {
		snprintf(err->msg, sizeof(err->msg), "invalid JSON at line %d column %d: %s",
			 jerr.line, jerr.column, jerr.text);
		return -1;
	}
	if (!json_is_object(in->root))
		return fail(err, NULL, "request body must be a JSON object");
	const char *key;
	json_t *v;
	int has_ttl = 0;
	json_object_foreach(in->root, key, v)
	{
		if (parse_field(key, v, is_patch, pol, now_ms, &has_ttl, in, err) != 0)
			return -1;
	}
	if (has_ttl && in->has_expires)
		return fail(err, "ttl_s", "give expires_at or ttl_s, not both");
	in->has_expires |= has_ttl;
	if (!is_patch && in->url.len == 0)
		return fail(err, "url", "is required");
	if (is_patch && in->url.len == 0 && !in->has_expires && !in->has_redirect)
		return fail(err, NULL, "nothing to change: give url, expires_at, ttl_s or redirect");
	return 0;
}
