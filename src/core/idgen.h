/*
 * idgen: 64-bit Snowflake-style row ids and random base62 short codes.
 *
 * Id layout (most significant first):
 *   1 bit  zero (ids are positive int64)
 *   41 bits milliseconds since IDGEN_EPOCH_MS (2024-01-01T00:00:00Z; ~69 years)
 *   10 bits node id (--node-id, 0..1023)
 *   12 bits sequence within the millisecond (4096 ids/ms per node)
 * Ids are unique per node and increase with time, so "newest first" is
 * "id descending". The generator is lock-free (one CAS on a packed state);
 * when the sequence wraps within a millisecond it spins to the next one, and
 * if the wall clock steps backwards it keeps using the last timestamp, so ids
 * never repeat or decrease.
 *
 * Codes are drawn from getrandom(2) with rejection sampling (no modulo bias),
 * so they are unguessable; uniqueness is the database's job.
 */
#ifndef SHORTD_IDGEN_H
#define SHORTD_IDGEN_H

#include <stddef.h>
#include <stdint.h>
#include <stdatomic.h>

#define IDGEN_EPOCH_MS 1704067200000LL
#define IDGEN_NODE_BITS 10
#define IDGEN_SEQ_BITS 12

struct idgen {
	_Atomic uint64_t state; /* (ms since epoch << 12) | sequence */
	uint64_t node;
	int64_t (*clock_ms)(void); /* wall clock, injectable for tests */
};

void idgen_init(struct idgen *g, unsigned node, int64_t (*clock_ms)(void));
int64_t idgen_next(struct idgen *g);

extern const char base62_alphabet[63];

/* Writes len random base62 characters into out (not NUL-terminated).
 * Returns 0, or -1 if the OS RNG failed. */
int code_random(char *out, size_t len);
/* Encodes v in base62 into out (cap >= 12); returns the length. */
size_t base62_encode(uint64_t v, char *out, size_t cap);
/* Decodes base62; returns 0, or -1 on invalid input or overflow. */
int base62_decode(const char *s, size_t len, uint64_t *out);

#endif
