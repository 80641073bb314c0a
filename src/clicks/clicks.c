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

/* Counters: a chained hash table whose nodes come from chunks. */
struct node {
	struct node *next;
	uint64_t hash;
	struct click_count c;
};

struct chunk {
	struct chunk *next;
	size_t used;
	struct node nodes[POOL_CHUNK];
};

struct counters {
	struct node **b;
	size_t nb, n;
	struct chunk *chunks;
	uint64_t events; /* clicks folded in */
};

struct ua_slot {
	uint64_t hash;
	uint16_t len;
	uint8_t valid;
	struct ua_class cls;
	char ua[CLICK_UA_MAX];
};

enum { OP_NONE = 0, OP_DELTA, OP_MERGE };

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
	struct counters pending;  /* folded, not flushed */
	struct counters unmerged; /* flushed as deltas up to unmerged_upto */
	uint64_t unmerged_upto;
	uint64_t last_seq; /* last delta number given out */
	/* the op in flight */
	int op_kind;
	struct store_op op;
	struct click_count *op_rows;
	size_t op_nrows;
	struct buf op_blob;
	uint64_t op_events;
	struct ua_slot *ua_cache;
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
	int v6 = p < end && *p == '[';
	for (; p < end && *p != '/' && *p != '?' && *p != '#' && (v6 || *p != ':'); p++) {
		char c = *p;
		if (c >= 'A' && c <= 'Z')
			c = (char)(c + 32);
		if (v6 ? !((c >= 'a' && c <= 'f') || (c >= '0' && c <= '9') || c == ':' || c == '.' ||
			   c == '[' || c == ']')
		       : !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
			   c == '_'))
			return 0;
		if (n == cap)
			return 0;
		out[n++] = c;
		if (v6 && c == ']')
			return n; /* a port may follow */
	}
	return v6 ? 0 : n; /* an unclosed '[' is no host */
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

static uint64_t str_hash(uint64_t h, const char *v)
{
	for (; *v; v++)
		h = (h ^ (unsigned char)*v) * 0x100000001b3ULL;
	return (h ^ 0xff) * 0x100000001b3ULL;
}

static uint64_t key_hash(const struct click_count *k)
{
	uint64_t h = (uint64_t)k->link_id * 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uint32_t)k->bucket * 31 ^
		     k->kind;
	if (k->kind == STORE_CLICK_DAY) {
		h = str_hash(h, k->referrer);
		h = str_hash(h, k->country);
		h = str_hash(h, k->device);
		h = str_hash(h, k->browser);
		h = str_hash(h, k->os);
	}
	return h ^ (h >> 29);
}

static int key_eq(const struct click_count *a, const struct click_count *b)
{
	if (a->link_id != b->link_id || a->bucket != b->bucket || a->kind != b->kind)
		return 0;
	return a->kind == STORE_CLICK_HOUR ||
	       (!strcmp(a->referrer, b->referrer) && !strcmp(a->country, b->country) &&
		!strcmp(a->device, b->device) && !strcmp(a->browser, b->browser) &&
		!strcmp(a->os, b->os));
}

static struct node *node_alloc(struct counters *m)
{
	if (!m->chunks || m->chunks->used == POOL_CHUNK) {
		struct chunk *ch = xmalloc(sizeof(*ch));
		ch->used = 0;
		ch->next = m->chunks;
		m->chunks = ch;
	}
	return &m->chunks->nodes[m->chunks->used++];
}

/* Adds k's humans and bots to the counter with k's key. */
static void counters_add(struct counters *m, const struct click_count *k)
{
	if (m->n >= m->nb) {
		size_t nb = m->nb ? m->nb * 2 : 1024;
		struct node **b = xcalloc(nb, sizeof(*b));
		for (size_t i = 0; i < m->nb; i++) {
			struct node *x = m->b[i], *next;
			for (; x; x = next) {
				next = x->next;
				x->next = b[x->hash & (nb - 1)];
				b[x->hash & (nb - 1)] = x;
			}
		}
		free(m->b);
		m->b = b;
		m->nb = nb;
	}
	uint64_t h = key_hash(k);
	struct node **pp = &m->b[h & (m->nb - 1)];
	for (struct node *x = *pp; x; x = x->next) {
		if (x->hash == h && key_eq(&x->c, k)) {
			x->c.humans += k->humans;
			x->c.bots += k->bots;
			return;
		}
	}
	struct node *x = node_alloc(m);
	x->hash = h;
	x->c = *k;
	x->next = *pp;
	*pp = x;
	m->n++;
}

/* Empties m but keeps its bucket array: pending is refilled every flush
 * interval, and growing it from scratch each time rehashed every node
 * several times a second. */
