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

struct entry {
	struct entry *hnext;        /* hash chain */
	struct entry *newer, *older; /* SIEVE queue; head is newest */
	uint64_t hash;
	uint64_t expires_ms;
	struct link *link;          /* NULL: negative entry */
	uint32_t size;
	uint8_t visited;
	uint8_t key_len;
	char key[];
};

struct flight {
	struct flight *next;
	uint64_t hash;
	const char *key;
	size_t key_len;
	int done, stale, result, refs;
	struct link *link;
	pthread_cond_t cond;
};

struct shard {
	pthread_mutex_t lock;
	struct entry **buckets;
	size_t nbuckets; /* power of two */
	size_t count;
	size_t bytes, max_bytes;
	struct entry *head, *tail, *hand;
	struct flight *flights;
	uint64_t hits, negative_hits, misses, loads, waits, evictions, expirations;
};

struct cache {
	uint64_t ttl_ms, negative_ttl_ms;
	size_t max_bytes;
	struct shard shards[NSHARDS];
};

static uint64_t hash_key(const char *s, size_t n)
{
	/* mixed: the shard takes the top bits and the bucket the low ones */
	return hash_bytes(s, n, 0);
}

struct cache *cache_new(size_t max_bytes, uint64_t ttl_ms, uint64_t negative_ttl_ms)
{
	struct cache *c = xcalloc(1, sizeof(*c));
	c->ttl_ms = ttl_ms;
	c->negative_ttl_ms = negative_ttl_ms;
	c->max_bytes = max_bytes;
	for (int i = 0; i < NSHARDS; i++) {
		struct shard *s = &c->shards[i];
		pthread_mutex_init(&s->lock, NULL);
		s->nbuckets = 64;
		s->buckets = xcalloc(s->nbuckets, sizeof(*s->buckets));
		s->max_bytes = max_bytes / NSHARDS;
	}
	return c;
}

static void entry_free(struct entry *e)
{
	if (e->link)
		link_unref(e->link);
	free(e);
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
		free(s->buckets);
		pthread_mutex_destroy(&s->lock);
	}
	free(c);
}

static struct shard *shard_of(struct cache *c, uint64_t h)
{
	return &c->shards[h >> (64 - SHARD_BITS)];
}

static struct entry **find_slot(struct shard *s, uint64_t h, const char *key, size_t len)
{
	struct entry **pp = &s->buckets[h & (s->nbuckets - 1)];
	for (; *pp; pp = &(*pp)->hnext) {
		struct entry *e = *pp;
		if (e->hash == h && e->key_len == len && memcmp(e->key, key, len) == 0)
			return pp;
	}
	return pp;
}

static void unlink_entry(struct shard *s, struct entry **slot)
{
	struct entry *e = *slot;
	*slot = e->hnext;
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
	s->bytes -= e->size;
	entry_free(e);
}

static void remove_key(struct shard *s, uint64_t h, const char *key, size_t len)
{
	struct entry **slot = find_slot(s, h, key, len);
	if (*slot)
		unlink_entry(s, slot);
}

static void evict_one(struct shard *s)
{
	struct entry *e = s->hand ? s->hand : s->tail;
	while (e->visited) {
		e->visited = 0;
		e = e->newer ? e->newer : s->tail;
	}
	s->hand = e->newer;
	s->evictions++;
	unlink_entry(s, find_slot(s, e->hash, e->key, e->key_len));
}

static void grow(struct shard *s)
{
	size_t n = s->nbuckets * 2;
	struct entry **b = xcalloc(n, sizeof(*b));
	for (size_t i = 0; i < s->nbuckets; i++) {
		struct entry *e = s->buckets[i], *next;
		for (; e; e = next) {
			next = e->hnext;
			e->hnext = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
		}
	}
	free(s->buckets);
	s->buckets = b;
	s->nbuckets = n;
}

