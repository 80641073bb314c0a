/* Unit tests: Snowflake ids, base62 and random codes, RFC 3339 times. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/idgen.h"
#include "core/util.h"

/* The Unix ms an id carries, from its documented layout (idgen.h). */
static int64_t time_of(int64_t id)
{
	return (id >> (IDGEN_NODE_BITS + IDGEN_SEQ_BITS)) + IDGEN_EPOCH_MS;
}

static int64_t fake_now;
static int fake_calls, fake_step_every;

/* A clock that moves forward by 1 ms every fake_step_every calls. */
static int64_t fake_clock(void)
{
	if (fake_step_every && ++fake_calls % fake_step_every == 0)
		fake_now++;
	return fake_now;
}

static void test_ids_increase_and_encode_fields(void **state)
{
	(void)state;
	struct idgen g;
	fake_now = IDGEN_EPOCH_MS + 1000;
	fake_step_every = 0;
	idgen_init(&g, 5, fake_clock);
	int64_t a = idgen_next(&g), b = idgen_next(&g);
	assert_true(b > a);
	assert_int_equal(time_of(a), fake_now);
	assert_int_equal((a >> IDGEN_SEQ_BITS) & 1023, 5);
	assert_int_equal(b - a, 1); /* same ms: next sequence */
}

static void test_sequence_wrap_waits_for_next_ms(void **state)
{
	(void)state;
	struct idgen g;
	fake_now = IDGEN_EPOCH_MS + 5000;
	fake_calls = 0;
	fake_step_every = 10000; /* the clock moves slowly */
	idgen_init(&g, 1, fake_clock);
	int64_t prev = 0;
	for (int i = 0; i < 3 * 4096; i++) {
		int64_t id = idgen_next(&g);
		assert_true(id > prev);
		prev = id;
	}
	/* 12288 ids need at least 3 distinct milliseconds */
	assert_true(time_of(prev) >= IDGEN_EPOCH_MS + 5002);
}

static void test_clock_going_back(void **state)
{
	(void)state;
	struct idgen g;
	fake_now = IDGEN_EPOCH_MS + 9000;
	fake_step_every = 0;
	idgen_init(&g, 0, fake_clock);
	int64_t a = idgen_next(&g);
	fake_now -= 500; /* NTP stepped the clock back */
	int64_t b = idgen_next(&g);
	assert_true(b > a);
}

static void test_base62_roundtrip(void **state)
{
	(void)state;
	uint64_t vals[] = {0, 1, 61, 62, 3843, 3844, 1234567890123ULL, INT64_MAX, UINT64_MAX};
	for (size_t i = 0; i < ARRAY_LEN(vals); i++) {
		char s[16];
		size_t n = base62_encode(vals[i], s, sizeof(s));
		uint64_t back;
		assert_int_equal(base62_decode(s, n, &back), 0);
		assert_true(back == vals[i]);
	}
	uint64_t v;
	assert_int_equal(base62_decode("", 0, &v), -1);
	assert_int_equal(base62_decode("ab-c", 4, &v), -1);
	assert_int_equal(base62_decode("zzzzzzzzzzz", 11, &v), -1); /* overflows 64 bits */
}

static void test_random_codes(void **state)
{
	(void)state;
	int counts[62] = {0};
	char code[32];
	for (int i = 0; i < 20000; i++) {
		assert_int_equal(code_random(code, 7), 0);
		for (int j = 0; j < 7; j++) {
			const char *p = strchr(base62_alphabet, code[j]);
			assert_non_null(p);
			counts[p - base62_alphabet]++;
		}
	}
	/* 140000 draws, 2258 expected per symbol (sd ~48). Plain "byte % 62"
	 * would draw the first 8 symbols with 5/256 instead of 4.13/256, i.e.
	 * 21% too often, which the +-12% band catches. */
	for (int i = 0; i < 62; i++)
		assert_in_range(counts[i], 1987, 2529);
}

static void test_rfc3339(void **state)
{
	(void)state;
	int64_t ms;
	assert_int_equal(time_parse_rfc3339("2030-01-31T12:00:00Z", 20, &ms), 0);
	assert_true(ms == 1896091200000LL);
	assert_int_equal(time_parse_rfc3339("2030-01-31T13:30:00.250+01:30", 29, &ms), 0);
	assert_true(ms == 1896091200250LL);
	assert_int_equal(time_parse_rfc3339("2024-02-29T00:00:00z", 20, &ms), 0);
	assert_int_equal(time_parse_rfc3339("2023-02-29T00:00:00Z", 20, &ms), -1);
	assert_int_equal(time_parse_rfc3339("2030-13-01T00:00:00Z", 20, &ms), -1);
	assert_int_equal(time_parse_rfc3339("2030-01-01 00:00:00Z", 20, &ms), -1);
	assert_int_equal(time_parse_rfc3339("2030-01-01T00:00:00", 19, &ms), -1);
	assert_int_equal(time_parse_rfc3339("2030-01-01T00:00:00+0100", 24, &ms), -1);
	assert_int_equal(time_parse_rfc3339("tomorrow", 8, &ms), -1);
	char out[40];
	time_format_rfc3339(1896091200250LL, out, sizeof(out));
	assert_string_equal(out, "2030-01-31T12:00:00.250Z");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ids_increase_and_encode_fields),
		cmocka_unit_test(test_sequence_wrap_waits_for_next_ms),
		cmocka_unit_test(test_clock_going_back),
		cmocka_unit_test(test_base62_roundtrip),
		cmocka_unit_test(test_random_codes),
		cmocka_unit_test(test_rfc3339),
	};
	return cmocka_run_group_tests_name("idgen", tests, NULL, NULL);
}
