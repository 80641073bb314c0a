/* libFuzzer harness: target URL validation and normalisation.
 *
 * Invariants asserted for every accepted URL: the result starts with
 * http:// or https://, is at most LINK_URL_MAX bytes, holds no byte that
 * could split a header (or any control byte, space, backslash or non-ASCII
 * byte), never points at the service itself, and is a fixed point:
 * normalising it again gives it back unchanged. Refusals always say why.
 * And the way round libcurl's parser for plain URLs answers exactly as
 * the parser does: the same result, or the same refusal. */
#include <assert.h>
#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "link/link.h"

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
	struct buf out, again, curl;
	buf_init(&out);
	buf_init(&again);
	buf_init(&curl);
	const char *why = NULL, *curl_why = NULL;
	int rc = link_url_normalize((const char *)data, size, &pol, &out, &why);
	link_url_always_curl = 1;
	int curl_rc = link_url_normalize((const char *)data, size, &pol, &curl, &curl_why);
	link_url_always_curl = 0;
	assert(rc == curl_rc);
	if (rc != 0) {
		assert(why && why[0]);
		assert(strcmp(why, curl_why) == 0);
		goto done;
	}
	assert(curl.len == out.len && memcmp(curl.p, out.p, out.len) == 0);
	assert(out.len <= LINK_URL_MAX);
	assert(strncmp(out.p, "http://", 7) == 0 || strncmp(out.p, "https://", 8) == 0);
	for (size_t i = 0; i < out.len; i++) {
		unsigned char c = (unsigned char)out.p[i];
		assert(c > 0x20 && c < 0x7f && c != '\\');
	}
	why = NULL;
	rc = link_url_normalize(out.p, out.len, &pol, &again, &why);
	assert(rc == 0);
	assert(again.len == out.len && memcmp(again.p, out.p, out.len) == 0);
done:
	buf_release(&out);
	buf_release(&again);
	buf_release(&curl);
	return 0;
}
