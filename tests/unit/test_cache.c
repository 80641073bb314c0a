/* Unit tests: the L1 link cache (hits, negative entries, TTL, byte bound,
 * SIEVE keeping hot links, invalidation, single-flight with waiters woken
 * on their own threads, failed and stale loads). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/cache.h"

struct fake_store {
	int loads;
	int hot_loads; /* loads of codes starting with "hot" */
	int found; /* what the loader answers */
	int sleep_ms;
	struct cache *put_during_load; /* a PATCH commits while the read runs */
	pthread_mutex_t lock;
};

static int loader(void *ctx, const char *code, size_t len, struct link **out)
{
	struct fake_store *fs = ctx;
	pthread_mutex_lock(&fs->lock);
	fs->loads++;
	fs->hot_loads += len > 3 && memcmp(code, "hot", 3) == 0;
	pthread_mutex_unlock(&fs->lock);
	if (fs->sleep_ms)
		usleep((useconds_t)fs->sleep_ms * 1000);
	if (fs->put_during_load) {
		struct link *n = link_new(code, len, "https://patched.example/", 24);
		cache_put(fs->put_during_load, n, 1000);
		link_unref(n);
	}
	if (!fs->found)
		return CACHE_NOTFOUND;
	char url[128];
	int n = snprintf(url, sizeof(url), "https://example.com/%.*s", (int)len, code);
	*out = link_new(code, len, url, (size_t)n);
	return CACHE_FOUND;
}

/* A waiter that a thread blocks on (the server's wake() posts a task to a
 * loop instead; here a condition variable stands in for the loop). */
struct sync_waiter {
	struct cache_waiter w; /* first */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int woken;
};

static void sync_wake(struct cache_waiter *w)
{
	struct sync_waiter *sw = (struct sync_waiter *)w;
	pthread_mutex_lock(&sw->lock);
	sw->woken++;
	pthread_cond_signal(&sw->cond);
	pthread_mutex_unlock(&sw->lock);
}

typedef int (*loader_fn)(void *ctx, const char *code, size_t len, struct link **out);

/* cache_get() as a redirect uses it, made synchronous: a miss that gets
 * CACHE_LOAD runs load() and ends the flight; one that gets CACHE_WAIT
 * blocks until woken. */
static int get(struct cache *c, const char *code, size_t len, uint64_t now, loader_fn load,
	       void *ctx, struct cache_link *out)
{
	struct sync_waiter sw = {.w = {.wake = sync_wake}};
	pthread_mutex_init(&sw.lock, NULL);
	pthread_cond_init(&sw.cond, NULL);
	struct cache_flight *f;
	struct link *l = NULL;
	int rc = cache_get(c, code, len, now, out, &sw.w, &f);
	if (rc == CACHE_LOAD) {
		rc = load(ctx, code, len, &l);
		cache_load_done(c, f, rc, l, now);
	} else if (rc == CACHE_WAIT) {
		pthread_mutex_lock(&sw.lock);
		while (!sw.woken)
			pthread_cond_wait(&sw.cond, &sw.lock);
		pthread_mutex_unlock(&sw.lock);
		assert_int_equal(sw.woken, 1);
		rc = sw.w.result;
		l = sw.w.link;
	}
	if (l) {
		if (rc == CACHE_FOUND)
			cache_link_from(l, out);
		link_unref(l);
	}
	pthread_mutex_destroy(&sw.lock);
	pthread_cond_destroy(&sw.cond);
	return rc;
}

static struct fake_store *store_new(int found)
{
	static struct fake_store fs;
	memset(&fs, 0, sizeof(fs));
	pthread_mutex_init(&fs.lock, NULL);
	fs.found = found;
	return &fs;
}

static void test_hit_after_load(void **state)
{
	(void)state;
	struct cache *c = cache_new(1 << 20, 60000, 5000);
	struct fake_store *fs = store_new(1);
	static struct cache_link l;
	assert_int_equal(get(c, "abc", 3, 1000, loader, fs, &l), CACHE_FOUND);
	assert_string_equal(l.url, "https://example.com/abc");
	assert_int_equal(get(c, "abc", 3, 1001, loader, fs, &l), CACHE_FOUND);
	assert_int_equal(fs->loads, 1);
	struct cache_stats st;
	cache_get_stats(c, &st);
	assert_int_equal(st.hits, 1);
	assert_int_equal(st.misses, 1);
	assert_int_equal(st.entries, 1);
	cache_free(c);
}

