/*
 * clicks: see clicks.h for the design.
 */
#include "clicks.h"
#include "clicks/ua.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"

#include <assert.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DRAIN_MS 10
#define SLICE_GAP_MS 1
#define SLICE_NODES 8192 /* encoded in about 0.15 ms, applied in 0.06 */

#define UA_CACHE_SIZE 1024 /* power of two */
#define POOL_CHUNK 4096
#define MERGE_MAX_COUNTERS 2000000 /* merge early past this many unmerged counters */

enum { REF_NONE = 0, REF_HOST, REF_INVALID };

struct click_event {
	int64_t link_id;
	int64_t ts_ms;
	uint8_t family; /* AF_INET, AF_INET6 or 0 */
	uint8_t ref_kind;
	uint8_t ref_len;
	uint16_t ua_len;
	uint8_t addr[16];
	char ref[CLICK_REF_MAX];
	char ua[CLICK_UA_MAX];
};

struct click_ring {
	_Alignas(64) atomic_uint_fast64_t head; /* producer */
	metric_counter recorded, dropped;       /* producer */
	_Alignas(64) atomic_uint_fast64_t tail; /* consumer */
	struct click_event ev[CLICK_RING_SIZE];
};

/* Counters: an open-addressing hash table (linear probing) of 8-byte
 * slots, each the node's number and the high half of its key's hash (which
 * also picks the home slot), so a probe touches a node only when that half
 * matches, and growing moves slots without reading a node. With clicks
 * spread over many links every node access is a cache miss, so a node is
 * one cache line, and a click touches one node:
 * its key is the link, the hour and the interned id of the click's
 * combination of referrer, country, device, browser and OS (the strings
 * live once, in `dims`). A node holds, for one key, what was folded since
 * the last flush (pend),
 * what the delta in flight carries (flush), and what committed deltas hold
 * but the click tables do not yet (durable). Nodes come from chunks, so
 * they never move; the nodes with pend > 0 are listed in the `dirty`
 * array, which is all a flush has to walk, and fold() looks its nodes up a
 * batch at a time, prefetching slots and nodes ahead of use. */
enum { H = 0, B = 1 }; /* humans, bots */
/* A node's key is one of three kinds. A click's node (link, hour, dim)
 * holds its share of both the link's hour counter and the link's day
 * counter for the combination; deltas, merges and queries derive the two
 * from it (the store adds up rows of one key). Deltas read back at
 * start-up hold the two apart: an hour counter (dim NO_DIM), or a day
 * counter (bucket a day, dim the id with DAY_ONLY set). Folding into one
 * node instead of two took the aggregator's CPU per click down by 10-29%
 * and halved the table. */
#define NO_DIM UINT32_MAX
#define DAY_ONLY 0x80000000u
#define BATCH 16          /* events folded together (prefetch distance) */

struct nkey {
	int64_t link_id;
	int32_t bucket; /* an hour, or a day (DAY_ONLY) */
	uint32_t dim;
};

struct node {
	_Alignas(64) struct nkey key;
	uint64_t pend[2], flush[2], durable[2];
};

struct chunk {
	size_t used;
	struct node nodes[POOL_CHUNK];
};

/* A slot: (hash >> 32) << 32 | (node number + 1); 0: empty. A node's
 * number is its chunk's (in order of allocation) * POOL_CHUNK + its place
 * in it. */
typedef uint64_t slot_t;

/* The strings of a day counter's key, zero-padded so that a combination
 * is hashed and compared as bytes. */
struct dimset {
	char referrer[STORE_CLICK_REF_MAX + 1];
	char country[sizeof(((struct click_count *)0)->country)];
	char device[sizeof(((struct click_count *)0)->device)];
	char browser[sizeof(((struct click_count *)0)->browser)];
	char os[sizeof(((struct click_count *)0)->os)];
};

struct dims {
	struct dimset *v;
	uint64_t *hash;
	size_t n, cap;
	uint32_t *slots; /* id + 1; 0: empty; a power of two, at most half full */
	size_t nslots;
};

struct nodes {
	struct node **v;
	size_t n, cap;
};

struct table {
	slot_t *slots;
	size_t nslots, n; /* nslots: a power of two, at most half full */
	struct chunk **chunkv;  /* by number, in order of allocation */
	size_t nchunks, chunkcap;
	struct dims dims; /* reset with the table */
	/* The hours of its keys, and the days of its day counters (lo > hi:
	 * none), so that a query can probe one link's keys instead of every
	 * slot. */
	int32_t hour_lo, hour_hi, day_lo, day_hi;
};

/* A User-Agent's class, and the combination last interned for a click
 * with it: popular browsers arrive again and again from the same
 * referrers and countries, and then skip building and interning it. */
struct ua_slot {
	uint64_t hash;
	uint16_t len;
	uint8_t valid;
	struct ua_class cls;
	char ua[CLICK_UA_MAX];
	uint64_t memo_epoch; /* the table's epoch when memo_dim was set; 0: none */
	uint32_t memo_dim;
	uint8_t memo_ref_kind, memo_ref_len;
	char memo_country[8];
	char memo_ref[CLICK_REF_MAX];
};

enum { OP_NONE = 0, OP_DELTA, OP_MERGE };
/* Where the op is: a delta is encoded a slice at a time, submitted, and
 * once committed (or not) its nodes are updated a slice at a time. */
enum { STAGE_ENCODING = 1, STAGE_COLLECTING, STAGE_IN_FLIGHT, STAGE_DONE, STAGE_REBUILDING };

struct clicks {
	struct store *store;
	struct geoip *geo;
	int nworkers;
	int flush_ms, merge_ms;
	struct click_ring **rings;
	pthread_t thread;
	int started;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* aggregator wake-up, and "op done" */
	int stopping;
	struct table t;
	struct nodes dirty;        /* nodes with pend > 0 */
	struct nodes flushing;     /* nodes in the delta in flight */
	uint64_t pend_events;      /* clicks folded since the last flush */
	uint64_t flush_events;     /* clicks in the delta in flight */
	uint64_t durable_nodes;    /* nodes with durable > 0 */
	uint64_t unmerged_upto;    /* last delta whose counts are in `durable` */
	uint64_t last_seq;         /* last delta number given out */
	/* the op in flight */
	int op_kind, stage;
	int op_ok;                   /* STAGE_DONE: committed */
	size_t cursor;               /* in `flushing` (delta), in mchunk (merge) */
	size_t mchunk;               /* merge: the number of the chunk being collected */
	struct table old;            /* merge: the table being rebuilt from */
	struct nodes moving;         /* merge: its nodes with pending counts */
	int64_t enc_base;            /* the delta's hour */
	uint32_t enc_nlocal;         /* combinations it uses so far */
	struct store_op op;
	struct click_count *op_rows; /* merge */
	size_t op_nrows;
	struct buf op_blob;          /* delta */
	struct buf op_recs;          /* delta: scratch for its records */
	uint32_t *op_local;          /* delta: scratch, combination -> its number there */
	size_t op_local_cap;
	struct ua_slot *ua_cache;
	uint64_t dims_epoch; /* changes when the table (and its dims) is rebuilt */
	/* written by on_op_done on the store's writer thread */
	metric_counter flushed, flushes, flush_errors, merges, merge_errors;
};

/* ---- producer side ----------------------------------------------------------- */

