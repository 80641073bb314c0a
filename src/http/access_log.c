/*
 * access_log: see access_log.h.
 */
#include "access_log.h"
#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct slot {
	pthread_mutex_t lock;
	struct buf pending;
	char pad[64];
};

struct access_log {
	int fd;
	int own_fd;
	int nworkers;
	struct slot *slots;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int stopping;
	atomic_uint_fast64_t dropped;
};

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return; /* a failing access log must not stop the service */
		}
		p += w;
		n -= (size_t)w;
	}
}

static void flush_slots(struct access_log *al)
{
	for (int i = 0; i < al->nworkers; i++) {
		struct slot *s = &al->slots[i];
		struct buf b;
		pthread_mutex_lock(&s->lock);
		b = s->pending;
		buf_init(&s->pending);
		pthread_mutex_unlock(&s->lock);
		if (b.len)
			write_all(al->fd, b.p, b.len);
		buf_release(&b);
	}
}

static void *writer_main(void *arg)
{
	struct access_log *al = arg;
	pthread_mutex_lock(&al->lock);
	while (!al->stopping) {
		struct timespec ts;
		time_deadline_in(&ts, 200);
		pthread_cond_timedwait(&al->cond, &al->lock, &ts);
		pthread_mutex_unlock(&al->lock);
		flush_slots(al);
		pthread_mutex_lock(&al->lock);
	}
	pthread_mutex_unlock(&al->lock);
	flush_slots(al);
	return NULL;
}

struct access_log *access_log_open(const char *path, int nworkers, char *err, size_t errlen)
{
	int fd;
	if (strcmp(path, "-") == 0) {
		fd = STDERR_FILENO;
	} else {
		fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
		if (fd < 0) {
			snprintf(err, errlen, "unable to open access log '%s': %s", path, strerror(errno));
			return NULL;
		}
	}
	struct access_log *al = xcalloc(1, sizeof(*al));
	al->fd = fd;
	al->own_fd = fd != STDERR_FILENO;
	al->nworkers = nworkers;
	al->slots = xcalloc((size_t)nworkers, sizeof(*al->slots));
	for (int i = 0; i < nworkers; i++) {
		pthread_mutex_init(&al->slots[i].lock, NULL);
		buf_init(&al->slots[i].pending);
	}
	pthread_mutex_init(&al->lock, NULL);
	pthread_cond_init(&al->cond, NULL);
	if (pthread_create(&al->thread, NULL, writer_main, al) != 0)
		abort();
	return al;
}

void access_log_append(struct access_log *al, int worker, const char *line, size_t len)
{
	struct slot *s = &al->slots[worker];
	pthread_mutex_lock(&s->lock);
	if (s->pending.len + len > ACCESS_LOG_MAX_PENDING)
		atomic_fetch_add_explicit(&al->dropped, 1, memory_order_relaxed);
	else
		buf_append(&s->pending, line, len);
	pthread_mutex_unlock(&s->lock);
}

uint64_t access_log_dropped(struct access_log *al)
{
	return atomic_load_explicit(&al->dropped, memory_order_relaxed);
}

void access_log_close(struct access_log *al)
{
	if (!al)
		return;
	pthread_mutex_lock(&al->lock);
	al->stopping = 1;
	pthread_cond_signal(&al->cond);
	pthread_mutex_unlock(&al->lock);
	pthread_join(al->thread, NULL);
	for (int i = 0; i < al->nworkers; i++) {
		buf_release(&al->slots[i].pending);
		pthread_mutex_destroy(&al->slots[i].lock);
	}
	if (al->own_fd)
		close(al->fd);
	pthread_mutex_destroy(&al->lock);
	pthread_cond_destroy(&al->cond);
	free(al->slots);
	free(al);
}
