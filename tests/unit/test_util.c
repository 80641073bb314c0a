/* Unit tests for core/util: RFC 3339 times, JSON strings, decimals, buffers,
 * the table hash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/util.h"

static void check_time(int64_t ms, const char *want)
{
	char out[40];
	size_t n = time_format_rfc3339(ms, out, sizeof(out));
	assert_string_equal(out, want);
	assert_int_equal(n, strlen(want));
}

static void test_rfc3339(void **state)
{
	(void)state;
	check_time(0, "1970-01-01T00:00:00.000Z");
	check_time(1896091200250LL, "2030-01-31T12:00:00.250Z");
	check_time(951782400999LL, "2000-02-29T00:00:00.999Z");
	check_time(-1, "1969-12-31T23:59:59.999Z");
	check_time(253402300799999LL, "9999-12-31T23:59:59.999Z");
	/* past the four digits the fast path writes: the general one */
	check_time(253402300800000LL, "10000-01-01T00:00:00.000Z");
	/* every value read back the same */
	for (int64_t ms = 0; ms < 86400000LL * 365 * 200; ms += 86399937LL) {
		char out[40];
		int64_t back;
		size_t n = time_format_rfc3339(ms, out, sizeof(out));
		assert_int_equal(time_parse_rfc3339(out, n, &back), 0);
		assert_true(back == ms);
	}
}

static void check_json(const char *in, size_t n, const char *want)
{
	struct buf b;
	buf_init(&b);
	buf_put_json_string(&b, in, n);
	assert_string_equal(b.p, want);
	assert_int_equal(b.len, strlen(want));
	buf_release(&b);
}

static void test_json_strings(void **state)
{
	(void)state;
	check_json("", 0, "\"\"");
	check_json("https://example.com/a?b=c", 25, "\"https://example.com/a?b=c\"");
	check_json("say \"hi\"\\", 9, "\"say \\\"hi\\\"\\\\\"");
	check_json("a\nb\tc\x7f", 6, "\"a\\u000ab\\u0009c\\u007f\"");
	check_json("nul\0x", 5, "\"nul\\u0000x\"");
	/* valid UTF-8 as it is; a stray byte, a truncated or an overlong
	 * sequence, and a surrogate each become U+FFFD */
	check_json("caf\xc3\xa9 \xe2\x82\xac", 9, "\"caf\xc3\xa9 \xe2\x82\xac\"");
	check_json("a\x80z", 3, "\"a\\ufffdz\"");
	check_json("\xe2\x82", 2, "\"\\ufffd\\ufffd\"");
	check_json("\xc0\xaf", 2, "\"\\ufffd\\ufffd\"");
	check_json("\xed\xa0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\"");
	/* without the quotes, appended to what is there */
	struct buf b;
	buf_init(&b);
	buf_puts(&b, "x=");
	buf_put_json_chars(&b, "\"q\"", 3);
	assert_string_equal(b.p, "x=\\\"q\\\"");
	buf_release(&b);
}

static void test_buffer_growth(void **state)
{
	(void)state;
	struct buf b;
	buf_init_soft(&b);
	for (int i = 0; i < 10000; i++)
		buf_putu64(&b, (uint64_t)i % 10);
	assert_int_equal(b.len, 10000);
	assert_false(b.failed);
	assert_int_equal(b.p[9999], '9');
	assert_int_equal(b.p[10000], '\0');
	buf_release(&b);
	assert_null(b.p);
	assert_true(b.soft); /* it can be filled again */

	/* a soft buffer asked for more than can be had: it fails, drops what
	 * follows, counts the failure, and is usable again once released */
	unsigned long before = alloc_failures;
	buf_puts(&b, "kept");
	assert_int_equal(buf_reserve(&b, SIZE_MAX / 2), -1);
	assert_true(b.failed);
	assert_true(alloc_failures == before + 1);
	buf_puts(&b, "dropped");
	assert_string_equal(b.p, "kept");
	buf_release(&b);
	assert_false(b.failed);
	buf_puts(&b, "again");
	assert_string_equal(b.p, "again");
	buf_release(&b);
}

static void test_decimal(void **state)
{
	(void)state;
	static const struct {
		int64_t v;
		const char *s;
	} cases[] = {
		{0, "0"}, {7, "7"}, {42, "42"}, {-7, "-7"}, {1000000, "1000000"},
		{INT64_MAX, "9223372036854775807"}, {INT64_MIN, "-9223372036854775808"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[24];
		assert_int_equal(fmt_int(out, cases[i].v), strlen(cases[i].s));
		assert_string_equal(out, cases[i].s);
	}
	struct buf b;
	buf_init(&b);
	buf_putu64(&b, UINT64_MAX);
	buf_lit(&b, " ");
	buf_putu64(&b, 0);
	assert_string_equal(b.p, "18446744073709551615 0");
	buf_release(&b);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* hash_bytes() reads a short key's tail as overlapping words: every byte
 * and the length must still count, and nothing past the key is read (each
 * key is its own allocation, so the sanitized build would catch it). */
static void test_hash_bytes(void **state)
{
	(void)state;
	uint64_t x = 0x2545f4914f6cdd1dULL;
	for (size_t n = 0; n <= 40; n++) {
		unsigned char *k = malloc(n ? n : 1);
		for (size_t i = 0; i < n; i++) {
			x = x * 6364136223846793005ULL + 1442695040888963407ULL;
			k[i] = (unsigned char)(x >> 56);
		}
		uint64_t h = hash_bytes(k, n, 7);
		assert_true(h != hash_bytes(k, n, 8)); /* the seed counts */
		for (size_t i = 0; i < n; i++)
			for (int bit = 0; bit < 8; bit++) {
				k[i] ^= (unsigned char)(1u << bit);
				assert_true(hash_bytes(k, n, 7) != h);
				k[i] ^= (unsigned char)(1u << bit);
			}
		assert_true(hash_bytes(k, n, 7) == h);
		free(k);
	}
	/* zeros of different lengths differ */
	static const unsigned char zeros[16];
	for (size_t n = 0; n < 16; n++)
		assert_true(hash_bytes(zeros, n, 0) != hash_bytes(zeros, n + 1, 0));
	/* a key of up to 8 bytes is one word: every code of 1 to 3 characters
	 * from a code's alphabet hashes differently */
	static const char abc[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
	enum { A = sizeof(abc) - 1, N = A + A * A + A * A * A };
	uint64_t *hs = malloc(N * sizeof(*hs));
	size_t m = 0;
	for (int len = 1; len <= 3; len++) {
		int count = len == 1 ? A : len == 2 ? A * A : A * A * A;
		for (int v = 0; v < count; v++) {
			char code[3];
			for (int i = 0, r = v; i < len; i++, r /= A)
				code[i] = abc[r % A];
			hs[m++] = hash_bytes(code, (size_t)len, 42);
		}
	}
	assert_int_equal(m, N);
	qsort(hs, m, sizeof(*hs), cmp_u64);
	for (size_t i = 1; i < m; i++)
		assert_true(hs[i] != hs[i - 1]);
	free(hs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc3339),
		cmocka_unit_test(test_json_strings),
		cmocka_unit_test(test_buffer_growth),
		cmocka_unit_test(test_decimal),
		cmocka_unit_test(test_hash_bytes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
