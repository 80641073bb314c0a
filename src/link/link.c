/*
 * link: records, code and alias rules, and target URL normalisation.
 * See link.h for the rules.
 *
 * URL normalisation is done in two passes: first our own strict pass over
 * the raw bytes (scheme, authority, encoding), which also does the steps
 * libcurl's URL API leaves out on Debian 12 (lowercasing hosts, dropping
 * default ports, punycode, percent-encoding of non-ASCII path bytes); then
 * curl_url() parses the rebuilt string and gives back its canonical form
 * (dot segments removed, empty path made "/"). The host curl sees is checked
 * against ours, so that the two parsers can never disagree about where a
 * link goes. Most URLs are already in that form after the first pass, and
 * curl_keeps() recognises them, so they skip the second.
 */
#include "link.h"
#include "lookalike.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <ifaddrs.h>
#include <idn2.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

struct link *link_new(const char *code, size_t code_len, const char *url, size_t url_len)
{
	struct link *l = xmalloc(sizeof(*l) + code_len + 1 + url_len + 1);
	memset(l, 0, sizeof(*l));
	atomic_init(&l->refs, 1);
	l->code = (char *)(l + 1);
	l->url = l->code + code_len + 1;
	memcpy(l->code, code, code_len);
	l->code[code_len] = '\0';
	memcpy(l->url, url, url_len);
	l->url[url_len] = '\0';
	l->code_len = (uint32_t)code_len;
	l->url_len = (uint32_t)url_len;
	return l;
}

struct link *link_with_code(const struct link *l, const char *code, size_t code_len)
{
	struct link *c = link_new(code, code_len, l->url, l->url_len);
	c->redirect = l->redirect;
	c->forward_query = l->forward_query;
	c->id = l->id;
	c->created_at_ms = l->created_at_ms;
	c->updated_at_ms = l->updated_at_ms;
	c->expires_at_ms = l->expires_at_ms;
	c->deleted_at_ms = l->deleted_at_ms;
	return c;
}

void link_unref(struct link *l)
{
	if (atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) == 1)
		free(l);
}

enum link_state link_state_of(int64_t expires_at_ms, int deleted, int64_t now_ms)
{
	if (deleted)
		return LINK_DELETED;
	if (expires_at_ms && now_ms >= expires_at_ms)
		return LINK_EXPIRED;
	return LINK_LIVE;
}

static int code_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-';
}

int link_code_syntax_ok(const char *s, size_t len)
{
	if (len == 0 || len > LINK_CODE_MAX)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!code_char((unsigned char)s[i]))
			return 0;
	return 1;
}

/* Words that are, or may become, routes of the service. */
static const char *const reserved[] = {
	"api",	   "admin",  "metrics", "healthz", "readyz", "health", "ready",	 "status",
	"static",  "assets", "public",  "ui",	   "app",    "web",    "docs",	 "doc",
	"login",   "logout", "signup",  "register", "auth",  "oauth",  "account", "settings",
	"dashboard", "new",  "links",   "link",	   "stats",  "keys",   "qr",	 "favicon",
	"robots",  "sitemap", "well-known", "_",   "shortd", "www",    "help",	 "about",
};

int link_code_reserved(const char *s, size_t len)
{
	for (size_t i = 0; i < ARRAY_LEN(reserved); i++)
		if (ascii_casecmp_n(s, len, reserved[i], strlen(reserved[i])) == 0)
			return 1;
	return 0;
}

int link_alias_check(const char *s, size_t len, const char **why)
{
	if (len < LINK_ALIAS_MIN || len > LINK_CODE_MAX) {
		*why = "must be 3 to 64 characters long";
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		if (!code_char((unsigned char)s[i])) {
			*why = "may contain only letters, digits, '_' and '-'";
			return -1;
		}
	}
	if (link_code_reserved(s, len)) {
		*why = "is a reserved word";
		return -1;
	}
	return 0;
}

