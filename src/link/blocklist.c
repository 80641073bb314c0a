/*
 * blocklist: see blocklist.h.
 */
#include "blocklist.h"
#include "core/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <idn2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct blocklist {
	atomic_int refs;
	char **slots; /* open addressing; NULL: empty */
	size_t mask;
	size_t n;
};


static int lookup(const struct blocklist *b, const char *s, size_t n)
{
	if (!b->n)
		return 0;
	for (size_t i = hash_bytes(s, n, 0) & b->mask;; i = (i + 1) & b->mask) {
		const char *e = b->slots[i];
		if (!e)
			return 0;
		if (strlen(e) == n && memcmp(e, s, n) == 0)
			return 1;
	}
}

static void insert(struct blocklist *b, char *name)
{
	size_t n = strlen(name);
	if (lookup(b, name, n)) {
		free(name);
		return;
	}
	size_t i = hash_bytes(name, n, 0) & b->mask;
	while (b->slots[i])
		i = (i + 1) & b->mask;
	b->slots[i] = name;
	b->n++;
}

static void grow(struct blocklist *b)
{
	size_t old = b->mask + 1;
	char **slots = b->slots;
	b->mask = old * 2 - 1;
	b->slots = xcalloc(old * 2, sizeof(*b->slots));
	b->n = 0;
	for (size_t i = 0; i < old; i++)
		if (slots[i])
			insert(b, slots[i]);
	free(slots);
}

char *blocklist_line_domain(char *line, int *bad)
{
	*bad = 0;
	char *hash = strchr(line, '#');
	if (hash)
		*hash = '\0';
	char *s = line;
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strcspn(s, " \t\r\n");
	s[n] = '\0';
	if (!n)
		return NULL;
	if (strncmp(s, "*.", 2) == 0)
		s += 2;
	n = strlen(s);
	while (n && s[n - 1] == '.')
		s[--n] = '\0';
	char *ascii = NULL;
	if (!n || idn2_to_ascii_8z(s, &ascii, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL) != IDN2_OK) {
		idn2_free(ascii);
		*bad = 1;
		return NULL;
	}
	char *out = xstrdup(ascii);
	idn2_free(ascii);
	size_t label = 0;
	for (char *c = out;; c++) {
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c + 32);
		if (*c == '.' || !*c) {
			if (!label || c[-1] == '-')
				*bad = 1;
			if (!*c)
				break;
			label = 0;
		} else if ((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_' ||
			   (*c == '-' && label)) {
			label++;
		} else {
			*bad = 1;
		}
	}
	if (*bad) {
		free(out);
		return NULL;
	}
	return out;
}

int blocklist_load(const char *path, struct blocklist **out, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "--blocklist: cannot open '%s': %s", path, strerror(errno));
		return -1;
	}
	struct blocklist *b = xcalloc(1, sizeof(*b));
	atomic_init(&b->refs, 1);
	b->mask = 63;
	b->slots = xcalloc(64, sizeof(*b->slots));
	char line[1024];
	int lineno = 0;
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		int bad;
		char *name = blocklist_line_domain(line, &bad);
		if (bad) {
			snprintf(err, errlen, "--blocklist: '%s' line %d is not a domain name", path,
				 lineno);
			fclose(f);
			blocklist_unref(b);
			return -1;
		}
		if (!name)
			continue;
		if ((b->n + 1) * 2 > b->mask + 1)
			grow(b);
		insert(b, name);
	}
	fclose(f);
	*out = b;
	return 0;
}

size_t blocklist_size(const struct blocklist *b)
{
	return b ? b->n : 0;
}

struct blocklist *blocklist_ref(struct blocklist *b)
{
	if (b)
		atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
	return b;
}

void blocklist_unref(struct blocklist *b)
{
	if (!b || atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1)
		return;
	for (size_t i = 0; i <= b->mask; i++)
		free(b->slots[i]);
	free(b->slots);
	free(b);
}

int blocklist_match(const struct blocklist *b, const char *host)
{
	if (!b || !b->n)
		return 0;
	for (const char *s = host; s; s = strchr(s, '.') ? strchr(s, '.') + 1 : NULL)
		if (*s && lookup(b, s, strlen(s)))
			return 1;
	return 0;
}

void blocklist_slot_init(struct blocklist_slot *s)
{
	pthread_mutex_init(&s->lock, NULL);
	s->live = NULL;
}

void blocklist_slot_release(struct blocklist_slot *s)
{
	blocklist_install(s, NULL);
	pthread_mutex_destroy(&s->lock);
}

struct blocklist *blocklist_current(struct blocklist_slot *s)
{
	pthread_mutex_lock(&s->lock);
	struct blocklist *b = blocklist_ref(s->live);
	pthread_mutex_unlock(&s->lock);
	return b;
}

void blocklist_install(struct blocklist_slot *s, struct blocklist *b)
{
	pthread_mutex_lock(&s->lock);
	struct blocklist *old = s->live;
	s->live = b;
	pthread_mutex_unlock(&s->lock);
	blocklist_unref(old);
}

