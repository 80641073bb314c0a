/*
 * util: memory policy, byte buffers, clocks, RFC 3339 times, text checks
 * and directories.
 * See util.h for the out-of-memory policy.
 */
#include "util.h"
#include "fault.h"

#include <jansson.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

static void oom(size_t n)
{
	fprintf(stderr, "{\"level\":\"fatal\",\"msg\":\"out of memory allocating %zu bytes\"}\n", n);
	abort();
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom(n);
	return p;
}

void *xcalloc(size_t count, size_t n)
{
	void *p = calloc(count ? count : 1, n ? n : 1);
	if (!p)
		oom(count * n);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		oom(n);
	return p;
}

const char *list_next(const char **p, size_t *len)
{
	const char *s = *p;
	while (*s == ' ' || *s == ',')
		s++;
	*len = strcspn(s, ", ");
	*p = s + *len;
	return *len ? s : NULL;
}

__thread unsigned long alloc_failures;

static void *tried(void *p)
{
	if (!p)
		alloc_failures++;
	return p;
}

void *try_malloc(size_t n)
{
	if (fault_hit(FAULT_ALLOC))
		return tried(NULL);
	return tried(malloc(n ? n : 1));
}

/* jansson 2.14's lexer ignores a failed allocation while it saves a
 * token's bytes (lex_save), then copies a string past the end of the
 * smaller buffer it did get: a memory error (an escaped string in a
 * request body under an injected allocation failure showed it). So while
 * jansson parses, its allocations follow the x*alloc() policy; its trees
 * and dumps, built elsewhere, still fail as try_malloc() does. */
static __thread int json_parsing;

void *json_alloc(size_t n)
{
	return json_parsing ? xmalloc(n) : try_malloc(n);
}

json_t *json_parse(const char *p, size_t n, size_t flags, json_error_t *err)
{
	json_parsing = 1;
	json_t *j = json_loadb(p, n, flags, err);
	json_parsing = 0;
	return j;
}

void *try_calloc(size_t count, size_t n)
{
	if (fault_hit(FAULT_ALLOC))
		return tried(NULL);
	return tried(calloc(count ? count : 1, n ? n : 1));
}

void *try_realloc(void *p, size_t n)
{
	if (fault_hit(FAULT_ALLOC))
		return tried(NULL);
	return tried(realloc(p, n ? n : 1));
}

char *xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

void buf_init(struct buf *b)
{
	memset(b, 0, sizeof(*b));
}

void buf_init_soft(struct buf *b)
{
	buf_init(b);
	b->soft = 1;
}

void buf_release(struct buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
	b->failed = 0; /* empty, and usable again; soft stays as it was */
}

int buf_grow(struct buf *b, size_t extra)
{
	if (b->failed)
		return -1;
	if (extra > SIZE_MAX / 4 - b->len) { /* the doubling below would overflow */
		if (!b->soft)
			oom(extra);
		alloc_failures++;
		b->failed = 1;
		return -1;
	}
	size_t need = b->len + extra + 1;
	if (need <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	char *p = b->soft ? try_realloc(b->p, cap) : xrealloc(b->p, cap);
	if (!p) {
		b->failed = 1;
		return -1;
	}
	b->p = p;
	b->cap = cap;
	return 0;
}

void buf_puts(struct buf *b, const char *s)
{
	buf_append(b, s, strlen(s));
}

void buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	va_copy(cp, ap);
	int n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0 || buf_reserve(b, (size_t)n) != 0)
		return;
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(b, fmt, ap);
	va_end(ap);
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0; its
 * code point in *out. */
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *out)
{
	unsigned char c = s[0];
	size_t len;
	uint32_t min;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2, min = 0x80;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3, min = 0x800;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4, min = 0x10000;
	else
		return 0;
	if (len > n)
		return 0;
	uint32_t cp = c & (0x7f >> len);
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*out = cp;
	return len;
}

static size_t utf8_seq(const unsigned char *s, size_t n)
{
	uint32_t cp;
	return utf8_next(s, n, &cp);
}

int text_printable(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	for (size_t i = 0; i < n;) {
		uint32_t cp = u[i];
		size_t l = cp < 0x80 ? 1 : utf8_next(u + i, n - i, &cp);
		if (!l || cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || (cp >= 0x200b && cp <= 0x200f) ||
		    (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2060 && cp <= 0x206f) ||
		    cp == 0xfeff || (cp >= 0xfff9 && cp <= 0xfffb))
			return 0;
		i += l;
	}
	return 1;
}

void buf_put_json_chars(struct buf *b, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	buf_reserve(b, n);
	size_t run = 0; /* start of the bytes that go out as they are */
	for (size_t i = 0; i < n;) {
		unsigned char c = u[i];
		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
			i++;
			continue;
		}
		size_t l = c >= 0x80 ? utf8_seq(u + i, n - i) : 0;
		if (l) {
			i += l;
			continue;
		}
		buf_append(b, s + run, i - run);
		if (c == '"' || c == '\\') {
			char e[2] = {'\\', (char)c};
			buf_append(b, e, 2);
		} else if (c < 0x80) {
			buf_printf(b, "\\u%04x", c);
		} else {
			buf_append(b, "\\ufffd", 6);
		}
		run = ++i;
	}
	buf_append(b, s + run, n - run);
}

void buf_put_json_string(struct buf *b, const char *s, size_t n)
{
	buf_reserve(b, n + 2);
	buf_append(b, "\"", 1);
	buf_put_json_chars(b, s, n);
	buf_append(b, "\"", 1);
}

