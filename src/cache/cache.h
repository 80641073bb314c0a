/*
 * cache: the in-process link cache (L1).
 *
 * Design:
 *  - 64 shards, each an open-addressing hash table behind its own mutex; a
 *    key's shard comes from the top bits of its hash, its slot from the low
 *    bits, and 16 bits in between go into the slot beside the entry's
 *    address, so a lookup touches only the entry it finds.
 *  - An entry is one allocation holding only what a redirect needs (id,
 *    expiry, deleted flag, status, code and target: 48 bytes plus the two
 *    strings), not the link record, which carries the API's fields too.
 *  - Bounded in bytes (each entry's malloc chunk and about two slots),
 *    split evenly between shards. Eviction is SIEVE: a FIFO queue with a "visited" bit set
 *    on every hit; the hand evicts the first unvisited entry from the old
 *    end, so hot links survive scans of cold ones.
 *  - Entries expire after ttl (positive) or negative_ttl (unknown code).
 *    A hit is copied out under the shard lock, so no reference counts are
 *    touched; the link's own expiry is checked by the caller at serve
 *    time, so an expired link is never served.
 *  - Single-flight: concurrent misses of one code wait for one load. A write
 *    (cache_put or cache_invalidate) during a load marks the load stale, and
 *    its result is then not cached, so a slow read cannot put back an
 *    outdated row after a PATCH or DELETE.
 * Locking: a shard mutex is held only for table operations and never across
 * a load.
 */
#ifndef SHORTD_CACHE_H
#define SHORTD_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "link/link.h"

struct cache;

enum cache_result { CACHE_FOUND = 0, CACHE_NOTFOUND = 1, CACHE_ERROR = -1 };

/* Loads a link from the store: CACHE_FOUND with *out (one reference for the
 * caller), CACHE_NOTFOUND, or CACHE_ERROR (nothing is cached). */
/* A cached link as a redirect sees it. */
struct cache_link {
	int64_t id;
	int64_t expires_at_ms; /* 0: never */
	int deleted;
	int redirect;          /* 301, 302, 307 or 308 */
	size_t url_len;
	char url[LINK_URL_MAX + 1]; /* NUL-terminated */
};

typedef int (*cache_loader)(void *ctx, const char *code, size_t len, struct link **out);

struct cache *cache_new(size_t max_bytes, uint64_t ttl_ms, uint64_t negative_ttl_ms);
void cache_free(struct cache *c);

/* Finds code, loading it through load() on a miss; on CACHE_FOUND, *out
 * is a copy of the link. now_ms is monotonic. */
int cache_get(struct cache *c, const char *code, size_t len, uint64_t now_ms, cache_loader load,
	      void *ctx, struct cache_link *out);
/* Caches (a copy of) l, replacing any entry for its code. */
void cache_put(struct cache *c, struct link *l, uint64_t now_ms);
/* Drops any entry for code. */
void cache_invalidate(struct cache *c, const char *code, size_t len);

struct cache_stats {
	uint64_t hits, negative_hits, misses, loads, waits, evictions, expirations;
	uint64_t entries, bytes, max_bytes;
};
void cache_get_stats(struct cache *c, struct cache_stats *out);

#endif
