/*
 * events_api: GET /api/v1/links/{code}/events, a link's clicks live, as
 * server-sent events (text/event-stream), for whoever may read the link.
 *
 *   retry: 3000
 *   event: ready          data: {"code": ...}          once, at the start
 *   event: click          data: {"clicks": H, "bots": B}
 *                         clicks since the stream opened, sent within a
 *                         quarter of a second of the aggregator folding
 *                         them (which it does every few milliseconds)
 *   : (a comment)         after --sse-heartbeat-s without anything else,
 *                         so that proxies and the browser keep it open
 *
 * Clicks reach the streams through the aggregator's watch counters
 * (clicks.h: clicks_watch), never from the redirect itself: a redirect
 * costs the same whether a thousand pages watch its link or none. Each
 * worker looks at its own streams' counters on a timer. Open streams are
 * bounded in all (--sse-max, 503) and per key (--sse-per-key, 429); a
 * client that stops reading is let go (http_stream_write); a drain ends
 * every stream.
 */
#include "reply.h"
#include "request.h"

#include <stdio.h>
#include <string.h>

#define SSE_TICK_MS 250

/* Counts one more stream of key: 0, or an answer (429 or 503). */
static int sse_admit(struct app_req *r, int64_t key)
{
	struct app *app = r->app;
	const struct config *cfg = app->cfg;
	if (atomic_fetch_add(&app->sse_open, 1) >= cfg->sse_max) {
		atomic_fetch_sub(&app->sse_open, 1);
		reply_error(r->ex, 503, "too_many_streams",
			    "too many live click streams are open on this server; retry later");
		return -1;
	}
	int ok = 0;
	pthread_mutex_lock(&app->sse_lock);
	struct app_sse_key *free_slot = NULL, *slot = NULL;
	for (int i = 0; i < APP_SSE_KEYS && !slot; i++) {
		if (app->sse_keys[i].n && app->sse_keys[i].key == key)
			slot = &app->sse_keys[i];
		else if (!app->sse_keys[i].n && !free_slot)
			free_slot = &app->sse_keys[i];
	}
	if (!slot && free_slot) {
		slot = free_slot;
		slot->key = key;
		slot->n = 0;
	}
	if (slot && slot->n < cfg->sse_per_key) {
		slot->n++;
		ok = 1;
	}
	pthread_mutex_unlock(&app->sse_lock);
	if (!ok) {
		atomic_fetch_sub(&app->sse_open, 1);
		char msg[160];
		snprintf(msg, sizeof(msg),
			 "this key has %d live click streams open already (--sse-per-key)",
			 cfg->sse_per_key);
		reply_error(r->ex, 429, "too_many_streams", msg);
		return -1;
	}
	return 0;
}

static void sse_release(struct app *app, int64_t key)
{
	pthread_mutex_lock(&app->sse_lock);
	for (int i = 0; i < APP_SSE_KEYS; i++) {
		if (app->sse_keys[i].n && app->sse_keys[i].key == key) {
			app->sse_keys[i].n--;
			break;
		}
	}
	pthread_mutex_unlock(&app->sse_lock);
	atomic_fetch_sub(&app->sse_open, 1);
}

/* Writes text to r's stream; -1 if the connection is going (its
 * stream_closed follows, or came already). */
static int sse_send(struct app_req *r, const char *text, size_t len)
{
	r->u.sse.last_write_ms = (uint64_t)time_now_ms();
	return http_stream_write(r->ex, text, len);
}

static void on_tick(uv_timer_t *t)
{
	struct app_worker *ws = t->data;
	uint64_t now = (uint64_t)time_now_ms();
	uint64_t beat = (uint64_t)ws->app->cfg->sse_heartbeat_s * 1000;
	struct app_req *next;
	for (struct app_req *r = ws->streams; r; r = next) {
		next = r->u.sse.next; /* a failed write takes r out of the list */
		struct app_sse *s = &r->u.sse;
		uint64_t h, b;
		clicks_watched(ws->app->clicks, s->link_id, &h, &b);
		h -= s->base_h;
		b -= s->base_b;
		if (h != s->sent_h || b != s->sent_b) {
			char ev[128];
			int n = snprintf(ev, sizeof(ev),
					 "event: click\ndata: {\"clicks\":%llu,\"bots\":%llu}\n\n",
					 (unsigned long long)h, (unsigned long long)b);
			s->sent_h = h;
			s->sent_b = b;
			sse_send(r, ev, (size_t)n);
		} else if (now - s->last_write_ms >= beat) {
			sse_send(r, ":\n\n", 3);
		}
	}
}