static void test_negative_entries_and_ttl(void **state)
{
	(void)state;
	struct cache *c = cache_new(1 << 20, 60000, 5000);
	struct fake_store *fs = store_new(0);
	static struct cache_link l;
	assert_int_equal(get(c, "nope", 4, 1000, loader, fs, &l), CACHE_NOTFOUND);
	assert_int_equal(get(c, "nope", 4, 5999, loader, fs, &l), CACHE_NOTFOUND);
	assert_int_equal(fs->loads, 1);
	/* negative TTL over: the store is asked again and now has it */
	fs->found = 1;
	assert_int_equal(get(c, "nope", 4, 6000, loader, fs, &l), CACHE_FOUND);
	assert_int_equal(fs->loads, 2);
	/* positive TTL over */
	assert_int_equal(get(c, "nope", 4, 6000 + 60000, loader, fs, &l), CACHE_FOUND);
	assert_int_equal(fs->loads, 3);
	cache_free(c);
}

static void test_put_replaces_negative(void **state)
{
	(void)state;
	struct cache *c = cache_new(1 << 20, 60000, 5000);
	struct fake_store *fs = store_new(0);
	static struct cache_link l;
	assert_int_equal(get(c, "new1", 4, 1000, loader, fs, &l), CACHE_NOTFOUND);
	struct link *n = link_new("new1", 4, "https://x.example/", 18);
	cache_put(c, n, 1001);
	link_unref(n);
	assert_int_equal(get(c, "new1", 4, 1002, loader, fs, &l), CACHE_FOUND);
	assert_string_equal(l.url, "https://x.example/");
	assert_int_equal(fs->loads, 1);
	cache_free(c);
}

static void test_byte_bound_and_hot_links_survive(void **state)
{
	(void)state;
	size_t max = 64 * 4096; /* 4 KiB per shard */
	struct cache *c = cache_new(max, 1000000, 0);
	struct fake_store *fs = store_new(1);
	static struct cache_link l;
	char code[16];
	/* 100 hot codes, touched again and again while 20000 cold ones stream by */
	for (int round = 0; round < 200; round++) {
		for (int h = 0; h < 100; h++) {
			int n = snprintf(code, sizeof(code), "hot%d", h);
			assert_int_equal(get(c, code, (size_t)n, 10, loader, fs, &l), CACHE_FOUND);
		}
		for (int k = 0; k < 100; k++) {
			int n = snprintf(code, sizeof(code), "cold%d_%d", round, k);
			assert_int_equal(get(c, code, (size_t)n, 10, loader, fs, &l), CACHE_FOUND);
		}
		struct cache_stats st;
		cache_get_stats(c, &st);
		assert_true(st.bytes <= max);
	}
	struct cache_stats st;
	cache_get_stats(c, &st);
	assert_true(st.evictions > 10000);
	/* The cache holds ~1400 entries, so plain FIFO or random eviction
	 * would push each hot link out every ~14 rounds (~1400 hot loads);
	 * SIEVE keeps them: about one load each. */
	assert_in_range(fs->hot_loads, 100, 150);
	cache_free(c);
}

static void test_stale_load_is_not_cached(void **state)
{
	(void)state;
	struct cache *c = cache_new(1 << 20, 60000, 5000);
	struct fake_store *fs = store_new(1);
	fs->put_during_load = c; /* a PATCH commits while we read */
	static struct cache_link l;
	assert_int_equal(get(c, "race", 4, 1000, loader, fs, &l), CACHE_FOUND);
	assert_string_equal(l.url, "https://example.com/race"); /* what was read */
	fs->put_during_load = NULL;
	assert_int_equal(get(c, "race", 4, 1001, loader, fs, &l), CACHE_FOUND);
	/* the read's older row did not replace the PATCH's */
	assert_string_equal(l.url, "https://patched.example/");
	assert_int_equal(fs->loads, 1);
	cache_free(c);
}

