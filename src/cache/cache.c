/*
 * cache: see cache.h for the design.
 */
#include "cache.h"

#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define NSHARDS 64
#define SHARD_BITS 6

/* One allocation per cached code, holding only what a redirect needs: the
 * code, then the target (neither NUL-terminated). 48 bytes of header. */
struct entry {
	struct entry *newer, *older; /* SIEVE queue; head is newest */
	int64_t id;
	int64_t expires_at_ms;       /* the link's own expiry; 0: never */
	uint64_t fresh_until_ms;     /* monotonic: the cache's TTL */
	uint32_t hash;               /* low half of the key's hash */
	uint16_t url_len;
	uint8_t key_len;
	uint8_t flags;               /* E_* */
	char data[];
};

enum { E_VISITED = 1, E_NEGATIVE = 2, E_DELETED = 4, E_FORWARD_QUERY = 32 };
/* The redirect status in two bits (8 and 16): 301, 302, 307, 308. */
static const int redirects[4] = {301, 302, 307, 308};
#define E_REDIRECT_SHIFT 3

static int redirect_bits(int status)
{
	for (int i = 0; i < 4; i++)
		if (redirects[i] == status)
			return i;
	return 1; /* link.c admits only the four */
}

/* A load in progress: in its shard's list until cache_load_done(). */
struct cache_flight {
	struct cache_flight *next;
	uint64_t hash;
	int stale; /* a write to the code happened during the load */
	struct cache_waiter *waiters;
	size_t key_len;
	char key[LINK_CODE_MAX];
};

/*
 * A shard's table: open addressing, linear probing, no tombstones (a removal
 * shifts the rest of its run back). A slot is 0 when free, else an entry's
 * address in its low 48 bits and 16 more bits of its key's hash above them,
 * so a lookup reads one line of slots and then only the entry whose tag
 * matches: with chains, every entry ahead in the bucket was a cache miss,
 * and most lookups come from random codes in a table far larger than the
 * CPU's caches. The table doubles before it is 3/4 full.
 */
#define SLOT_PTR_BITS 48
#define SLOT_PTR_MASK ((UINT64_C(1) << SLOT_PTR_BITS) - 1)

struct shard {
	pthread_mutex_t lock;
	uint64_t *slots;
	size_t nslots; /* power of two */
	size_t count;
	size_t bytes, max_bytes;
	struct entry *head, *tail, *hand;
	struct cache_flight *flights;
	uint64_t hits, negative_hits, misses, loads, waits, evictions, expirations;
};

struct cache {
	uint64_t seed; /* of the hash (random_seed()): codes and aliases are
			* chosen by clients, unknown ones cached too */
	uint64_t ttl_ms, negative_ttl_ms;
	size_t max_bytes;
	struct shard shards[NSHARDS];
};

static uint64_t hash_key(const struct cache *c, const char *s, size_t n)
{
	/* mixed: the shard takes the top bits and the bucket the low ones */
	return hash_bytes(s, n, c->seed);
}

struct cache *cache_new(size_t max_bytes, uint64_t ttl_ms, uint64_t negative_ttl_ms)
{
	struct cache *c = xcalloc(1, sizeof(*c));
	c->seed = random_seed();
	c->ttl_ms = ttl_ms;
	c->negative_ttl_ms = negative_ttl_ms;
	c->max_bytes = max_bytes;
	for (int i = 0; i < NSHARDS; i++) {
		struct shard *s = &c->shards[i];
		pthread_mutex_init(&s->lock, NULL);
		s->nslots = 64;
		s->slots = xcalloc(s->nslots, sizeof(*s->slots));
		s->max_bytes = max_bytes / NSHARDS;
	}
	return c;
}

static void entry_free(struct entry *e)
{
	free(e);
}

/* The copy a caller gets, made under the shard lock. */
static void entry_copy(const struct entry *e, struct cache_link *out)
{
	out->id = e->id;
	out->expires_at_ms = e->expires_at_ms;
	out->deleted = !!(e->flags & E_DELETED);
	out->redirect = redirects[(e->flags >> E_REDIRECT_SHIFT) & 3];
	out->forward_query = !!(e->flags & E_FORWARD_QUERY);
	out->url_len = e->url_len;
	memcpy(out->url, e->data + e->key_len, e->url_len);
	out->url[e->url_len] = '\0';
}

