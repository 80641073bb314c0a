/*
 * idgen: see idgen.h for the id layout and the code alphabet.
 */
#include "idgen.h"

#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/random.h>

const char base62_alphabet[63] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

void idgen_init(struct idgen *g, unsigned node, int64_t (*clock_ms)(void))
{
	atomic_init(&g->state, 0);
	g->node = node & ((1u << IDGEN_NODE_BITS) - 1);
	g->clock_ms = clock_ms;
}

int64_t idgen_next(struct idgen *g)
{
	const uint64_t seq_mask = (1u << IDGEN_SEQ_BITS) - 1;
	uint64_t old = atomic_load_explicit(&g->state, memory_order_relaxed);
	for (;;) {
		int64_t now = g->clock_ms() - IDGEN_EPOCH_MS;
		uint64_t ms = now > 0 ? (uint64_t)now : 0;
		uint64_t last_ms = old >> IDGEN_SEQ_BITS, next;
		if (ms > last_ms) {
			next = ms << IDGEN_SEQ_BITS;
		} else if ((old & seq_mask) < seq_mask) {
			next = old + 1; /* same (or earlier) millisecond: next sequence */
		} else {
			/* 4096 ids in this millisecond: wait for the clock to move. */
			sched_yield();
			old = atomic_load_explicit(&g->state, memory_order_relaxed);
			continue;
		}
		if (atomic_compare_exchange_weak(&g->state, &old, next)) {
			uint64_t t = next >> IDGEN_SEQ_BITS, seq = next & seq_mask;
			return (int64_t)((t << (IDGEN_NODE_BITS + IDGEN_SEQ_BITS)) |
					 (g->node << IDGEN_SEQ_BITS) | seq);
		}
	}
}

/* Each thread draws from its own pool of kernel randomness, refilled 256
 * bytes at a time: one getrandom() call per about 35 codes of 7, where
 * there was one per code (a syscall was about 2% of a create). The bytes are
 * the kernel's CSPRNG output, only fetched ahead; shortd does not fork. */
static __thread unsigned char pool[256];
static __thread size_t pool_have, pool_used;

int code_random(char *out, size_t len)
{
	size_t n = 0;
	while (n < len) {
		if (pool_used == pool_have) {
			ssize_t r = getrandom(pool, sizeof(pool), 0);
			if (r < 0) {
				if (errno == EINTR)
					continue;
				return -1;
			}
			pool_have = (size_t)r;
			pool_used = 0;
		}
		unsigned char b = pool[pool_used];
		pool[pool_used++] = 0; /* used bytes do not stay in memory */
		/* 248 = 4 * 62: values above would favour the first characters. */
		if (b < 248)
			out[n++] = base62_alphabet[b % 62];
	}
	return 0;
}

size_t base62_encode(uint64_t v, char *out, size_t cap)
{
	char tmp[16];
	size_t i = sizeof(tmp);
	do {
		tmp[--i] = base62_alphabet[v % 62];
		v /= 62;
	} while (v);
	size_t n = sizeof(tmp) - i;
	if (n > cap)
		n = cap;
	memcpy(out, tmp + i, n);
	return n;
}

int base62_decode(const char *s, size_t len, uint64_t *out)
{
	if (len == 0 || len > 11)
		return -1;
	uint64_t v = 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		int d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'A' && c <= 'Z')
			d = c - 'A' + 10;
		else if (c >= 'a' && c <= 'z')
			d = c - 'a' + 36;
		else
			return -1;
		if (v > (UINT64_MAX - (uint64_t)d) / 62)
			return -1;
		v = v * 62 + (uint64_t)d;
	}
	*out = v;
	return 0;
}
