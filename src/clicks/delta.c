/*
 * delta: the codec of click deltas, the batches of counters appended to
 * the store every flush interval (format 2, and format 1 read back;
 * documented byte by byte in schema_clicks.sql).
 */
#include "clicks_internal.h"

#include "core/util.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

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

/* A delta is encoded a slice at a time (clicks_delta_slice), so that the
 * aggregator never holds the CPU long: the records go to op_recs, the
 * combinations they use get local numbers in op_local, and clicks_delta_finish
 * puts the header, the combinations and the records together. Clicks are
 * folded between slices: a counter already encoded is dirty again and
 * waits for the next delta, one not encoded yet carries them in this one,
 * so a delta holds whole counters. */
void clicks_delta_begin(struct clicks *c)
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
void clicks_delta_slice(struct clicks *c, size_t n)
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
		assert(k->dim != NO_DIM && !clicks_is_day_only(k));
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
void clicks_delta_finish(struct clicks *c)
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
	clicks_nkey_of(&c->t, k, &nk);
	struct node *x = clicks_table_get(&c->t, &nk, clicks_key_hash(&nk));
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
int clicks_delta_decode(struct clicks *c, const void *blob, size_t len)
{
	int v2 = len >= sizeof(delta_magic) && !memcmp(blob, delta_magic, sizeof(delta_magic));
	for (int add = 0; add < 2; add++) /* check everything, then add */
		if ((v2 ? decode_v2 : decode_v1)(c, blob, len, add) != 0)
			return -1;
	return 0;
}