void cache_link_from(const struct link *l, struct cache_link *out)
{
	out->id = l->id;
	out->expires_at_ms = l->expires_at_ms;
	out->deleted = l->deleted_at_ms != 0;
	out->redirect = l->redirect;
	out->forward_query = l->forward_query;
	out->url_len = l->url_len;
	memcpy(out->url, l->url, l->url_len + 1);
}

void cache_free(struct cache *c)
{
	for (int i = 0; i < NSHARDS; i++) {
		struct shard *s = &c->shards[i];
		assert(s->flights == NULL);
		struct entry *e = s->head, *next;
		for (; e; e = next) {
			next = e->older;
			entry_free(e);
		}
		free(s->slots);
		pthread_mutex_destroy(&s->lock);
	}
	free(c);
}

static struct shard *shard_of(struct cache *c, uint64_t h)
{
	return &c->shards[h >> (64 - SHARD_BITS)];
}

/* The tag: hash bits above the 32 that place an entry (e->hash) and below
 * the shard's. */
static uint64_t tag_of(uint64_t h)
{
	return (h >> 32 & 0xffff) << SLOT_PTR_BITS;
}

static struct entry *entry_at(uint64_t slot)
{
	return (struct entry *)(uintptr_t)(slot & SLOT_PTR_MASK);
}

static size_t home_of(const struct shard *s, uint32_t hash)
{
	return hash & (s->nslots - 1);
}

/* The slot holding key, or the free slot that ends its run. */
static size_t find_slot(const struct shard *s, uint64_t h, const char *key, size_t len)
{
	uint64_t tag = tag_of(h);
	size_t mask = s->nslots - 1;
	for (size_t i = home_of(s, (uint32_t)h);; i = (i + 1) & mask) {
		uint64_t v = s->slots[i];
		if (v == 0)
			return i;
		if ((v & ~SLOT_PTR_MASK) != tag)
			continue;
		struct entry *e = entry_at(v);
		if (e->hash == (uint32_t)h && e->key_len == len && memcmp(e->data, key, len) == 0)
			return i;
	}
}

/* The free slot that ends the run from hash's home: where an entry goes. */
static size_t free_slot(const struct shard *s, uint32_t hash)
{
	size_t i = home_of(s, hash);
	while (s->slots[i] != 0)
		i = (i + 1) & (s->nslots - 1);
	return i;
}

/* The slot holding e itself. */
static size_t slot_of(const struct shard *s, const struct entry *e)
{
	size_t mask = s->nslots - 1;
	size_t i = home_of(s, e->hash);
	while (entry_at(s->slots[i]) != e) {
		assert(s->slots[i] != 0);
		i = (i + 1) & mask;
	}
	return i;
}

/* Empties slot i, moving back any later entry of its run that may not sit
 * after a free slot: one whose home is not in (i, j], cyclically. */
static void clear_slot(struct shard *s, size_t i)
{
	size_t mask = s->nslots - 1;
	for (size_t j = (i + 1) & mask; s->slots[j] != 0; j = (j + 1) & mask) {
		size_t home = home_of(s, entry_at(s->slots[j])->hash);
		if (((j - home) & mask) >= ((j - i) & mask)) {
			s->slots[i] = s->slots[j];
			i = j;
		}
	}
	s->slots[i] = 0;
}

/* What an entry costs: its malloc chunk and about two slots (the table is
 * between 3/8 and 3/4 full). */
static size_t entry_size(size_t key_len, size_t url_len)
{
	return ((sizeof(struct entry) + key_len + url_len + 8 + 15) & ~(size_t)15) +
	       2 * sizeof(uint64_t);
}

static void unlink_entry(struct shard *s, size_t slot)
{
	struct entry *e = entry_at(s->slots[slot]);
	clear_slot(s, slot);
	if (s->hand == e)
		s->hand = e->newer;
	if (e->newer)
		e->newer->older = e->older;
	else
		s->head = e->older;
	if (e->older)
		e->older->newer = e->newer;
	else
		s->tail = e->newer;
	s->count--;
	s->bytes -= entry_size(e->key_len, e->url_len);
	entry_free(e);
}

