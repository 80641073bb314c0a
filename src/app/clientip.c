/*
 * clientip: see clientip.h.
 */
#include "clientip.h"
#include "core/util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* addr (a v4, v6 or v4-mapped v6 address) as family and bytes. */
static int addr_bytes(const struct sockaddr_storage *a, int *family, uint8_t out[16])
{
	if (a->ss_family == AF_INET) {
		memcpy(out, &((const struct sockaddr_in *)a)->sin_addr, 4);
		*family = AF_INET;
		return 0;
	}
	if (a->ss_family == AF_INET6) {
		const uint8_t *b = ((const struct sockaddr_in6 *)a)->sin6_addr.s6_addr;
		static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
		if (memcmp(b, mapped, 12) == 0) {
			memcpy(out, b + 12, 4);
			*family = AF_INET;
		} else {
			memcpy(out, b, 16);
			*family = AF_INET6;
		}
		return 0;
	}
	return -1;
}

/* Parses a numeric address (IPv6 possibly in brackets) into a. */
static int parse_addr(const char *s, size_t n, struct sockaddr_storage *a)
{
	char tmp[64];
	if (n >= 2 && s[0] == '[') {
		const char *close = memchr(s, ']', n);
		if (!close)
			return -1;
		n = (size_t)(close - s - 1);
		s++;
	}
	if (n == 0 || n >= sizeof(tmp))
		return -1;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	memset(a, 0, sizeof(*a));
	struct sockaddr_in *v4 = (struct sockaddr_in *)a;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)a;
	if (inet_pton(AF_INET, tmp, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, tmp, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		return 0;
	}
	return -1;
}

int trusted_proxies_parse(const char *list, struct trusted_proxies *out, char *err,
			  size_t errlen)
{
	out->v = NULL;
	out->n = 0;
	const char *rest = list ? list : "", *p;
	size_t n;
	while ((p = list_next(&rest, &n))) {
		const char *end = p + n;
		const char *slash = memchr(p, '/', (size_t)(end - p));
		struct sockaddr_storage a;
		struct cidr c;
		int max;
		if (parse_addr(p, (size_t)((slash ? slash : end) - p), &a) != 0 ||
		    addr_bytes(&a, &c.family, c.addr) != 0) {
			snprintf(err, errlen, "--trusted-proxies: '%.*s' is not an address or CIDR block",
				 (int)(end - p), p);
			trusted_proxies_release(out);
			return -1;
		}
		max = c.family == AF_INET ? 32 : 128;
		c.bits = max;
		if (slash) {
			char *e;
			long b = strtol(slash + 1, &e, 10);
			if (e != end || slash + 1 == end || b < 0 || b > max) {
				snprintf(err, errlen, "--trusted-proxies: bad prefix length in '%.*s'",
					 (int)(end - p), p);
				trusted_proxies_release(out);
				return -1;
			}
			c.bits = (int)b;
		}
		out->v = xrealloc(out->v, (out->n + 1) * sizeof(*out->v));
		out->v[out->n++] = c;
	}
	return 0;
}

void trusted_proxies_release(struct trusted_proxies *t)
{
	free(t->v);
	t->v = NULL;
	t->n = 0;
}

int trusted_proxy(const struct trusted_proxies *t, const struct sockaddr_storage *a)
{
	int family;
	uint8_t b[16];
	if (addr_bytes(a, &family, b) != 0)
		return 0;
	for (size_t i = 0; i < t->n; i++) {
		const struct cidr *c = &t->v[i];
		if (c->family != family)
			continue;
		int full = c->bits / 8, rest = c->bits % 8;
		if (memcmp(b, c->addr, (size_t)full) != 0)
			continue;
		if (rest && ((b[full] ^ c->addr[full]) & (0xff << (8 - rest))))
			continue;
		return 1;
	}
	return 0;
}

/* The rightmost untrusted address in a comma-separated list of items, each
 * item parsed by item(). 0 with *out, or -1 if none or something did not
 * parse. */
static int rightmost(const struct trusted_proxies *t, const char *v, size_t n,
		     int (*item)(const char *, size_t, struct sockaddr_storage *),
		     struct sockaddr_storage *out)
{
	size_t end = n;
	while (end > 0) {
		size_t start = end;
		while (start > 0 && v[start - 1] != ',')
			start--;
		size_t a = start, b = end;
		while (a < b && (v[a] == ' ' || v[a] == '\t'))
			a++;
		while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
			b--;
		if (item(v + a, b - a, out) != 0)
			return -1;
		if (!trusted_proxy(t, out))
			return 0;
		end = start ? start - 1 : 0;
	}
	return -1;
}

static int xff_item(const char *s, size_t n, struct sockaddr_storage *a)
{
	return parse_addr(s, n, a);
}

/* One element of Forwarded: its for= parameter (RFC 7239), which may be
 * quoted ("[2001:db8::1]:4711") and may carry a port. */
static int forwarded_item(const char *s, size_t n, struct sockaddr_storage *a)
{
	for (size_t i = 0; i + 4 <= n; i++) {
		if ((i == 0 || s[i - 1] == ';' || s[i - 1] == ' ') &&
		    ascii_casecmp_n(s + i, 4, "for=", 4) == 0) {
			const char *v = s + i + 4;
			size_t m = n - i - 4;
			size_t len = 0;
			while (len < m && v[len] != ';')
				len++;
			if (len >= 2 && v[0] == '"' && v[len - 1] == '"') {
				v++;
				len -= 2;
			}
			if (len && v[0] == '[') {
				const char *close = memchr(v, ']', len);
				return close ? parse_addr(v, (size_t)(close - v + 1), a) : -1;
			}
			const char *colon = memchr(v, ':', len);
			return parse_addr(v, colon ? (size_t)(colon - v) : len, a);
		}
	}
	return -1;
}

void client_addr(const struct trusted_proxies *t, const struct http_request *req,
		 const struct sockaddr_storage *peer, struct sockaddr_storage *out)
{
	*out = *peer;
	if (!t->n || !trusted_proxy(t, peer))
		return;
	struct sockaddr_storage a;
	const struct http_header *h = http_header_get(req, HTTP_H_X_FORWARDED_FOR);
	if (h) {
		if (rightmost(t, h->value, h->value_len, xff_item, &a) == 0)
			*out = a;
		return;
	}
	h = http_header_get(req, HTTP_H_FORWARDED);
	if (h && rightmost(t, h->value, h->value_len, forwarded_item, &a) == 0)
		*out = a;
}

size_t client_limit_key(const struct sockaddr_storage *a, uint8_t out[8])
{
	int family;
	uint8_t b[16];
	if (addr_bytes(a, &family, b) != 0)
		return 0;
	size_t n = family == AF_INET ? 4 : 8;
	memcpy(out, b, n);
	return n;
}