static void counters_clear(struct counters *m)
{
	while (m->chunks) {
		struct chunk *next = m->chunks->next;
		free(m->chunks);
		m->chunks = next;
	}
	if (m->b)
		memset(m->b, 0, m->nb * sizeof(*m->b));
	m->n = 0;
	m->events = 0;
}

static void counters_release(struct counters *m)
{
	while (m->chunks) {
		struct chunk *next = m->chunks->next;
		free(m->chunks);
		m->chunks = next;
	}
	free(m->b);
	memset(m, 0, sizeof(*m));
}

/* A copy of every counter, for a store op (the caller frees). */
static struct click_count *counters_rows(const struct counters *m, size_t *n)
{
	struct click_count *rows = xmalloc((m->n ? m->n : 1) * sizeof(*rows));
	size_t k = 0;
	for (size_t i = 0; i < m->nb; i++)
		for (struct node *x = m->b[i]; x; x = x->next)
			rows[k++] = x->c;
	assert(k == m->n);
	*n = k;
	return rows;
}

/* ---- delta encoding (the format is documented in schema_sqlite.sql) ------------------- */

static void put_le(struct buf *b, uint64_t v, int bytes)
{
	unsigned char t[8];
	for (int i = 0; i < bytes; i++)
		t[i] = (unsigned char)(v >> (8 * i));
	buf_append(b, t, (size_t)bytes);
}

static void put_str(struct buf *b, const char *s)
{
	size_t n = strlen(s);
	unsigned char len = (unsigned char)n;
	buf_append(b, &len, 1);
	buf_append(b, s, n);
}

static void encode(struct buf *b, const struct click_count *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct click_count *k = &rows[i];
		put_le(b, (uint64_t)k->link_id, 8);
		put_le(b, (uint64_t)(uint32_t)k->bucket, 4);
		put_le(b, k->kind, 1);
		put_le(b, k->humans, 8);
		put_le(b, k->bots, 8);
		if (k->kind == STORE_CLICK_DAY) {
			put_str(b, k->referrer);
			put_str(b, k->country);
			put_str(b, k->device);
			put_str(b, k->browser);
			put_str(b, k->os);
		}
	}
}

static uint64_t get_le(const unsigned char *p, int bytes)
{
	uint64_t v = 0;
	for (int i = bytes - 1; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
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

/* Adds every counter of a delta to m; returns 0, or -1 if it is corrupt. */
static int decode(struct counters *m, const void *blob, size_t len)
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
		k.humans = get_le(p + 13, 8);
		k.bots = get_le(p + 21, 8);
		p += 29;
		if (k.kind == STORE_CLICK_DAY) {
			if (get_str(&p, end, k.referrer, sizeof(k.referrer)) ||
			    get_str(&p, end, k.country, sizeof(k.country)) ||
			    get_str(&p, end, k.device, sizeof(k.device)) ||
			    get_str(&p, end, k.browser, sizeof(k.browser)) ||
			    get_str(&p, end, k.os, sizeof(k.os)))
				return -1;
		} else if (k.kind != STORE_CLICK_HOUR) {
			return -1;
		}
		counters_add(m, &k);
	}
	return 0;
}

/* ---- folding ------------------------------------------------------------------------- */

static void classify(struct clicks *c, const struct click_event *e, struct ua_class *out)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (uint16_t i = 0; i < e->ua_len; i++)
		h = (h ^ (unsigned char)e->ua[i]) * 0x100000001b3ULL;
	struct ua_slot *sl = &c->ua_cache[(h ^ (h >> 32)) & (UA_CACHE_SIZE - 1)];
	if (sl->valid && sl->hash == h && sl->len == e->ua_len && !memcmp(sl->ua, e->ua, e->ua_len)) {
		*out = sl->cls;
		return;
	}
	ua_classify(e->ua, e->ua_len, out);
	sl->valid = 1;
	sl->hash = h;
	sl->len = e->ua_len;
	memcpy(sl->ua, e->ua, e->ua_len);
	sl->cls = *out;
}

