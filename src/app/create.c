/*
 * create: see create.h.
 */
#include "create.h"
#include "core/idgen.h"

#include <string.h>

/* A random code of n characters that is not a reserved word (a route like
 * /healthz): 0, or -1 without randomness. */
static int random_code(char *code, size_t n)
{
	do {
		if (code_random(code, n) != 0)
			return -1;
	} while (link_code_reserved(code, n));
	return 0;
}

struct link *create_link(const struct create_rules *rules, const struct link_input *in,
			 int64_t owner, int64_t now_ms, int *random)
{
	char code[LINK_CODE_MAX];
	size_t code_len;
	*random = in->alias == NULL;
	if (in->alias) {
		code_len = strlen(in->alias);
		memcpy(code, in->alias, code_len);
	} else {
		code_len = (size_t)rules->code_length;
		if (random_code(code, code_len) != 0)
			return NULL;
	}
	struct link *l = link_new(code, code_len, in->url.p, in->url.len);
	l->id = idgen_next(rules->idgen);
	l->created_at_ms = l->updated_at_ms = now_ms;
	l->expires_at_ms = in->expires_at_ms;
	l->redirect = in->has_redirect ? in->redirect : rules->default_redirect;
	l->forward_query = in->has_forward_query ? in->forward_query : rules->default_forward_query;
	l->owner = owner;
	return l;
}

int create_retry(const struct create_rules *rules, struct store_op *op, int *attempts)
{
	char code[LINK_CODE_MAX];
	size_t n = (size_t)rules->code_length;
	if (++*attempts >= CREATE_CODE_ATTEMPTS || random_code(code, n) != 0)
		return 0;
	struct link *old = op->link;
	op->link = link_with_code(old, code, n);
	link_unref(old);
	return 1;
}
