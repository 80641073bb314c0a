/*
 * http_parser: see http_parser.h for the grammar accepted and the status
 * given to each refusal.
 */
#include "http_parser.h"

#include <string.h>

/* tchar from RFC 9110 5.6.2 */
static const unsigned char tchar[256] = {
	['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
	['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
	['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
	['8'] = 1, ['9'] = 1,
	['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
	['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
	['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
	['Y'] = 1, ['Z'] = 1,
	['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1,
	['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1,
	['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
	['y'] = 1, ['z'] = 1,
};

static const char *const method_names[] = {
	[HTTP_M_NONE] = "", [HTTP_GET] = "GET", [HTTP_HEAD] = "HEAD", [HTTP_POST] = "POST",
	[HTTP_PATCH] = "PATCH", [HTTP_DELETE] = "DELETE", [HTTP_OPTIONS] = "OPTIONS",
};

const char *http_method_name(enum http_method m)
{
	return method_names[m];
}

static enum http_method method_lookup(const char *s, size_t n)
{
	switch (n) {
	case 3:
		if (memcmp(s, "GET", 3) == 0)
			return HTTP_GET;
		break;
	case 4:
		if (memcmp(s, "HEAD", 4) == 0)
			return HTTP_HEAD;
		if (memcmp(s, "POST", 4) == 0)
			return HTTP_POST;
		break;
	case 5:
		if (memcmp(s, "PATCH", 5) == 0)
			return HTTP_PATCH;
		break;
	case 6:
		if (memcmp(s, "DELETE", 6) == 0)
			return HTTP_DELETE;
		break;
	case 7:
		if (memcmp(s, "OPTIONS", 7) == 0)
			return HTTP_OPTIONS;
		break;
	}
	return HTTP_M_NONE;
}

/* Do the n bytes at a spell lower (lower case) in any case? */
static int same_lower(const char *a, const char *lower, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)a[i];
		if ((unsigned)(c - 'A') < 26u)
			c = (unsigned char)(c + 32);
		if (c != (unsigned char)lower[i])
			return 0;
	}
	return 1;
}

static int lower_eq(const char *a, size_t alen, const char *lower)
{
	size_t n = strlen(lower);
	return alen == n && same_lower(a, lower, n);
}

/* Finds the end of the line starting at p: returns the index of its CR (the
 * line ends with CRLF), -2 for more input, or -1 for a bare CR or LF. */
static long line_end(const char *buf, size_t p, size_t len)
{
	for (size_t i = p; i < len; i++) {
		char c = buf[i];
		if (c == '\n')
			return -1;
		if (c == '\r') {
			if (i + 1 == len)
				return -2;
			return buf[i + 1] == '\n' ? (long)i : -1;
		}
	}
	return -2;
}

/* Is the field name at a (n token characters) lit, in any case? lit is in
 * lower case letters, digits and '-': there a token character can differ
 * only in the case bit (0x20), so an OR compares a word at once. */
static inline __attribute__((always_inline)) int name_is(const char *a, const char *lit, size_t n)
{
	const uint64_t lc = 0x2020202020202020ULL;
	uint64_t x, y;
	if (n < 8) {
		for (size_t i = 0; i < n; i++)
			if ((a[i] | 0x20) != lit[i])
				return 0;
		return 1;
	}
	size_t i = 0;
	for (; i + 8 < n; i += 8) {
		memcpy(&x, a + i, 8);
		memcpy(&y, lit + i, 8);
		if ((x | lc) != y)
			return 0;
	}
	memcpy(&x, a + n - 8, 8); /* the last word, overlapping the one before */
	memcpy(&y, lit + n - 8, 8);
	return (x | lc) == y;
}

/* The index of the first byte in buf[p..len) below 0x20 or equal to 0x7f
 * (DEL), or len: sixteen bytes a step (vector extensions: SSE2 here, NEON
 * on ARM), the last few one by one. */
static size_t first_control(const char *buf, size_t p, size_t len)
{
	typedef unsigned char v16 __attribute__((vector_size(16)));
	typedef uint64_t v2 __attribute__((vector_size(16)));
	for (; p + 16 <= len; p += 16) {
		v16 v;
		memcpy(&v, buf + p, 16);
		v2 m = (v2)((v < 0x20) | (v == 0x7f));
		if (!(m[0] | m[1]))
			continue;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
		return p + (m[0] ? (size_t)__builtin_ctzll(m[0]) >> 3
				 : 8 + ((size_t)__builtin_ctzll(m[1]) >> 3));
#else
		break; /* found byte by byte below */
#endif
	}
	for (; p < len; p++) {
		unsigned char c = (unsigned char)buf[p];
		if (c < 0x20 || c == 0x7f)
			break;
	}
	return p;
}

#define FAIL(st, msg)                                                                      \
	do {                                                                               \
		*status = (st);                                                            \
		*why = (msg);                                                              \
		return HTTP_PARSE_ERROR;                                                   \
	} while (0)

/* Does the comma-separated list contain token (case-insensitive)? */
static int list_has(const char *v, size_t n, const char *token)
{
	size_t i = 0;
	while (i < n) {
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		size_t s = i;
		while (i < n && v[i] != ',' && v[i] != ' ' && v[i] != '\t')
			i++;
		if (i > s && lower_eq(v + s, i - s, token))
			return 1;
	}
	return 0;
}

/* reg-name characters of RFC 3986 (unreserved, sub-delims, '%' of
 * pct-encoded), without ',': a comma in Host is two Host fields joined. */
static const unsigned char regname_char[256] = {
	['-'] = 1, ['.'] = 1, ['_'] = 1, ['~'] = 1, ['!'] = 1, ['$'] = 1, ['&'] = 1, ['\''] = 1,
	['('] = 1, [')'] = 1, ['*'] = 1, ['+'] = 1, [';'] = 1, ['='] = 1, ['%'] = 1,
	['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
	['8'] = 1, ['9'] = 1,
	['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
	['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
	['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
	['Y'] = 1, ['Z'] = 1,
	['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1,
	['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1,
	['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
	['y'] = 1, ['z'] = 1,
};

static int is_hex(char c)
{
	return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

/* Is v (n bytes) uri-host [ ":" port ] (RFC 9110 7.2, RFC 3986 3.2.2)?
 * The host is a bracketed IPv6 address or a reg-name (which covers IPv4
 * addresses); the port is one to five digits up to 65535. An empty value
 * is valid (a target without an authority); a host with no name is not. */
static int host_valid(const char *v, size_t n)
{
	if (n == 0)
		return 1;
	size_t i = 0;
	if (v[0] == '[') {
		size_t colons = 0;
		for (i = 1; i < n && v[i] != ']'; i++) {
			if (!is_hex(v[i]) && v[i] != ':' && v[i] != '.')
				return 0;
			colons += v[i] == ':';
		}
		if (i == n || colons < 2 || i > 46)
			return 0;
		i++;
	} else {
		for (; i < n && v[i] != ':'; i++) {
			if (!regname_char[(unsigned char)v[i]])
				return 0;
			if (v[i] == '%' && !(i + 2 < n && is_hex(v[i + 1]) && is_hex(v[i + 2])))
				return 0;
		}
		if (i == 0)
			return 0;
	}
	if (i == n)
		return 1;
	if (v[i] != ':' || n - i - 1 == 0 || n - i - 1 > 5)
		return 0;
	unsigned port = 0;
	for (i++; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return 0;
		port = port * 10 + (unsigned)(v[i] - '0');
	}
	return port <= 65535;
}

/* Reads a Transfer-Encoding value. Returns 0 when its last coding is
 * chunked, the only one; otherwise the status with *why: 400 when the
 * body's length cannot be known (RFC 9112 6.3: chunked not last, or
 * twice, or no coding at all), 501 for a coding before chunked. */
static int transfer_codings(const char *v, size_t n, const char **why)
{
	size_t i = 0, codings = 0, chunked = 0;
	int last_chunked = 0;
	while (i < n) {
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		size_t s = i;
		while (i < n && v[i] != ',')
			i++;
		size_t e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e == s)
			continue;
		codings++;
		last_chunked = lower_eq(v + s, e - s, "chunked");
		chunked += (size_t)last_chunked;
	}
	int st = 0;
	if (codings == 0)
		st = 400, *why = "empty Transfer-Encoding";
	else if (!last_chunked)
		st = 400, *why = "chunked is not the final transfer coding";
	else if (chunked > 1)
		st = 400, *why = "chunked transfer coding applied twice";
	else if (codings > 1)
		st = 501, *why = "only the chunked transfer coding is supported";
	return st;
}

int http_parse_head(const char *buf, size_t len, struct http_request *req, int *status,
		    const char **why)
{
	size_t p = 0;
	/* Nothing of an earlier request stays: after a refusal the caller
	 * still reads the method (a HEAD's answer has no content). */
	req->method = HTTP_M_NONE;
	req->path = NULL;
	req->path_len = 0;
	req->nheaders = 0;
	memset(req->known, 0, sizeof(req->known));
	/* RFC 9112 2.2: ignore empty lines before the request line. */
	while (p + 1 < len && buf[p] == '\r' && buf[p + 1] == '\n')
		p += 2;
	if (p + 1 == len && buf[p] == '\r')
		return HTTP_PARSE_AGAIN; /* the LF may be in the next read */
	if (p < len && buf[p] == '\n')
		FAIL(400, "bare LF line ending");

	/* method */
	size_t m0 = p;
	while (p < len && tchar[(unsigned char)buf[p]])
		p++;
	if (p == len) {
		if (p - m0 > 32)
			FAIL(501, "unknown method");
		return HTTP_PARSE_AGAIN;
	}
	if (buf[p] != ' ' || p == m0)
		FAIL(400, "malformed request line");
	req->method = method_lookup(buf + m0, p - m0);
	if (req->method == HTTP_M_NONE)
		FAIL(501, "method not implemented");
	p++;

	/* request-target */
	size_t t0 = p;
	while (p < len && (unsigned char)buf[p] > 0x20 && (unsigned char)buf[p] < 0x7f)
		p++;
	if (p == len) {
		if (p - t0 > HTTP_MAX_HEAD)
			FAIL(414, "request target longer than 8192 bytes");
		return HTTP_PARSE_AGAIN;
	}
	if (buf[p] != ' ' || p == t0)
		FAIL(400, "malformed request target");
	if (p - t0 > HTTP_MAX_HEAD)
		FAIL(414, "request target longer than 8192 bytes");
	const char *target = buf + t0;
	size_t tlen = p - t0;
	p++;

	/* HTTP-version CRLF */
	if (len - p < 10) {
		static const char v[] = "HTTP/1.1\r\n";
		for (size_t i = 0; i < len - p; i++) {
			char c = buf[p + i];
			if (i == 7 ? !(c >= '0' && c <= '9') : (i == 5 ? !(c >= '0' && c <= '9') : c != v[i]))
				FAIL(400, "malformed HTTP version");
		}
		return HTTP_PARSE_AGAIN;
	}
	if (memcmp(buf + p, "HTTP/", 5) != 0 || buf[p + 6] != '.' || buf[p + 5] < '0' ||
	    buf[p + 5] > '9' || buf[p + 7] < '0' || buf[p + 7] > '9' || buf[p + 8] != '\r' ||
	    buf[p + 9] != '\n')
		FAIL(400, "malformed HTTP version");
	/* RFC 9110 2.5: a later HTTP/1 minor version is answered as 1.1 */
	if (buf[p + 5] != '1')
		FAIL(505, "HTTP version not supported");
	req->minor = buf[p + 7] != '0';
	p += 10;

	/* target forms: origin, absolute (path taken from it), asterisk */
	req->asterisk = 0;
	req->host = NULL;
	req->host_len = 0;
	if (target[0] == '/') {
		/* origin-form */
	} else if (tlen == 1 && target[0] == '*') {
		if (req->method != HTTP_OPTIONS)
			FAIL(400, "asterisk-form target is only valid for OPTIONS");
		req->asterisk = 1;
	} else if ((tlen > 7 && same_lower(target, "http://", 7)) ||
		   (tlen > 8 && same_lower(target, "https://", 8))) {
		size_t s = target[4] == ':' ? 7 : 8, a = s;
		while (a < tlen && target[a] != '/' && target[a] != '?')
			a++;
		if (a == s)
			FAIL(400, "absolute-form target without a host");
		/* RFC 9110 4.2.4: no userinfo in an http(s) URI */
		if (!host_valid(target + s, a - s))
			FAIL(400, "invalid authority in the request target");
		req->host = target + s;
		req->host_len = a - s;
		target += a;
		tlen -= a;
		if (tlen == 0) {
			target = "/";
			tlen = 1;
		}
	} else {
		FAIL(400, "malformed request target");
	}
	if (memchr(target, '#', tlen))
		FAIL(400, "fragment in request target");
	const char *q = memchr(target, '?', tlen);
	req->path = target;
	req->path_len = q ? (size_t)(q - target) : tlen;
	req->query = q ? q + 1 : NULL;
	req->query_len = q ? tlen - req->path_len - 1 : 0;
	if (req->path_len == 0) {
		req->path = "/";
		req->path_len = 1;
	}

	/* header fields: a refusal that does not concern framing (417, 501)
	 * waits for the end of the section, where a framing error (400) that
	 * comes after it in the head is answered instead */
	req->content_length = -1;
	req->chunked = 0;
	req->expect_continue = 0;
	int hosts = 0, conn_close = 0, conn_keep = 0, te = 0, host_bad = 0, late = 0;
	const char *late_why = NULL;
	for (;;) {
		if (p > HTTP_MAX_HEAD)
			FAIL(431, "request header fields too large");
		/* plain: the line's first control byte is its CR, before an LF */
		long e = (long)first_control(buf, p, len);
		int plain = (size_t)e + 1 < len && buf[e] == '\r' && buf[e + 1] == '\n';
		if (!plain)
			e = line_end(buf, p, len);
		if (e == -2) {
			if (len - p > HTTP_MAX_HEAD)
				FAIL(431, "request header fields too large");
			return HTTP_PARSE_AGAIN;
		}
		if (e == -1)
			FAIL(400, "bare CR or LF in header section");
		size_t end = (size_t)e;
		if (end == p) { /* empty line: end of head */
			p += 2;
			break;
		}
		if (buf[p] == ' ' || buf[p] == '\t')
			FAIL(400, "obsolete line folding");
		size_t n0 = p;
		while (p < end && tchar[(unsigned char)buf[p]])
			p++;
		if (p == n0 || p == end || buf[p] != ':')
			FAIL(400, "malformed header field name");
		size_t nlen = p - n0;
		p++;
		while (p < end && (buf[p] == ' ' || buf[p] == '\t'))
			p++;
		size_t v0 = p;
		for (p = plain ? end : p; p < end; p++) {
			unsigned char c = (unsigned char)buf[p];
			if (c < 0x20 && c != '\t')
				FAIL(400, "control character in header field value");
			if (c == 0x7f)
				FAIL(400, "control character in header field value");
		}
		size_t vend = end;
		while (vend > v0 && (buf[vend - 1] == ' ' || buf[vend - 1] == '\t'))
			vend--;
		if (req->nheaders == HTTP_MAX_HEADERS)
			FAIL(431, "too many header fields");
		if (nlen > 0xffff || vend - v0 > 0xffff)
			FAIL(431, "request header fields too large");
		struct http_header *h = &req->headers[req->nheaders++];
		h->name = buf + n0;
		h->name_len = (uint16_t)nlen;
		h->value = buf + v0;
		h->value_len = (uint16_t)(vend - v0);
		p = end + 2;

		const char *v = h->value, *name = h->name;
		size_t vl = h->value_len;
/* the field is the known k: note where its first one is */
#define KNOWN(lit, k)                                                                      \
	if (name_is(name, "" lit, sizeof(lit) - 1)) {                                      \
		if (!req->known[k])                                                        \
			req->known[k] = (uint8_t)req->nheaders;                            \
		break;                                                                     \
	}
		switch (nlen) {
		case 4:
			if (name_is(name, "host", 4)) {
				if (!hosts++ && !req->host) {
					req->host = v;
					req->host_len = vl;
				}
				host_bad |= !host_valid(v, vl);
			}
			break;
		case 6:
			KNOWN("cookie", HTTP_H_COOKIE);
			KNOWN("accept", HTTP_H_ACCEPT);
			if (name_is(name, "expect", 6)) {
				if (!lower_eq(v, vl, "100-continue")) {
					if (!late) {
						late = 417;
						late_why = "only 'Expect: 100-continue' is supported";
					}
				} else {
					/* RFC 9110 10.1.1: a 1.0 client is sent no 1xx */
					req->expect_continue = req->minor >= 1;
				}
				break;
			}
			KNOWN("origin", HTTP_H_ORIGIN);
			break;
		case 7:
			KNOWN("referer", HTTP_H_REFERER);
			break;
		case 9:
			KNOWN("forwarded", HTTP_H_FORWARDED);
			KNOWN("x-api-key", HTTP_H_X_API_KEY);
			break;
		case 10:
			KNOWN("user-agent", HTTP_H_USER_AGENT);
			if (name_is(name, "connection", 10)) {
				conn_close |= list_has(v, vl, "close");
				conn_keep |= list_has(v, vl, "keep-alive");
			}
			break;
		case 12:
			KNOWN("x-request-id", HTTP_H_X_REQUEST_ID);
			KNOWN("content-type", HTTP_H_CONTENT_TYPE);
			break;
		case 13:
			KNOWN("authorization", HTTP_H_AUTHORIZATION);
			KNOWN("if-none-match", HTTP_H_IF_NONE_MATCH);
			KNOWN("x-shortd-csrf", HTTP_H_X_SHORTD_CSRF);
			break;
		case 15:
			KNOWN("x-forwarded-for", HTTP_H_X_FORWARDED_FOR);
			KNOWN("idempotency-key", HTTP_H_IDEMPOTENCY_KEY);
			KNOWN("accept-encoding", HTTP_H_ACCEPT_ENCODING);
			break;
		case 29:
			KNOWN("access-control-request-method", HTTP_H_AC_REQUEST_METHOD);
			break;
		case 14:
			if (name_is(name, "content-length", 14)) {
				if (req->content_length >= 0)
					FAIL(400, "duplicate Content-Length");
				if (vl == 0)
					FAIL(400, "invalid Content-Length");
				int64_t cl = 0;
				for (size_t i = 0; i < vl; i++) {
					if (v[i] < '0' || v[i] > '9')
						FAIL(400, "invalid Content-Length");
					if (cl <= HTTP_MAX_BODY)
						cl = cl * 10 + (v[i] - '0');
				}
				req->content_length = cl;
			}
			break;
		case 17:
			if (name_is(name, "transfer-encoding", 17)) {
				if (te++)
					FAIL(400, "duplicate Transfer-Encoding");
				const char *tw;
				int st = transfer_codings(v, vl, &tw);
				if (st == 400)
					FAIL(400, tw);
				if (st && !late) {
					late = st;
					late_why = tw;
				}
				req->chunked = 1;
			}
			break;
		}
#undef KNOWN
	}
	req->head_len = p;
	if (p > HTTP_MAX_HEAD + 2)
		FAIL(431, "request header fields too large");
	if (req->minor == 1 ? hosts != 1 : hosts > 1)
		FAIL(400, hosts ? "duplicate Host header" : "missing Host header");
	if (host_bad)
		FAIL(400, "invalid Host header");
	if (req->chunked && req->content_length >= 0)
		FAIL(400, "both Transfer-Encoding and Content-Length");
	if (req->chunked && req->minor == 0)
		FAIL(400, "Transfer-Encoding in an HTTP/1.0 request");
	if (late)
		FAIL(late, late_why);
	if (req->content_length > HTTP_MAX_BODY)
		FAIL(413, "request body larger than 65536 bytes");
	req->keep_alive = req->minor == 1 ? !conn_close : (conn_keep && !conn_close);
	req->body = NULL;
	req->body_len = 0;
	return HTTP_PARSE_OK;
}

enum {
	CS_SIZE = 0,
	CS_EXT,
	CS_SIZE_LF,
	CS_DATA,
	CS_DATA_CR,
	CS_DATA_LF,
	CS_TRAILER_START,
	CS_TRAILER,
	CS_TRAILER_LF,
	CS_END_LF,
	CS_DONE,
};

#define CHUNK_LINE_MAX 4096

void http_chunked_init(struct http_chunked *c)
{
	memset(c, 0, sizeof(*c));
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int http_chunked_decode(struct http_chunked *c, char *buf, size_t *rpos, size_t len, size_t *wpos,
			size_t max_body, int *status, const char **why)
{
	size_t r = *rpos, w = *wpos;
	int rc = HTTP_PARSE_AGAIN;
	while (r < len && rc == HTTP_PARSE_AGAIN) {
		char ch = buf[r];
		switch (c->state) {
		case CS_SIZE: {
			int d = hexval(ch);
			if (d >= 0) {
				/* leading zeros are not significant; their run is
				 * bounded like an extension's */
				c->size = c->size * 16 + (uint64_t)d;
				if (c->size > 0xffffffffu || ++c->digits > CHUNK_LINE_MAX) {
					*status = 400, *why = "chunk size too large";
					rc = HTTP_PARSE_ERROR;
					break;
				}
				r++;
			} else if (c->digits == 0) {
				*status = 400, *why = "invalid chunk size";
				rc = HTTP_PARSE_ERROR;
			} else if (ch == ';') {
				c->state = CS_EXT;
				c->line_bytes = 0;
				r++;
			} else if (ch == '\r') {
				c->state = CS_SIZE_LF;
				r++;
			} else {
				*status = 400, *why = "invalid chunk size";
				rc = HTTP_PARSE_ERROR;
			}
			if (rc == HTTP_PARSE_AGAIN && c->state != CS_SIZE) {
				if (c->total + c->size > max_body) {
					*status = 413, *why = "request body larger than 65536 bytes";
					rc = HTTP_PARSE_ERROR;
				}
			}
			break;
		}
		case CS_EXT:
		case CS_TRAILER:
			if (ch == '\r') {
				c->state = c->state == CS_EXT ? CS_SIZE_LF : CS_TRAILER_LF;
			} else if (((unsigned char)ch < 0x20 && ch != '\t') || ch == 0x7f ||
				   ++c->line_bytes > CHUNK_LINE_MAX) {
				*status = 400, *why = "invalid chunk extension or trailer";
				rc = HTTP_PARSE_ERROR;
				break;
			}
			r++;
			break;
		case CS_SIZE_LF:
			if (ch != '\n') {
				*status = 400, *why = "bare CR in chunked body";
				rc = HTTP_PARSE_ERROR;
				break;
			}
			r++;
			c->digits = 0;
			c->state = c->size == 0 ? CS_TRAILER_START : CS_DATA;
			break;
		case CS_DATA: {
			size_t n = len - r;
			if (n > c->size)
				n = (size_t)c->size;
			memmove(buf + w, buf + r, n);
			w += n;
			r += n;
			c->size -= n;
			c->total += n;
			if (c->size == 0)
				c->state = CS_DATA_CR;
			break;
		}
		case CS_DATA_CR:
		case CS_DATA_LF:
			if (ch != (c->state == CS_DATA_CR ? '\r' : '\n')) {
				*status = 400, *why = "chunk data not followed by CRLF";
				rc = HTTP_PARSE_ERROR;
				break;
			}
			r++;
			c->state = c->state == CS_DATA_CR ? CS_DATA_LF : CS_SIZE;
			break;
		case CS_TRAILER_START:
			if (ch == '\r') {
				c->state = CS_END_LF;
			} else if (ch == '\n' || ch == ' ' || ch == '\t') {
				*status = 400, *why = "invalid trailer section";
				rc = HTTP_PARSE_ERROR;
				break;
			} else {
				c->state = CS_TRAILER;
				c->line_bytes = 1;
			}
			r++;
			break;
		case CS_TRAILER_LF:
		case CS_END_LF:
			if (ch != '\n') {
				*status = 400, *why = "bare CR in chunked body";
				rc = HTTP_PARSE_ERROR;
				break;
			}
			r++;
			if (c->state == CS_END_LF) {
				c->state = CS_DONE;
				rc = HTTP_PARSE_OK;
			} else {
				c->state = CS_TRAILER_START;
			}
			break;
		default:
			rc = HTTP_PARSE_OK;
			break;
		}
	}
	*rpos = r;
	*wpos = w;
	return rc;
}