/* Inserts (replacing) an entry; link may be NULL for a negative entry. */
static void insert(struct shard *s, uint64_t h, const char *key, size_t len, struct link *l,
		   uint64_t expires_ms)
{
	size_t size = sizeof(struct entry) + len + (l ? link_size(l) : 0);
	remove_key(s, h, key, len);
	if (size > s->max_bytes)
		return;
	while (s->bytes + size > s->max_bytes && s->tail)
		evict_one(s);
	struct entry *e = xmalloc(sizeof(*e) + len);
	e->hash = h;
	e->expires_ms = expires_ms;
	e->link = l ? link_ref(l) : NULL;
	e->size = (uint32_t)size;
	e->visited = 0;
	e->key_len = (uint8_t)len;
	memcpy(e->key, key, len);
	struct entry **bucket = &s->buckets[h & (s->nbuckets - 1)];
	e->hnext = *bucket;
	*bucket = e;
	e->newer = NULL;
	e->older = s->head;
	if (s->head)
		s->head->newer = e;
	else
		s->tail = e;
	s->head = e;
	s->count++;
	s->bytes += size;
	if (s->count > s->nbuckets)
		grow(s);
}

static void mark_stale(struct shard *s, uint64_t h, const char *key, size_t len)
{
	for (struct flight *f = s->flights; f; f = f->next)
		if (f->hash == h && f->key_len == len && memcmp(f->key, key, len) == 0)
			f->stale = 1;
}

static void flight_release(struct flight *f)
{
	if (--f->refs > 0)
		return;
	if (f->link)
		link_unref(f->link);
	pthread_cond_destroy(&f->cond);
	free(f);
}

int cache_get(struct cache *c, const char *key, size_t len, uint64_t now_ms, cache_loader load,
	      void *ctx, struct link **out)
{
	assert(len <= LINK_CODE_MAX);
	uint64_t h = hash_key(key, len);
	struct shard *s = shard_of(c, h);
	pthread_mutex_lock(&s->lock);
	struct entry **slot = find_slot(s, h, key, len);
	if (*slot) {
		struct entry *e = *slot;
		if (now_ms < e->expires_ms) {
			e->visited = 1;
			if (e->link) {
				s->hits++;
				*out = link_ref(e->link);
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
	for (struct flight *f = s->flights; f; f = f->next) {
		if (f->hash == h && f->key_len == len && memcmp(f->key, key, len) == 0) {
			f->refs++;
			s->waits++;
			while (!f->done)
				pthread_cond_wait(&f->cond, &s->lock);
			int rc = f->result;
			if (rc == CACHE_FOUND)
				*out = link_ref(f->link);
			flight_release(f);
			pthread_mutex_unlock(&s->lock);
			return rc;
		}
	}
	struct flight *f = xcalloc(1, sizeof(*f));
	f->hash = h;
	f->key = key;
	f->key_len = len;
	f->refs = 1;
	pthread_cond_init(&f->cond, NULL);
	f->next = s->flights;
	s->flights = f;
	s->loads++;
	pthread_mutex_unlock(&s->lock);

	struct link *l = NULL;
	int rc = load(ctx, key, len, &l);

	pthread_mutex_lock(&s->lock);
	if (!f->stale && c->max_bytes > 0) {
		if (rc == CACHE_FOUND)
			insert(s, h, key, len, l, now_ms + c->ttl_ms);
		else if (rc == CACHE_NOTFOUND && c->negative_ttl_ms > 0)
			insert(s, h, key, len, NULL, now_ms + c->negative_ttl_ms);
	}
	f->done = 1;
	f->result = rc;
	f->link = rc == CACHE_FOUND ? link_ref(l) : NULL;
	/* The waiters hold their own references to f; our key pointer is
	 * ours alone and goes out of scope with this call. */
	f->key = NULL;
	f->key_len = (size_t)-1;
	struct flight **pp = &s->flights;
	while (*pp != f)
		pp = &(*pp)->next;
	*pp = f->next;
	pthread_cond_broadcast(&f->cond);
	flight_release(f);
	pthread_mutex_unlock(&s->lock);
	if (rc == CACHE_FOUND)
		*out = l;
	return rc;
}

void cache_put(struct cache *c, struct link *l, uint64_t now_ms)
{
	uint64_t h = hash_key(l->code, l->code_len);
	struct shard *s = shard_of(c, h);
	pthread_mutex_lock(&s->lock);
	mark_stale(s, h, l->code, l->code_len);
	if (c->max_bytes > 0)
		insert(s, h, l->code, l->code_len, l, now_ms + c->ttl_ms);
	pthread_mutex_unlock(&s->lock);
}

void cache_invalidate(struct cache *c, const char *key, size_t len)
{
	uint64_t h = hash_key(key, len);
	struct shard *s = shard_of(c, h);
	pthread_mutex_lock(&s->lock);
	mark_stale(s, h, key, len);
	remove_key(s, h, key, len);
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