/* ---- the 403 rules ---------------------------------------------------- */

static int in4(const uint8_t a[4], uint32_t net, int bits)
{
	uint32_t v = (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 | (uint32_t)a[2] << 8 | a[3];
	uint32_t mask = bits ? ~0u << (32 - bits) : 0;
	return (v & mask) == (net & mask);
}

/* Not a public unicast IPv4 address (RFC 6890 special-purpose blocks). */
static int private4(const uint8_t a[4])
{
	static const struct {
		uint32_t net;
		int bits;
	} blocks[] = {
		{0x00000000, 8},  {0x0a000000, 8},  {0x64400000, 10}, {0x7f000000, 8},
		{0xa9fe0000, 16}, {0xac100000, 12}, {0xc0000000, 24}, {0xc0000200, 24},
		{0xc0a80000, 16}, {0xc6120000, 15}, {0xc6336400, 24}, {0xcb007100, 24},
		{0xe0000000, 4},  {0xf0000000, 4},
	};
	for (size_t i = 0; i < ARRAY_LEN(blocks); i++)
		if (in4(a, blocks[i].net, blocks[i].bits))
			return 1;
	return 0;
}

static int private6(const uint8_t a[16])
{
	static const uint8_t zero[16], mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff},
				      nat64[12] = {0, 0x64, 0xff, 0x9b},
				      nat64_local[6] = {0, 0x64, 0xff, 0x9b, 0, 1},
				      discard[8] = {0x01, 0x00};
	if (memcmp(a, zero, 12) == 0)
		return 1; /* ::, ::1 and the deprecated IPv4-compatible ::a.b.c.d */
	if (memcmp(a, mapped, 12) == 0 || memcmp(a, nat64, 12) == 0)
		return private4(a + 12);
	if (memcmp(a, nat64_local, 6) == 0 || memcmp(a, discard, 8) == 0)
		return 1; /* 64:ff9b:1::/48 local-use NAT64, 100::/64 discard */
	if (a[0] == 0x20 && a[1] == 0x01 && a[2] < 0x02)
		return 1; /* 2001::/23 protocol assignments: Teredo, benchmarking, ORCHID */
	if (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0)
		return 1; /* fec0::/10 site-local (deprecated) */
	if (a[0] == 0x20 && a[1] == 0x02) /* 6to4 embeds an IPv4 address */
		return private4(a + 2);
	if ((a[0] & 0xfe) == 0xfc)       /* fc00::/7 unique local */
		return 1;
	if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) /* fe80::/10 link-local */
		return 1;
	if (a[0] == 0xff) /* multicast */
		return 1;
	if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x0d && a[3] == 0xb8)
		return 1; /* 2001:db8::/32 documentation */
	return 0;
}

/* Names that lead inside a network: a single label (completed by the
 * resolver's search domains), the special-use and customary private
 * domains, and the loopback names of Debian's /etc/hosts. */
static int private_name(const char *host)
{
	static const char *const suffixes[] = {
		"localhost", "localdomain", "local", "internal", "home.arpa", "lan", "intranet",
		"corp", "home", "private",
	};
	if (!strchr(host, '.') || strcmp(host, "ip6-localhost") == 0 ||
	    strcmp(host, "ip6-loopback") == 0)
		return 1;
	size_t hl = strlen(host);
	for (size_t i = 0; i < ARRAY_LEN(suffixes); i++) {
		size_t sl = strlen(suffixes[i]);
		if (hl > sl && host[hl - sl - 1] == '.' && strcmp(host + hl - sl, suffixes[i]) == 0)
			return 1;
	}
	return 0;
}

int link_target_allowed(const char *url, const struct blocklist *bl, int deny_private,
			const char **why)
{
	/* url is normalised: scheme://host[:port]... with a lowercase host */
	const char *h = strstr(url, "://");
	if (!h) {
		*why = "is not a URL";
		return -1;
	}
	h += 3;
	char host[300];
	size_t n = strcspn(h, "/?#");
	if (h[0] == '[') {
		const char *rb = memchr(h, ']', n);
		n = rb ? (size_t)(rb - h) + 1 : n;
	} else {
		const char *colon = memchr(h, ':', n);
		if (colon)
			n = (size_t)(colon - h);
	}
	if (n >= sizeof(host)) {
		*why = "has an invalid host";
		return -1;
	}
	memcpy(host, h, n);
	host[n] = '\0';
	if (host[0] != '[' && blocklist_match(bl, host)) {
		*why = "points to a blocked domain";
		return -1;
	}
	if (!deny_private)
		return 0;
	uint8_t a[16];
	int priv = 0;
	if (host[0] == '[') {
		host[n - 1] = '\0';
		priv = inet_pton(AF_INET6, host + 1, a) != 1 || private6(a);
	} else if (inet_pton(AF_INET, host, a) == 1) {
		priv = private4(a);
	} else {
		priv = private_name(host);
	}
	if (priv) {
		*why = "points to a private, loopback or reserved address (--deny-private-targets)";
		return -1;
	}
	return 0;
}