size_t clicks_referer_host(const char *ref, size_t len, char *out, size_t cap)
{
	const char *p = memchr(ref, ':', len);
	if (!p || (size_t)(p - ref) + 3 > len || p[1] != '/' || p[2] != '/')
		return 0;
	p += 3;
	const char *end = ref + len;
	if (memchr(p, '@', (size_t)(end - p))) {
		/* skip credentials: user:pass@host */
		const char *at = p;
		while (at < end && *at != '/' && *at != '@')
			at++;
		if (at < end && *at == '@')
			p = at + 1;
	}
	size_t n = 0;
	if (p < end && *p == '[') {
		for (; p < end && *p != '/' && *p != '?' && *p != '#'; p++) {
			char c = *p;
			if (c >= 'A' && c <= 'Z')
				c = (char)(c + 32);
			if (!((c >= 'a' && c <= 'f') || (c >= '0' && c <= '9') || c == ':' ||
			      c == '.' || c == '[' || c == ']'))
				return 0;
			if (n == cap)
				return 0;
			out[n++] = c;
			if (c == ']')
				return n; /* a port may follow */
		}
		return 0; /* an unclosed '[' is no host */
	}
	/* a name or an IPv4 address: letters (lowered), digits, '.', '-', '_' */
	for (; p < end; p++) {
		unsigned char c = (unsigned char)*p, lower = c | 0x20;
		if ((unsigned)(lower - 'a') < 26u) {
			c = lower;
		} else if ((unsigned)(c - '0') >= 10u && c != '.' && c != '-' && c != '_') {
			if (c == '/' || c == '?' || c == '#' || c == ':')
				break; /* the path, query, fragment or port */
			return 0;
		}
		if (n == cap)
			return 0;
		out[n++] = (char)c;
	}
	return n;
}

void clicks_record(struct click_ring *ring, int64_t link_id, int64_t now_ms, const char *ua,
		   size_t ua_len, const char *referer, size_t ref_len, const struct sockaddr *peer)
{
	uint64_t h = atomic_load_explicit(&ring->head, memory_order_relaxed);
	uint64_t t = atomic_load_explicit(&ring->tail, memory_order_acquire);
	if (h - t >= CLICK_RING_SIZE) {
		metric_add(&ring->dropped, 1);
		return;
	}
	struct click_event *e = &ring->ev[h & (CLICK_RING_SIZE - 1)];
	e->link_id = link_id;
	e->ts_ms = now_ms;
	e->family = 0;
	if (peer && peer->sa_family == AF_INET) {
		e->family = AF_INET;
		memcpy(e->addr, &((const struct sockaddr_in *)peer)->sin_addr, 4);
	} else if (peer && peer->sa_family == AF_INET6) {
		e->family = AF_INET6;
		memcpy(e->addr, &((const struct sockaddr_in6 *)peer)->sin6_addr, 16);
	}
	if (ua_len > CLICK_UA_MAX)
		ua_len = CLICK_UA_MAX;
	memcpy(e->ua, ua, ua_len);
	e->ua_len = (uint16_t)ua_len;
	if (!referer) {
		e->ref_kind = REF_NONE;
		e->ref_len = 0;
	} else {
		e->ref_len = (uint8_t)clicks_referer_host(referer, ref_len, e->ref, sizeof(e->ref));
		e->ref_kind = e->ref_len ? REF_HOST : REF_INVALID;
	}
	atomic_store_explicit(&ring->head, h + 1, memory_order_release);
	metric_add(&ring->recorded, 1);
}

/* ---- counters ------------------------------------------------------------------- */

/* The User-Agent memo's index: 16 bytes a step in two lanes of one
 * multiply and one shift each, then mix64 once. A memo hit compares the
 * bytes, so a collision costs a classification and never a wrong answer;
 * on a browser's 111-byte User-Agent this takes half the time of
 * hash_bytes() (25 against 49 ns), which mixes fully after every 8 bytes. */
static uint64_t hash_ua(const char *p, size_t n)
{
	uint64_t a = n * 0x9e3779b97f4a7c15ULL, b = ~a, w0 = 0, w1 = 0;
	for (; n >= 16; p += 16, n -= 16) {
		memcpy(&w0, p, 8);
		memcpy(&w1, p + 8, 8);
		a = (a ^ w0) * 0xbf58476d1ce4e5b9ULL;
		b = (b ^ w1) * 0x94d049bb133111ebULL;
		a ^= a >> 29;
		b ^= b >> 29;
	}
	w0 = w1 = 0;
	memcpy(&w0, p, n < 8 ? n : 8);
	if (n > 8)
		memcpy(&w1, p + 8, n - 8);
	return mix64((a ^ w0) + (b ^ w1) * 0x9e3779b97f4a7c15ULL);
}

/* The id of a combination, added if new. */
static uint32_t dims_intern(struct dims *d, const struct dimset *ds)
{
	uint64_t h = hash_bytes(ds, sizeof(*ds), 0);
	if (2 * (d->n + 1) > d->nslots) {
		size_t ns = d->nslots ? d->nslots * 2 : 256;
		uint32_t *slots = xcalloc(ns, sizeof(*slots));
		for (size_t i = 0; i < d->n; i++) {
			size_t j = d->hash[i] & (ns - 1);
			while (slots[j])
				j = (j + 1) & (ns - 1);
			slots[j] = (uint32_t)i + 1;
		}
		free(d->slots);
		d->slots = slots;
		d->nslots = ns;
	}
	size_t j = h & (d->nslots - 1);
	for (; d->slots[j]; j = (j + 1) & (d->nslots - 1)) {
		uint32_t id = d->slots[j] - 1;
		if (d->hash[id] == h && !memcmp(&d->v[id], ds, sizeof(*ds)))
			return id;
	}
	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 64;
		d->v = xrealloc(d->v, d->cap * sizeof(*d->v));
		d->hash = xrealloc(d->hash, d->cap * sizeof(*d->hash));
	}
	assert(d->n < DAY_ONLY - 1);
	d->v[d->n] = *ds;
	d->hash[d->n] = h;
	d->slots[j] = (uint32_t)d->n + 1;
	return (uint32_t)d->n++;
}

static void dims_release(struct dims *d)
{
	free(d->v);
	free(d->hash);
	free(d->slots);
	memset(d, 0, sizeof(*d));
}

static void dimset_set(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);
	memcpy(dst, src, n < cap ? n : cap - 1);
}

/* The combination of a click_count's strings, zero-padded. */
static void dimset_of(const struct click_count *k, struct dimset *ds)
{
	memset(ds, 0, sizeof(*ds));
	dimset_set(ds->referrer, sizeof(ds->referrer), k->referrer);
	dimset_set(ds->country, sizeof(ds->country), k->country);
	dimset_set(ds->device, sizeof(ds->device), k->device);
	dimset_set(ds->browser, sizeof(ds->browser), k->browser);
	dimset_set(ds->os, sizeof(ds->os), k->os);
}

static int is_day_only(const struct nkey *k)
{
	return k->dim != NO_DIM && (k->dim & DAY_ONLY);
}

/* The hour of a key that has one (not a day counter's), or -1. */
static int32_t key_hour(const struct nkey *k)
{
	return is_day_only(k) ? -1 : k->bucket;
}

