/* libFuzzer harness: the HTTP request parser and the chunked decoder.
 *
 * The input is treated as bytes arriving on one connection: heads are
 * parsed as the connection code does (growing prefixes must agree with the
 * whole), and a chunked body after a head is decoded in place, fed in
 * pieces. Invariants asserted: parsed strings lie inside the input, the
 * head length never exceeds the input, decoding never writes past what it
 * read, and the decoded size respects the limit. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/http_parser.h"

static int inside(const char *p, size_t n, const char *buf, size_t len)
{
	return n == 0 || (p >= buf && p + n <= buf + len);
}

/* The first field called name (lower case), found by a plain search. */
static const struct http_header *first_named(const struct http_request *req, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];
		if (h->name_len == n && strncasecmp(h->name, name, n) == 0)
			return h;
	}
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size ? size : 1);
	memcpy(buf, data, size);
	struct http_request req;
	int status;
	const char *why;
	int rc = http_parse_head(buf, size, &req, &status, &why);
	if (rc == HTTP_PARSE_ERROR) {
		assert(status >= 400 && status <= 505);
		assert(why && why[0]);
	} else if (rc == HTTP_PARSE_OK) {
		assert(req.head_len <= size);
		assert(req.path_len > 0);
		assert(inside(req.path, req.path_len, buf, size) || req.path_len == 1);
		assert(!req.query || inside(req.query, req.query_len, buf, size));
		assert(!req.host || inside(req.host, req.host_len, buf, size));
		assert(req.nheaders <= HTTP_MAX_HEADERS);
		for (size_t i = 0; i < req.nheaders; i++) {
			const struct http_header *h = &req.headers[i];
			assert(inside(h->name, h->name_len, buf, size));
			assert(inside(h->value, h->value_len, buf, size));
			/* values hold no control byte but tabs (the vector scan) */
			for (size_t j = 0; j < h->value_len; j++) {
				unsigned char c = (unsigned char)h->value[j];
				assert((c >= 0x20 || c == '\t') && c != 0x7f);
			}
		}
		/* the fields noted while parsing are the ones a search finds */
		static const char *const known[HTTP_H_KNOWN] = {
			[HTTP_H_USER_AGENT] = "user-agent",
			[HTTP_H_REFERER] = "referer",
			[HTTP_H_X_REQUEST_ID] = "x-request-id",
			[HTTP_H_ORIGIN] = "origin",
			[HTTP_H_X_FORWARDED_FOR] = "x-forwarded-for",
			[HTTP_H_FORWARDED] = "forwarded",
			[HTTP_H_AUTHORIZATION] = "authorization",
			[HTTP_H_X_API_KEY] = "x-api-key",
			[HTTP_H_CONTENT_TYPE] = "content-type",
			[HTTP_H_IDEMPOTENCY_KEY] = "idempotency-key",
			[HTTP_H_AC_REQUEST_METHOD] = "access-control-request-method",
			[HTTP_H_IF_NONE_MATCH] = "if-none-match",
			[HTTP_H_COOKIE] = "cookie",
			[HTTP_H_ACCEPT] = "accept",
			[HTTP_H_ACCEPT_ENCODING] = "accept-encoding",
			[HTTP_H_X_SHORTD_CSRF] = "x-shortd-csrf",
		};
		for (int k = 0; k < HTTP_H_KNOWN; k++) {
			assert(known[k] && "a known header without its name here");
			assert(http_header_get(&req, (enum http_known)k) == first_named(&req, known[k]));
		}
		assert(req.content_length <= HTTP_MAX_BODY);
		/* any prefix of a complete head is incomplete or the same error-free head */
		struct http_request r2;
		for (size_t cut = 0; cut < req.head_len; cut += 1 + cut / 4) {
			int rc2 = http_parse_head(buf, cut, &r2, &status, &why);
			assert(rc2 == HTTP_PARSE_AGAIN);
		}
		if (req.chunked) {
			/* decode the rest in pieces of varying size, in place */
			struct http_chunked c;
			http_chunked_init(&c);
			size_t r = req.head_len, w = req.head_len, have = req.head_len;
			int crc = HTTP_PARSE_AGAIN;
			while (crc == HTTP_PARSE_AGAIN && have < size) {
				size_t step = 1 + (size_t)(data[have] % 13);
				have = have + step > size ? size : have + step;
				crc = http_chunked_decode(&c, buf, &r, have, &w, HTTP_MAX_BODY, &status, &why);
				assert(w <= r && r <= have);
				assert(w - req.head_len <= HTTP_MAX_BODY);
			}
			if (crc == HTTP_PARSE_ERROR)
				assert(status == 400 || status == 413);
		}
	}
	free(buf);
	return 0;
}
