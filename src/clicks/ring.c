/*
 * ring: the producer side of the click pipeline. Each worker owns a
 * click_ring, a single-producer single-consumer ring of fixed-size events;
 * clicks_record() copies the click into the next slot and publishes it
 * with one release store: no lock, no allocation, no system call. A full
 * ring drops the click and counts it. The aggregator is the consumer
 * (aggregator.c, clicks_drain_locked).
 */
#include "clicks_internal.h"

#include <netinet/in.h>
#include <string.h>

/* ---- producer side ----------------------------------------------------------- */

size_t clicks_referer_host(const char *ref, size_t len, char *out, size_t cap)
{
	const char *p = memchr(ref, ':', len);
	if (!p || (size_t)(p - ref) + 3 > len || p[1] != '/' || p[2] != '/')
		return 0;
	p += 3;
	const char *end = ref + len;
	if (memchr(p, '@', (size_t)(end - p))) {
		/* skip credentials: user:pass@host */
		const char *at = p;
		while (at < end && *at != '/' && *at != '@')
			at++;
		if (at < end && *at == '@')
			p = at + 1;
	}
	size_t n = 0;
	if (p < end && *p == '[') {
		for (; p < end && *p != '/' && *p != '?' && *p != '#'; p++) {
			char c = *p;
			if (c >= 'A' && c <= 'Z')
				c = (char)(c + 32);
			if (!((c >= 'a' && c <= 'f') || (c >= '0' && c <= '9') || c == ':' ||
			      c == '.' || c == '[' || c == ']'))
				return 0;
			if (n == cap)
				return 0;
			out[n++] = c;
			if (c == ']')
				return n; /* a port may follow */
		}
		return 0; /* an unclosed '[' is no host */
	}
	/* a name or an IPv4 address: letters (lowered), digits, '.', '-', '_' */
	for (; p < end; p++) {
		unsigned char c = (unsigned char)*p, lower = c | 0x20;
		if ((unsigned)(lower - 'a') < 26u) {
			c = lower;
		} else if ((unsigned)(c - '0') >= 10u && c != '.' && c != '-' && c != '_') {
			if (c == '/' || c == '?' || c == '#' || c == ':')
				break; /* the path, query, fragment or port */
			return 0;
		}
		if (n == cap)
			return 0;
		out[n++] = (char)c;
	}
	return n;
}

void clicks_record(struct click_ring *ring, int64_t link_id, int64_t now_ms, const char *ua,
		   size_t ua_len, const char *referer, size_t ref_len, const struct sockaddr *peer)
{
	uint64_t h = atomic_load_explicit(&ring->head, memory_order_relaxed);
	uint64_t t = atomic_load_explicit(&ring->tail, memory_order_acquire);
	if (h - t >= CLICK_RING_SIZE) {
		metric_add(&ring->dropped, 1);
		return;
	}
	struct click_event *e = &ring->ev[h & (CLICK_RING_SIZE - 1)];
	e->link_id = link_id;
	e->ts_ms = now_ms;
	e->family = 0;
	if (peer && peer->sa_family == AF_INET) {
		e->family = AF_INET;
		memcpy(e->addr, &((const struct sockaddr_in *)peer)->sin_addr, 4);
	} else if (peer && peer->sa_family == AF_INET6) {
		e->family = AF_INET6;
		memcpy(e->addr, &((const struct sockaddr_in6 *)peer)->sin6_addr, 16);
	}
	if (ua_len > CLICK_UA_MAX)
		ua_len = CLICK_UA_MAX;
	memcpy(e->ua, ua, ua_len);
	e->ua_len = (uint16_t)ua_len;
	if (!referer) {
		e->ref_kind = REF_NONE;
		e->ref_len = 0;
	} else {
		e->ref_len = (uint8_t)clicks_referer_host(referer, ref_len, e->ref, sizeof(e->ref));
		e->ref_kind = e->ref_len ? REF_HOST : REF_INVALID;
	}
	atomic_store_explicit(&ring->head, h + 1, memory_order_release);
	metric_add(&ring->recorded, 1);
}
