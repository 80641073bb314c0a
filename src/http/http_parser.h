/*
 * http_parser: a strict HTTP/1.1 request parser (RFC 9110/9112).
 *
 * Design: the parser is pure (no I/O, no allocation). http_parse_head()
 * looks at the bytes received so far and either finds a complete request
 * head (request line + header fields + empty line) or asks for more. Parsed
 * strings point into the caller's buffer, which must stay unchanged while the
 * request is in use. Bodies are framed by Content-Length (the bytes follow
 * the head) or by chunked transfer coding, decoded incrementally and in place
 * by http_chunked_decode().
 *
 * Strictness (each refusal closes the connection, since framing is in doubt):
 *   400  bare LF or bare CR, obs-fold, whitespace before ':', invalid token or
 *        target characters, NUL or other controls in fields, missing,
 *        duplicate or invalid Host (HTTP/1.1), userinfo in an absolute-form
 *        target, duplicate or non-decimal Content-Length, Transfer-Encoding
 *        with Content-Length, Transfer-Encoding in HTTP/1.0, duplicate or
 *        empty Transfer-Encoding, chunked not its last coding or twice in
 *        it, invalid chunk framing
 *   413  Content-Length or decoded chunked body over the body limit
 *   414  request-target over HTTP_MAX_HEAD bytes
 *   417  Expect other than 100-continue
 *   431  request line + headers over HTTP_MAX_HEAD bytes, or too many fields
 *   501  unknown method, a transfer coding before "chunked"
 *   505  HTTP version other than 1.x (1.2 and later minors are served as 1.1)
 *
 * A 417 or 501 is decided once the whole head is read: a 400 for framing
 * found later in the head wins. Expect: 100-continue from an HTTP/1.0
 * client is ignored (RFC 9110 10.1.1: no 1xx for 1.0).
 */
#ifndef SHORTD_HTTP_PARSER_H
#define SHORTD_HTTP_PARSER_H

#include <stddef.h>
#include <stdint.h>

#define HTTP_MAX_HEAD 8192
#define HTTP_MAX_BODY 65536
#define HTTP_MAX_HEADERS 64

enum http_method {
	HTTP_M_NONE = 0,
	HTTP_GET,
	HTTP_HEAD,
	HTTP_POST,
	HTTP_PATCH,
	HTTP_DELETE,
	HTTP_OPTIONS,
};

struct http_header {
	const char *name;
	const char *value;
	uint16_t name_len;
	uint16_t value_len;
};

/* Header fields the server reads on most requests: the parser notes where
 * the first of each is, so that finding one costs no search. */
enum http_known {
	HTTP_H_USER_AGENT,
	HTTP_H_REFERER,
	HTTP_H_X_REQUEST_ID,
	HTTP_H_ORIGIN,
	HTTP_H_X_FORWARDED_FOR,
	HTTP_H_FORWARDED,
	HTTP_H_AUTHORIZATION,
	HTTP_H_X_API_KEY,
	HTTP_H_CONTENT_TYPE,
	HTTP_H_IDEMPOTENCY_KEY,
	HTTP_H_AC_REQUEST_METHOD, /* Access-Control-Request-Method */
	HTTP_H_IF_NONE_MATCH,
	HTTP_H_COOKIE,
	HTTP_H_ACCEPT,
	HTTP_H_ACCEPT_ENCODING,
	HTTP_H_X_SHORTD_CSRF,
	HTTP_H_KNOWN
};

struct http_request {
	enum http_method method;
	int minor;           /* HTTP/1.minor */
	int keep_alive;
	int chunked;
	int expect_continue;
	int asterisk;        /* request-target "*" (OPTIONS only) */
	const char *host;    /* the target's authority, else Host's value; NULL: none */
	size_t host_len;
	int64_t content_length; /* -1: none */
	size_t head_len;     /* bytes of the head, including leading empty lines */
	const char *path;    /* starts with '/' (or "*") */
	size_t path_len;
	const char *query;   /* after '?', NULL if none */
	size_t query_len;
	const char *body;
	size_t body_len;
	size_t nheaders;
	uint8_t known[HTTP_H_KNOWN]; /* 1 + the index of the first such field; 0: none */
	struct http_header headers[HTTP_MAX_HEADERS];
};

enum { HTTP_PARSE_ERROR = -1, HTTP_PARSE_OK = 0, HTTP_PARSE_AGAIN = 1 };

/* Parses a request head from buf[0..len). On HTTP_PARSE_ERROR, *status is
 * the HTTP status to answer and *why a short reason. */
int http_parse_head(const char *buf, size_t len, struct http_request *req, int *status,
		    const char **why);

/* The first field of a known name (any case), without a search. */
static inline const struct http_header *http_header_get(const struct http_request *req,
							 enum http_known k)
{
	return req->known[k] ? &req->headers[req->known[k] - 1] : NULL;
}

const char *http_method_name(enum http_method m);

/* Incremental chunked body decoder. Raw bytes buf[*rpos..len) are consumed;
 * decoded data is written at buf[*wpos] (always *wpos <= *rpos, so decoding
 * happens in place). Returns HTTP_PARSE_OK when the last chunk and trailers
 * are consumed, AGAIN for more input, ERROR with *status and *why. */
struct http_chunked {
	int state;
	uint64_t size;      /* current chunk size, then bytes left in it */
	size_t digits;
	size_t total;       /* decoded bytes so far */
	size_t line_bytes;  /* bytes in the current extension or trailer line */
};

void http_chunked_init(struct http_chunked *c);
int http_chunked_decode(struct http_chunked *c, char *buf, size_t *rpos, size_t len, size_t *wpos,
			size_t max_body, int *status, const char **why);

#endif