static void copy_name(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);
	if (n >= cap)
		n = cap - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static void fold(struct clicks *c, const struct click_event *e)
{
	struct ua_class u;
	classify(c, e, &u);
	struct click_count k;
	memset(&k, 0, sizeof(k));
	k.link_id = e->link_id;
	k.kind = STORE_CLICK_HOUR;
	k.bucket = (int32_t)(e->ts_ms / 3600000);
	k.humans = !u.bot;
	k.bots = u.bot;
	counters_add(&c->pending, &k);

	k.kind = STORE_CLICK_DAY;
	k.bucket = (int32_t)(e->ts_ms / 86400000);
	k.humans = 1;
	k.bots = 0;
	copy_name(k.device, sizeof(k.device), ua_device_name(u.device));
	if (u.bot) {
		strcpy(k.referrer, "-");
		strcpy(k.country, "-");
		strcpy(k.browser, "-");
		strcpy(k.os, "-");
	} else {
		if (e->ref_kind == REF_HOST) {
			memcpy(k.referrer, e->ref, e->ref_len);
			k.referrer[e->ref_len] = '\0';
		} else {
			strcpy(k.referrer, e->ref_kind == REF_NONE ? "direct" : "unknown");
		}
		strcpy(k.country, "unknown");
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
			char cc[3];
			if (geoip_country(c->geo, (struct sockaddr *)&ss, cc) == 0)
				copy_name(k.country, sizeof(k.country), cc);
		}
		copy_name(k.browser, sizeof(k.browser), ua_browser_name(u.browser));
		copy_name(k.os, sizeof(k.os), ua_os_name(u.os));
	}
	counters_add(&c->pending, &k);
	c->pending.events++;
}

/* Consumer side of every ring; with c->lock held. */
static void drain_locked(struct clicks *c)
{
	for (int i = 0; i < c->nworkers; i++) {
		struct click_ring *r = c->rings[i];
		uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
		uint64_t h = atomic_load_explicit(&r->head, memory_order_acquire);
		for (; t != h; t++)
			fold(c, &r->ev[t & (CLICK_RING_SIZE - 1)]);
		atomic_store_explicit(&r->tail, t, memory_order_release);
	}
}

/* ---- flushing and merging --------------------------------------------------------------- */

static void merge_rows_into(struct counters *m, const struct click_count *rows, size_t n)
{
	for (size_t i = 0; i < n; i++)
		counters_add(m, &rows[i]);
}

/* Writer thread: the op is committed (or not). */
static void on_op_done(struct store_op *op)
{
	struct clicks *c = op->ctx;
	pthread_mutex_lock(&c->lock);
	int ok = op->status == STORE_OK;
	if (c->op_kind == OP_DELTA) {
		if (ok) {
			merge_rows_into(&c->unmerged, c->op_rows, c->op_nrows);
			c->unmerged.events += c->op_events;
			c->unmerged_upto = op->click_seq;
			metric_add(&c->flushed, c->op_events);
			metric_add(&c->flushes, 1);
		} else {
			/* Keep every count: back into pending, retried next time. */
			merge_rows_into(&c->pending, c->op_rows, c->op_nrows);
			c->pending.events += c->op_events;
			metric_add(&c->flush_errors, 1);
			log_error("click delta %llu not committed; its counts are kept and retried",
				  (unsigned long long)op->click_seq);
		}
	} else {
		if (ok) {
			counters_release(&c->unmerged); /* now in the click tables */
			metric_add(&c->merges, 1);
		} else {
			metric_add(&c->merge_errors, 1);
			log_error("click merge up to delta %llu not committed; retried later",
				  (unsigned long long)op->click_seq);
		}
	}
	free(c->op_rows);
	c->op_rows = NULL;
	c->op_nrows = 0;
	buf_release(&c->op_blob);
	c->op_events = 0;
	c->op_kind = OP_NONE;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

static void op_prepare(struct clicks *c, int kind)
{
	c->op_kind = kind;
	memset(&c->op, 0, sizeof(c->op));
	c->op.done = on_op_done;
	c->op.ctx = c;
}

/* With c->lock held: pending becomes a delta in flight. Returns 1 if an op
 * is to be submitted (after unlocking). */
static int start_delta_locked(struct clicks *c)
{
	if (c->op_kind != OP_NONE || c->pending.n == 0)
		return 0;
	op_prepare(c, OP_DELTA);
	c->op_rows = counters_rows(&c->pending, &c->op_nrows);
	c->op_events = c->pending.events;
	counters_clear(&c->pending);
	buf_init(&c->op_blob);
	encode(&c->op_blob, c->op_rows, c->op_nrows);
	c->op.kind = STORE_OP_CLICK_DELTA;
	c->op.blob = c->op_blob.p;
	c->op.blob_len = c->op_blob.len;
	c->op.click_seq = ++c->last_seq;
	return 1;
}

/* With c->lock held: the unmerged counters go into the click tables. */
static int start_merge_locked(struct clicks *c)
{
	if (c->op_kind != OP_NONE || c->unmerged.n == 0)
		return 0;
	op_prepare(c, OP_MERGE);
	c->op_rows = counters_rows(&c->unmerged, &c->op_nrows);
	c->op.kind = STORE_OP_CLICK_MERGE;
	c->op.clicks = c->op_rows;
	c->op.nclicks = c->op_nrows;
	c->op.click_seq = c->unmerged_upto;
	return 1;
}

static void submit_unlocked(struct clicks *c)
{
	pthread_mutex_unlock(&c->lock);
	store_submit(c->store, &c->op);
	pthread_mutex_lock(&c->lock);
}

static void *aggregator_main(void *arg)
{
	struct clicks *c = arg;
	uint64_t next_flush = time_mono_ms() + (uint64_t)c->flush_ms;
	uint64_t next_merge = time_mono_ms() + (uint64_t)c->merge_ms;
	pthread_mutex_lock(&c->lock);
	while (!c->stopping) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += DRAIN_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&c->cond, &c->lock, &ts);
		drain_locked(c);
		uint64_t now = time_mono_ms();
		/* Flushes come first: they are what makes clicks durable. */
		if (now >= next_flush && c->op_kind == OP_NONE) {
			next_flush = now + (uint64_t)c->flush_ms;
			if (start_delta_locked(c)) {
				submit_unlocked(c);
				continue;
			}
		}
		if ((now >= next_merge || c->unmerged.n > MERGE_MAX_COUNTERS) && c->op_kind == OP_NONE) {
			next_merge = now + (uint64_t)c->merge_ms;
			if (start_merge_locked(c))
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
	buf_init(&c->op_blob);
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
	if (decode(&c->unmerged, blob, len) != 0)
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
	if (c->unmerged.n)
		log_info("read back %zu click counters not merged before the last stop",
			 c->unmerged.n);
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
		while (c->op_kind != OP_NONE)
			pthread_cond_wait(&c->cond, &c->lock);
		if (!start_delta_locked(c))
			break;
		submit_unlocked(c);
	}
	while (c->op_kind != OP_NONE)
		pthread_cond_wait(&c->cond, &c->lock);
	if (c->pending.events)
		log_error("%llu clicks could not be committed at shutdown",
			  (unsigned long long)c->pending.events);
	pthread_mutex_unlock(&c->lock);
}

