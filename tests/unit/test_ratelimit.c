/* Unit tests: GCRA math with a fake clock (microseconds passed in), the
 * headers' numbers, and the table's memory bound and eviction order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ratelimit/ratelimit.h"

#define S 1000000LL /* one second in microseconds */

static void test_burst_then_one_per_interval(void **state)
{
	(void)state;
	struct rl_table *t = rl_table_new(1024);
	struct rl_limit lim = rl_limit_make(60, 60, 5); /* 1 per second, bursts of 5 */
	struct rl_result r;
	int64_t now = 1000 * S;
	for (int i = 0; i < 5; i++) {
		rl_take(t, &lim, 42, now, &r);
		assert_true(r.allowed);
		assert_int_equal(r.limit, 5);
		assert_int_equal(r.remaining, 4 - i);
		assert_int_equal(r.reset_s, i + 1);
	}
	rl_take(t, &lim, 42, now, &r);
	assert_false(r.allowed);
	assert_int_equal(r.remaining, 0);
	assert_int_equal(r.retry_after_s, 1);
	/* a refused request costs nothing: still one second to wait */
	rl_take(t, &lim, 42, now + S - 1, &r);
	assert_false(r.allowed);
	rl_take(t, &lim, 42, now + S, &r);
	assert_true(r.allowed);
	assert_int_equal(r.remaining, 0);
	rl_take(t, &lim, 42, now + S, &r);
	assert_false(r.allowed);
	/* after a long pause the whole burst is back, not more */
	int allowed = 0;
	for (int i = 0; i < 10; i++) {
		rl_take(t, &lim, 42, now + 100 * S, &r);
		allowed += r.allowed;
	}
	assert_int_equal(allowed, 5);
	rl_table_free(t);
}

static void test_retry_after_rounds_up(void **state)
{
	(void)state;
	struct rl_table *t = rl_table_new(1024);
	struct rl_limit lim = rl_limit_make(3, 60, 3); /* one per 20 s */
	struct rl_result r;
	for (int i = 0; i < 3; i++)
		rl_take(t, &lim, 7, 0, &r);
	rl_take(t, &lim, 7, 0, &r);
	assert_false(r.allowed);
	assert_int_equal(r.retry_after_s, 20);
	assert_int_equal(r.reset_s, 60);
	rl_take(t, &lim, 7, 5 * S + 1, &r);
	assert_false(r.allowed);
	assert_int_equal(r.retry_after_s, 15);
	rl_table_free(t);
}

static void test_keys_are_independent_and_peek_is_free(void **state)
{
	(void)state;
	struct rl_table *t = rl_table_new(1024);
	struct rl_limit lim = rl_limit_make(1, 1, 1), many = rl_limit_make(1000, 1, 1000);
	struct rl_result r;
	/* lane 1 peeked (with a take in lane 0 that never runs out) */
	assert_true((rl_take_and_peek(t, &many, &lim, 1, 0, &r) & RL_PEEK_OK));
	assert_true((rl_take_and_peek(t, &many, &lim, 1, 0, &r) & RL_PEEK_OK)); /* peeking takes nothing */
	rl_take_lane(t, &lim, 1, 1, 0, &r);
	assert_true(r.allowed);
	assert_false((rl_take_and_peek(t, &many, &lim, 1, 0, &r) & RL_PEEK_OK));
	assert_true((rl_take_and_peek(t, &many, &lim, 2, 0, &r) & RL_PEEK_OK)); /* another key */
	/* and keys apart in lane 0 */
	rl_take(t, &lim, 3, 0, &r);
	assert_true(r.allowed);
	rl_take(t, &lim, 3, 0, &r);
	assert_false(r.allowed);
	rl_take(t, &lim, 4, 0, &r);
	assert_true(r.allowed);
	assert_true(rl_key(0, "a", 1) != rl_key(1, "a", 1));
	assert_true(rl_key(0, "a", 1) == rl_key(0, "a", 1));
	rl_table_free(t);
}

static void test_lanes_are_independent(void **state)
{
	(void)state;
	struct rl_table *t = rl_table_new(1024);
	struct rl_limit every = rl_limit_make(10, 1, 2), misses = rl_limit_make(1, 60, 1);
	struct rl_result r;
	/* lane 1 (404s) is untouched by lane 0's requests */
	for (int i = 0; i < 2; i++)
		assert_true((rl_take_and_peek(t, &every, &misses, 5, 0, &r) & RL_PEEK_OK) && r.allowed);
	assert_true((rl_take_and_peek(t, &every, &misses, 5, 0, &r) & RL_PEEK_OK));
	assert_false(r.allowed);
	rl_take_lane(t, &misses, 5, 1, 0, &r);
	assert_true(r.allowed);
	/* now the peek says no, and peeking again still takes nothing */
	assert_false((rl_take_and_peek(t, &every, &misses, 5, 10 * S, &r) & RL_PEEK_OK));
	assert_true(r.allowed);
	assert_false((rl_take_and_peek(t, &every, &misses, 5, 10 * S + 1, &r) & RL_PEEK_OK));
	assert_true((rl_take_and_peek(t, &every, &misses, 5, 60 * S, &r) & RL_PEEK_OK));
	rl_table_free(t);
}

/* A debt in lane 1 shows in the peek, and is paid back by rl_repay, no
 * further than a full bucket, and only as fast as the cap lane allows. */