/* Writes u's digits backwards, ending just before end; returns the first. */
static char *dec_digits(char *end, uint64_t u)
{
	do {
		*--end = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	return end;
}

size_t fmt_int(char out[24], int64_t v)
{
	char tmp[24], *end = tmp + sizeof(tmp);
	char *p = dec_digits(end, v < 0 ? 0 - (uint64_t)v : (uint64_t)v);
	if (v < 0)
		*--p = '-';
	size_t n = (size_t)(end - p);
	memcpy(out, p, n);
	out[n] = '\0';
	return n;
}

void buf_putu64(struct buf *b, uint64_t v)
{
	char tmp[20], *end = tmp + sizeof(tmp);
	char *p = dec_digits(end, v);
	buf_append(b, p, (size_t)(end - p));
}

int64_t time_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t time_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t random_seed(void)
{
	uint64_t seed;
	if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
		seed = mix64(time_mono_ns() ^ (uint64_t)(uintptr_t)&seed);
	return seed;
}

uint64_t time_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

void time_deadline_in(struct timespec *ts, long ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

int ascii_casecmp_n(const char *a, size_t alen, const char *b, size_t blen)
{
	if (alen != blen)
		return 1;
	for (size_t i = 0; i < alen; i++) {
		unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
		if (x >= 'A' && x <= 'Z')
			x = (unsigned char)(x + 32);
		if (y >= 'A' && y <= 'Z')
			y = (unsigned char)(y + 32);
		if (x != y)
			return 1;
	}
	return 0;
}

/* Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's
 * well-known civil-calendar arithmetic, written out here). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static char *put_digits(char *p, int v, int width)
{
	for (int i = width - 1; i >= 0; i--, v /= 10)
		p[i] = (char)('0' + v % 10);
	return p + width;
}

size_t time_format_rfc3339(int64_t ms, char *out, size_t cap)
{
	time_t s = (time_t)(ms / 1000);
	int frac = (int)(ms % 1000);
	if (frac < 0) {
		frac += 1000;
		s -= 1;
	}
	struct tm tm;
	gmtime_r(&s, &tm);
	int year = tm.tm_year + 1900;
	if (year < 0 || year > 9999 || cap < 25) {
		int n = snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", year,
				 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
		if (n < 0 || cap == 0)
			return 0;
		return (size_t)n < cap ? (size_t)n : cap - 1; /* what fitted */
	}
	/* The hand-written common case: on the path of every API answer. */
	char *p = put_digits(out, year, 4);
	*p++ = '-';
	p = put_digits(p, tm.tm_mon + 1, 2);
	*p++ = '-';
	p = put_digits(p, tm.tm_mday, 2);
	*p++ = 'T';
	p = put_digits(p, tm.tm_hour, 2);
	*p++ = ':';
	p = put_digits(p, tm.tm_min, 2);
	*p++ = ':';
	p = put_digits(p, tm.tm_sec, 2);
	*p++ = '.';
	p = put_digits(p, frac, 3);
	*p++ = 'Z';
	*p = '\0';
	return (size_t)(p - out);
}

static int digits(const char *s, size_t n, int *out)
{
	int v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

int time_parse_rfc3339(const char *s, size_t len, int64_t *out_ms)
{
	int Y, M, D, h, m, sec;
	/* YYYY-MM-DDTHH:MM:SS is 19 bytes; then optional fraction; then zone. */
	if (len < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
	    s[13] != ':' || s[16] != ':')
		return -1;
	if (digits(s, 4, &Y) || digits(s + 5, 2, &M) || digits(s + 8, 2, &D) ||
	    digits(s + 11, 2, &h) || digits(s + 14, 2, &m) || digits(s + 17, 2, &sec))
		return -1;
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (Y < 1970 || M < 1 || M > 12 || D < 1 || D > mdays[M - 1] || h > 23 || m > 59 ||
	    sec > 60)
		return -1;
	int leap = (Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0;
	if (M == 2 && D == 29 && !leap)
		return -1;
	if (sec == 60)
		sec = 59; /* leap second: clamp, as most systems do */
	size_t i = 19;
	int frac_ms = 0;
	if (i < len && s[i] == '.') {
		size_t start = ++i, nd = 0;
		while (i < len && s[i] >= '0' && s[i] <= '9') {
			if (nd < 3)
				frac_ms = frac_ms * 10 + (s[i] - '0');
			nd++;
			i++;
		}
		if (i == start)
			return -1;
		for (; nd < 3; nd++)
			frac_ms *= 10;
	}
	int64_t offset_s = 0;
	if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
		i++;
	} else if (i + 6 == len && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
		int oh, om;
		if (digits(s + i + 1, 2, &oh) || digits(s + i + 4, 2, &om) || oh > 23 || om > 59)
			return -1;
		offset_s = (int64_t)(oh * 3600 + om * 60) * (s[i] == '+' ? 1 : -1);
		i += 6;
	} else {
		return -1;
	}
	if (i != len)
		return -1;
	int64_t days = days_from_civil(Y, M, D);
	int64_t t = days * 86400 + h * 3600 + m * 60 + sec - offset_s;
	*out_ms = t * 1000 + frac_ms;
	return 0;
}

int mkdir_p(const char *dir)
{
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s", dir);
	for (char *p = tmp + 1; *p; p++) {
		if (*p == '/') {
			*p = '\0';
			if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
				return -1;
			*p = '/';
		}
	}
	if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
		return -1;
	return 0;
}
