/*
 * aggregator: the click pipeline's thread (see clicks.h for the design):
 * it drains the rings, folds each click into its counter, appends the new
 * counters as a delta every flush interval and merges the committed ones
 * into the per-link tables, a slice at a time.
 */
#include "clicks_internal.h"
#include "clicks/ua.h"
#include "core/log.h"

#include <assert.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DRAIN_MS 10

#define SLICE_GAP_MS 1

#define SLICE_NODES 8192 /* encoded in about 0.15 ms, applied in 0.06 */

#define UA_CACHE_SIZE 1024 /* power of two */

#define MERGE_MAX_COUNTERS 2000000 /* merge early past this many unmerged counters */

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

/* Adds to a node's pending counts, listing it as dirty if it was not. */
static void add_pend(struct clicks *c, struct node *x, uint64_t humans, uint64_t bots)
{
	if (!humans && !bots)
		return;
	if (!x->pend[H] && !x->pend[B])
		clicks_nodes_push(&c->dirty, x);
	x->pend[H] += humans;
	x->pend[B] += bots;
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
	clicks_dimset_set(ds->device, sizeof(ds->device), ua_device_name(u->device));
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
	clicks_dimset_set(ds->browser, sizeof(ds->browser), ua_browser_name(u->browser));
	clicks_dimset_set(ds->os, sizeof(ds->os), ua_os_name(u->os));
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
	sl->memo_dim = clicks_dims_intern(&c->t.dims, &ds);
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
		clicks_table_grow(t); /* no growth below: the prefetches stay useful */
	for (size_t i = 0; i < n; i++) {
		const struct click_event *e = ev[i];
		struct ua_slot *sl = classify(c, e);
		pf[i].bot = sl->cls.bot;
		pf[i].k = (struct nkey){e->link_id, (int32_t)(e->ts_ms / 3600000),
					event_dim(c, e, sl)};
		pf[i].h = clicks_key_hash(&pf[i].k);
		__builtin_prefetch(&t->slots[clicks_slot_home(t->nslots, pf[i].h)]);
	}
	for (size_t i = 0; i < n; i++) {
		slot_t v = t->slots[clicks_slot_home(t->nslots, pf[i].h)];
		if (v)
			__builtin_prefetch(clicks_slot_node(t, v), 1);
	}
	for (size_t i = 0; i < n; i++)
		add_pend(c, clicks_table_get(t, &pf[i].k, pf[i].h), pf[i].bot ? 0u : 1u,
				pf[i].bot ? 1u : 0u);
	c->pend_events += n;
	if (atomic_load_explicit(&c->watch.live, memory_order_relaxed)) {
		int bot[BATCH];
		for (size_t i = 0; i < n; i++)
			bot[i] = pf[i].bot;
		clicks_watch_fold(&c->watch, ev, bot, n);
	}
}

/* Consumer side of every ring; with c->lock held. */
void clicks_drain_locked(struct clicks *c)
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
	clicks_table_init(&c->t);
	clicks_table_reserve(&c->t, c->dirty.n);
	c->dims_epoch++; /* the memos name ids of the old table */
	c->merge_gen++;  /* a query that read the store before is read again */
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
			k.dim = clicks_dims_intern(&c->t.dims, &c->old.dims.v[k.dim & ~DAY_ONLY]) |
				(k.dim & DAY_ONLY);
		add_pend(c, clicks_table_get(&c->t, &k, clicks_key_hash(&k)), x->pend[H], x->pend[B]);
		x->pend[H] = x->pend[B] = 0; /* a query must not count them twice */
	}
	c->cursor = end;
	if (end < c->moving.n)
		return 0;
	free(c->moving.v);
	memset(&c->moving, 0, sizeof(c->moving));
	clicks_table_release(&c->old);
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
	clicks_delta_begin(c);
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
			c->op_nrows += clicks_rows_of(&c->t, &x->key, x->durable[H], x->durable[B], 1, 1,
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
	clicks_delta_slice(c, n);
	if (c->cursor < c->flushing.n)
		return 0;
	clicks_delta_finish(c);
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
		clicks_drain_locked(c);
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
	clicks_table_init(&c->t);
	c->dims_epoch = 1;
	buf_init(&c->op_blob);
	buf_init(&c->op_recs);
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	pthread_mutex_init(&c->watch.lock, NULL);
	return c;
}

struct click_ring *clicks_ring(struct clicks *c, int worker)
{
	return c->rings[worker];
}

static void replay_one(void *ctx, uint64_t seq, const void *blob, size_t len)
{
	struct clicks *c = ctx;
	if (clicks_delta_decode(c, blob, len) != 0)
		log_error("click delta %llu is corrupt; the counts it holds are skipped",
			  (unsigned long long)seq);
	if (seq > c->last_seq)
		c->last_seq = seq;
	c->unmerged_upto = c->last_seq;
}

int clicks_start(struct clicks *c, struct store_reader *r)
{
	struct store_read rd = {.kind = STORE_READ_CLICKS};
	if (store_read(c->store, r, &rd) != STORE_OK)
		return -1;
	uint64_t seq = rd.clicks.seq;
	store_read_release(&rd);
	c->last_seq = c->unmerged_upto = seq;
	if (store_click_deltas(c->store, r, seq, replay_one, c) != STORE_OK)
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
	clicks_drain_locked(c);
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
	clicks_table_release(&c->t);
	clicks_table_release(&c->old);
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
	pthread_mutex_destroy(&c->watch.lock);
	free(c);
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
