/*
 * create: a new link, as the API (links_api.c) and `shortd import` make
 * it: the same fields from the same parsed input, the same choice of code
 * and the same retry when a generated code collides.
 *
 * A generated code is CREATE_CODE_ATTEMPTS tries at most: with 7 base62
 * characters and a million links taken, a collision has odds of 1 in 3.5
 * million, and five in a row do not happen; a conflict on an alias is
 * the client's (409), never retried.
 */
#ifndef SHORTD_CREATE_H
#define SHORTD_CREATE_H

#include <stddef.h>
#include <stdint.h>

#include "core/idgen.h"
#include "link/link_input.h"
#include "store/store.h"

#define CREATE_CODE_ATTEMPTS 5

/* What a create needs besides the input. */
struct create_rules {
	struct idgen *idgen;
	int code_length;      /* of generated codes */
	int default_redirect; /* when the input names none */
	int default_forward_query;
};

/* The link of in, owned by owner, created at now_ms (one reference for
 * the caller), with *random 1 if its code was generated; NULL when no
 * randomness was to be had. */
struct link *create_link(const struct create_rules *rules, const struct link_input *in,
			 int64_t owner, int64_t now_ms, int *random);
/* After op (an insert) found its generated code taken: gives it another
 * code and returns 1 if it should be submitted again (at most
 * CREATE_CODE_ATTEMPTS in all, counted in *attempts); 0 to give up. */
int create_retry(const struct create_rules *rules, struct store_op *op, int *attempts);

#endif
