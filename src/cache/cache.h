/*
 * cache: the in-process link cache (L1).
 *
 * Design:
 *  - 64 shards, each a chained hash table behind its own mutex; a key's
 *    shard comes from the top bits of its hash, its bucket from the low bits.
 *  - Bounded in bytes (entries, keys and link records counted), split evenly
 *    between shards. Eviction is SIEVE: a FIFO queue with a "visited" bit set
 *    on every hit; the hand evicts the first unvisited entry from the old
 *    end, so hot links survive scans of cold ones.
 *  - Entries expire after ttl (positive) or negative_ttl (unknown code).
 *    Entries hold link records by reference; the link's own expiry is checked
 *    by the caller at serve time, so an expired link is never served.
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
typedef int (*cache_loader)(void *ctx, const char *code, size_t len, struct link **out);

struct cache *cache_new(size_t max_bytes, uint64_t ttl_ms, uint64_t negative_ttl_ms);
void cache_free(struct cache *c);

/* Finds code, loading it through load() on a miss. On CACHE_FOUND, *out
 * holds a reference the caller must link_unref(). now_ms is monotonic. */
int cache_get(struct cache *c, const char *code, size_t len, uint64_t now_ms, cache_loader load,
	      void *ctx, struct link **out);
/* Caches l (takes its own reference), replacing any entry for its code. */
void cache_put(struct cache *c, struct link *l, uint64_t now_ms);
/* Drops any entry for code. */
void cache_invalidate(struct cache *c, const char *code, size_t len);

struct cache_stats {
	uint64_t hits, negative_hits, misses, loads, waits, evictions, expirations;
	uint64_t entries, bytes, max_bytes;
};
void cache_get_stats(struct cache *c, struct cache_stats *out);

#endif