static int is_hex(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Checks and lowercases a DNS host name made of ASCII labels: letters,
 * digits, '-' and '_' (seen in real names), 1..63 bytes, no '-' at either
 * end of a label, no empty label. */
static int host_name_ok(char *h)
{
	size_t len = strlen(h), label = 0;
	if (len == 0 || len > 253)
		return 0;
	for (size_t i = 0; i <= len; i++) {
		unsigned char c = (unsigned char)h[i];
		if (c == '.' || c == '\0') {
			if (label == 0 || h[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (c >= 'A' && c <= 'Z')
			h[i] = (char)(c + 32);
		else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return 0;
		if (label == 0 && c == '-')
			return 0;
		if (++label > 63)
			return 0;
	}
	return 1;
}

/* Labels that claim to be punycode ("xn--") must decode, or a lookalike
 * could hide behind an undecodable name; and the name may not pass for
 * another (lookalike.h). 0, or -1 with *why. */
static int punycode_labels_ok(const char *h, const struct lookalike *look, const char **why)
{
	if (!strstr(h, "xn--"))
		return 0;
	char *u = NULL;
	int rc = idn2_to_unicode_8z8z(h, &u, 0);
	if (rc != IDN2_OK) {
		free(u);
		*why = "has invalid punycode in its host name";
		return -1;
	}
	char *back = NULL;
	rc = idn2_to_ascii_8z(u, &back, IDN2_NONTRANSITIONAL);
	int ok = rc == IDN2_OK && strcmp(back, h) == 0;
	idn2_free(back);
	if (!ok)
		*why = "has invalid punycode in its host name";
	else if (look && lookalike_check(look, u, why) != 0)
		ok = 0;
	free(u);
	return ok ? 0 : -1;
}

static int default_port(const char *scheme)
{
	return strcmp(scheme, "https") == 0 ? 443 : 80;
}

int link_url_always_curl;

/* 1 if curl's parse of u, a URL rebuilt by link_url_normalize with its
 * path from path_at on, gives u back unchanged, so that the parse can be
 * left out (it was 9% of a create's worker time). That holds unless the
 * host might be read as an IPv4 address in another notation ("0x7f.1"),
 * the path is empty (curl makes it "/"), a segment starts with a dot
 * ("/./", "/../" are removed), or the query or the fragment is empty
 * (curl drops a lone "?" or "#"). Each of those goes through curl. The
 * fuzzer fuzz_url checks that both ways give the same answer. */
static int curl_keeps(const char *u, size_t len, size_t path_at, const char *host)
{
	if (host[0] == '[' || host[strspn(host, "0123456789abcdefx.")] == '\0')
		return 0;
	if (path_at == len || u[path_at] != '/')
		return 0;
	size_t i = path_at;
	for (; i < len && u[i] != '?' && u[i] != '#'; i++)
		if (u[i] == '/' && i + 1 < len && u[i + 1] == '.')
			return 0;
	const char *hash = memchr(u + i, '#', len - i);
	size_t h = hash ? (size_t)(hash - u) : len;
	if (i < len && u[i] == '?' && i + 1 == h)
		return 0;
	return h == len || h + 1 < len;
}

/* If host is an IP address (dotted IPv4, or IPv6 in brackets), writes
 * its one spelling to out (an IPv4 address mapped or embedded in IPv6 as
 * IPv4) and returns 1, or 2 for a loopback or unspecified address;
 * otherwise 0. */
static int canonical_ip(const char *host, char *out, size_t cap)
{
	uint8_t a[16];
	int v4 = 0;
	if (host[0] == '[') {
		char inner[64];
		size_t n = strlen(host);
		if (n < 3 || n - 2 >= sizeof(inner) || host[n - 1] != ']')
			return 0;
		memcpy(inner, host + 1, n - 2);
		inner[n - 2] = '\0';
		if (inet_pton(AF_INET6, inner, a) != 1)
			return 0;
		static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
		static const uint8_t zero[12];
		int compat = memcmp(a, zero, 12) == 0 && (a[12] | a[13] | a[14] || a[15] > 1);
		if (memcmp(a, mapped, 12) == 0 || compat) {
			memmove(a, a + 12, 4);
			v4 = 1;
		}
	} else if (inet_pton(AF_INET, host, a) == 1) {
		v4 = 1;
	} else {
		return 0;
	}
	char text[INET6_ADDRSTRLEN];
	inet_ntop(v4 ? AF_INET : AF_INET6, a, text, sizeof(text));
	snprintf(out, cap, v4 ? "%s" : "[%s]", text);
	static const uint8_t zero16[16];
	if (v4)
		return a[0] == 127 || memcmp(a, zero16, 4) == 0 ? 2 : 1;
	return memcmp(a, zero16, 15) == 0 && a[15] <= 1 ? 2 : 1;
}

/* 1 after setting *why if the URL (host, port, path of path_len bytes)
 * leads back to this service. */
static int points_to_self(const struct url_policy *pol, const char *host, int port,
			  const char *path, size_t path_len, const char **why)
{
	char ip[INET6_ADDRSTRLEN + 2];
	int kind = canonical_ip(host, ip, sizeof(ip));
	if (kind)
		host = ip;
	if (kind == 2 && pol->local_port == port) {
		*why = "points to this shortener (redirect loop)";
		return 1;
	}
	size_t pl = strlen(pol->self_path);
	for (size_t i = 0; i < pol->nself; i++) {
		if (strcmp(pol->self[i].host, host) == 0 && pol->self[i].port == port &&
		    (pol->self[i].any_path ||
		     (path_len >= pl && memcmp(path, pol->self_path, pl) == 0 &&
		      (path_len == pl || path[pl] == '/')))) {
			*why = "points to this shortener (redirect loop)";
			return 1;
		}
	}
	return 0;
}

int link_url_normalize(const char *in, size_t len, const struct url_policy *pol, struct buf *out,
		       const char **why)
{
	if (len == 0) {
		*why = "is empty";
		return -1;
	}
	if (len > LINK_URL_MAX) {
		*why = "is longer than 8192 bytes";
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c <= 0x20 || c == 0x7f) {
			*why = "contains spaces or control characters";
			return -1;
		}
		if (c == '\\') {
			*why = "contains a backslash";
			return -1;
		}
		if (c == '%' && (i + 2 >= len || !is_hex((unsigned char)in[i + 1]) ||
				 !is_hex((unsigned char)in[i + 2]))) {
			*why = "contains an invalid percent-escape";
			return -1;
		}
	}
	const char *scheme;
	size_t p;
	if (len > 7 && strncasecmp(in, "http://", 7) == 0) {
		scheme = "http";
		p = 7;
	} else if (len > 8 && strncasecmp(in, "https://", 8) == 0) {
		scheme = "https";
		p = 8;
	} else {
		*why = "only http:// and https:// URLs can be shortened";
		return -1;
	}
	size_t a_end = p;
	while (a_end < len && in[a_end] != '/' && in[a_end] != '?' && in[a_end] != '#')
		a_end++;
	if (a_end == p) {
		*why = "has no host";
		return -1;
	}
	if (memchr(in + p, '@', a_end - p)) {
		*why = "must not contain credentials (user@host)";
		return -1;
	}

	/* Split the authority into host and port. */
	char host[1024];
	const char *port_s = NULL;
	size_t port_len = 0, hlen;
	if (in[p] == '[') {
		const char *rb = memchr(in + p, ']', a_end - p);
		if (!rb) {
			*why = "has an invalid IPv6 host";
			return -1;
		}
		hlen = (size_t)(rb - (in + p)) + 1;
		if (p + hlen < a_end) {
			if (in[p + hlen] != ':') {
				*why = "has an invalid host";
				return -1;
			}
			port_s = in + p + hlen + 1;
			port_len = a_end - (p + hlen + 1);
		}
	} else {
		const char *colon = memchr(in + p, ':', a_end - p);
		hlen = colon ? (size_t)(colon - (in + p)) : a_end - p;
		if (colon) {
			port_s = colon + 1;
			port_len = a_end - (size_t)(colon + 1 - in);
		}
	}
	if (hlen == 0 || hlen >= sizeof(host)) {
		*why = "has an invalid host";
		return -1;
	}
	memcpy(host, in + p, hlen);
	host[hlen] = '\0';

	int port = 0;
	if (port_s) {
		if (port_len == 0 || port_len > 5) {
			*why = "has an invalid port";
			return -1;
		}
		for (size_t i = 0; i < port_len; i++) {
			if (port_s[i] < '0' || port_s[i] > '9') {
				*why = "has an invalid port";
				return -1;
			}
			port = port * 10 + (port_s[i] - '0');
		}
		if (port < 1 || port > 65535) {
			*why = "has an invalid port";
			return -1;
		}
	}

	if (host[0] != '[') {
		int non_ascii = 0;
		for (size_t i = 0; i < hlen; i++)
			non_ascii |= (unsigned char)host[i] >= 0x80;
		if (non_ascii) {
			char *ascii = NULL;
			int rc = idn2_to_ascii_8z(host, &ascii, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
			if (rc != IDN2_OK || strlen(ascii) >= sizeof(host)) {
				idn2_free(ascii);
				*why = "has an invalid international domain name";
				return -1;
			}
			strcpy(host, ascii);
			idn2_free(ascii);
		}
		if (!host_name_ok(host)) {
			*why = "has an invalid host name";
			return -1;
		}
		/* WHATWG URL: a host whose last label is a number is an IPv4
		 * address, or no host at all. Browsers would read "127.1" or
		 * "0x7f000001" as one; only a.b.c.d is kept. */
		const char *last = strrchr(host, '.');
		last = last ? last + 1 : host;
		int numeric = last[strspn(last, "0123456789")] == '\0' ||
			      ((last[0] == '0' && last[1] == 'x') &&
			       last[2 + strspn(last + 2, "0123456789abcdef")] == '\0');
		uint8_t a4[4];
		if (numeric && inet_pton(AF_INET, host, a4) != 1) {
			*why = "has an ambiguous host: it ends in a number but is not an IPv4 "
			       "address a.b.c.d (browsers refuse it)";
			return -1;
		}
		if (punycode_labels_ok(host, pol->look, why) != 0)
			return -1;
	} else {
		/* one spelling of each IPv6 address: [0:0:0:0:0:0:0:1] is [::1] */
		uint8_t a6[16];
		char inner[INET6_ADDRSTRLEN];
		if (hlen < 3 || hlen - 2 >= sizeof(inner) || host[hlen - 1] != ']') {
			*why = "has an invalid IPv6 host";
			return -1;
		}
		memcpy(inner, host + 1, hlen - 2);
		inner[hlen - 2] = '\0';
		if (inet_pton(AF_INET6, inner, a6) != 1) {
			*why = "has an invalid IPv6 host";
			return -1;
		}
		inet_ntop(AF_INET6, a6, inner, sizeof(inner));
		snprintf(host, sizeof(host), "[%s]", inner);
	}

	int eff_port = port ? port : default_port(scheme);
	struct buf tmp;
	buf_init(&tmp);
	buf_reserve(&tmp, len + 16);
	buf_puts(&tmp, scheme);
	buf_lit(&tmp, "://");
	buf_puts(&tmp, host);
	if (port && port != default_port(scheme)) {
		buf_lit(&tmp, ":");
		buf_putu64(&tmp, (uint64_t)port);
	}
	size_t path_at = tmp.len;
	static const char hex[] = "0123456789ABCDEF";
	size_t run = a_end; /* bytes from here on go out as they are */
	for (size_t i = a_end; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		/* non-ASCII, and ASCII that RFC 3986 does not allow anywhere in a
		 * URL (what browsers encode too) */
		if (c >= 0x80 || (c && strchr("\"<>`{}|^", c))) {
			char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
			buf_append(&tmp, in + run, i - run);
			buf_append(&tmp, esc, 3);
			run = i + 1;
		}
	}
	buf_append(&tmp, in + run, len - run);

	int rc = -1;
	CURLU *u = NULL;
	char *canon = NULL, *chost = NULL, *cpath = NULL;
	/* The canonical URL and its path: tmp's own when curl would give
	 * them back unchanged, else curl's. */
	const char *url = tmp.p, *path = tmp.p + path_at;
	size_t url_len = tmp.len, path_len = strcspn(path, "?#");
	if (link_url_always_curl || !curl_keeps(tmp.p, tmp.len, path_at, host)) {
		u = curl_url();
		if (!u || curl_url_set(u, CURLUPART_URL, tmp.p, 0) != CURLUE_OK ||
		    curl_url_get(u, CURLUPART_URL, &canon, 0) != CURLUE_OK ||
		    curl_url_get(u, CURLUPART_HOST, &chost, 0) != CURLUE_OK ||
		    curl_url_get(u, CURLUPART_PATH, &cpath, 0) != CURLUE_OK) {
			*why = "is not a valid URL";
			goto out;
		}
		if (strcasecmp(chost, host) != 0) {
			*why = "has an ambiguous host";
			goto out;
		}
		url = canon;
		url_len = strlen(canon);
		path = cpath;
		path_len = strlen(cpath);
	}
	if (url_len > LINK_URL_MAX) {
		*why = "is longer than 8192 bytes once normalised";
		goto out;
	}
	if (points_to_self(pol, host, eff_port, path, path_len, why))
		goto out;
	buf_append(out, url, url_len);
	rc = 0;
out:
	curl_free(canon);
	curl_free(chost);
	curl_free(cpath);
	curl_url_cleanup(u);
	buf_release(&tmp);
	return rc;
}

static void add_self(struct url_policy *pol, const char *host, int port, int any_path)
{
	if (pol->nself >= ARRAY_LEN(pol->self))
		return;
	struct url_self *s = &pol->self[pol->nself++];
	char ip[INET6_ADDRSTRLEN + 2];
	snprintf(s->host, sizeof(s->host), "%s", canonical_ip(host, ip, sizeof(ip)) ? ip : host);
	for (char *c = s->host; *c; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c + 32);
	s->port = port;
	s->any_path = any_path;
}

/* Listening on every address: each address of each interface reaches
 * this service. */
static void add_interfaces(struct url_policy *pol, int port)
{
	struct ifaddrs *list;
	if (getifaddrs(&list) != 0)
		return;
	for (struct ifaddrs *i = list; i; i = i->ifa_next) {
		if (!i->ifa_addr)
			continue;
		char text[INET6_ADDRSTRLEN], host[INET6_ADDRSTRLEN + 2];
		if (i->ifa_addr->sa_family == AF_INET) {
			const struct sockaddr_in *sin = (const struct sockaddr_in *)(void *)i->ifa_addr;
			inet_ntop(AF_INET, &sin->sin_addr, text, sizeof(text));
			snprintf(host, sizeof(host), "%s", text);
		} else if (i->ifa_addr->sa_family == AF_INET6) {
			const struct sockaddr_in6 *sin6 =
				(const struct sockaddr_in6 *)(void *)i->ifa_addr;
			inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof(text));
			snprintf(host, sizeof(host), "[%s]", text);
		} else {
			continue;
		}
		add_self(pol, host, port, 1);
	}
	freeifaddrs(list);
}

int url_policy_lookalikes(struct url_policy *pol, const char *level, const char *path, char *err,
			  size_t errlen)
{
	struct lookalike *lk;
	if (lookalike_open(&lk, level, path, err, errlen) != 0)
		return -1;
	lookalike_close(pol->look);
	pol->look = lk;
	return 0;
}

void url_policy_release(struct url_policy *pol)
{
	lookalike_close(pol->look);
	pol->look = NULL;
}

int url_policy_init(struct url_policy *pol, const char *base_url, const char *listen_host,
		    int listen_port, const char **why)
{
	memset(pol, 0, sizeof(*pol));
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *path = NULL, *query = NULL;
	int rc = -1;
	if (!u || curl_url_set(u, CURLUPART_URL, base_url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
		*why = "is not a valid URL";
		goto out;
	}
	if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
		*why = "must be http:// or https://";
		goto out;
	}
	if (curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK) {
		*why = "must not have a query";
		goto out;
	}
	char *port = NULL;
	int p = default_port(scheme);
	if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK)
		p = atoi(port);
	curl_free(port);
	add_self(pol, host, p, 0);
	if (p == 443)
		add_self(pol, host, 80, 0); /* http:// is commonly sent on to https:// */
	size_t pl = strlen(path);
	while (pl > 0 && path[pl - 1] == '/')
		pl--;
	snprintf(pol->self_path, sizeof(pol->self_path), "%.*s", (int)pl, path);

	/* The listen address reaches us too; on loopback or a wildcard
	 * address, so do every local address and the names of this machine. */
	char ip[INET6_ADDRSTRLEN + 2];
	int kind = canonical_ip(listen_host, ip, sizeof(ip));
	add_self(pol, listen_host, listen_port, 1);
	if (kind == 2 || strcmp(listen_host, "localhost") == 0) {
		pol->local_port = listen_port;
		add_self(pol, "localhost", listen_port, 1);
		char name[256];
		if (gethostname(name, sizeof(name)) == 0) {
			name[sizeof(name) - 1] = '\0';
			add_self(pol, name, listen_port, 1);
		}
	}
	if (kind == 2 && (strcmp(ip, "0.0.0.0") == 0 || strcmp(ip, "[::]") == 0))
		add_interfaces(pol, listen_port);
	char lerr[256];
	if (url_policy_lookalikes(pol, "moderately", NULL, lerr, sizeof(lerr)) != 0) {
		*why = "cannot start the lookalike checks (ICU)";
		goto out;
	}
	rc = 0;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(path);
	curl_free(query);
	curl_url_cleanup(u);
	return rc;
}
