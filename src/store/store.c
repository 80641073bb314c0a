/*
 * store: backend registry and the wrappers every caller goes through.
 */
#include "store.h"
#include "core/util.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const struct store_ops store_sqlite_ops, store_pg_ops;

static const struct store_ops *const backends[] = {&store_sqlite_ops, &store_pg_ops};

const struct store_ops *store_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_LEN(backends); i++)
		if (strcmp(backends[i]->name, name) == 0)
			return backends[i];
	return NULL;
}

int store_open(struct store *s, const struct store_config *c, char *err, size_t errlen)
{
	s->ops = store_find(c->backend);
	s->impl = NULL;
	if (!s->ops) {
		snprintf(err, errlen, "unknown store backend '%s'", c->backend);
		return STORE_ERR;
	}
	return s->ops->open(s, c, err, errlen);
}

int store_map_codes(struct store *s)
{
	return s->ops->map_codes ? s->ops->map_codes(s) : STORE_ERR;
}

void store_close(struct store *s)
{
	if (s->ops)
		s->ops->close(s);
}

int store_reader_open(struct store *s, struct uv_loop_s *loop, struct store_reader **out)
{
	return s->ops->reader_open(s, loop, out);
}

void store_reader_close(struct store *s, struct store_reader *r)
{
	s->ops->reader_close(r);
}

void store_reader_release(struct store *s, struct store_reader *r)
{
	if (s->ops->reader_release)
		s->ops->reader_release(r);
}

int store_read(struct store *s, struct store_reader *r, struct store_read *rd)
{
	rd->status = STORE_ERR;
	rd->link = NULL;
	rd->links = NULL;
	rd->nlinks = 0;
	rd->keys = NULL;
	rd->nkeys = 0;
	memset(&rd->clicks, 0, sizeof(rd->clicks));
	rd->next = NULL;
	int rc = s->ops->read(r, rd);
	if (rc != STORE_AGAIN)
		rd->status = rc;
	return rc;
}

void store_read_release(struct store_read *rd)
{
	if (rd->link)
		link_unref(rd->link);
	rd->link = NULL;
	store_links_free(rd->links, rd->nlinks);
	rd->links = NULL;
	rd->nlinks = 0;
	free(rd->keys);
	rd->keys = NULL;
	rd->nkeys = 0;
	free(rd->clicks.rows);
	memset(&rd->clicks, 0, sizeof(rd->clicks));
}

void store_submit(struct store *s, struct store_op *op, void (*done)(struct store_op *op),
		  void *ctx)
{
	op->status = STORE_ERR;
	op->result = NULL;
	op->done = done;
	op->ctx = ctx;
	s->ops->submit(s, op);
}

void store_links_free(struct link **links, int n)
{
	for (int i = 0; i < n; i++)
		link_unref(links[i]);
	free(links);
}

int store_ready(struct store *s, char *why, size_t len)
{
	return s->ops->ready(s, why, len);
}

void store_get_stats(struct store *s, struct store_stats *out)
{
	s->ops->stats(s, out);
}

int store_click_deltas(struct store *s, struct store_reader *r, uint64_t after_seq,
		       void (*fn)(void *ctx, uint64_t seq, const void *blob, size_t len), void *ctx)
{
	return s->ops->click_deltas(r, after_seq, fn, ctx);
}

/* A merge row's place: the table (hours first), then the primary key's
 * columns, so that the upserts walk each B-tree in order and touch every
 * page once instead of at random. */
int store_click_cmp(const void *a, const void *b)
{
	const struct click_count *p = *(const struct click_count *const *)a;
	const struct click_count *q = *(const struct click_count *const *)b;
	if (p->kind != q->kind)
		return p->kind < q->kind ? -1 : 1;
	if (p->link_id != q->link_id)
		return p->link_id < q->link_id ? -1 : 1;
	if (p->bucket != q->bucket)
		return p->bucket < q->bucket ? -1 : 1;
	int d = strcmp(p->referrer, q->referrer);
	if (!d)
		d = strcmp(p->country, q->country);
	if (!d)
		d = strcmp(p->device, q->device);
	if (!d)
		d = strcmp(p->browser, q->browser);
	if (!d)
		d = strcmp(p->os, q->os);
	return d;
}
