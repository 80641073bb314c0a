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

struct node {
	struct node *next;
	uint64_t hash;
	struct click_count c;
};

struct counters {
	struct node **b;
	size_t nb, n;
	uint64_t events;
};

struct clicks {
	struct store *store;
	struct geoip *geo;
	int nworkers;
	int flush_ms;
	struct click_ring **rings;
	pthread_t thread;
	int started;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* aggregator wake-up, and "batch done" */
	int stopping;
	struct counters pending;
	/* the batch being committed */
	struct click_count *inflight;
	size_t ninflight;
	uint64_t inflight_events;
	uint64_t seq; /* number of the last batch submitted */
	struct store_op op;
	/* aggregator-owned */
	metric_counter flushed, flushes, flush_errors;
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

static uint64_t key_hash(int64_t link, int32_t bucket, uint8_t dim, const char *v, size_t n)
{
	uint64_t h = (uint64_t)link * 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uint32_t)bucket * 31 ^ dim;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)v[i]) * 0x100000001b3ULL;
	return h ^ (h >> 29);
}

static void counters_add(struct counters *m, int64_t link, int32_t bucket, uint8_t dim,
			 const char *v, size_t n, uint64_t humans, uint64_t bots)
{
	if (n > STORE_CLICK_VALUE_MAX)
		n = STORE_CLICK_VALUE_MAX;
	if (m->n >= m->nb) {
		size_t nb = m->nb ? m->nb * 2 : 256;
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
	uint64_t h = key_hash(link, bucket, dim, v, n);
	struct node **pp = &m->b[h & (m->nb - 1)];
	for (struct node *x = *pp; x; x = x->next) {
		struct click_count *c = &x->c;
		if (x->hash == h && c->link_id == link && c->bucket == bucket && c->dim == dim &&
		    c->value_len == n && memcmp(c->value, v, n) == 0) {
			c->humans += humans;
			c->bots += bots;
			return;
		}
	}
	struct node *x = xcalloc(1, sizeof(*x));
	x->hash = h;
	x->c.link_id = link;
	x->c.bucket = bucket;
	x->c.dim = dim;
	x->c.value_len = (uint8_t)n;
	memcpy(x->c.value, v, n);
	x->c.humans = humans;
	x->c.bots = bots;
	x->next = *pp;
	*pp = x;
	m->n++;
}

static void counters_release(struct counters *m)
{
	for (size_t i = 0; i < m->nb; i++) {
		struct node *x = m->b[i], *next;
		for (; x; x = next) {
			next = x->next;
			free(x);
		}
	}
	free(m->b);
	memset(m, 0, sizeof(*m));
}

static void fold(struct clicks *c, const struct click_event *e)
{
	struct ua_class u;
	ua_classify(e->ua, e->ua_len, &u);
	int32_t hour = (int32_t)(e->ts_ms / 3600000);
	int32_t day = (int32_t)(e->ts_ms / 86400000);
	struct counters *m = &c->pending;
	counters_add(m, e->link_id, hour, STORE_CLICK_HOUR, "", 0, !u.bot, u.bot);
	const char *dev = ua_device_name(u.device);
	counters_add(m, e->link_id, day, STORE_CLICK_DEVICE, dev, strlen(dev), 1, 0);
	m->events++;
	if (u.bot)
		return;
	const char *ref = e->ref_kind == REF_HOST ? e->ref : e->ref_kind == REF_NONE ? "direct" : "unknown";
	size_t ref_len = e->ref_kind == REF_HOST ? e->ref_len : strlen(ref);
	counters_add(m, e->link_id, day, STORE_CLICK_REFERRER, ref, ref_len, 1, 0);
	char cc[3] = "";
	int known = 0;
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
		known = geoip_country(c->geo, (struct sockaddr *)&ss, cc) == 0;
	}
	counters_add(m, e->link_id, day, STORE_CLICK_COUNTRY, known ? cc : "unknown", known ? 2 : 7, 1,
		     0);
	const char *br = ua_browser_name(u.browser), *os = ua_os_name(u.os);
	counters_add(m, e->link_id, day, STORE_CLICK_BROWSER, br, strlen(br), 1, 0);
	counters_add(m, e->link_id, day, STORE_CLICK_OS, os, strlen(os), 1, 0);
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

/* ---- flushing --------------------------------------------------------------------- */

/* Writer thread: the batch is committed (or not). */
static void on_batch_done(struct store_op *op)
{
	struct clicks *c = op->ctx;
	pthread_mutex_lock(&c->lock);
	if (op->status == STORE_OK) {
		metric_add(&c->flushed, c->inflight_events);
		metric_add(&c->flushes, 1);
	} else {
		/* Keep every count: back into pending, retried next time. */
		for (size_t i = 0; i < c->ninflight; i++) {
			const struct click_count *k = &c->inflight[i];
			counters_add(&c->pending, k->link_id, k->bucket, k->dim, k->value, k->value_len,
				     k->humans, k->bots);
		}
		c->pending.events += c->inflight_events;
		metric_add(&c->flush_errors, 1);
		log_error("click batch %llu not committed; it is kept and retried",
			  (unsigned long long)c->seq);
	}
	free(c->inflight);
	c->inflight = NULL;
	c->ninflight = 0;
	c->inflight_events = 0;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

/* With c->lock held: turns pending into the batch in flight. Returns 1 if
 * a batch is to be submitted (after unlocking). */
static int start_batch_locked(struct clicks *c)
{
	if (c->inflight || c->pending.n == 0)
		return 0;
	c->inflight = xmalloc(c->pending.n * sizeof(*c->inflight));
	size_t k = 0;
	for (size_t i = 0; i < c->pending.nb; i++)
		for (struct node *x = c->pending.b[i]; x; x = x->next)
			c->inflight[k++] = x->c;
	assert(k == c->pending.n);
	c->ninflight = k;
	c->inflight_events = c->pending.events;
	counters_release(&c->pending);
	memset(&c->op, 0, sizeof(c->op));
	c->op.kind = STORE_OP_CLICKS;
	c->op.clicks = c->inflight;
	c->op.nclicks = c->ninflight;
	c->op.click_seq = ++c->seq;
	c->op.done = on_batch_done;
	c->op.ctx = c;
	return 1;
}

static void *aggregator_main(void *arg)
{
	struct clicks *c = arg;
	uint64_t next_flush = time_mono_ms() + (uint64_t)c->flush_ms;
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
		if (now >= next_flush) {
			next_flush = now + (uint64_t)c->flush_ms;
			if (start_batch_locked(c)) {
				pthread_mutex_unlock(&c->lock);
				store_submit(c->store, &c->op);
				pthread_mutex_lock(&c->lock);
			}
		}
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

struct clicks *clicks_new(struct store *store, int nworkers, int flush_ms, struct geoip *geo)
{
	struct clicks *c = xcalloc(1, sizeof(*c));
	c->store = store;
	c->geo = geo;
	c->nworkers = nworkers;
	c->flush_ms = flush_ms;
	c->rings = xcalloc((size_t)nworkers, sizeof(*c->rings));
	for (int i = 0; i < nworkers; i++) {
		if (posix_memalign((void **)&c->rings[i], 64, sizeof(struct click_ring)) != 0)
			abort();
		memset(c->rings[i], 0, sizeof(struct click_ring));
	}
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	return c;
}

struct click_ring *clicks_ring(struct clicks *c, int worker)
{
	return c->rings[worker];
}

int clicks_start(struct clicks *c, struct store_reader *r)
{
	struct click_rows rows;
	if (store_clicks_read(c->store, r, 0, 0, 0, 0, &rows) != STORE_OK)
		return -1;
	c->seq = rows.seq;
	free(rows.rows);
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
	/* Last flush: wait for a batch in flight, then commit the rest. One
	 * retry covers a passing failure; after that, say what is lost. */
	pthread_mutex_lock(&c->lock);
	drain_locked(c);
	for (int attempt = 0; attempt < 2; attempt++) {
		while (c->inflight)
			pthread_cond_wait(&c->cond, &c->lock);
		if (!start_batch_locked(c))
			break;
		pthread_mutex_unlock(&c->lock);
		store_submit(c->store, &c->op);
		pthread_mutex_lock(&c->lock);
	}
	while (c->inflight)
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
	assert(!c->started && !c->inflight);
	counters_release(&c->pending);
	for (int i = 0; i < c->nworkers; i++)
		free(c->rings[i]);
	free(c->rings);
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
	if (k->dim == STORE_CLICK_HOUR)
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

int clicks_query(struct clicks *c, struct store_reader *r, int64_t link_id, int32_t from_hour,
		 int32_t to_hour, int want_dims, struct click_rows *out)
{
	pthread_mutex_lock(&c->lock);
	drain_locked(c);
	/* Read the store with the lock held: a batch committed after this
	 * snapshot is still in `inflight` (its done callback waits for us). */
	int rc = store_clicks_read(c->store, r, link_id, from_hour, to_hour, want_dims, out);
	if (rc != STORE_OK) {
		pthread_mutex_unlock(&c->lock);
		return rc;
	}
	size_t cap = out->n;
	for (size_t i = 0; i < c->pending.nb; i++)
		for (struct node *x = c->pending.b[i]; x; x = x->next)
			if (wanted(&x->c, link_id, from_hour, to_hour, want_dims))
				rows_add(out, &cap, &x->c);
	if (c->inflight && c->seq > out->seq)
		for (size_t i = 0; i < c->ninflight; i++)
			if (wanted(&c->inflight[i], link_id, from_hour, to_hour, want_dims))
				rows_add(out, &cap, &c->inflight[i]);
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
	pthread_mutex_lock(&c->lock);
	out->pending = c->pending.events + c->inflight_events;
	pthread_mutex_unlock(&c->lock);
}
