/* libFuzzer harness: JSON request bodies of POST and PATCH /api/v1/links.
 *
 * The first byte picks create or change; the rest is the body. Invariants:
 * a refusal always has a message; an accepted create has a URL and an accepted change changes something; an accepted alias passes the alias rules;
 * an expiry is in the future or 0 (never); a redirect status is one of the
 * four allowed; an accepted URL is a fixed point of normalisation. And the
 * reader of flat bodies answers exactly as jansson does: the same fields,
 * or the same error. */
#include <assert.h>
#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "link/link_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct url_policy pol;
static int ready;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!ready) {
		const char *why;
		curl_global_init(CURL_GLOBAL_DEFAULT);
		assert(url_policy_init(&pol, "https://sho.rt", "127.0.0.1", 8080, &why) == 0);
		ready = 1;
	}
	if (size == 0)
		return 0;
	int is_patch = data[0] & 1;
	const int64_t now = 1800000000000LL;
	struct link_input in;
	struct link_input_error err;
	int rc = link_input_parse((const char *)data + 1, size - 1, is_patch, &pol, now, &in, &err);
	struct link_input jin;
	struct link_input_error jerr;
	link_input_always_jansson = 1;
	int jrc = link_input_parse((const char *)data + 1, size - 1, is_patch, &pol, now, &jin, &jerr);
	link_input_always_jansson = 0;
	assert(rc == jrc);
	if (rc != 0) {
		assert(rc == -1);
		assert(err.msg[0]);
		assert(strcmp(err.msg, jerr.msg) == 0);
		assert((err.field == NULL) == (jerr.field == NULL));
		assert(!err.field || strcmp(err.field, jerr.field) == 0);
		link_input_release(&jin);
		goto done;
	}
	assert(in.url.len == jin.url.len);
	assert(!in.url.len || memcmp(in.url.p, jin.url.p, in.url.len) == 0);
	assert((in.alias == NULL) == (jin.alias == NULL));
	assert(!in.alias || strcmp(in.alias, jin.alias) == 0);
	assert(in.has_expires == jin.has_expires && in.expires_at_ms == jin.expires_at_ms);
	assert(in.has_redirect == jin.has_redirect && in.redirect == jin.redirect);
	link_input_release(&jin);
	assert(is_patch || in.url.len > 0);
	assert(!is_patch || in.url.len > 0 || in.has_expires || in.has_redirect);
	if (in.alias) {
		const char *why;
		assert(!is_patch);
		assert(link_alias_check(in.alias, strlen(in.alias), &why) == 0);
		assert(link_code_syntax_ok(in.alias, strlen(in.alias)));
	}
	assert(in.expires_at_ms == 0 || in.expires_at_ms > now);
	assert(!in.has_redirect || in.redirect == 301 || in.redirect == 302 || in.redirect == 307 ||
	       in.redirect == 308);
	if (in.url.len) {
		struct buf again;
		const char *why;
		buf_init(&again);
		assert(link_url_normalize(in.url.p, in.url.len, &pol, &again, &why) == 0);
		assert(again.len == in.url.len && memcmp(again.p, in.url.p, in.url.len) == 0);
		buf_release(&again);
	}
done:
	link_input_release(&in);
	return 0;
}