static void remove_key(struct shard *s, uint64_t h, const char *key, size_t len)
{
	size_t slot = find_slot(s, h, key, len);
	if (s->slots[slot])
		unlink_entry(s, slot);
}

static void evict_one(struct shard *s)
{
	struct entry *e = s->hand ? s->hand : s->tail;
	while (e->flags & E_VISITED) {
		e->flags &= (uint8_t)~E_VISITED;
		e = e->newer ? e->newer : s->tail;
	}
	s->hand = e->newer;
	s->evictions++;
	unlink_entry(s, slot_of(s, e));
}

static void grow(struct shard *s)
{
	uint64_t *old = s->slots;
	size_t n = s->nslots;
	s->nslots = n * 2;
	s->slots = xcalloc(s->nslots, sizeof(*s->slots));
	for (size_t i = 0; i < n; i++) {
		if (old[i] == 0)
			continue;
		s->slots[free_slot(s, entry_at(old[i])->hash)] = old[i];
	}
	free(old);
}

/* Inserts (replacing) an entry; link may be NULL for a negative entry. */
static void insert(struct shard *s, uint64_t h, const char *key, size_t len,
		   const struct link *l, uint64_t fresh_until_ms)
{
	size_t url_len = l ? l->url_len : 0;
	size_t size = entry_size(len, url_len);
	remove_key(s, h, key, len);
	if (size > s->max_bytes)
		return;
	while (s->bytes + size > s->max_bytes && s->tail)
		evict_one(s);
	struct entry *e = xmalloc(sizeof(*e) + len + url_len);
	if ((uintptr_t)e & ~(uintptr_t)SLOT_PTR_MASK) {
		/* not on the 64-bit systems we know (user addresses have 47
		 * or 48 bits); not caching costs a load, never an answer */
		entry_free(e);
		return;
	}
	e->hash = (uint32_t)h;
	e->fresh_until_ms = fresh_until_ms;
	e->key_len = (uint8_t)len;
	e->url_len = (uint16_t)url_len;
	memcpy(e->data, key, len);
	if (l) {
		e->id = l->id;
		e->expires_at_ms = l->expires_at_ms;
		e->flags = (uint8_t)((l->deleted_at_ms ? E_DELETED : 0) |
				     (l->forward_query ? E_FORWARD_QUERY : 0) |
				     redirect_bits(l->redirect) << E_REDIRECT_SHIFT);
		memcpy(e->data + len, l->url, url_len);
	} else {
		e->id = 0;
		e->expires_at_ms = 0;
		e->flags = E_NEGATIVE;
	}
	if ((s->count + 1) * 4 > s->nslots * 3)
		grow(s);
	s->slots[free_slot(s, e->hash)] = tag_of(h) | (uintptr_t)e;
	e->newer = NULL;
	e->older = s->head;
	if (s->head)
		s->head->newer = e;
	else
		s->tail = e;
	s->head = e;
	s->count++;
	s->bytes += size;
}

static struct cache_flight *find_flight(struct shard *s, uint64_t h, const char *key, size_t len)
{
	for (struct cache_flight *f = s->flights; f; f = f->next)
		if (f->hash == h && f->key_len == len && memcmp(f->key, key, len) == 0)
			return f;
	return NULL;
}

static void mark_stale(struct shard *s, uint64_t h, const char *key, size_t len)
{
	struct cache_flight *f = find_flight(s, h, key, len);
	if (f)
		f->stale = 1;
}

