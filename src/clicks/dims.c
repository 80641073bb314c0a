/*
 * dims: the combinations of referrer host, country, device, browser and
 * OS that day counters are kept by, interned: each distinct combination is
 * stored once per counter table and named by a 32-bit id.
 */
#include "clicks_internal.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* The id of a combination, added if new. */
uint32_t clicks_dims_intern(struct dims *d, const struct dimset *ds)
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

void clicks_dims_release(struct dims *d)
{
	free(d->v);
	free(d->hash);
	free(d->slots);
	memset(d, 0, sizeof(*d));
}

void clicks_dimset_set(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);
	memcpy(dst, src, n < cap ? n : cap - 1);
}

/* The combination of a click_count's strings, zero-padded. */
void clicks_dimset_of(const struct click_count *k, struct dimset *ds)
{
	memset(ds, 0, sizeof(*ds));
	clicks_dimset_set(ds->referrer, sizeof(ds->referrer), k->referrer);
	clicks_dimset_set(ds->country, sizeof(ds->country), k->country);
	clicks_dimset_set(ds->device, sizeof(ds->device), k->device);
	clicks_dimset_set(ds->browser, sizeof(ds->browser), k->browser);
	clicks_dimset_set(ds->os, sizeof(ds->os), k->os);
}
