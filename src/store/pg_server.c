/*
 * pg_server: the PostgreSQL servers shortd was given (--pg and
 * --pg-replicas), each with its circuit breaker and its figures. See
 * pg_internal.h for the breaker's rules.
 *
 * Every thread that talks to a server (the workers' readers, the writers)
 * shares its breaker, so one failed connection keeps all of them from
 * waiting on the same dead server; each of them retries on its own once
 * the breaker's while is over (half-open), and the first to succeed
 * closes it.
 */
#include "pg_internal.h"
#include "core/log.h"
#include "core/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "host:port" of a conninfo's hosts (several for a multi-host URI). */
static void name_of(const char *conninfo, char *out, size_t cap)
{
	char *msg = NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo, &msg);
	const char *host = NULL, *port = NULL;
	for (PQconninfoOption *o = opts; o && o->keyword; o++) {
		if (strcmp(o->keyword, "host") == 0 || (strcmp(o->keyword, "hostaddr") == 0 && !host))
			host = o->val;
		else if (strcmp(o->keyword, "port") == 0)
			port = o->val;
	}
	snprintf(out, cap, "%s:%s", host && host[0] ? host : "localhost",
		 port && port[0] ? port : "5432");
	PQconninfoFree(opts);
	PQfreemem(msg);
}

int pg_server_init(struct pg_server *s, const char *conninfo, int primary, char *err,
		   size_t errlen)
{
	memset(s, 0, sizeof(*s));
	char *msg = NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo, &msg);
	if (!opts) {
		snprintf(err, errlen, "invalid PostgreSQL URI '%s': %s", conninfo,
			 msg ? msg : "out of memory");
		PQfreemem(msg);
		return -1;
	}
	PQconninfoFree(opts);
	s->conninfo = xstrdup(conninfo);
	s->primary = primary;
	name_of(conninfo, s->name, sizeof(s->name));
	pthread_mutex_init(&s->lock, NULL);
	s->backoff_ms = PG_BACKOFF_MIN_MS;
	return 0;
}

void pg_server_release(struct pg_server *s)
{
	if (!s->conninfo)
		return;
	free(s->conninfo);
	pthread_mutex_destroy(&s->lock);
	s->conninfo = NULL;
}

int pg_server_state(struct pg_server *s)
{
	pthread_mutex_lock(&s->lock);
	int st = !s->open ? STORE_BREAKER_CLOSED
		 : time_mono_ms() < s->open_until_ms ? STORE_BREAKER_OPEN
						      : STORE_BREAKER_HALF_OPEN;
	pthread_mutex_unlock(&s->lock);
	return st;
}

void pg_server_ok(struct pg_server *s)
{
	pthread_mutex_lock(&s->lock);
	int was_open = s->open;
	s->open = 0;
	s->backoff_ms = PG_BACKOFF_MIN_MS;
	pthread_mutex_unlock(&s->lock);
	if (was_open)
		log_info("PostgreSQL %s '%s' answers again", s->primary ? "primary" : "replica",
			 s->name);
}

void pg_server_failed(struct pg_server *s, const char *why)
{
	pthread_mutex_lock(&s->lock);
	uint64_t now = time_mono_ms();
	int log = !s->open || now >= s->open_until_ms;
	if (s->open && now >= s->open_until_ms)
		s->backoff_ms = s->backoff_ms * 2 > PG_BACKOFF_MAX_MS ? PG_BACKOFF_MAX_MS
								    : s->backoff_ms * 2;
	/* jitter: +-25%, so that the workers do not all come back at once */
	uint64_t jitter = (random_seed() % (s->backoff_ms / 2 + 1));
	if (!s->open || now >= s->open_until_ms)
		s->open_until_ms = now + s->backoff_ms * 3 / 4 + jitter;
	s->open = 1;
	snprintf(s->last_error, sizeof(s->last_error), "%s", why);
	uint64_t wait = s->open_until_ms - now;
	pthread_mutex_unlock(&s->lock);
	if (log)
		log_warn("PostgreSQL %s '%s' failed: %s; left alone for %llu ms",
			 s->primary ? "primary" : "replica", s->name, why, (unsigned long long)wait);
}

void pg_server_observe(struct pg_server *s, uint64_t ns, int error)
{
	metric_add_shared(&s->queries, 1);
	if (error)
		metric_add_shared(&s->errors, 1);
	hist_observe_shared(&s->latency, ns);
}

void pg_server_stats(struct pg_server *s, struct store_server_stats *out)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "%s", s->name);
	out->role = s->primary ? "primary" : "replica";
	out->queries = metric_read(&s->queries);
	out->errors = metric_read(&s->errors);
	out->fallbacks = metric_read(&s->fallbacks);
	hist_sum_add(&out->latency, &s->latency);
	long n = atomic_load_explicit(&s->conns, memory_order_relaxed);
	out->conns = n > 0 ? (uint64_t)n : 0;
	out->breaker = pg_server_state(s);
}

char *pg_server_conninfo(const struct pg_server *s, int timeout_ms)
{
	struct buf b;
	buf_init(&b);
	buf_puts(&b, s->conninfo);
	int uri = strncmp(s->conninfo, "postgresql://", 13) == 0 ||
		  strncmp(s->conninfo, "postgres://", 11) == 0;
	/* every statement is cut off after the timeout, so that nothing
	 * holds a connection (or a lock) for longer than a client waits */
	if (uri)
		buf_printf(&b, "%sapplication_name=shortd&options=-c%%20statement_timeout%%3D%d",
			   strchr(s->conninfo, '?') ? "&" : "?", timeout_ms);
	else
		buf_printf(&b, " application_name=shortd options='-c statement_timeout=%d'", timeout_ms);
	return b.p;
}
