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
 *  - Single-flight, without blocking anyone: the first miss of a code gets
 *    CACHE_LOAD and a flight, reads the store however long that takes, and
 *    ends the flight with cache_load_done() exactly once. Every other miss
 *    of the code meanwhile, on any thread, gets CACHE_WAIT: its waiter is
 *    queued on the flight, and cache_load_done() calls each waiter's wake()
 *    once, with the same result (found, not found, or an error that every
 *    one of them answers as the loader does), on the loader's thread and
 *    outside every lock. wake() only hands the waiter back to its own
 *    thread (a task posted to its loop); nothing waits in the meantime.
 *  - A write (cache_put) during a load marks the load
 *    stale, and its result is then not cached (the waiters still get it:
 *    they asked before the write), so a slow read cannot put back an
 *    outdated row after a PATCH or DELETE.
 * Locking: a shard mutex is held only for table operations and never across
 * a load or a wake().
 */
#ifndef SHORTD_CACHE_H
#define SHORTD_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "link/link.h"

struct cache;

enum cache_result {
	CACHE_FOUND = 0,    /* a cached link: *out holds it */
	CACHE_NOTFOUND = 1, /* a cached "no such code" */
	CACHE_ERROR = -1,   /* (a load's result) the store failed: nothing cached */
	CACHE_LOAD = 2,     /* a miss: the caller loads it (*flight) */
	CACHE_WAIT = 3,     /* a miss being loaded: the waiter will be woken */
};

/* A cached link as a redirect sees it. */
struct cache_link {
	int64_t id;
	int64_t expires_at_ms; /* 0: never */
	int deleted;
	int redirect;          /* 301, 302, 307 or 308 */
	int forward_query;     /* the request's query string goes on */
	size_t url_len;
	char url[LINK_URL_MAX + 1]; /* NUL-terminated */
};

/* A miss that waits for another caller's load, owned by the waiting
 * caller. wake is set by it; result and link are filled in before wake(w)
 * is called, once, on the loader's thread: it must hand w back to its
 * owner's thread and return. */
struct cache_waiter {
	void (*wake)(struct cache_waiter *w);
	int result;        /* CACHE_FOUND, CACHE_NOTFOUND or CACHE_ERROR */
	struct link *link; /* CACHE_FOUND: one reference, the waiter's */
	struct cache_waiter *next;
};

/* A load in progress (the cache's); ended by cache_load_done(). */
struct cache_flight;

struct cache *cache_new(size_t max_bytes, uint64_t ttl_ms, uint64_t negative_ttl_ms);
void cache_free(struct cache *c);

/* Looks code up; now_ms is monotonic. CACHE_FOUND (*out is a copy of the
 * link) or CACHE_NOTFOUND: answered. On a miss, CACHE_LOAD with *flight:
 * the caller must read the store and end the flight with cache_load_done();
 * or CACHE_WAIT: w (not touched otherwise) is queued on that load. */
int cache_get(struct cache *c, const char *code, size_t len, uint64_t now_ms,
	      struct cache_link *out, struct cache_waiter *w, struct cache_flight **flight);
/* Looks code up without loading it: CACHE_FOUND (a live entry for a link),
 * CACHE_NOTFOUND (a cached "no such code") or CACHE_LOAD (not cached; no
 * flight is started). Counts nothing. */
int cache_peek(struct cache *c, const char *code, size_t len, uint64_t now_ms);
/* Ends a flight: caches the result (result CACHE_FOUND with l, which stays
 * the caller's; CACHE_NOTFOUND; or CACHE_ERROR, which caches nothing)
 * unless a write raced it, and wakes every waiter with it. f is gone
 * after this. */
void cache_load_done(struct cache *c, struct cache_flight *f, int result, struct link *l,
		     uint64_t now_ms);
/* The copy a redirect uses of a link read from the store. */
void cache_link_from(const struct link *l, struct cache_link *out);
/* Caches (a copy of) l, replacing any entry for its code. */
void cache_put(struct cache *c, struct link *l, uint64_t now_ms);

struct cache_stats {
	uint64_t hits, negative_hits, misses, loads, waits, evictions, expirations;
	uint64_t entries, bytes, max_bytes;
};
void cache_get_stats(struct cache *c, struct cache_stats *out);

#endif