static void set_dims(const struct table *t, uint32_t dim, struct click_count *k)
{
	const struct dimset *ds = &t->dims.v[dim & ~DAY_ONLY];
	memcpy(k->referrer, ds->referrer, sizeof(ds->referrer));
	memcpy(k->country, ds->country, sizeof(ds->country));
	memcpy(k->device, ds->device, sizeof(ds->device));
	memcpy(k->browser, ds->browser, sizeof(ds->browser));
	memcpy(k->os, ds->os, sizeof(ds->os));
}

/* The store's rows of a node's key holding humans and bots: its hour
 * counter, and its day counter (which counts bots as clicks: a bot's
 * combination says it is one); hour_row and day_row say which to give.
 * Returns how many rows it wrote to out. */
static size_t rows_of(const struct table *t, const struct nkey *nk, uint64_t humans, uint64_t bots,
		      int hour_row, int day_row, struct click_count out[2])
{
	size_t n = 0;
	if (hour_row && !is_day_only(nk)) {
		struct click_count *k = &out[n++];
		memset(k, 0, sizeof(*k));
		k->kind = STORE_CLICK_HOUR;
		k->link_id = nk->link_id;
		k->bucket = nk->bucket;
		k->humans = humans;
		k->bots = bots;
	}
	if (day_row && nk->dim != NO_DIM) {
		struct click_count *k = &out[n++];
		memset(k, 0, sizeof(*k));
		k->kind = STORE_CLICK_DAY;
		k->link_id = nk->link_id;
		k->bucket = is_day_only(nk) ? nk->bucket : nk->bucket / 24;
		set_dims(t, nk->dim, k);
		k->humans = humans + bots;
	}
	return n;
}

/* The node key of a click_count read back (an hour or a day counter), its
 * dimensions interned in t. */
static void nkey_of(struct table *t, const struct click_count *k, struct nkey *nk)
{
	nk->link_id = k->link_id;
	nk->bucket = k->bucket;
	nk->dim = NO_DIM;
	if (k->kind == STORE_CLICK_DAY) {
		struct dimset ds;
		dimset_of(k, &ds);
		nk->dim = dims_intern(&t->dims, &ds) | DAY_ONLY;
	}
}

/* Keys go through mix64 (core/util.h): link ids are Snowflake ids whose
 * low bits are a small per-millisecond sequence, and a plain multiply
 * left the bucket index nearly constant. */
static uint64_t key_hash(const struct nkey *k)
{
	return mix64((uint64_t)k->link_id ^ mix64(((uint64_t)(uint32_t)k->bucket << 32) | k->dim));
}

static int key_eq(const struct nkey *a, const struct nkey *b)
{
	return a->link_id == b->link_id && a->bucket == b->bucket && a->dim == b->dim;
}

/* The home slot, among nslots, of a key of hash h, or of the key a slot
 * holds (its high half is the hash's). */
static inline size_t slot_home(size_t nslots, uint64_t h)
{
	return (size_t)(h >> 32) & (nslots - 1);
}

static inline struct node *slot_node(const struct table *t, slot_t v)
{
	uint32_t id = (uint32_t)v - 1;
	return &t->chunkv[id / POOL_CHUNK]->nodes[id % POOL_CHUNK];
}

static void table_grow(struct table *t)
{
	size_t ns = t->nslots ? t->nslots * 2 : 8192;
	slot_t *slots = xcalloc(ns, sizeof(*slots));
	for (size_t i = 0; i < t->nslots; i++) {
		if (!t->slots[i])
			continue;
		size_t j = slot_home(ns, t->slots[i]);
		while (slots[j])
			j = (j + 1) & (ns - 1);
		slots[j] = t->slots[i];
	}
	free(t->slots);
	t->slots = slots;
	t->nslots = ns;
}

/* An empty table: no slots until the first key. */
static void table_init(struct table *t)
{
	memset(t, 0, sizeof(*t));
	t->hour_lo = t->day_lo = 1;
	t->hour_hi = t->day_hi = 0;
}

/* Room for n keys without growing (an empty table). */
static void table_reserve(struct table *t, size_t n)
{
	size_t ns = 8192;
	while (2 * (n + 1) > ns)
		ns *= 2;
	t->slots = xcalloc(ns, sizeof(*t->slots));
	t->nslots = ns;
}

/* The slot of key k (hash h): the one that holds it, or the empty one
 * where it would go. The table has slots. */
static inline size_t table_slot(const struct table *t, const struct nkey *k, uint64_t h)
{
	size_t i = slot_home(t->nslots, h);
	for (slot_t v; (v = t->slots[i]) != 0; i = (i + 1) & (t->nslots - 1))
		if (v >> 32 == h >> 32 && key_eq(&slot_node(t, v)->key, k))
			break;
	return i;
}

/* The node of key k (hash h), or NULL. */
static struct node *table_find(const struct table *t, const struct nkey *k, uint64_t h)
{
	if (!t->nslots)
		return NULL;
	slot_t v = t->slots[table_slot(t, k, h)];
	return v ? slot_node(t, v) : NULL;
}

/* The node of key k (hash h), created (all counts zero) if there is none. */
static struct node *table_get(struct table *t, const struct nkey *k, uint64_t h)
{
	if (2 * (t->n + 1) > t->nslots)
		table_grow(t);
	size_t i = table_slot(t, k, h);
	if (t->slots[i])
		return slot_node(t, t->slots[i]);
	struct chunk *ch = t->nchunks ? t->chunkv[t->nchunks - 1] : NULL;
	if (!ch || ch->used == POOL_CHUNK) {
		if ((uint64_t)(t->nchunks + 1) * POOL_CHUNK >= UINT32_MAX)
			abort(); /* 4G nodes: 256 GiB of them */
		if (posix_memalign((void **)&ch, 64, sizeof(*ch)) != 0)
			abort();
		ch->used = 0;
		if (t->nchunks == t->chunkcap) {
			t->chunkcap = t->chunkcap ? 2 * t->chunkcap : 16;
			t->chunkv = xrealloc(t->chunkv, t->chunkcap * sizeof(*t->chunkv));
		}
		t->chunkv[t->nchunks++] = ch;
	}
	uint32_t id = (uint32_t)((t->nchunks - 1) * POOL_CHUNK + ch->used);
	struct node *x = &ch->nodes[ch->used++];
	memset(x, 0, sizeof(*x));
	x->key = *k;
	int32_t *lo = is_day_only(k) ? &t->day_lo : &t->hour_lo;
	int32_t *hi = is_day_only(k) ? &t->day_hi : &t->hour_hi;
	if (*lo > *hi) {
		*lo = *hi = k->bucket;
	} else if (k->bucket < *lo) {
		*lo = k->bucket;
	} else if (k->bucket > *hi) {
		*hi = k->bucket;
	}
	t->slots[i] = (h >> 32 << 32) | (id + 1);
	t->n++;
	return x;
}

static void table_release(struct table *t)
{
	for (size_t i = 0; i < t->nchunks; i++)
		free(t->chunkv[i]);
	free(t->slots);
	free(t->chunkv);
	dims_release(&t->dims);
	memset(t, 0, sizeof(*t));
}

static void nodes_push(struct nodes *l, struct node *x)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 1024;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	l->v[l->n++] = x;
}

