/*
 * util: the project's memory policy, a growable byte buffer and clocks.
 *
 * Out-of-memory policy (decided once, here): shortd is a server whose every
 * allocation is small and bounded by configured limits, so a failed
 * allocation means the machine is out of memory. x*alloc() log the failure
 * and abort(); callers never check for NULL.
 *
 * The exception is the request path, where one client's request must not
 * take the process down: the connection and request buffers, pending
 * writes and JSON (jansson allocates through json_alloc) use try_*(),
 * which return NULL, count the failure in alloc_failures (per thread; the
 * HTTP server zeroes it before each handler call and each posted task) and
 * leave the request to be answered 503 or its connection closed. Test
 * builds fail them on demand (core/fault.h, point "alloc").
 */
#ifndef SHORTD_UTIL_H
#define SHORTD_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>
#include <string.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define UNUSED(x) ((void)(x))

/* splitmix64's finaliser: a bijection on 64 bits in which every output
 * bit depends on every input bit (hash mixing, id generation). */
static inline uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* A 64-bit hash of n bytes for hash tables (not for secrets): from a seed
 * and the length, 8 bytes a step are mixed in with mix64, so every output
 * bit depends on every byte. The last 1-8 bytes are read as one word (two
 * overlapping loads from 4 bytes on), so a link's code is hashed with one
 * mix64 and no loop over its bytes: 4.4 ns for 7 bytes, where FNV-1a, a
 * byte at a time, took 11.8. */
static inline uint64_t hash_bytes(const void *p, size_t n, uint64_t seed)
{
	const unsigned char *b = p;
	uint64_t h = seed ^ (n * 0x9e3779b97f4a7c15ULL), w = 0;
	for (; n > 8; b += 8, n -= 8) {
		memcpy(&w, b, 8);
		h = mix64(h ^ w);
	}
	if (n >= 4) {
		uint32_t lo, hi;
		memcpy(&lo, b, 4);
		memcpy(&hi, b + n - 4, 4);
		w = (uint64_t)hi << 32 | lo;
	} else if (n > 0) {
		w = (uint64_t)b[0] << 16 | (uint64_t)b[n / 2] << 8 | b[n - 1];
	} else {
		w = 0;
	}
	return mix64(h ^ w);
}

/* 64 bits no client can know (the kernel's randomness; the clock if that
 * fails): a seed for hash_bytes(), so that no one can choose keys that all
 * land on one run of a table's slots, or for a generator's state. */
uint64_t random_seed(void);

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

/* The next item of a list separated by commas and/or spaces ("a, b c"),
 * as options write lists: its start, with its length in *len, and *p moved
 * past it; NULL when the list is used up. */
const char *list_next(const char **p, size_t *len);

extern __thread unsigned long alloc_failures;
void *try_malloc(size_t n);
void *try_calloc(size_t count, size_t n);
void *try_realloc(void *p, size_t n);
char *xstrndup(const char *s, size_t n);

/* jansson's allocator (main.c sets it): try_malloc(), except inside
 * json_parse(), which is json_loadb() with allocations that cannot fail
 * (util.c says why). Request bodies are parsed with json_parse(). */
struct json_t;
struct json_error_t;
void *json_alloc(size_t n);
struct json_t *json_parse(const char *p, size_t n, size_t flags, struct json_error_t *err);

/* A growable byte buffer. buf_init() sets up a caller-owned struct,
 * buf_release() frees its contents. p is always NUL-terminated when cap > 0.
 * Running out of memory ends the process, unless the buffer is soft
 * (buf_init_soft(), for answers built on the request path): then failed is
 * set, alloc_failures counted, and every later append is dropped until
 * buf_release(). */
struct buf {
	char *p;
	size_t len;
	size_t cap;
	unsigned char soft, failed;
};

void buf_init(struct buf *b);
void buf_init_soft(struct buf *b);
void buf_release(struct buf *b);
/* 0 when extra more bytes fit; -1 if a soft buffer could not grow. The
 * check is inline: responses are built from a dozen small appends, and a
 * call per append showed in redirect profiles (buf_grow() is the rest). */
int buf_grow(struct buf *b, size_t extra);
static inline int buf_reserve(struct buf *b, size_t extra)
{
	/* cap > len whenever cap > 0 (the NUL), so this is len + extra + 1 <= cap */
	if (!b->failed && extra < b->cap - b->len)
		return 0;
	return buf_grow(b, extra);
}
static inline void buf_append(struct buf *b, const void *data, size_t n)
{
	if (buf_reserve(b, n) != 0)
		return;
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
}
void buf_puts(struct buf *b, const char *s);
/* Appends a string literal, its length known when compiling. */
#define buf_lit(b, lit) buf_append((b), "" lit, sizeof(lit) - 1)
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(struct buf *b, const char *fmt, va_list ap);
/* Appends s[0..n) as a quoted JSON string, escaping what JSON requires
 * and replacing bytes that are not valid UTF-8 sequences by U+FFFD;
 * buf_put_json_chars() appends the same without the quotes. */
void buf_put_json_string(struct buf *b, const char *s, size_t n);
void buf_put_json_chars(struct buf *b, const char *s, size_t n);
/* 1 if s[0..n) is valid UTF-8 without control characters (C0, DEL, C1)
 * or the invisible marks that reorder or hide text (bidirectional
 * overrides and isolates, zero-width characters): safe to print to a
 * terminal or show in a page as it is. */
int text_printable(const char *s, size_t n);
/* Creates dir and its missing parents (mode 0755). 0, or -1 with errno. */
int mkdir_p(const char *dir);
/* Appends the decimal form of v. */
void buf_putu64(struct buf *b, uint64_t v);
/* Writes the decimal form of v, NUL-terminated; returns its length. */
size_t fmt_int(char out[24], int64_t v);

/* Wall clock, Unix milliseconds. */
int64_t time_now_ms(void);
/* Monotonic clock, milliseconds since an arbitrary start. */
uint64_t time_mono_ms(void);
/* Monotonic clock, nanoseconds. */
uint64_t time_mono_ns(void);
struct timespec;
/* The CLOCK_REALTIME instant ms from now, for pthread_cond_timedwait(). */
void time_deadline_in(struct timespec *ts, long ms);

/* Case-insensitive ASCII comparison of two byte ranges. */
int ascii_casecmp_n(const char *a, size_t alen, const char *b, size_t blen);

/* Formats ms as RFC 3339 UTC with millisecond precision into out (>= 25
 * bytes); returns the length of what it wrote. */
size_t time_format_rfc3339(int64_t ms, char *out, size_t cap);
/* Parses an RFC 3339 date-time (with Z or numeric offset) into Unix ms.
 * Returns 0 on success, -1 on a malformed or out-of-range value. */
int time_parse_rfc3339(const char *s, size_t len, int64_t *out_ms);

#endif
