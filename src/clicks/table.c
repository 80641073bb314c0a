/*
 * table: the aggregator's counter table (the layout is described at
 * struct table in clicks_internal.h), and the store rows a node stands
 * for.
 */
#include "clicks_internal.h"

#include <stdlib.h>
#include <string.h>

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
size_t clicks_rows_of(const struct table *t, const struct nkey *nk, uint64_t humans, uint64_t bots,
		      int hour_row, int day_row, struct click_count out[2])
{
	size_t n = 0;
	if (hour_row && !clicks_is_day_only(nk)) {
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
		k->bucket = clicks_is_day_only(nk) ? nk->bucket : nk->bucket / 24;
		set_dims(t, nk->dim, k);
		k->humans = humans + bots;
	}
	return n;
}

/* The node key of a click_count read back (an hour or a day counter), its
 * dimensions interned in t. */
void clicks_nkey_of(struct table *t, const struct click_count *k, struct nkey *nk)
{
	nk->link_id = k->link_id;
	nk->bucket = k->bucket;
	nk->dim = NO_DIM;
	if (k->kind == STORE_CLICK_DAY) {
		struct dimset ds;
		clicks_dimset_of(k, &ds);
		nk->dim = clicks_dims_intern(&t->dims, &ds) | DAY_ONLY;
	}
}

void clicks_table_grow(struct table *t)
{
	size_t ns = t->nslots ? t->nslots * 2 : 8192;
	slot_t *slots = xcalloc(ns, sizeof(*slots));
	for (size_t i = 0; i < t->nslots; i++) {
		if (!t->slots[i])
			continue;
		size_t j = clicks_slot_home(ns, t->slots[i]);
		while (slots[j])
			j = (j + 1) & (ns - 1);
		slots[j] = t->slots[i];
	}
	free(t->slots);
	t->slots = slots;
	t->nslots = ns;
}

/* An empty table: no slots until the first key. */
void clicks_table_init(struct table *t)
{
	memset(t, 0, sizeof(*t));
	t->hour_lo = t->day_lo = 1;
	t->hour_hi = t->day_hi = 0;
}

/* Room for n keys without growing (an empty table). */
void clicks_table_reserve(struct table *t, size_t n)
{
	size_t ns = 8192;
	while (2 * (n + 1) > ns)
		ns *= 2;
	t->slots = xcalloc(ns, sizeof(*t->slots));
	t->nslots = ns;
}

/* The node of key k (hash h), created (all counts zero) if there is none. */
struct node *clicks_table_get(struct table *t, const struct nkey *k, uint64_t h)
{
	if (2 * (t->n + 1) > t->nslots)
		clicks_table_grow(t);
	size_t i = clicks_table_slot(t, k, h);
	if (t->slots[i])
		return clicks_slot_node(t, t->slots[i]);
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
	int32_t *lo = clicks_is_day_only(k) ? &t->day_lo : &t->hour_lo;
	int32_t *hi = clicks_is_day_only(k) ? &t->day_hi : &t->hour_hi;
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

void clicks_table_release(struct table *t)
{
	for (size_t i = 0; i < t->nchunks; i++)
		free(t->chunkv[i]);
	free(t->slots);
	free(t->chunkv);
	clicks_dims_release(&t->dims);
	memset(t, 0, sizeof(*t));
}

void clicks_nodes_push(struct nodes *l, struct node *x)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 1024;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	l->v[l->n++] = x;
}
