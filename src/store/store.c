/*
 * store: backend registry and the wrappers every caller goes through.
 */
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const struct store_ops store_sqlite_ops;

static const struct store_ops *const backends[] = {&store_sqlite_ops};

const struct store_ops *store_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_LEN(backends); i++)
		if (strcmp(backends[i]->name, name) == 0)
			return backends[i];
	return NULL;
}

int store_open(struct store *s, const char *backend, const char *data_dir, int commit_batch,
	       char *err, size_t errlen)
{
	s->ops = store_find(backend);
	s->impl = NULL;
	if (!s->ops) {
		snprintf(err, errlen, "unknown store backend '%s'", backend);
		return STORE_ERR;
	}
	return s->ops->open(s, data_dir, commit_batch, err, errlen);
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

int store_reader_open(struct store *s, struct store_reader **out)
{
	return s->ops->reader_open(s, out);
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

int store_get(struct store *s, struct store_reader *r, const char *code, size_t len,
	      struct link **out)
{
	return s->ops->get(r, code, len, out);
}

int store_list(struct store *s, struct store_reader *r, int64_t owner, int64_t before_id,
	       int limit, struct link ***out, int *n)
{
	return s->ops->list(r, owner, before_id, limit, out, n);
}

int store_key_get(struct store *s, struct store_reader *r, const char *key_id,
		  struct api_key *out)
{
	return s->ops->key_get(r, key_id, out);
}

int store_key_list(struct store *s, struct store_reader *r, struct api_key **out, int *n)
{
	return s->ops->key_list(r, out, n);
}

int store_idem_get(struct store *s, struct store_reader *r, int64_t owner, const char *idem_key,
		   int64_t now_ms, struct link **out, uint8_t hash[32])
{
	return s->ops->idem_get(r, owner, idem_key, now_ms, out, hash);
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

int store_writable(struct store *s)
{
	return s->ops->writable(s);
}

int store_clicks_read(struct store *s, struct store_reader *r, int64_t link_id, int32_t from_hour,
		      int32_t to_hour, int want_dims, struct click_rows *out)
{
	return s->ops->clicks_read(r, link_id, from_hour, to_hour, want_dims, out);
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