struct reader_arg {
	struct cache *c;
	struct fake_store *fs;
	int rc;
};

static void *reader(void *p)
{
	struct reader_arg *a = p;
	struct cache_link l;
	a->rc = get(a->c, "hotnew", 6, 1000, loader, a->fs, &l);
	return NULL;
}

static void test_single_flight(void **state)
{
	(void)state;
	struct cache *c = cache_new(1 << 20, 60000, 5000);
	struct fake_store *fs = store_new(1);
	fs->sleep_ms = 100;
	pthread_t t[16];
	struct reader_arg a[16];
	for (int i = 0; i < 16; i++) {
		a[i] = (struct reader_arg){c, fs, -2};
		pthread_create(&t[i], NULL, reader, &a[i]);
	}
	for (int i = 0; i < 16; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(a[i].rc, CACHE_FOUND);
	}
	/* Threads that started after the first load finished hit the cache;
	 * the others waited for it: either way, one load. */
	assert_int_equal(fs->loads, 1);
	cache_free(c);
}

/* The loader holds the flight as long as it likes (a network read); every
 * other miss of the code gets CACHE_WAIT at once, without blocking, and is
 * woken once with the loader's result and a reference of its own. */
static void test_waiters_are_woken_with_the_result(void **state)
{
	(void)state;
	struct cache *c = cache_new(1 << 20, 60000, 5000);
	static struct cache_link l;
	struct cache_flight *f;
	struct sync_waiter ws[8];
	struct cache_waiter first = {.wake = sync_wake};
	assert_int_equal(cache_get(c, "slow", 4, 1000, &l, &first, &f), CACHE_LOAD);
	for (int i = 0; i < 8; i++) {
		memset(&ws[i], 0, sizeof(ws[i]));
		ws[i].w.wake = sync_wake;
		pthread_mutex_init(&ws[i].lock, NULL);
		pthread_cond_init(&ws[i].cond, NULL);
		assert_int_equal(cache_get(c, "slow", 4, 1001, &l, &ws[i].w, NULL),
				 CACHE_WAIT);
		assert_int_equal(ws[i].woken, 0);
	}
	/* another code is not held up by the flight */
	struct cache_flight *g;
	assert_int_equal(cache_get(c, "other", 5, 1002, &l, &first, &g), CACHE_LOAD);
	cache_load_done(c, g, CACHE_NOTFOUND, NULL, 1002);
	struct link *n = link_new("slow", 4, "https://slow.example/", 21);
	cache_load_done(c, f, CACHE_FOUND, n, 1003);
	link_unref(n); /* the waiters hold their own references */
	for (int i = 0; i < 8; i++) {
		assert_int_equal(ws[i].woken, 1);
		assert_int_equal(ws[i].w.result, CACHE_FOUND);
		assert_string_equal(ws[i].w.link->url, "https://slow.example/");
		link_unref(ws[i].w.link);
		pthread_mutex_destroy(&ws[i].lock);
		pthread_cond_destroy(&ws[i].cond);
	}
	/* the result is cached: a hit, no new flight */
	assert_int_equal(cache_get(c, "slow", 4, 1004, &l, &first, &f), CACHE_FOUND);
	assert_string_equal(l.url, "https://slow.example/");
	struct cache_stats st;
	cache_get_stats(c, &st);
	assert_int_equal(st.loads, 2);
	assert_int_equal(st.waits, 8);
	cache_free(c);
}

/* A failed load fails every waiter the same way, and caches nothing: the
 * next miss loads again. */
