/*
 * code_map: which row holds each short code, kept in memory, as a hint.
 * See code_map.h.
 */
#include "code_map.h"

#include "core/util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

struct code_table {
	size_t slots;
	atomic_size_t count;
	_Atomic uint8_t *tags; /* 0: free, else TAG(hash) */
	int64_t *ids;	       /* ids[i] is written before tags[i] is */
	size_t bytes;	       /* of the mapping that holds both */
};

struct pending_add {
	uint64_t hash;
	int64_t id;
};

struct code_map {
	/* Finds hold it for reading while they probe; only a new table
	 * replacing the old one takes it for writing. */
	pthread_rwlock_t swap;
	struct code_table *table; /* NULL until the first build ends */
	pthread_mutex_t lock;	  /* adds, and the builds' state below */
	int building;		  /* a build began and did not end */
	int build_wanted;	  /* an add asked for a build not begun yet */
	struct pending_add *pending; /* adds since the build began */
	size_t npending, pending_cap;
	uint64_t builds;
	uint64_t seed; /* of the hash (random_seed()) */
};

/* The slot a probe starts at, from the hash's upper half (Lemire's
 * multiply-shift: any table size, no modulo), and the tag, from 7 bits of
 * its lower half. */
#define SLOT(hash, slots) ((size_t)((((hash) >> 32) * (uint64_t)(slots)) >> 32))
#define TAG(hash) ((uint8_t)(0x80u | ((hash)&0x7fu)))

/* A new table holds rows at 62.5% of its slots; builds are asked for past
 * 80%, and adds are dropped past 90% (linear probing slows down as a table
 * fills). */
#define SLOTS_FOR(rows) ((rows) / 5 * 8 + 1024)
#define COUNT(t) atomic_load_explicit(&(t)->count, memory_order_relaxed)
#define WANTS_BUILD(t) (COUNT(t) * 5 >= (t)->slots * 4)
#define FULL(t) (COUNT(t) * 10 >= (t)->slots * 9)

uint64_t code_map_hash(const struct code_map *m, const char *code, size_t len)
{
	return hash_bytes(code, len, m->seed);
}

struct code_map *code_map_new(void)
{
	struct code_map *m = xcalloc(1, sizeof(*m));
	pthread_rwlockattr_t a;
	pthread_rwlockattr_init(&a);
	/* finds never stop: without this, a swap could wait for a moment
	 * when no worker is probing */
	pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&m->swap, &a);
	pthread_rwlockattr_destroy(&a);
	pthread_mutex_init(&m->lock, NULL);
	m->seed = random_seed();
	return m;
}

static void table_free(struct code_table *t)
{
	if (!t)
		return;
	munmap((void *)t->tags, t->bytes);
	free(t);
}

