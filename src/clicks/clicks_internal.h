/*
 * clicks_internal: what the files of the click pipeline share (see
 * clicks.h for the design). Nothing outside src/clicks includes this,
 * except the pipeline's unit tests.
 *
 *   ring.c        the per-worker rings: clicks_record(), the producer side
 *   table.c       the counter table: nodes in chunks, 8-byte slots
 *   dims.c        interning of combinations (referrer, country, ...)
 *   delta.c       the delta codec (format in schema_clicks.sql)
 *   aggregator.c  draining and folding, flushes and merges, the thread
 *   query.c       a link's counts: the store's plus what is in memory
 */
#ifndef SHORTD_CLICKS_INTERNAL_H
#define SHORTD_CLICKS_INTERNAL_H

#include "clicks.h"
#include "core/metrics.h"
#include "core/util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#define POOL_CHUNK 4096

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

enum { OP_NONE = 0, OP_DELTA, OP_MERGE };

/* Where the op is: a delta is encoded a slice at a time, submitted, and
 * once committed (or not) its nodes are updated a slice at a time. */
enum { STAGE_ENCODING = 1, STAGE_COLLECTING, STAGE_IN_FLIGHT, STAGE_DONE, STAGE_REBUILDING };

/* The links watched for live counts (watch.c): open addressing by link
 * id; a slot whose refs fell to 0 stays (its link id keeps the probe
 * chains whole) until reused or swept. */
#define WATCH_SLOTS 2048
struct watch_slot {
	int64_t link_id; /* 0: never used */
	uint32_t refs;   /* watchers; 0: dormant */
	uint64_t humans, bots;
};
struct click_watch {
	pthread_mutex_t lock;
	atomic_int live;    /* slots with refs > 0: the aggregator's fast check */
	size_t used;        /* slots with a link id */
	struct watch_slot slot[WATCH_SLOTS];
};
/* Adds the folded clicks of watched links (the aggregator, per batch). */
void clicks_watch_fold(struct click_watch *w, const struct click_event *const *ev,
		       const int *bot, size_t n);

struct clicks {
	struct store *store;
	struct click_watch watch;
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
	uint64_t merge_gen;  /* merges whose counts have left memory (query.c) */
	/* written by on_op_done on the store's writer thread */
	metric_counter flushed, flushes, flush_errors, merges, merge_errors;
};

/* ---- the counter table's lookups, inline: the aggregator's fold and a
 * query call them per key ---- */

static inline int clicks_is_day_only(const struct nkey *k)
{
	return k->dim != NO_DIM && (k->dim & DAY_ONLY);
}

/* The hour of a key that has one (not a day counter's), or -1. */
static inline int32_t clicks_key_hour(const struct nkey *k)
{
	return clicks_is_day_only(k) ? -1 : k->bucket;
}

/* Keys go through mix64 (core/util.h): link ids are Snowflake ids whose
 * low bits are a small per-millisecond sequence, and a plain multiply
 * left the bucket index nearly constant. */
static inline uint64_t clicks_key_hash(const struct nkey *k)
{
	return mix64((uint64_t)k->link_id ^ mix64(((uint64_t)(uint32_t)k->bucket << 32) | k->dim));
}

static inline int clicks_key_eq(const struct nkey *a, const struct nkey *b)
{
	return a->link_id == b->link_id && a->bucket == b->bucket && a->dim == b->dim;
}

/* The home slot, among nslots, of a key of hash h, or of the key a slot
 * holds (its high half is the hash's). */
static inline size_t clicks_slot_home(size_t nslots, uint64_t h)
{
	return (size_t)(h >> 32) & (nslots - 1);
}

static inline struct node *clicks_slot_node(const struct table *t, slot_t v)
{
	uint32_t id = (uint32_t)v - 1;
	return &t->chunkv[id / POOL_CHUNK]->nodes[id % POOL_CHUNK];
}

/* The slot of key k (hash h): the one that holds it, or the empty one
 * where it would go. The table has slots. */
static inline size_t clicks_table_slot(const struct table *t, const struct nkey *k, uint64_t h)
{
	size_t i = clicks_slot_home(t->nslots, h);
	for (slot_t v; (v = t->slots[i]) != 0; i = (i + 1) & (t->nslots - 1))
		if (v >> 32 == h >> 32 && clicks_key_eq(&clicks_slot_node(t, v)->key, k))
			break;
	return i;
}

/* The node of key k (hash h), or NULL. */
static inline struct node *clicks_table_find(const struct table *t, const struct nkey *k, uint64_t h)
{
	if (!t->nslots)
		return NULL;
	slot_t v = t->slots[clicks_table_slot(t, k, h)];
	return v ? clicks_slot_node(t, v) : NULL;
}

/* dims.c */
/* The id of a combination, added if new. */
uint32_t clicks_dims_intern(struct dims *d, const struct dimset *ds);
void clicks_dims_release(struct dims *d);
void clicks_dimset_set(char *dst, size_t cap, const char *src);
/* The combination of a click_count's strings, zero-padded. */
void clicks_dimset_of(const struct click_count *k, struct dimset *ds);

/* table.c */
/* The store's rows of a node's key holding humans and bots: its hour
 * counter, and its day counter (which counts bots as clicks: a bot's
 * combination says it is one); hour_row and day_row say which to give.
 * Returns how many rows it wrote to out. */
size_t clicks_rows_of(const struct table *t, const struct nkey *nk, uint64_t humans, uint64_t bots,
		      int hour_row, int day_row, struct click_count out[2]);
/* The node key of a click_count read back (an hour or a day counter), its
 * dimensions interned in t. */
void clicks_nkey_of(struct table *t, const struct click_count *k, struct nkey *nk);
void clicks_table_grow(struct table *t);
/* An empty table: no slots until the first key. */
void clicks_table_init(struct table *t);
/* Room for n keys without growing (an empty table). */
void clicks_table_reserve(struct table *t, size_t n);
/* The node of key k (hash h), created (all counts zero) if there is none. */
struct node *clicks_table_get(struct table *t, const struct nkey *k, uint64_t h);
void clicks_table_release(struct table *t);
void clicks_nodes_push(struct nodes *l, struct node *x);

/* delta.c */
/* A delta is encoded a slice at a time (clicks_delta_slice), so that the
 * aggregator never holds the CPU long: the records go to op_recs, the
 * combinations they use get local numbers in op_local, and clicks_delta_finish
 * puts the header, the combinations and the records together. Clicks are
 * folded between slices: a counter already encoded is dirty again and
 * waits for the next delta, one not encoded yet carries them in this one,
 * so a delta holds whole counters. */
void clicks_delta_begin(struct clicks *c);
/* Encodes the pending counts of flushing[cursor, cursor + n) and moves them
 * to the nodes' flush counts. Combinations are interned before a flush
 * begins or while it is encoded, never with an id a node already has, and
 * the table is not rebuilt meanwhile: op_local covers every id it meets
 * once it is grown to dims.n. */
void clicks_delta_slice(struct clicks *c, size_t n);
/* The delta, format 2, into op_blob. */
void clicks_delta_finish(struct clicks *c);
/* Adds a committed delta (either format) to the durable counts; 0, or -1
 * if it is corrupt (then nothing of it is added). */
int clicks_delta_decode(struct clicks *c, const void *blob, size_t len);

/* aggregator.c */
/* Consumer side of every ring; with c->lock held. */
void clicks_drain_locked(struct clicks *c);

#endif