static void test_debt_is_repaid_under_a_cap(void **state)
{
	(void)state;
	struct rl_table *t = rl_table_new(1024);
	struct rl_limit every = rl_limit_make(1000, 1, 1000), misses = rl_limit_make(1, 10, 2),
			cap = rl_limit_make(2, 1, 2);
	struct rl_result r;
	assert_int_equal(rl_take_and_peek(t, &every, &misses, 9, 0, &r), RL_PEEK_OK);
	rl_take_lane(t, &misses, 9, 1, 0, &r);
	rl_take_lane(t, &misses, 9, 1, 0, &r);
	assert_true(r.allowed);
	/* two 404s: lane 1 owes 20 s, and refuses */
	assert_int_equal(rl_take_and_peek(t, &every, &misses, 9, 0, &r), RL_PEEK_DEBT);
	rl_peek_lane(t, &misses, 9, 1, 0, &r);
	assert_false(r.allowed);
	assert_int_equal(r.reset_s, 20);
	/* repaid 5 s at a time, twice: the cap (2 at once) stops the third */
	for (int i = 0; i < 3; i++)
		rl_repay(t, 9, 1, 5 * S, &cap, 2, 0);
	rl_peek_lane(t, &misses, 9, 1, 0, &r);
	assert_int_equal(r.reset_s, 10);
	assert_true(r.allowed);
	/* half a second later the cap has room for one more */
	rl_repay(t, 9, 1, 5 * S, &cap, 2, S / 2);
	rl_peek_lane(t, &misses, 9, 1, S / 2, &r);
	assert_int_equal(r.reset_s, 5);
	/* never past a full bucket */
	rl_repay(t, 9, 1, 60 * S, &cap, 2, 2 * S);
	assert_int_equal(rl_take_and_peek(t, &every, &misses, 9, 2 * S, &r), RL_PEEK_OK);
	rl_take_lane(t, &misses, 9, 1, 2 * S, &r);
	rl_take_lane(t, &misses, 9, 1, 2 * S, &r);
	assert_true(r.allowed);
	rl_take_lane(t, &misses, 9, 1, 2 * S, &r);
	assert_false(r.allowed);
	/* a key without a slot owes nothing: nothing to repay */
	rl_repay(t, 12345, 1, 5 * S, &cap, 2, 0);
	rl_peek_lane(t, &misses, 12345, 1, 0, &r);
	assert_true(r.allowed);
	assert_int_equal(r.reset_s, 0);
	rl_table_free(t);
}

/* A charge counts even when refused: the debt grows, up to its cap. */
static void test_charges_grow_the_debt(void **state)
{
	(void)state;
	struct rl_table *t = rl_table_new(1024);
	struct rl_limit misses = rl_limit_make(1, 2, 2); /* one per 2 s, two at once */
	struct rl_result r;
	for (int i = 0; i < 2; i++) {
		rl_charge_lane(t, &misses, 4, 1, 60 * S, 0, &r);
		assert_true(r.allowed);
	}
	for (int i = 0; i < 10; i++) {
		rl_charge_lane(t, &misses, 4, 1, 60 * S, 0, &r);
		assert_false(r.allowed);
	}
	assert_int_equal(r.reset_s, 24); /* 12 charges of 2 s */
	/* still refused 10 s later: the refused ones count */
	rl_peek_lane(t, &misses, 4, 1, 10 * S, &r);
	assert_false(r.allowed);
	for (int i = 0; i < 100; i++)
		rl_charge_lane(t, &misses, 4, 1, 60 * S, 10 * S, &r);
	assert_int_equal(r.reset_s, 60); /* capped */
	rl_peek_lane(t, &misses, 4, 1, 68 * S, &r);
	assert_true(r.allowed);
	rl_table_free(t);
}

static void test_rate_zero_never_limits(void **state)
{
	(void)state;
	struct rl_table *t = rl_table_new(1024);
	struct rl_limit lim = rl_limit_make(0, 60, 5);
	struct rl_result r;
	for (int i = 0; i < 1000; i++) {
		rl_take(t, &lim, 9, 0, &r);
		assert_true(r.allowed);
	}
	assert_int_equal(rl_table_used(t, 0), 0);
	rl_table_free(t);
}

static void test_memory_bound_keeps_the_most_indebted(void **state)
{
	(void)state;
	struct rl_table *t = rl_table_new(1024); /* 64 shards x 16 slots */
	struct rl_limit lim = rl_limit_make(1, 1, 3);
	struct rl_result r;
	/* a scanner deep in debt */
	for (int i = 0; i < 3; i++)
		rl_take(t, &lim, 0xabcdef, 0, &r);
	rl_take(t, &lim, 0xabcdef, 0, &r);
	assert_false(r.allowed);
	/* a flood of new clients, one request each */
	for (uint64_t k = 1; k <= 100000; k++)
		rl_take(t, &lim, rl_key(0, &k, sizeof(k)), 0, &r);
	assert_true(rl_table_used(t, 0) <= 1024);
	/* the indebted one was not the one evicted */
	rl_take(t, &lim, 0xabcdef, 0, &r);
	assert_false(r.allowed);
	/* once time passes, every slot is free again */
	assert_int_equal(rl_table_used(t, 10 * S), 0);
	rl_table_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_burst_then_one_per_interval),
		cmocka_unit_test(test_retry_after_rounds_up),
		cmocka_unit_test(test_keys_are_independent_and_peek_is_free),
		cmocka_unit_test(test_lanes_are_independent),
		cmocka_unit_test(test_debt_is_repaid_under_a_cap),
		cmocka_unit_test(test_charges_grow_the_debt),
		cmocka_unit_test(test_rate_zero_never_limits),
		cmocka_unit_test(test_memory_bound_keeps_the_most_indebted),
	};
	return cmocka_run_group_tests_name("ratelimit", tests, NULL, NULL);
}
