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

/* A field's value, from jansson or from read_flat(). */
enum value_type { V_STRING, V_INTEGER, V_NULL, V_TRUE, V_FALSE, V_OTHER };
struct value {
	enum value_type type;
	const char *s; /* V_STRING: not NUL-terminated, may hold NULs */
	size_t len;
	int64_t i; /* V_INTEGER */
};

static int key_is(const char *key, size_t len, const char *name)
{
	return strlen(name) == len && memcmp(key, name, len) == 0;
}

/* key is NUL-terminated when it comes from jansson; read_flat()'s keys
 * are not, but a body they came from is parsed again by jansson whenever a
 * field is refused, so err->field never points at one. */
static int parse_field(const char *key, size_t key_len, const struct value *v, int is_patch,
		       const struct url_policy *pol, int64_t now_ms, int *has_ttl,
		       struct link_input *in, struct link_input_error *err)
{
	const char *why;
	if (key_is(key, key_len, "url")) {
		if (v->type != V_STRING)
			return fail(err, "url", "must be a string");
		if (link_url_normalize(v->s, v->len, pol, &in->url, &why) != 0)
			return fail(err, "url", why);
	} else if (key_is(key, key_len, "alias") && !is_patch) {
		if (v->type == V_NULL)
			return 0;
		if (v->type != V_STRING)
			return fail(err, "alias", "must be a string");
		if (link_alias_check(v->s, v->len, &why) != 0)
			return fail(err, "alias", why);
		memcpy(in->alias_buf, v->s, v->len); /* at most LINK_CODE_MAX */
		in->alias_buf[v->len] = '\0';
		in->alias = in->alias_buf;
	} else if (key_is(key, key_len, "expires_at")) {
		in->has_expires = 1;
		if (v->type == V_NULL) {
			in->expires_at_ms = 0;
			return 0;
		}
		if (v->type != V_STRING || time_parse_rfc3339(v->s, v->len, &in->expires_at_ms) != 0)
			return fail(err, "expires_at",
				    "must be an RFC 3339 date-time such as 2030-01-31T12:00:00Z, or null");
		if (in->expires_at_ms <= now_ms)
			return fail(err, "expires_at", "must be in the future");
	} else if (key_is(key, key_len, "ttl_s")) {
		if (v->type != V_INTEGER || v->i < 1 || v->i > LINK_TTL_MAX_S)
			return fail(err, "ttl_s", "must be an integer number of seconds from 1 to 315360000");
		*has_ttl = 1;
		in->expires_at_ms = now_ms + v->i * 1000;
	} else if (key_is(key, key_len, "redirect")) {
		int64_t r = v->type == V_INTEGER ? v->i : 0;
		if (r != 301 && r != 302 && r != 307 && r != 308)
			return fail(err, "redirect", "must be 301, 302, 307 or 308");
		in->has_redirect = 1;
		in->redirect = (int)r;
	} else if (key_is(key, key_len, "forward_query")) {
		if (v->type != V_TRUE && v->type != V_FALSE)
			return fail(err, "forward_query", "must be true or false");
		in->has_forward_query = 1;
		in->forward_query = v->type == V_TRUE;
	} else {
		return fail(err, key,
			    is_patch && (key_is(key, key_len, "alias") || key_is(key, key_len, "code"))
				    ? "unknown field (a link's code cannot be changed)"
				    : "unknown field");
	}
	return 0;
}

int link_input_always_jansson;

/* The common body, a flat object such as {"url":"https://example.com/"},
 * read without building a jansson tree (json_loadb and the tree's release
 * were 6% of a create's worker time). Only what is certainly valid JSON
 * with one meaning is read here: string keys and values of printable
 * ASCII without escapes, integers without sign, fraction or exponent and
 * of at most 18 digits, true, false, null; at most FLAT_MAX fields, no key
 * twice. Anything else (an escape, UTF-8, a nested value, a syntax error)
 * returns -1, and jansson reads the body, as it reads all bodies with
 * link_input_always_jansson set (the fuzzer fuzz_json_body compares the
 * two ways). */
#define FLAT_MAX 8
struct flat_field {
	const char *key;
	size_t key_len;
	struct value v;
};

static const char *skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* A plain string at p (the opening quote): its bytes, and the byte after
 * the closing quote, or NULL. */
static const char *flat_string(const char *p, const char *end, const char **s, size_t *len)
{
	const char *q = ++p;
	while (q < end && *q != '"') {
		unsigned char c = (unsigned char)*q;
		if (c < 0x20 || c >= 0x80 || c == '\\')
			return NULL;
		q++;
	}
	if (q == end)
		return NULL;
	*s = p;
	*len = (size_t)(q - p);
	return q + 1;
}

