/*
 * worker: a worker thread's part of the app, and each request's entry.
 *
 * Each HTTP worker (http_server.h: one thread, one libuv loop) has an
 * app_worker: its store reader, opened on the worker's loop so that a read
 * that answers later answers there; its click ring; its metrics. The
 * reader is closed when the worker stops serving (worker_stop, inside the
 * loop: a reader may keep handles on it), and lets go of its snapshot at
 * the end of every turn of the loop.
 *
 * handle() resets the connection's struct app_req (request.h) for the
 * request, passes it through the guard and the route table, and says
 * whether it was answered or waits.
 */
#include "request.h"
#include "core/log.h"

#include <string.h>

static void *worker_init(void *appv, struct http_worker *w, int idx)
{
	struct app *app = appv;
	struct app_worker *ws = &app->workers[idx];
	ws->app = app;
	ws->idx = idx;
	ws->clicks = app->clicks ? clicks_ring(app->clicks, idx) : NULL;
	events_worker_init(ws, http_worker_loop(w));
	if (store_reader_open(&app->store, http_worker_loop(w), &ws->reader) != STORE_OK) {
		log_error("worker %d has no database reader; reads will fail", idx);
		ws->reader = NULL;
	}
	return ws;
}

/* Its last connection is closed: no request waits for a read. */
static void worker_stop(void *wstate)
{
	struct app_worker *ws = wstate;
	if (ws->reader)
		store_reader_close(&ws->app->store, ws->reader);
	ws->reader = NULL; /* ws itself stays readable for a last scrape */
	events_worker_stop(ws); /* its streams are closed: they were connections */
}

/* The end of a turn of the worker's loop: its reader lets go of its
 * snapshot, so that none is held while the worker waits for events (an old
 * snapshot keeps checkpoints from emptying the WAL). */
static void turn_end(void *wstate)
{
	struct app_worker *ws = wstate;
	if (ws->reader)
		store_reader_release(&ws->app->store, ws->reader);
}

static int handle(struct http_exchange *ex, void *wstate)
{
	struct app_worker *ws = wstate;
	struct app_req *r = ex->data;
	r->ex = ex;
	r->ws = ws;
	r->app = ws->app;
	r->arg = NULL;
	r->arg_len = 0;
	r->notfound_blocked = 0;
	r->notfound_debt = 0;
	r->waiting = 0;
	r->who.id = 0;
	r->who.role = 0;
	r->link = NULL;
	r->rd.replica_ok = 0; /* only a redirect's miss may read a replica */
	if (app_guard(r) == REQ_GO_ON)
		app_dispatch(r);
	if (ex->answered) {
		app_observe(r);
		return HTTP_DONE;
	}
	r->waiting = 1; /* req_settle() ends it */
	return HTTP_ASYNC;
}

const struct http_handler app_http_handler = {
	.worker_init = worker_init,
	.worker_stop = worker_stop,
	.handle = handle,
	.turn_end = turn_end,
	.stream_closed = events_stream_closed,
	.exchange_data_size = sizeof(struct app_req),
};
