/*
 * link: the domain of shortd. A link maps a code to a target URL.
 *
 * struct link is an immutable, reference-counted record: once built and
 * published (to the cache or a reader), no field changes; an update builds a
 * new record. link_new() returns a record with one reference owned by the
 * caller; link_unref() drops one and frees the record at zero.
 *
 * Rules enforced here:
 *  - codes and aliases: [A-Za-z0-9_-]; aliases 3..64 characters and not a
 *    reserved word (routes of the service, case-insensitively);
 *  - target URLs: http or https only, a host, no credentials, no control
 *    characters, spaces or backslashes, at most LINK_URL_MAX bytes after
 *    normalisation, not pointing back at this service (redirect loops),
 *    a host that ends in a number only as a dotted IPv4 address (WHATWG
 *    URL parsing: browsers refuse "256.1.1.1", "1.2.3.4.5", "4294967296"),
 *    and no international name that passes for another (lookalike.h).
 *    Normalisation: scheme and host lowercased, default port dropped,
 *    international host names converted to punycode (IDNA2008/UTS#46),
 *    non-ASCII bytes elsewhere percent-encoded, dot segments removed.
 */
#ifndef SHORTD_LINK_H
#define SHORTD_LINK_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util.h"

#define LINK_URL_MAX 8192
#define LINK_CODE_MAX 64
#define LINK_ALIAS_MIN 3

struct link {
	atomic_int refs;
	int redirect;          /* 301, 302, 307 or 308 */
	int forward_query;     /* 1: a request's query string goes on to the target */
	int64_t id;            /* Snowflake id */
	int64_t created_at_ms; /* Unix ms */
	int64_t updated_at_ms;
	int64_t expires_at_ms; /* 0: never */
	int64_t deleted_at_ms; /* 0: not deleted */
	int64_t owner;         /* api_keys.id of the creating key; 0: anonymous */
	uint32_t code_len;
	uint32_t url_len;
	char *code; /* NUL-terminated, stored inline after the struct */
	char *url;  /* NUL-terminated, stored inline after the code */
};

struct link *link_new(const char *code, size_t code_len, const char *url, size_t url_len);
/* A new record (one reference for the caller) with l's fields under
 * another code. */
struct link *link_with_code(const struct link *l, const char *code, size_t code_len);
static inline struct link *link_ref(struct link *l)
{
	atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);
	return l;
}
void link_unref(struct link *l);

enum link_state { LINK_LIVE = 0, LINK_EXPIRED, LINK_DELETED };
/* A link's state at now_ms (Unix ms), from its expiry (0: never) and
 * whether it was deleted. */
enum link_state link_state_of(int64_t expires_at_ms, int deleted, int64_t now_ms);

/* 1 if s is a syntactically possible code ([A-Za-z0-9_-]{1,64}). */
int link_code_syntax_ok(const char *s, size_t len);
/* 1 if s is a reserved word (a route of the service, any case). */
int link_code_reserved(const char *s, size_t len);
/* 0 if s is an acceptable custom alias; else -1 and *why explains. */
int link_alias_check(const char *s, size_t len, const char **why);

struct lookalike;

/* Where this service is reachable, so that links to it can be refused. */
struct url_self {
	char host[256]; /* lowercase; an IP address in canonical form (IPv6 in brackets) */
	int port;
	int any_path;   /* 0: only paths under url_policy.self_path loop back */
};

struct url_policy {
	struct url_self self[64];
	size_t nself;
	/* Listening on loopback or on every address: each loopback and
	 * unspecified address (127.0.0.0/8, ::1, 0.0.0.0, ::, in any
	 * spelling) reaches this service at this port. 0: none. */
	int local_port;
	char self_path[LINK_URL_MAX]; /* base URL path prefix without trailing '/' */
	struct lookalike *look;       /* lookalike.h; NULL: no such checks */
};

/* 1: every URL goes through libcurl's parser, even one it would give back
 * unchanged (link.c, curl_keeps). Tests and fuzzers set it to compare the
 * two ways; the service leaves it 0. */
extern int link_url_always_curl;

/* Normalises a target URL into out (appended). Returns 0, or -1 with *why
 * set to a message for the client. */
int link_url_normalize(const char *in, size_t len, const struct url_policy *pol, struct buf *out,
		       const char **why);

/* Builds the policy from the base URL and the listen address (a wildcard
 * address adds the addresses of this machine's interfaces), with the
 * default lookalike rules. Returns 0, or -1 with *why set if the base URL
 * is not an http(s) URL with a host. An https base URL on port 443 is
 * refused on port 80 too: http:// is commonly sent on to https://. */
int url_policy_init(struct url_policy *pol, const char *base_url, const char *listen_host,
		    int listen_port, const char **why);
/* Replaces the lookalike rules (lookalike_open's level and path). 0, or -1
 * with a message in err. */
int url_policy_lookalikes(struct url_policy *pol, const char *level, const char *path, char *err,
			  size_t errlen);
void url_policy_release(struct url_policy *pol);

#endif