/* The HTTP server: r's connection is going. */
void events_stream_closed(struct http_exchange *ex, void *wstate)
{
	struct app_worker *ws = wstate;
	struct app_req *r = ex->data;
	struct app_sse *s = &r->u.sse;
	if (!s->link_id)
		return;
	if (s->prev)
		s->prev->u.sse.next = s->next;
	else
		ws->streams = s->next;
	if (s->next)
		s->next->u.sse.prev = s->prev;
	clicks_unwatch(ws->app->clicks, s->link_id);
	sse_release(ws->app, s->key);
	s->link_id = 0;
	if (!ws->streams && ws->sse_timer_on) {
		uv_timer_stop(&ws->sse_timer);
		ws->sse_timer_on = 0;
	}
}

static void events_found(struct app_req *r)
{
	struct app_worker *ws = r->ws;
	struct app *app = r->app;
	int64_t link_id = r->link->id;
	char code[LINK_CODE_MAX + 1];
	snprintf(code, sizeof(code), "%.*s", (int)r->link->code_len, r->link->code);
	link_unref(r->link);
	r->link = NULL;
	if (http_server_draining(app->srv)) {
		reply_error(r->ex, 503, "shutting_down", "the server is shutting down");
		return;
	}
	if (sse_admit(r, r->who.id) != 0)
		return;
	if (clicks_watch(app->clicks, link_id) != 0) {
		sse_release(app, r->who.id);
		reply_error(r->ex, 503, "too_many_streams", "too many links are watched live");
		return;
	}
	struct app_sse *s = &r->u.sse;
	memset(s, 0, sizeof(*s));
	s->link_id = link_id;
	s->key = r->who.id;
	clicks_watched(app->clicks, link_id, &s->base_h, &s->base_b);
	s->next = ws->streams;
	if (ws->streams)
		ws->streams->u.sse.prev = r;
	ws->streams = r;
	if (!ws->sse_timer_on) {
		uv_timer_start(&ws->sse_timer, on_tick, SSE_TICK_MS, SSE_TICK_MS);
		ws->sse_timer_on = 1;
	}
	struct http_exchange *ex = r->ex;
	static const char no_cache[] = "no-cache", no_buffering[] = "no";
	http_respond_start(ex, 200);
	http_respond_header(ex, "Cache-Control", no_cache, sizeof(no_cache) - 1);
	http_respond_header(ex, "X-Accel-Buffering", no_buffering, sizeof(no_buffering) - 1);
	http_stream_start(ex, "text/event-stream; charset=utf-8");
	char hello[160];
	int n = snprintf(hello, sizeof(hello), "retry: 3000\n\nevent: ready\ndata: {\"code\":\"%s\"}\n\n",
			 code);
	sse_send(r, hello, (size_t)n);
}

static void events_authed(struct app_req *r)
{
	if (app_require(r, 0) != REQ_GO_ON)
		return;
	if (!r->app->clicks) {
		reply_error(r->ex, 404, "analytics_off", "click analytics are turned off (--analytics 0)");
		return;
	}
	app_find_link(r, events_found);
}

void events_get(struct app_req *r)
{
	r->u.sse.link_id = 0;
	app_authenticate(r, events_authed);
}

void events_worker_init(struct app_worker *ws, uv_loop_t *loop)
{
	uv_timer_init(loop, &ws->sse_timer);
	ws->sse_timer.data = ws;
	ws->streams = NULL;
	ws->sse_timer_on = 0;
}

void events_worker_stop(struct app_worker *ws)
{
	uv_close((uv_handle_t *)&ws->sse_timer, NULL);
}
