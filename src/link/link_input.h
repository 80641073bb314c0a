/*
 * link_input: the JSON body of a create (POST) or change (PATCH) of a link,
 * parsed and validated. No HTTP here: the handler maps an error to 400
 * (invalid_json without a field, invalid_field with one), and the fuzzer
 * feeds it arbitrary bytes.
 *
 * Accepted fields: url (required on create), alias (create only, or null),
 * expires_at (RFC 3339, in the future, or null), ttl_s (1..10 years, not
 * with expires_at), redirect (301, 302, 307 or 308). Anything else is an
 * unknown field.
 */
#ifndef SHORTD_LINK_INPUT_H
#define SHORTD_LINK_INPUT_H

#include <jansson.h>
#include <stdint.h>

#include "core/util.h"
#include "link.h"

#define LINK_TTL_MAX_S 315360000LL /* ten years */

struct link_input {
	json_t *root;          /* the body as jansson parsed it, or NULL (see
				  link_input.c, read_flat); err.field may
				  point into it */
	struct buf url;        /* normalised; len 0 if absent */
	const char *alias;     /* NULL: none (a random code), or alias_buf */
	char alias_buf[LINK_CODE_MAX + 1];
	int has_expires;       /* expires_at or ttl_s given (PATCH: change it) */
	int64_t expires_at_ms; /* 0: never */
	int has_redirect;
	int redirect;
	int has_forward_query;
	int forward_query;
};

struct link_input_error {
	const char *field; /* NULL: the body as a whole is wrong */
	char msg[300];
};

/* Parses body into in (which the caller releases with link_input_release
 * whatever the result). Returns 0, or -1 with err filled in. */
int link_input_parse(const char *body, size_t len, int is_patch, const struct url_policy *pol,
		     int64_t now_ms, struct link_input *in, struct link_input_error *err);
void link_input_release(struct link_input *in);

/* 1: every body is parsed by jansson, even a flat one read_flat() would
 * read (link_input.c). Tests and fuzzers set it to compare the two ways;
 * the service leaves it 0. */
extern int link_input_always_jansson;

#endif
