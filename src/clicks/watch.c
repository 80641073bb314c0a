/*
 * watch: live click counts of the links someone watches (clicks.h,
 * clicks_watch). Workers add and drop watches and read counters; the
 * aggregator adds the clicks it folds, a batch under one lock, and only
 * while some link is watched.
 */
#include "clicks_internal.h"

#include <string.h>

static size_t home(int64_t link_id)
{
	return (size_t)mix64((uint64_t)link_id) & (WATCH_SLOTS - 1);
}

/* The slot of link_id, or NULL; with w->lock held. */
static struct watch_slot *find(struct click_watch *w, int64_t link_id)
{
	size_t i = home(link_id);
	for (size_t k = 0; k < WATCH_SLOTS; k++, i = (i + 1) & (WATCH_SLOTS - 1)) {
		if (w->slot[i].link_id == link_id)
			return &w->slot[i];
		if (w->slot[i].link_id == 0)
			return NULL;
	}
	return NULL;
}

/* Drops the dormant slots, keeping the live ones and their counters. */
static void sweep(struct click_watch *w)
{
	struct watch_slot live[CLICKS_WATCH_MAX];
	size_t n = 0;
	for (size_t i = 0; i < WATCH_SLOTS; i++)
		if (w->slot[i].refs)
			live[n++] = w->slot[i];
	memset(w->slot, 0, sizeof(w->slot));
	for (size_t k = 0; k < n; k++) {
		size_t i = home(live[k].link_id);
		while (w->slot[i].link_id)
			i = (i + 1) & (WATCH_SLOTS - 1);
		w->slot[i] = live[k];
	}
	w->used = n;
}

int clicks_watch(struct clicks *c, int64_t link_id)
{
	struct click_watch *w = &c->watch;
	int rc = 0;
	pthread_mutex_lock(&w->lock);
	struct watch_slot *s = find(w, link_id);
	if ((!s || !s->refs) && atomic_load(&w->live) >= CLICKS_WATCH_MAX) {
		rc = -1;
	} else if (!s) {
		if (w->used >= WATCH_SLOTS * 3 / 4)
			sweep(w);
		/* the first free or dormant slot of its chain */
		size_t i = home(link_id);
		while (w->slot[i].link_id && w->slot[i].refs)
			i = (i + 1) & (WATCH_SLOTS - 1);
		if (!w->slot[i].link_id)
			w->used++;
		s = &w->slot[i];
		s->link_id = link_id;
		s->refs = 0;
	}
	if (s && s->refs++ == 0)
		atomic_fetch_add(&w->live, 1);
	pthread_mutex_unlock(&w->lock);
	return rc;
}

void clicks_unwatch(struct clicks *c, int64_t link_id)
{
	struct click_watch *w = &c->watch;
	pthread_mutex_lock(&w->lock);
	struct watch_slot *s = find(w, link_id);
	if (s && s->refs && --s->refs == 0)
		atomic_fetch_sub(&w->live, 1);
	pthread_mutex_unlock(&w->lock);
}

void clicks_watched(struct clicks *c, int64_t link_id, uint64_t *humans, uint64_t *bots)
{
	struct click_watch *w = &c->watch;
	pthread_mutex_lock(&w->lock);
	struct watch_slot *s = find(w, link_id);
	*humans = s && s->refs ? s->humans : 0;
	*bots = s && s->refs ? s->bots : 0;
	pthread_mutex_unlock(&w->lock);
}

void clicks_watch_fold(struct click_watch *w, const struct click_event *const *ev,
		       const int *bot, size_t n)
{
	pthread_mutex_lock(&w->lock);
	for (size_t i = 0; i < n; i++) {
		struct watch_slot *s = find(w, ev[i]->link_id);
		if (s && s->refs) {
			if (bot[i])
				s->bots++;
			else
				s->humans++;
		}
	}
	pthread_mutex_unlock(&w->lock);
}