void code_map_free(struct code_map *m)
{
	if (!m)
		return;
	table_free(m->table);
	free(m->pending);
	pthread_rwlock_destroy(&m->swap);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

struct code_table *code_table_new(size_t rows)
{
	size_t slots = SLOTS_FOR(rows);
	if (slots > UINT32_MAX)
		return NULL;
	/* The ids after the tags, 8-byte aligned. Anonymous memory comes
	 * zeroed (every slot free) and is only backed where written; huge
	 * pages, where the kernel allows them, make a probe's two random
	 * reads cheaper on the TLB. */
	size_t ids_at = (slots + 7) & ~(size_t)7;
	size_t bytes = ids_at + slots * sizeof(int64_t);
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	madvise(p, bytes, MADV_HUGEPAGE);
	struct code_table *t = try_malloc(sizeof(*t));
	if (!t) {
		munmap(p, bytes);
		return NULL;
	}
	t->slots = slots;
	atomic_init(&t->count, 0);
	t->tags = p;
	t->ids = (int64_t *)((char *)p + ids_at);
	t->bytes = bytes;
	return t;
}

/* Adds unless the table is 90% full or holds this id under this tag
 * already; the caller serialises adds to t. */
static void table_add(struct code_table *t, uint64_t hash, int64_t id)
{
	if (FULL(t))
		return;
	uint8_t tag = TAG(hash);
	size_t i = SLOT(hash, t->slots);
	for (;;) {
		uint8_t x = atomic_load_explicit(&t->tags[i], memory_order_relaxed);
		if (!x)
			break;
		if (x == tag && t->ids[i] == id)
			return;
		if (++i == t->slots)
			i = 0;
	}
	t->ids[i] = id;
	atomic_store_explicit(&t->tags[i], tag, memory_order_release);
	atomic_fetch_add_explicit(&t->count, 1, memory_order_relaxed);
}

void code_table_put(struct code_table *t, uint64_t hash, int64_t id)
{
	table_add(t, hash, id);
}

int code_map_add(struct code_map *m, uint64_t hash, int64_t id)
{
	pthread_mutex_lock(&m->lock);
	if (m->table)
		table_add(m->table, hash, id);
	if (m->building) {
		if (m->npending == m->pending_cap) {
			size_t cap = m->pending_cap ? m->pending_cap * 2 : 1024;
			struct pending_add *p = try_realloc(m->pending, cap * sizeof(*p));
			if (p) {
				m->pending = p;
				m->pending_cap = cap;
			}
		}
		/* else dropped: the map is a hint */
		if (m->npending < m->pending_cap)
			m->pending[m->npending++] = (struct pending_add){hash, id};
	}
	int want = !m->building && !m->build_wanted && (!m->table || WANTS_BUILD(m->table));
	if (want)
		m->build_wanted = 1;
	pthread_mutex_unlock(&m->lock);
	return want;
}

size_t code_map_find(struct code_map *m, uint64_t hash, int64_t *ids, size_t max)
{
	size_t n = 0;
	pthread_rwlock_rdlock(&m->swap);
	struct code_table *t = m->table;
	if (t) {
		uint8_t tag = TAG(hash);
		size_t i = SLOT(hash, t->slots);
		/* a table is never full (FULL): a free slot ends every probe */
		for (;;) {
			uint8_t x = atomic_load_explicit(&t->tags[i], memory_order_acquire);
			if (!x)
				break;
			if (x == tag) {
				ids[n++] = t->ids[i];
				if (n == max)
					break;
			}
			if (++i == t->slots)
				i = 0;
		}
	}
	pthread_rwlock_unlock(&m->swap);
	return n;
}

void code_map_build_begin(struct code_map *m)
{
	pthread_mutex_lock(&m->lock);
	m->building = 1;
	m->build_wanted = 0;
	m->npending = 0;
	pthread_mutex_unlock(&m->lock);
}

void code_map_build_end(struct code_map *m, struct code_table *t)
{
	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; i < m->npending; i++)
		table_add(t, m->pending[i].hash, m->pending[i].id);
	pthread_rwlock_wrlock(&m->swap);
	struct code_table *old = m->table;
	m->table = t;
	pthread_rwlock_unlock(&m->swap);
	m->building = 0;
	m->npending = 0;
	free(m->pending);
	m->pending = NULL;
	m->pending_cap = 0;
	m->builds++;
	pthread_mutex_unlock(&m->lock);
	table_free(old);
}

void code_map_build_abort(struct code_map *m, struct code_table *t)
{
	pthread_mutex_lock(&m->lock);
	m->building = 0;
	/* no build is asked for again: the one that failed would fail again */
	m->build_wanted = 1;
	m->npending = 0;
	pthread_mutex_unlock(&m->lock);
	table_free(t);
}

void code_map_get_stats(struct code_map *m, struct code_map_stats *out)
{
	memset(out, 0, sizeof(*out));
	pthread_rwlock_rdlock(&m->swap);
	struct code_table *t = m->table;
	if (t) {
		out->entries = COUNT(t);
		out->slots = t->slots;
		out->bytes = t->bytes;
	}
	pthread_rwlock_unlock(&m->swap);
	pthread_mutex_lock(&m->lock);
	out->builds = m->builds;
	pthread_mutex_unlock(&m->lock);
}