static int read_flat(const char *p, size_t len, struct flat_field *f, int *nf)
{
	const char *end = p + len;
	int n = 0;
	p = skip_ws(p, end);
	if (p == end || *p++ != '{')
		return -1;
	p = skip_ws(p, end);
	if (p < end && *p == '}') {
		p++;
		goto close;
	}
	for (;;) {
		if (n == FLAT_MAX || p == end || *p != '"' ||
		    !(p = flat_string(p, end, &f[n].key, &f[n].key_len)))
			return -1;
		for (int i = 0; i < n; i++)
			if (f[i].key_len == f[n].key_len && memcmp(f[i].key, f[n].key, f[n].key_len) == 0)
				return -1;
		p = skip_ws(p, end);
		if (p == end || *p++ != ':')
			return -1;
		p = skip_ws(p, end);
		struct value *v = &f[n].v;
		if (p == end)
			return -1;
		if (*p == '"') {
			v->type = V_STRING;
			if (!(p = flat_string(p, end, &v->s, &v->len)))
				return -1;
		} else if (*p >= '0' && *p <= '9') {
			const char *digits = p;
			while (p < end && *p >= '0' && *p <= '9')
				p++;
			if (p - digits > 18 || (*digits == '0' && p - digits > 1))
				return -1; /* too big for this reader, or "01" */
			v->type = V_INTEGER;
			v->i = 0;
			for (const char *d = digits; d < p; d++)
				v->i = v->i * 10 + (*d - '0');
		} else if (end - p >= 4 && memcmp(p, "null", 4) == 0) {
			v->type = V_NULL;
			p += 4;
		} else if (end - p >= 4 && memcmp(p, "true", 4) == 0) {
			v->type = V_TRUE;
			p += 4;
		} else if (end - p >= 5 && memcmp(p, "false", 5) == 0) {
			v->type = V_FALSE;
			p += 5;
		} else {
			return -1;
		}
		n++;
		p = skip_ws(p, end);
		if (p == end)
			return -1;
		if (*p == '}') {
			p++;
			break;
		}
		if (*p++ != ',')
			return -1;
		p = skip_ws(p, end);
	}
close:
	if (skip_ws(p, end) != end)
		return -1;
	*nf = n;
	return 0;
}

/* What is left to check once every field was read. */
static int check_whole(int is_patch, int has_ttl, struct link_input *in,
		       struct link_input_error *err)
{
	if (has_ttl && in->has_expires)
		return fail(err, "ttl_s", "give expires_at or ttl_s, not both");
	in->has_expires |= has_ttl;
	if (!is_patch && in->url.len == 0)
		return fail(err, "url", "is required");
	if (is_patch && in->url.len == 0 && !in->has_expires && !in->has_redirect &&
	    !in->has_forward_query)
		return fail(err, NULL,
			    "nothing to change: give url, expires_at, ttl_s, redirect or forward_query");
	return 0;
}

static void input_init(struct link_input *in, struct link_input_error *err)
{
	memset(in, 0, sizeof(*in));
	buf_init(&in->url);
	err->field = NULL;
	err->msg[0] = '\0';
}

int link_input_parse(const char *body, size_t len, int is_patch, const struct url_policy *pol,
		     int64_t now_ms, struct link_input *in, struct link_input_error *err)
{
	input_init(in, err);
	if (len == 0)
		return fail(err, NULL, "request body must be a JSON object");
	struct flat_field flat[FLAT_MAX];
	int nflat, has_ttl = 0;
	if (!link_input_always_jansson && read_flat(body, len, flat, &nflat) == 0) {
		int i = 0;
		while (i < nflat && parse_field(flat[i].key, flat[i].key_len, &flat[i].v, is_patch,
						pol, now_ms, &has_ttl, in, err) == 0)
			i++;
		if (i == nflat && check_whole(is_patch, has_ttl, in, err) == 0)
			return 0;
		/* refused: jansson's pass below gives the error, with a key
		 * that lives as long as in */
		link_input_release(in);
		input_init(in, err);
		has_ttl = 0;
	}
	json_error_t jerr;
	in->root = json_parse(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	if (!in->root) {
		snprintf(err->msg, sizeof(err->msg), "invalid JSON at line %d column %d: %s",
			 jerr.line, jerr.column, jerr.text);
		return -1;
	}
	if (!json_is_object(in->root))
		return fail(err, NULL, "request body must be a JSON object");
	const char *key;
	json_t *jv;
	json_object_foreach(in->root, key, jv)
	{
		struct value v = {.type = V_OTHER};
		if (json_is_string(jv)) {
			v.type = V_STRING;
			v.s = json_string_value(jv);
			v.len = json_string_length(jv);
		} else if (json_is_integer(jv)) {
			v.type = V_INTEGER;
			v.i = json_integer_value(jv);
		} else if (json_is_null(jv)) {
			v.type = V_NULL;
		} else if (json_is_true(jv)) {
			v.type = V_TRUE;
		} else if (json_is_false(jv)) {
			v.type = V_FALSE;
		}
		if (parse_field(key, strlen(key), &v, is_patch, pol, now_ms, &has_ttl, in, err) != 0)
			return -1;
	}
	return check_whole(is_patch, has_ttl, in, err);
}