void clicks_free(struct clicks *c)
{
	if (!c)
		return;
	assert(!c->started && c->op_kind == OP_NONE);
	counters_release(&c->pending);
	counters_release(&c->unmerged);
	for (int i = 0; i < c->nworkers; i++)
		free(c->rings[i]);
	free(c->rings);
	free(c->ua_cache);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	free(c);
}

/* ---- reading ---------------------------------------------------------------------------- */

static int wanted(const struct click_count *k, int64_t link, int32_t from_h, int32_t to_h,
		  int want_dims)
{
	if (k->link_id != link)
		return 0;
	if (k->kind == STORE_CLICK_HOUR)
		return k->bucket >= from_h && k->bucket <= to_h;
	return want_dims && k->bucket >= from_h / 24 && k->bucket <= to_h / 24;
}

static void rows_add(struct click_rows *out, size_t *cap, const struct click_count *k)
{
	if (out->n == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		out->rows = xrealloc(out->rows, *cap * sizeof(*out->rows));
	}
	out->rows[out->n++] = *k;
}

static void add_wanted(struct click_rows *out, size_t *cap, const struct counters *m, int64_t link,
		       int32_t from_h, int32_t to_h, int want_dims)
{
	for (size_t i = 0; i < m->nb; i++)
		for (struct node *x = m->b[i]; x; x = x->next)
			if (wanted(&x->c, link, from_h, to_h, want_dims))
				rows_add(out, cap, &x->c);
}

int clicks_query(struct clicks *c, struct store_reader *r, int64_t link_id, int32_t from_hour,
		 int32_t to_hour, int want_dims, struct click_rows *out)
{
	pthread_mutex_lock(&c->lock);
	drain_locked(c);
	/* Read the store with the lock held, so that no op completes meanwhile:
	 * the snapshot's merge number then says whether `unmerged` (which a
	 * merge in flight still holds) is already in the tables. */
	int rc = store_clicks_read(c->store, r, link_id, from_hour, to_hour, want_dims, out);
	if (rc != STORE_OK) {
		pthread_mutex_unlock(&c->lock);
		return rc;
	}
	size_t cap = out->n;
	add_wanted(out, &cap, &c->pending, link_id, from_hour, to_hour, want_dims);
	if (out->seq < c->unmerged_upto)
		add_wanted(out, &cap, &c->unmerged, link_id, from_hour, to_hour, want_dims);
	if (c->op_kind == OP_DELTA)
		for (size_t i = 0; i < c->op_nrows; i++)
			if (wanted(&c->op_rows[i], link_id, from_hour, to_hour, want_dims))
				rows_add(out, &cap, &c->op_rows[i]);
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
	out->pending = c->pending.events + (c->op_kind == OP_DELTA ? c->op_events : 0);
	out->unmerged_counters = c->unmerged.n;
	pthread_mutex_unlock(&c->lock);
}