/* Adds to a node's pending counts, listing it as dirty if it was not. */
static void add_pend(struct clicks *c, struct node *x, uint64_t humans, uint64_t bots)
{
	if (!humans && !bots)
		return;
	if (!x->pend[H] && !x->pend[B])
		nodes_push(&c->dirty, x);
	x->pend[H] += humans;
	x->pend[B] += bots;
}

/* ---- delta encoding (the format is documented in schema_sqlite.sql) ------------------- */

/* Format 2 (see schema_sqlite.sql): a magic that no format-1 record can
 * start with, then LEB128 varints. */
static const unsigned char delta_magic[8] = {'S', 'C', 'D', '2', 0, 0, 0, 0xff};

static void put_varint(struct buf *b, uint64_t v)
{
	if (buf_reserve(b, 10) != 0)
		return;
	unsigned char *p = (unsigned char *)b->p + b->len;
	for (; v > 0x7f; v >>= 7)
		*p++ = (unsigned char)(v | 0x80);
	*p++ = (unsigned char)v;
	b->len = (size_t)((char *)p - b->p);
	b->p[b->len] = '\0';
}

static uint64_t zigzag(int64_t v)
{
	return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static int64_t unzigzag(uint64_t z)
{
	return (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
}

static void put_str(struct buf *b, const char *s)
{
	size_t n = strlen(s);
	unsigned char len = (unsigned char)n;
	buf_append(b, &len, 1);
	buf_append(b, s, n);
}

/* A delta is encoded a slice at a time (encode_slice), so that the
 * aggregator never holds the CPU long: the records go to op_recs, the
 * combinations they use get local numbers in op_local, and encode_finish
 * puts the header, the combinations and the records together. Clicks are
 * folded between slices: a counter already encoded is dirty again and
 * waits for the next delta, one not encoded yet carries them in this one,
 * so a delta holds whole counters. */
static void encode_begin(struct clicks *c)
{
	if (c->op_local_cap) /* not used yet */
		memset(c->op_local, 0xff, c->op_local_cap * sizeof(*c->op_local));
	c->enc_nlocal = 0;
	c->enc_base = time_now_ms() / 3600000;
	c->op_recs.len = 0;
}

/* Encodes the pending counts of flushing[cursor, cursor + n) and moves them
 * to the nodes' flush counts. Combinations are interned before a flush
 * begins or while it is encoded, never with an id a node already has, and
 * the table is not rebuilt meanwhile: op_local covers every id it meets
 * once it is grown to dims.n. */
static void encode_slice(struct clicks *c, size_t n)
{
	const struct dims *d = &c->t.dims;
	if (c->op_local_cap < d->n) {
		c->op_local = xrealloc(c->op_local, d->n * sizeof(*c->op_local));
		memset(c->op_local + c->op_local_cap, 0xff,
		       (d->n - c->op_local_cap) * sizeof(*c->op_local));
		c->op_local_cap = d->n;
	}
	struct buf *recs = &c->op_recs;
	int64_t base = c->enc_base;
	size_t end = n < c->flushing.n - c->cursor ? c->cursor + n : c->flushing.n;
	for (size_t i = c->cursor; i < end; i++) {
		struct node *x = c->flushing.v[i];
		if (i + 8 < end)
			__builtin_prefetch(c->flushing.v[i + 8], 1);
		/* Only clicks make counts pending: a dirty node is a click
		 * node, written as its hour record and its day record. */
		const struct nkey *k = &x->key;
		assert(k->dim != NO_DIM && !is_day_only(k));
		put_varint(recs, (uint64_t)k->link_id);
		put_varint(recs, 0);
		put_varint(recs, zigzag(k->bucket - base));
		put_varint(recs, x->pend[H]);
		put_varint(recs, x->pend[B]);
		if (c->op_local[k->dim] == UINT32_MAX)
			c->op_local[k->dim] = c->enc_nlocal++;
		put_varint(recs, (uint64_t)k->link_id);
		put_varint(recs, (uint64_t)c->op_local[k->dim] + 1);
		put_varint(recs, zigzag(k->bucket / 24 - base / 24));
		put_varint(recs, x->pend[H] + x->pend[B]);
		put_varint(recs, 0);
		c->flush_events += x->pend[H] + x->pend[B];
		c->pend_events -= x->pend[H] + x->pend[B];
		x->flush[H] = x->pend[H];
		x->flush[B] = x->pend[B];
		x->pend[H] = x->pend[B] = 0;
	}
	c->cursor = end;
}

/* The delta, format 2, into op_blob. */
static void encode_finish(struct clicks *c)
{
	const struct dims *d = &c->t.dims;
	struct buf *out = &c->op_blob;
	uint32_t nlocal = c->enc_nlocal;
	out->len = 0;
	buf_append(out, delta_magic, sizeof(delta_magic));
	put_varint(out, zigzag(c->enc_base));
	/* the combinations used, in the order of their local numbers */
	put_varint(out, nlocal);
	uint32_t *order = xmalloc((nlocal ? nlocal : 1) * sizeof(*order));
	for (uint32_t id = 0; id < d->n && id < c->op_local_cap; id++)
		if (c->op_local[id] != UINT32_MAX)
			order[c->op_local[id]] = id;
	for (uint32_t j = 0; j < nlocal; j++) {
		const struct dimset *ds = &d->v[order[j]];
		put_str(out, ds->referrer);
		put_str(out, ds->country);
		put_str(out, ds->device);
		put_str(out, ds->browser);
		put_str(out, ds->os);
	}
	free(order);
	buf_append(out, c->op_recs.p, c->op_recs.len);
}

static uint64_t get_le(const unsigned char *p, int bytes)
{
	uint64_t v = 0;
	for (int i = bytes - 1; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static int get_varint(const unsigned char **p, const unsigned char *end, uint64_t *v)
{
	*v = 0;
	for (int shift = 0; shift < 64; shift += 7) {
		if (*p >= end)
			return -1;
		unsigned char b = *(*p)++;
		*v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return 0;
	}
	return -1;
}

static int get_str(const unsigned char **p, const unsigned char *end, char *out, size_t cap)
{
	if (*p >= end)
		return -1;
	size_t n = **p;
	if (n >= cap || (size_t)(end - *p) < n + 1 || memchr(*p + 1, '\0', n))
		return -1;
	memcpy(out, *p + 1, n);
	out[n] = '\0';
	*p += n + 1;
	return 0;
}

static int get_dims(const unsigned char **p, const unsigned char *end, struct click_count *k)
{
	return get_str(p, end, k->referrer, sizeof(k->referrer)) ||
	       get_str(p, end, k->country, sizeof(k->country)) ||
	       get_str(p, end, k->device, sizeof(k->device)) ||
	       get_str(p, end, k->browser, sizeof(k->browser)) ||
	       get_str(p, end, k->os, sizeof(k->os));
}

static void add_durable(struct clicks *c, const struct click_count *k, uint64_t humans,
			uint64_t bots)
{
	struct nkey nk;
	nkey_of(&c->t, k, &nk);
	struct node *x = table_get(&c->t, &nk, key_hash(&nk));
	if (!x->durable[H] && !x->durable[B])
		c->durable_nodes++;
	x->durable[H] += humans;
	x->durable[B] += bots;
}

/* Format 1: fixed-width records, strings inline (deltas written before
 * format 2, read back after an upgrade). */
static int decode_v1(struct clicks *c, const unsigned char *blob, size_t len, int add)
{
	const unsigned char *p = blob, *end = p + len;
	while (p < end) {
		struct click_count k;
		memset(&k, 0, sizeof(k));
		if (end - p < 29)
			return -1;
		k.link_id = (int64_t)get_le(p, 8);
		k.bucket = (int32_t)(uint32_t)get_le(p + 8, 4);
		k.kind = p[12];
		uint64_t humans = get_le(p + 13, 8), bots = get_le(p + 21, 8);
		p += 29;
		if (k.kind == STORE_CLICK_DAY) {
			if (get_dims(&p, end, &k))
				return -1;
		} else if (k.kind != STORE_CLICK_HOUR) {
			return -1;
		}
		if (add)
			add_durable(c, &k, humans, bots);
	}
	return 0;
}

static int decode_v2(struct clicks *c, const unsigned char *blob, size_t len, int add)
{
	const unsigned char *p = blob + sizeof(delta_magic), *end = blob + len;
	uint64_t zbase, ndims;
	if (get_varint(&p, end, &zbase) || get_varint(&p, end, &ndims) ||
	    ndims > (uint64_t)(end - p) / 5)
		return -1;
	int64_t base = unzigzag(zbase);
	struct click_count *dims = xcalloc(ndims ? ndims : 1, sizeof(*dims));
	int rc = 0;
	for (uint64_t i = 0; i < ndims && !rc; i++)
		rc = get_dims(&p, end, &dims[i]);
	while (!rc && p < end) {
		uint64_t link, kd, zb, humans, bots;
		if (get_varint(&p, end, &link) || get_varint(&p, end, &kd) ||
		    get_varint(&p, end, &zb) || get_varint(&p, end, &humans) ||
		    get_varint(&p, end, &bots) || kd > ndims || link > INT64_MAX) {
			rc = -1;
			break;
		}
		int64_t bucket = (kd ? base / 24 : base) + unzigzag(zb);
		if (bucket < 0 || bucket > INT32_MAX) {
			rc = -1;
			break;
		}
		struct click_count k;
		if (kd) {
			k = dims[kd - 1];
			k.kind = STORE_CLICK_DAY;
		} else {
			memset(&k, 0, sizeof(k));
			k.kind = STORE_CLICK_HOUR;
		}
		k.link_id = (int64_t)link;
		k.bucket = (int32_t)bucket;
		if (add)
			add_durable(c, &k, humans, bots);
	}
	free(dims);
	return rc;
}

/* Adds a committed delta (either format) to the durable counts; 0, or -1
 * if it is corrupt (then nothing of it is added). */
static int decode_durable(struct clicks *c, const void *blob, size_t len)
{
	int v2 = len >= sizeof(delta_magic) && !memcmp(blob, delta_magic, sizeof(delta_magic));
	for (int add = 0; add < 2; add++) /* check everything, then add */
		if ((v2 ? decode_v2 : decode_v1)(c, blob, len, add) != 0)
			return -1;
	return 0;
}

/* ---- folding ------------------------------------------------------------------------- */

/* The cache slot of the event's User-Agent, classified. */
static struct ua_slot *classify(struct clicks *c, const struct click_event *e)
{
	uint64_t h = hash_ua(e->ua, e->ua_len);
	struct ua_slot *sl = &c->ua_cache[(h ^ (h >> 32)) & (UA_CACHE_SIZE - 1)];
	if (sl->valid && sl->hash == h && sl->len == e->ua_len && !memcmp(sl->ua, e->ua, e->ua_len))
		return sl;
	ua_classify(e->ua, e->ua_len, &sl->cls);
	sl->valid = 1;
	sl->hash = h;
	sl->len = e->ua_len;
	memcpy(sl->ua, e->ua, e->ua_len);
	sl->memo_epoch = 0;
	return sl;
}

/* The click's country: '-' for a bot, "unknown" without a GeoIP database
 * or an answer from it. */
static void event_country(struct clicks *c, const struct click_event *e, const struct ua_class *u,
			  char cc[8])
{
	memset(cc, 0, 8);
	if (u->bot) {
		cc[0] = '-';
		return;
	}
	strcpy(cc, "unknown");
	if (c->geo && e->family) {
		struct sockaddr_storage ss;
		memset(&ss, 0, sizeof(ss));
		if (e->family == AF_INET) {
			struct sockaddr_in *a = (struct sockaddr_in *)&ss;
			a->sin_family = AF_INET;
			memcpy(&a->sin_addr, e->addr, 4);
		} else {
			struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
			a->sin6_family = AF_INET6;
			memcpy(&a->sin6_addr, e->addr, 16);
		}
		char got[3];
		if (geoip_country(c->geo, (struct sockaddr *)&ss, got) == 0) {
			memset(cc, 0, 8);
			memcpy(cc, got, strnlen(got, 2));
		}
	}
}

/* The day counter's combination for a click. */
static void event_dims(const struct click_event *e, const struct ua_class *u, const char cc[8],
		       struct dimset *ds)
{
	memset(ds, 0, sizeof(*ds));
	dimset_set(ds->device, sizeof(ds->device), ua_device_name(u->device));
	memcpy(ds->country, cc, sizeof(ds->country));
	if (u->bot) {
		strcpy(ds->referrer, "-");
		strcpy(ds->browser, "-");
		strcpy(ds->os, "-");
		return;
	}
	if (e->ref_kind == REF_HOST)
		memcpy(ds->referrer, e->ref, e->ref_len);
	else
		strcpy(ds->referrer, e->ref_kind == REF_NONE ? "direct" : "unknown");
	dimset_set(ds->browser, sizeof(ds->browser), ua_browser_name(u->browser));
	dimset_set(ds->os, sizeof(ds->os), ua_os_name(u->os));
}

/* The interned combination of a click, through its User-Agent's memo. */
static uint32_t event_dim(struct clicks *c, const struct click_event *e, struct ua_slot *sl)
{
	char cc[8];
	event_country(c, e, &sl->cls, cc);
	/* a bot's combination has no referrer */
	uint8_t kind = sl->cls.bot ? REF_NONE : e->ref_kind, len = kind == REF_HOST ? e->ref_len : 0;
	if (sl->memo_epoch == c->dims_epoch && sl->memo_ref_kind == kind && sl->memo_ref_len == len &&
	    !memcmp(sl->memo_ref, e->ref, len) && !memcmp(sl->memo_country, cc, sizeof(cc)))
		return sl->memo_dim;
	struct dimset ds;
	event_dims(e, &sl->cls, cc, &ds);
	sl->memo_dim = dims_intern(&c->t.dims, &ds);
	sl->memo_epoch = c->dims_epoch;
	sl->memo_ref_kind = kind;
	sl->memo_ref_len = len;
	memcpy(sl->memo_ref, e->ref, len);
	memcpy(sl->memo_country, cc, sizeof(cc));
	return sl->memo_dim;
}

/* What fold() works out for one event before touching the table. */
struct pending_fold {
	struct nkey k;
	uint64_t h;
	int bot;
};

/* Folds n events: first every key and hash (and a prefetch of its slot),
 * then a prefetch of every node the slots name, then the counts. With
 * clicks spread over many links each step is a cache miss, and this way
 * they overlap instead of following one another. */
static void fold(struct clicks *c, const struct click_event *const *ev, size_t n)
{
	struct pending_fold pf[BATCH];
	struct table *t = &c->t;
	if (2 * (t->n + n) > t->nslots)
		table_grow(t); /* no growth below: the prefetches stay useful */
	for (size_t i = 0; i < n; i++) {
		const struct click_event *e = ev[i];
		struct ua_slot *sl = classify(c, e);
		pf[i].bot = sl->cls.bot;
		pf[i].k = (struct nkey){e->link_id, (int32_t)(e->ts_ms / 3600000),
					event_dim(c, e, sl)};
		pf[i].h = key_hash(&pf[i].k);
		__builtin_prefetch(&t->slots[slot_home(t->nslots, pf[i].h)]);
	}
	for (size_t i = 0; i < n; i++) {
		slot_t v = t->slots[slot_home(t->nslots, pf[i].h)];
		if (v)
			__builtin_prefetch(slot_node(t, v), 1);
	}
	for (size_t i = 0; i < n; i++)
		add_pend(c, table_get(t, &pf[i].k, pf[i].h), !pf[i].bot, pf[i].bot);
	c->pend_events += n;
}

/* Consumer side of every ring; with c->lock held. */
static void drain_locked(struct clicks *c)
{
	for (int i = 0; i < c->nworkers; i++) {
		struct click_ring *r = c->rings[i];
		uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
		uint64_t h = atomic_load_explicit(&r->head, memory_order_acquire);
		while (t != h) {
			const struct click_event *batch[BATCH];
			size_t n = 0;
			for (; t != h && n < BATCH; t++)
				batch[n++] = &r->ev[t & (CLICK_RING_SIZE - 1)];
			fold(c, batch, n);
		}
		atomic_store_explicit(&r->tail, t, memory_order_release);
	}
}

/* ---- flushing and merging --------------------------------------------------------------- */

/* Writer thread: the op is committed (or not). What follows from it is
 * the aggregator's (apply_slice): this thread may run at a low priority,
 * and must not hold the lock the aggregator needs. */
static void on_op_done(struct store_op *op)
{
	struct clicks *c = op->ctx;
	pthread_mutex_lock(&c->lock);
	c->op_ok = op->status == STORE_OK;
	c->stage = STAGE_DONE;
	c->cursor = 0;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

/* The merge is committed: the durable counts are in the click tables now.
 * A new table takes only the counts still pending, a slice at a time
 * (rebuild_slice): meanwhile clicks are folded into the new table, and a
 * query adds up both. */
static void rebuild_begin(struct clicks *c)
{
	c->old = c->t;
	table_init(&c->t);
	table_reserve(&c->t, c->dirty.n);
	c->dims_epoch++; /* the memos name ids of the old table */
	c->moving = c->dirty;
	memset(&c->dirty, 0, sizeof(c->dirty));
	c->durable_nodes = 0;
	c->cursor = 0;
	c->stage = STAGE_REBUILDING;
}

/* Moves the pending counts of up to n nodes to the new table; 1 once all
 * are, and the old table is gone. */
static int rebuild_slice(struct clicks *c, size_t n)
{
	size_t end = n < c->moving.n - c->cursor ? c->cursor + n : c->moving.n;
	for (size_t i = c->cursor; i < end; i++) {
		struct node *x = c->moving.v[i];
		if (i + 8 < end)
			__builtin_prefetch(c->moving.v[i + 8]);
		struct nkey k = x->key;
		if (k.dim != NO_DIM)
			k.dim = dims_intern(&c->t.dims, &c->old.dims.v[k.dim & ~DAY_ONLY]) |
				(k.dim & DAY_ONLY);
		add_pend(c, table_get(&c->t, &k, key_hash(&k)), x->pend[H], x->pend[B]);
		x->pend[H] = x->pend[B] = 0; /* a query must not count them twice */
	}
	c->cursor = end;
	if (end < c->moving.n)
		return 0;
	free(c->moving.v);
	memset(&c->moving, 0, sizeof(c->moving));
	table_release(&c->old);
	return 1;
}

/* With c->lock held: the op is over. */
static void op_end(struct clicks *c)
{
	free(c->op_rows);
	c->op_rows = NULL;
	c->op_nrows = 0;
	c->op_blob.len = 0; /* kept: its pages are reused by the next flush */
	c->op_kind = OP_NONE;
	c->stage = 0;
	pthread_cond_broadcast(&c->cond);
}

/* With c->lock held, the op done: up to n of the delta's nodes take what
 * it carried into their durable counts (or back into pending if it was
 * not committed); a merge is applied whole. The op ends with the last. */
static void apply_slice(struct clicks *c, size_t n)
{
	int ok = c->op_ok;
	if (c->op_kind == OP_DELTA) {
		size_t end = n < c->flushing.n - c->cursor ? c->cursor + n : c->flushing.n;
		for (size_t i = c->cursor; i < end; i++) {
			struct node *x = c->flushing.v[i];
			if (i + 8 < end)
				__builtin_prefetch(c->flushing.v[i + 8], 1);
			if (ok) {
				if (!x->durable[H] && !x->durable[B])
					c->durable_nodes++;
				x->durable[H] += x->flush[H];
				x->durable[B] += x->flush[B];
			} else {
				/* Keep every count: pending again, retried next time. */
				add_pend(c, x, x->flush[H], x->flush[B]);
			}
			x->flush[H] = x->flush[B] = 0;
		}
		c->cursor = end;
		if (end < c->flushing.n)
			return;
		c->flushing.n = 0;
		if (ok) {
			c->unmerged_upto = c->op.click_seq;
			metric_add(&c->flushed, c->flush_events);
			metric_add(&c->flushes, 1);
		} else {
			c->pend_events += c->flush_events;
			metric_add(&c->flush_errors, 1);
			log_error("click delta %llu not committed; its counts are kept and retried",
				  (unsigned long long)c->op.click_seq);
		}
		c->flush_events = 0;
	} else if (ok) {
		rebuild_begin(c);
		return;
	} else {
		metric_add(&c->merge_errors, 1);
		log_error("click merge up to delta %llu not committed; retried later",
			  (unsigned long long)c->op.click_seq);
	}
	op_end(c);
}

static void op_prepare(struct clicks *c, int kind)
{
	c->op_kind = kind;
	memset(&c->op, 0, sizeof(c->op));
}

/* With c->lock held: the pending counts become a delta, to be encoded. */
static int start_delta_locked(struct clicks *c)
{
	if (c->op_kind != OP_NONE || !c->dirty.n)
		return 0;
	op_prepare(c, OP_DELTA);
	/* the dirty nodes are the delta's now; flushing is empty (one op) */
	struct nodes swap = c->flushing;
	c->flushing = c->dirty;
	c->dirty = swap;
	c->flush_events = 0;
	c->stage = STAGE_ENCODING;
	c->cursor = 0;
	encode_begin(c);
	return 1;
}

/* With c->lock held: the durable counts are to go into the click tables.
 * Their rows are collected a slice at a time (merge_collect), walking the
 * nodes' chunks: nodes never move, and no durable count changes while a
 * merge is prepared (one op at a time), so nodes added meanwhile, which
 * hold none, change nothing. The store puts the rows in order. */
static int start_merge_locked(struct clicks *c)
{
	if (c->op_kind != OP_NONE || !c->durable_nodes)
		return 0;
	op_prepare(c, OP_MERGE);
	c->op_rows = xmalloc(2 * c->durable_nodes * sizeof(*c->op_rows));
	c->op_nrows = 0;
	c->mchunk = 0;
	c->cursor = 0;
	c->stage = STAGE_COLLECTING;
	return 1;
}

/* Collects the rows of up to n nodes; 1 once all are. A budget that runs
 * out where a chunk ends is not the end of the nodes. */
static int merge_collect(struct clicks *c, size_t n)
{
	for (; c->mchunk < c->t.nchunks; c->mchunk++, c->cursor = 0) {
		const struct chunk *ch = c->t.chunkv[c->mchunk];
		for (; c->cursor < ch->used; c->cursor++, n--) {
			if (n == 0)
				return 0;
			const struct node *x = &ch->nodes[c->cursor];
			if (!x->durable[H] && !x->durable[B])
				continue;
			assert(c->op_nrows + 2 <= 2 * c->durable_nodes);
			c->op_nrows += rows_of(&c->t, &x->key, x->durable[H], x->durable[B], 1, 1,
					       &c->op_rows[c->op_nrows]);
		}
	}
	return 1;
}

/* With c->lock held: advances the op by up to n nodes. Returns 1 if it is
 * to be submitted now (after unlocking). */
static int advance_locked(struct clicks *c, size_t n)
{
	if (c->stage == STAGE_DONE) {
		apply_slice(c, n);
		return 0;
	}
	if (c->stage == STAGE_REBUILDING) {
		if (rebuild_slice(c, n)) {
			metric_add(&c->merges, 1);
			op_end(c);
		}
		return 0;
	}
	if (c->stage == STAGE_COLLECTING) {
		if (!merge_collect(c, n))
			return 0;
		c->stage = STAGE_IN_FLIGHT;
		c->op.kind = STORE_OP_CLICK_MERGE;
		c->op.clicks = c->op_rows;
		c->op.nclicks = c->op_nrows;
		c->op.click_seq = c->unmerged_upto;
		return 1;
	}
	if (c->stage != STAGE_ENCODING)
		return 0;
	encode_slice(c, n);
	if (c->cursor < c->flushing.n)
		return 0;
	encode_finish(c);
	c->stage = STAGE_IN_FLIGHT;
	c->op.kind = STORE_OP_CLICK_DELTA;
	c->op.blob = c->op_blob.p;
	c->op.blob_len = c->op_blob.len;
	c->op.click_seq = ++c->last_seq;
	return 1;
}

static void submit_unlocked(struct clicks *c)
{
	pthread_mutex_unlock(&c->lock);
	store_submit(c->store, &c->op, on_op_done, c);
	pthread_mutex_lock(&c->lock);
}

/* Whether the op has work for the aggregator (not in the store's hands). */
static int op_sliced(const struct clicks *c)
{
	return c->stage != 0 && c->stage != STAGE_IN_FLIGHT;
}

/* With c->lock held, the aggregator stopped: takes the op to its end. */
static void finish_op_locked(struct clicks *c)
{
	while (c->op_kind != OP_NONE) {
		if (c->stage == STAGE_IN_FLIGHT)
			pthread_cond_wait(&c->cond, &c->lock);
		else if (advance_locked(c, SIZE_MAX))
			submit_unlocked(c);
	}
}

static void *aggregator_main(void *arg)
{
	struct clicks *c = arg;
	uint64_t next_flush = time_mono_ms() + (uint64_t)c->flush_ms;
	uint64_t next_merge = time_mono_ms() + (uint64_t)c->merge_ms;
	pthread_mutex_lock(&c->lock);
	/* Counters read back at start-up are merged at once: a server that
	 * never runs a whole merge interval (restarted often, or crashing)
	 * would otherwise leave its deltas to the next start, which reads
	 * back every one of them (7.3 s for the 352 MB of deltas that twenty to
	 * thirty runs of a few seconds under load left), and more each time. */
	if (c->durable_nodes)
		next_merge = 0;
	while (!c->stopping) {
		/* An op being encoded or applied goes on after a short pause
		 * (SLICE_GAP_MS) that leaves a worker sharing this core to
		 * run: a flush of 200k counters in one go held it for 3.5 ms
		 * (and its apply 1.5 ms more), past the p99 of a redirect. */
		struct timespec ts;
		time_deadline_in(&ts, op_sliced(c) ? SLICE_GAP_MS : DRAIN_MS);
		pthread_cond_timedwait(&c->cond, &c->lock, &ts);
		drain_locked(c);
		if (op_sliced(c)) {
			if (advance_locked(c, SLICE_NODES))
				submit_unlocked(c);
			continue;
		}
		uint64_t now = time_mono_ms();
		/* Flushes come first: they are what makes clicks durable. */
		if (now >= next_flush && c->op_kind == OP_NONE) {
			next_flush = now + (uint64_t)c->flush_ms;
			if (start_delta_locked(c)) {
				if (advance_locked(c, SLICE_NODES))
					submit_unlocked(c);
				continue;
			}
		}
		if ((now >= next_merge || c->durable_nodes > MERGE_MAX_COUNTERS) &&
		    c->op_kind == OP_NONE) {
			next_merge = now + (uint64_t)c->merge_ms;
			if (start_merge_locked(c) && advance_locked(c, SLICE_NODES))
				submit_unlocked(c);
		}
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

struct clicks *clicks_new(struct store *store, int nworkers, int flush_ms, int merge_ms,
			  struct geoip *geo)
{
	struct clicks *c = xcalloc(1, sizeof(*c));
	c->store = store;
	c->geo = geo;
	c->nworkers = nworkers;
	c->flush_ms = flush_ms;
	c->merge_ms = merge_ms;
	c->rings = xcalloc((size_t)nworkers, sizeof(*c->rings));
	for (int i = 0; i < nworkers; i++) {
		if (posix_memalign((void **)&c->rings[i], 64, sizeof(struct click_ring)) != 0)
			abort();
		memset(c->rings[i], 0, sizeof(struct click_ring));
	}
	c->ua_cache = xcalloc(UA_CACHE_SIZE, sizeof(*c->ua_cache));
	table_init(&c->t);
	c->dims_epoch = 1;
	buf_init(&c->op_blob);
	buf_init(&c->op_recs);
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	return c;
}

struct click_ring *clicks_ring(struct clicks *c, int worker)
{
	return c->rings[worker];
}

static void replay_one(void *ctx, uint64_t seq, const void *blob, size_t len)
{
	struct clicks *c = ctx;
	if (decode_durable(c, blob, len) != 0)
		log_error("click delta %llu is corrupt; the counts it holds are skipped",
			  (unsigned long long)seq);
	if (seq > c->last_seq)
		c->last_seq = seq;
	c->unmerged_upto = c->last_seq;
}

int clicks_start(struct clicks *c, struct store_reader *r)
{
	struct click_rows rows;
	if (store_clicks_read(c->store, r, 0, 0, 0, 0, &rows) != STORE_OK)
		return -1;
	free(rows.rows);
	c->last_seq = c->unmerged_upto = rows.seq;
	if (store_click_deltas(c->store, r, rows.seq, replay_one, c) != STORE_OK)
		return -1;
	if (c->durable_nodes)
		log_info("read back %llu click counters not merged before the last stop",
			 (unsigned long long)c->durable_nodes);
	if (pthread_create(&c->thread, NULL, aggregator_main, c) != 0)
		return -1;
	c->started = 1;
	return 0;
}

void clicks_stop(struct clicks *c)
{
	if (!c->started)
		return;
	pthread_mutex_lock(&c->lock);
	c->stopping = 1;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->thread, NULL);
	c->started = 0;
	/* Last flush: wait for the op in flight, then append what is left
	 * (merging can wait for the next start). One retry covers a passing
	 * failure; after that, say what is lost. */
	pthread_mutex_lock(&c->lock);
	drain_locked(c);
	for (int attempt = 0; attempt < 2; attempt++) {
		finish_op_locked(c);
		if (!start_delta_locked(c))
			break;
	}
	finish_op_locked(c);
	if (c->pend_events)
		log_error("%llu clicks could not be committed at shutdown",
			  (unsigned long long)c->pend_events);
	pthread_mutex_unlock(&c->lock);
}

void clicks_free(struct clicks *c)
{
	if (!c)
		return;
	assert(!c->started && c->op_kind == OP_NONE);
	table_release(&c->t);
	table_release(&c->old);
	free(c->moving.v);
	free(c->dirty.v);
	free(c->flushing.v);
	buf_release(&c->op_blob);
	buf_release(&c->op_recs);
	free(c->op_local);
	for (int i = 0; i < c->nworkers; i++)
		free(c->rings[i]);
	free(c->rings);
	free(c->ua_cache);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	free(c);
}

/* ---- reading ---------------------------------------------------------------------------- */

/* A query: link's counts over hours [from, to], and with want_dims over
 * the days they fall in. */
struct query {
	int64_t link;
	int32_t from, to;
	int want_dims;
};

/* Adds node x's counts (if any) to out, which has room for cap rows. */
static void add_row(const struct table *t, const struct node *x, int with_durable,
		    const struct query *q, struct click_rows *out, size_t *cap)
{
	const struct nkey *k = &x->key;
	if (k->link_id != q->link)
		return;
	int32_t hour = key_hour(k), day = hour >= 0 ? hour / 24 : k->bucket;
	int hour_row = hour >= q->from && hour <= q->to;
	int day_row = q->want_dims && day >= q->from / 24 && day <= q->to / 24;
	uint64_t h = x->pend[H] + x->flush[H] + (with_durable ? x->durable[H] : 0);
	uint64_t b = x->pend[B] + x->flush[B] + (with_durable ? x->durable[B] : 0);
	if ((!h && !b) || (!hour_row && !day_row))
		return;
	if (out->n + 2 > *cap) {
		*cap = out->n + 64 > 2 * *cap ? out->n + 64 : 2 * *cap;
		out->rows = xrealloc(out->rows, *cap * sizeof(*out->rows));
	}
	out->n += rows_of(t, k, h, b, hour_row, day_row, &out->rows[out->n]);
}

/* How many buckets of [lo, hi] the table's span [tlo, thi] (tlo > thi:
 * none) holds, and which. */
static size_t span_keys(int64_t lo, int64_t hi, int32_t tlo, int32_t thi, int32_t *from,
			int32_t *to)
{
	*from = lo > tlo ? (int32_t)lo : tlo;
	*to = hi < thi ? (int32_t)hi : thi;
	return *from > *to ? 0 : (size_t)(*to - *from) + 1;
}

/* Adds the counters of link_id in t to out (see clicks_query). */
static void query_table(const struct table *t, int with_durable, const struct query *q,
			struct click_rows *out, size_t *cap)
{
	/* The table holds the counters since the last merge: a link's keys are
	 * its hours in that span times the combinations interned since (and
	 * its hour and day counters read back). Probing them is a few random
	 * reads each, walking every slot one sequential read per slot: 200k
	 * counters took 7 ms a query. A day's counts come from each of its
	 * hours. */
	int64_t hlo = q->from, hhi = q->to;
	if (q->want_dims) {
		hlo = (int64_t)q->from / 24 * 24;
		hhi = (int64_t)q->to / 24 * 24 + 23;
	}
	int32_t hfrom, hto, dfrom = 1, dto = 0; /* no days unless want_dims */
	size_t ndims = t->dims.n;
	size_t probes = span_keys(hlo, hhi, t->hour_lo, t->hour_hi, &hfrom, &hto) * (ndims + 1);
	if (q->want_dims)
		probes += span_keys(q->from / 24, q->to / 24, t->day_lo, t->day_hi, &dfrom, &dto) *
			  ndims;
	if (probes <= t->nslots / 8) {
		for (int32_t hr = hfrom; hr <= hto; hr++)
			for (uint32_t dim = 0; dim <= ndims; dim++) {
				/* dim ndims: the hour counter read back */
				struct nkey k = {q->link, hr, dim < ndims ? dim : NO_DIM};
				const struct node *x = table_find(t, &k, key_hash(&k));
				if (x)
					add_row(t, x, with_durable, q, out, cap);
			}
		for (int32_t day = dfrom; day <= dto; day++)
			for (uint32_t dim = 0; dim < ndims; dim++) {
				struct nkey k = {q->link, day, dim | DAY_ONLY};
				const struct node *x = table_find(t, &k, key_hash(&k));
				if (x)
					add_row(t, x, with_durable, q, out, cap);
			}
	} else {
		for (size_t i = 0; i < t->nslots; i++)
			if (t->slots[i])
				add_row(t, slot_node(t, t->slots[i]), with_durable, q, out, cap);
	}
}

int clicks_query(struct clicks *c, struct store_reader *r, int64_t link_id, int32_t from_hour,
		 int32_t to_hour, int want_dims, struct click_rows *out)
{
	pthread_mutex_lock(&c->lock);
	drain_locked(c);
	/* Read the store with the lock held, so that no op completes meanwhile:
	 * the snapshot's merge number then says whether the durable counts
	 * (which a merge in flight still holds) are already in the tables. */
	int rc = store_clicks_read(c->store, r, link_id, from_hour, to_hour, want_dims, out);
	if (rc != STORE_OK) {
		pthread_mutex_unlock(&c->lock);
		return rc;
	}
	int with_durable = out->seq < c->unmerged_upto;
	size_t cap = out->n;
	struct query q = {link_id, from_hour, to_hour, want_dims};
	query_table(&c->t, with_durable, &q, out, &cap);
	if (c->stage == STAGE_REBUILDING) /* counts not moved yet; merged ones are in the store */
		query_table(&c->old, 0, &q, out, &cap);
	pthread_mutex_unlock(&c->lock);
	return STORE_OK;
}

void clicks_get_stats(struct clicks *c, struct clicks_stats *out)
{
	memset(out, 0, sizeof(*out));
	for (int i = 0; i < c->nworkers; i++) {
		out->recorded += metric_read(&c->rings[i]->recorded);
		out->dropped += metric_read(&c->rings[i]->dropped);
	}
	out->flushed = metric_read(&c->flushed);
	out->flushes = metric_read(&c->flushes);
	out->flush_errors = metric_read(&c->flush_errors);
	out->merges = metric_read(&c->merges);
	out->merge_errors = metric_read(&c->merge_errors);
	pthread_mutex_lock(&c->lock);
	out->pending = c->pend_events + c->flush_events;
	out->unmerged_counters = c->durable_nodes;
	pthread_mutex_unlock(&c->lock);
}
