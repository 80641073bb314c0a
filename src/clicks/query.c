/*
 * query: a link's click counts as a user sees them: the store's merged
 * counters plus what is only in memory (unmerged deltas, the flush in
 * flight, pending counters, the rings).
 */
#include "clicks_internal.h"

#include <stdlib.h>
#include <string.h>

/* Reads of a query that a merge overtook, before it gives up (a merge
 * takes a second at most, and happens once a merge interval). */
#define QUERY_TRIES 5

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
	int32_t hour = clicks_key_hour(k), day = hour >= 0 ? hour / 24 : k->bucket;
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
	out->n += clicks_rows_of(t, k, h, b, hour_row, day_row, &out->rows[out->n]);
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
				const struct node *x = clicks_table_find(t, &k, clicks_key_hash(&k));
				if (x)
					add_row(t, x, with_durable, q, out, cap);
			}
		for (int32_t day = dfrom; day <= dto; day++)
			for (uint32_t dim = 0; dim < ndims; dim++) {
				struct nkey k = {q->link, day, dim | DAY_ONLY};
				const struct node *x = clicks_table_find(t, &k, clicks_key_hash(&k));
				if (x)
					add_row(t, x, with_durable, q, out, cap);
			}
	} else {
		for (size_t i = 0; i < t->nslots; i++)
			if (t->slots[i])
				add_row(t, clicks_slot_node(t, t->slots[i]), with_durable, q, out, cap);
	}
}

/* The counts in memory added to the store's rows that q->rd read. The
 * store was read without the aggregator's lock (the read may take a round
 * trip), so an op may have completed meanwhile. A delta that did is no
 * matter: its counts were and stay in memory. A merge is: once its counts
 * have left memory (rebuild_begin moves merge_gen), a snapshot taken
 * before its commit has them nowhere. So a merge applied since the read
 * began sends the query round again; otherwise the snapshot's merge number
 * says whether the durable counts in memory are already in the store's
 * tables. STORE_AGAIN: read again. */
static int complete(struct clicks_query *q)
{
	struct clicks *c = q->c;
	struct click_rows *out = &q->rd.clicks;
	if (q->rd.status != STORE_OK)
		return q->rd.status;
	pthread_mutex_lock(&c->lock);
	if (c->merge_gen != q->gen) {
		pthread_mutex_unlock(&c->lock);
		store_read_release(&q->rd);
		return ++q->tries < QUERY_TRIES ? STORE_AGAIN : STORE_ERR;
	}
	clicks_drain_locked(c); /* a click made a moment ago shows */
	int with_durable = out->seq < c->unmerged_upto;
	size_t cap = out->n;
	struct query span = {q->link_id, q->from_hour, q->to_hour, q->want_dims};
	query_table(&c->t, with_durable, &span, out, &cap);
	if (c->stage == STAGE_REBUILDING) /* counts not moved yet; merged ones are in the store */
		query_table(&c->old, 0, &span, out, &cap);
	pthread_mutex_unlock(&c->lock);
	q->rows = *out;
	memset(out, 0, sizeof(*out)); /* q->rows holds them now */
	return STORE_OK;
}

static void on_read(struct store_read *rd);

/* Reads the store until a read and the memory agree: the answer, or
 * STORE_AGAIN while a read is under way. */
static int run(struct clicks_query *q)
{
	for (;;) {
		struct clicks *c = q->c;
		pthread_mutex_lock(&c->lock);
		q->gen = c->merge_gen;
		pthread_mutex_unlock(&c->lock);
		struct store_read *rd = &q->rd;
		rd->kind = STORE_READ_CLICKS;
		rd->link_id = q->link_id;
		rd->from_hour = q->from_hour;
		rd->to_hour = q->to_hour;
		rd->want_dims = q->want_dims;
		rd->done = on_read;
		rd->data = q;
		if (store_read(c->store, q->reader, rd) == STORE_AGAIN)
			return STORE_AGAIN;
		int rc = complete(q);
		if (rc != STORE_AGAIN)
			return rc;
	}
}

static void on_read(struct store_read *rd)
{
	struct clicks_query *q = rd->data;
	int rc = complete(q);
	if (rc == STORE_AGAIN)
		rc = run(q);
	if (rc == STORE_AGAIN)
		return;
	q->status = rc;
	q->done(q);
}

int clicks_query_start(struct clicks *c, struct store_reader *r, struct clicks_query *q)
{
	q->c = c;
	q->reader = r;
	q->tries = 0;
	q->status = STORE_ERR;
	memset(&q->rows, 0, sizeof(q->rows));
	int rc = run(q);
	if (rc != STORE_AGAIN)
		q->status = rc;
	return rc;
}
