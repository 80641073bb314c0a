/*
 * request: see request.h for how a request waits.
 *
 * Every later step runs through run_step(), on the worker that owns the
 * connection: it gives the step the per-request context that handle()
 * gives the first one (the allocation-failure count, the request id in log
 * lines), then settles the request.
 */
#include "request.h"
#include "core/log.h"

#include <assert.h>
#include <stddef.h>
#include <string.h>

static void run_step(struct app_req *r)
{
	alloc_failures = 0; /* counted per request (util.h) */
	log_set_request_id(r->ex->request_id);
	r->next(r);
	log_set_request_id(NULL);
	req_settle(r); /* the last use of r: it may start the next request */
}

void req_settle(struct app_req *r)
{
	if (!r->ex->answered)
		return; /* the step started another operation */
	assert(r->waiting);
	r->waiting = 0;
	app_observe(r);
	http_resume(r->ex);
}

static void on_read(struct store_read *rd)
{
	struct app_req *r = rd->data;
	hist_observe(&r->ws->metrics.store_read, time_mono_ns() - r->read_start_ns);
	run_step(r);
}

void req_read(struct app_req *r, req_step next)
{
	struct app_worker *ws = r->ws;
	r->next = next;
	if (!ws->reader) {
		r->rd.status = STORE_ERR;
		next(r);
		return;
	}
	r->rd.done = on_read;
	r->rd.data = r;
	r->read_start_ns = time_mono_ns();
	if (store_read(&r->app->store, ws->reader, &r->rd) == STORE_AGAIN)
		return;
	hist_observe(&ws->metrics.store_read, time_mono_ns() - r->read_start_ns);
	next(r);
}

static void on_clicks(struct clicks_query *q)
{
	run_step(q->data);
}

void req_clicks(struct app_req *r, req_step next)
{
	struct clicks_query *q = &r->u.clicks.q;
	r->next = next;
	if (!r->app->clicks || !r->ws->reader) {
		q->status = STORE_ERR;
		next(r);
		return;
	}
	q->done = on_clicks;
	q->data = r;
	if (clicks_query_start(r->app->clicks, r->ws->reader, q) == STORE_AGAIN)
		return;
	next(r);
}

static void on_task(struct http_task *t)
{
	run_step((struct app_req *)((char *)t - offsetof(struct app_req, task)));
}

void req_wait(struct app_req *r, req_step next)
{
	r->next = next;
}

void req_wake(struct app_req *r)
{
	r->task.run = on_task;
	http_post(r->ex->worker, &r->task);
}

/* The store's writer thread: the cache follows the commits in their order
 * (two PATCHes of one link can then never leave the older one cached),
 * then the request goes back to its worker. */
static void on_committed(struct store_op *op)
{
	struct app_req *r = op->ctx;
	if (op->status == STORE_OK && op->result)
		cache_put(r->app->cache, op->result, time_mono_ms());
	req_wake(r);
}

void req_write(struct app_req *r, req_step next)
{
	r->next = next;
	store_submit(&r->app->store, &r->u.write.op, on_committed, r);
}

long app_query_param(const struct http_request *req, const char *name, const char **val)
{
	size_t n = strlen(name), i = 0;
	const char *q = req->query;
	while (q && i < req->query_len) {
		size_t s = i;
		while (i < req->query_len && q[i] != '&')
			i++;
		if (i - s > n && memcmp(q + s, name, n) == 0 && q[s + n] == '=') {
			*val = q + s + n + 1;
			return (long)(i - s - n - 1);
		}
		i++;
	}
	return -1;
}