int cache_get(struct cache *c, const char *key, size_t len, uint64_t now_ms,
	      struct cache_link *out, struct cache_waiter *w, struct cache_flight **flight)
{
	assert(len <= LINK_CODE_MAX);
	uint64_t h = hash_key(c, key, len);
	struct shard *s = shard_of(c, h);
	pthread_mutex_lock(&s->lock);
	size_t slot = find_slot(s, h, key, len);
	if (s->slots[slot]) {
		struct entry *e = entry_at(s->slots[slot]);
		if (now_ms < e->fresh_until_ms) {
			if (!(e->flags & E_VISITED)) /* else the line stays clean */
				e->flags |= E_VISITED;
			if (!(e->flags & E_NEGATIVE)) {
				s->hits++;
				entry_copy(e, out);
				pthread_mutex_unlock(&s->lock);
				return CACHE_FOUND;
			}
			s->negative_hits++;
			pthread_mutex_unlock(&s->lock);
			return CACHE_NOTFOUND;
		}
		s->expirations++;
		unlink_entry(s, slot);
	}
	s->misses++;
	struct cache_flight *f = find_flight(s, h, key, len);
	if (f) {
		s->waits++;
		w->next = f->waiters;
		f->waiters = w;
		pthread_mutex_unlock(&s->lock);
		return CACHE_WAIT;
	}
	f = xmalloc(sizeof(*f));
	f->hash = h;
	f->stale = 0;
	f->waiters = NULL;
	f->key_len = len;
	memcpy(f->key, key, len);
	f->next = s->flights;
	s->flights = f;
	s->loads++;
	pthread_mutex_unlock(&s->lock);
	*flight = f;
	return CACHE_LOAD;
}

int cache_peek(struct cache *c, const char *key, size_t len, uint64_t now_ms)
{
	if (len > LINK_CODE_MAX)
		return CACHE_LOAD;
	uint64_t h = hash_key(c, key, len);
	struct shard *s = shard_of(c, h);
	pthread_mutex_lock(&s->lock);
	size_t slot = find_slot(s, h, key, len);
	int rc = CACHE_LOAD;
	if (s->slots[slot]) {
		const struct entry *e = entry_at(s->slots[slot]);
		if (now_ms < e->fresh_until_ms)
			rc = e->flags & E_NEGATIVE ? CACHE_NOTFOUND : CACHE_FOUND;
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

void cache_load_done(struct cache *c, struct cache_flight *f, int result, struct link *l,
		     uint64_t now_ms)
{
	struct shard *s = shard_of(c, f->hash);
	pthread_mutex_lock(&s->lock);
	if (!f->stale && c->max_bytes > 0) {
		if (result == CACHE_FOUND)
			insert(s, f->hash, f->key, f->key_len, l, now_ms + c->ttl_ms);
		else if (result == CACHE_NOTFOUND && c->negative_ttl_ms > 0)
			insert(s, f->hash, f->key, f->key_len, NULL, now_ms + c->negative_ttl_ms);
	}
	struct cache_flight **pp = &s->flights;
	while (*pp != f)
		pp = &(*pp)->next;
	*pp = f->next;
	pthread_mutex_unlock(&s->lock);
	/* No one else can reach f now: wake its waiters without the lock. */
	struct cache_waiter *w = f->waiters, *next;
	free(f);
	for (; w; w = next) {
		next = w->next; /* w is its owner's again once woken */
		w->result = result;
		w->link = result == CACHE_FOUND ? link_ref(l) : NULL;
		w->wake(w);
	}
}

void cache_put(struct cache *c, struct link *l, uint64_t now_ms)
{
	uint64_t h = hash_key(c, l->code, l->code_len);
	struct shard *s = shard_of(c, h);
	pthread_mutex_lock(&s->lock);
	mark_stale(s, h, l->code, l->code_len);
	if (c->max_bytes > 0)
		insert(s, h, l->code, l->code_len, l, now_ms + c->ttl_ms);
	pthread_mutex_unlock(&s->lock);
}

void cache_get_stats(struct cache *c, struct cache_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->max_bytes = c->max_bytes;
	for (int i = 0; i < NSHARDS; i++) {
		struct shard *s = &c->shards[i];
		pthread_mutex_lock(&s->lock);
		out->hits += s->hits;
		out->negative_hits += s->negative_hits;
		out->misses += s->misses;
		out->loads += s->loads;
		out->waits += s->waits;
		out->evictions += s->evictions;
		out->expirations += s->expirations;
		out->entries += s->count;
		out->bytes += s->bytes;
		pthread_mutex_unlock(&s->lock);
	}
}