static void test_failed_load_fails_every_waiter(void **state)
{
	(void)state;
	struct cache *c = cache_new(1 << 20, 60000, 5000);
	static struct cache_link l;
	struct cache_flight *f;
	struct sync_waiter ws[4];
	struct cache_waiter first = {.wake = sync_wake};
	assert_int_equal(cache_get(c, "down", 4, 1000, &l, &first, &f), CACHE_LOAD);
	for (int i = 0; i < 4; i++) {
		memset(&ws[i], 0, sizeof(ws[i]));
		ws[i].w.wake = sync_wake;
		pthread_mutex_init(&ws[i].lock, NULL);
		pthread_cond_init(&ws[i].cond, NULL);
		assert_int_equal(cache_get(c, "down", 4, 1000, &l, &ws[i].w, NULL), CACHE_WAIT);
	}
	cache_load_done(c, f, CACHE_ERROR, NULL, 1001);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(ws[i].woken, 1);
		assert_int_equal(ws[i].w.result, CACHE_ERROR);
		assert_null(ws[i].w.link);
		pthread_mutex_destroy(&ws[i].lock);
		pthread_cond_destroy(&ws[i].cond);
	}
	assert_int_equal(cache_get(c, "down", 4, 1002, &l, &first, &f), CACHE_LOAD);
	cache_load_done(c, f, CACHE_NOTFOUND, NULL, 1002);
	assert_int_equal(cache_get(c, "down", 4, 1003, &l, &first, &f), CACHE_NOTFOUND);
	cache_free(c);
}

/* A write during a flight: the waiters still get what was read (they
 * asked before the write), but it is not cached. */
static void test_waiters_of_a_stale_load(void **state)
{
	(void)state;
	struct cache *c = cache_new(1 << 20, 60000, 5000);
	static struct cache_link l;
	struct cache_flight *f;
	struct sync_waiter sw = {.w = {.wake = sync_wake}};
	pthread_mutex_init(&sw.lock, NULL);
	pthread_cond_init(&sw.cond, NULL);
	struct cache_waiter first = {.wake = sync_wake};
	assert_int_equal(cache_get(c, "patched", 7, 1000, &l, &first, &f), CACHE_LOAD);
	assert_int_equal(cache_get(c, "patched", 7, 1000, &l, &sw.w, NULL), CACHE_WAIT);
	struct link *new = link_new("patched", 7, "https://new.example/", 20);
	cache_put(c, new, 1000); /* the PATCH, committed during the read */
	link_unref(new);
	struct link *old = link_new("patched", 7, "https://old.example/", 20);
	cache_load_done(c, f, CACHE_FOUND, old, 1001);
	link_unref(old);
	assert_int_equal(sw.woken, 1);
	assert_string_equal(sw.w.link->url, "https://old.example/");
	link_unref(sw.w.link);
	assert_int_equal(cache_get(c, "patched", 7, 1002, &l, &first, &f), CACHE_FOUND);
	assert_string_equal(l.url, "https://new.example/");
	pthread_mutex_destroy(&sw.lock);
	pthread_cond_destroy(&sw.cond);
	cache_free(c);
}

/* A hit is a copy of what a redirect needs, from the compact entry. */
static void test_hit_copies_redirect_fields(void **state)
{
	(void)state;
	struct cache *c = cache_new(1 << 20, 60000, 5000);
	struct fake_store *fs = store_new(1);
	struct link *n = link_new("f1", 2, "https://t.example/a?b=c", 23);
	n->id = 1234567890123LL;
	n->redirect = 308;
	n->expires_at_ms = 1700000000000LL;
	cache_put(c, n, 1000);
	struct cache_link l;
	memset(&l, 0x55, sizeof(l));
	assert_int_equal(get(c, "f1", 2, 1001, loader, fs, &l), CACHE_FOUND);
	assert_int_equal(fs->loads, 0);
	assert_int_equal(l.id, 1234567890123LL);
	assert_int_equal(l.redirect, 308);
	assert_int_equal(l.expires_at_ms, 1700000000000LL);
	assert_int_equal(l.deleted, 0);
	assert_int_equal(l.url_len, 23);
	assert_string_equal(l.url, "https://t.example/a?b=c");
	/* a DELETE puts the row back with deleted_at set: served as deleted */
	n->deleted_at_ms = 1600000000000LL;
	n->redirect = 301;
	cache_put(c, n, 1002);
	link_unref(n);
	assert_int_equal(get(c, "f1", 2, 1003, loader, fs, &l), CACHE_FOUND);
	assert_int_equal(l.deleted, 1);
	assert_int_equal(l.redirect, 301);
	/* every status round-trips through the entry's two bits */
	const int st[] = {301, 302, 307, 308};
	for (int i = 0; i < 4; i++) {
		struct link *m = link_new("s", 1, "https://s.example/", 18);
		m->redirect = st[i];
		cache_put(c, m, 1004);
		link_unref(m);
		assert_int_equal(get(c, "s", 1, 1005, loader, fs, &l), CACHE_FOUND);
		assert_int_equal(l.redirect, st[i]);
	}
	assert_int_equal(fs->loads, 0);
	cache_free(c);
}

static void test_disabled_cache_still_loads(void **state)
{
	(void)state;
	struct cache *c = cache_new(0, 60000, 5000);
	struct fake_store *fs = store_new(1);
	static struct cache_link l;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(get(c, "abc", 3, 1000, loader, fs, &l), CACHE_FOUND);
	}
	assert_int_equal(fs->loads, 3);
	cache_free(c);
}

/* The model test's store: code "k<n>" exists unless n is a multiple of 5. */
struct model_store {
	int loads;
};

static int model_loader(void *ctx, const char *code, size_t len, struct link **out)
{
	struct model_store *ms = ctx;
	ms->loads++;
	if (atoi(code + 1) % 5 == 0)
		return CACHE_NOTFOUND;
	char url[64];
	int n = snprintf(url, sizeof(url), "https://m.example/%.*s", (int)len, code);
	*out = link_new(code, len, url, (size_t)n);
	return CACHE_FOUND;
}

/* Random gets and puts against a model of what must be cached, at sizes
 * where the shards' tables grow and every put of a cached code removes
 * its entry, moving others of its run: a lost entry shows as an extra
 * load, a misplaced one as a wrong target. */
static void test_matches_a_model(void **state)
{
	(void)state;
	enum { KEYS = 4000, OPS = 300000 };
	static char cached[KEYS]; /* 0: must load; 1: must hit */
	memset(cached, 0, sizeof(cached));
	struct cache *c = cache_new(64u << 20, 1000000, 1000000);
	struct model_store ms = {0};
	static struct cache_link l;
	uint64_t x = 88172645463325252ULL;
	char code[16], want[64];
	for (int op = 0; op < OPS; op++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		int k = (int)(x % KEYS);
		int n = snprintf(code, sizeof(code), "k%d", k);
		switch ((x >> 32) % 8) {
		case 1: { /* a create or an update (replacing moves entries) */
			if (k % 5 == 0)
				break;
			int m = snprintf(want, sizeof(want), "https://m.example/%s", code);
			struct link *nl = link_new(code, (size_t)n, want, (size_t)m);
			cache_put(c, nl, 10);
			link_unref(nl);
			cached[k] = 1;
			break;
		}
		default: {
			int loads = ms.loads;
			int rc = get(c, code, (size_t)n, 10, model_loader, &ms, &l);
			assert_int_equal(ms.loads - loads, cached[k] ? 0 : 1);
			cached[k] = 1;
			if (k % 5 == 0) {
				assert_int_equal(rc, CACHE_NOTFOUND);
			} else {
				assert_int_equal(rc, CACHE_FOUND);
				snprintf(want, sizeof(want), "https://m.example/%s", code);
				assert_string_equal(l.url, want);
			}
		}
		}
	}
	struct cache_stats st;
	cache_get_stats(c, &st);
	uint64_t expect = 0;
	for (int k = 0; k < KEYS; k++)
		expect += (uint64_t)cached[k];
	assert_int_equal(st.entries, expect);
	assert_int_equal(st.evictions, 0);
	cache_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hit_after_load),
		cmocka_unit_test(test_negative_entries_and_ttl),
		cmocka_unit_test(test_put_replaces_negative),
		cmocka_unit_test(test_byte_bound_and_hot_links_survive),
		cmocka_unit_test(test_stale_load_is_not_cached),
		cmocka_unit_test(test_single_flight),
		cmocka_unit_test(test_waiters_are_woken_with_the_result),
		cmocka_unit_test(test_failed_load_fails_every_waiter),
		cmocka_unit_test(test_waiters_of_a_stale_load),
		cmocka_unit_test(test_hit_copies_redirect_fields),
		cmocka_unit_test(test_disabled_cache_still_loads),
		cmocka_unit_test(test_matches_a_model),
	};
	return cmocka_run_group_tests_name("cache", tests, NULL, NULL);
}
