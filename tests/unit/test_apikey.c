/* Unit tests for auth/apikey: verification, with and without a memo. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "auth/apikey.h"

static void make(struct api_key *k, char key[APIKEY_LEN + 1])
{
	memset(k, 0, sizeof(*k));
	assert_int_equal(apikey_generate(k, key, APIKEY_LEN + 1), 0);
	char id[APIKEY_ID_LEN + 1];
	assert_int_equal(apikey_parse(key, APIKEY_LEN, id), 0);
	assert_string_equal(id, k->key_id);
}

static void test_verify(void **state)
{
	(void)state;
	struct api_key k;
	char key[APIKEY_LEN + 1];
	make(&k, key);
	assert_true(apikey_verify(&k, key, APIKEY_LEN));
	char wrong[APIKEY_LEN + 1];
	memcpy(wrong, key, sizeof(wrong));
	wrong[APIKEY_LEN - 1] = wrong[APIKEY_LEN - 1] == 'a' ? 'b' : 'a';
	assert_false(apikey_verify(&k, wrong, APIKEY_LEN));
	assert_false(apikey_verify(&k, key, APIKEY_LEN - 1));
	k.revoked_at_ms = 1;
	assert_false(apikey_verify(&k, key, APIKEY_LEN));
}

static void test_memo_answers_as_hashing_does(void **state)
{
	(void)state;
	struct apikey_memo memo[APIKEY_MEMO_SLOTS];
	memset(memo, 0, sizeof(memo));
	struct api_key k;
	char key[APIKEY_LEN + 1], wrong[APIKEY_LEN + 1];
	make(&k, key);
	memcpy(wrong, key, sizeof(wrong));
	wrong[APIKEY_LEN - 1] = wrong[APIKEY_LEN - 1] == 'a' ? 'b' : 'a';

	/* a wrong secret first: nothing is remembered */
	assert_false(apikey_verify_memo(memo, &k, wrong, APIKEY_LEN));
	for (int i = 0; i < APIKEY_MEMO_SLOTS; i++)
		assert_false(memo[i].used);
	/* the right one, then again from the memo; a wrong one after it */
	assert_true(apikey_verify_memo(memo, &k, key, APIKEY_LEN));
	int used = 0;
	for (int i = 0; i < APIKEY_MEMO_SLOTS; i++)
		used += memo[i].used;
	assert_int_equal(used, 1);
	assert_true(apikey_verify_memo(memo, &k, key, APIKEY_LEN));
	assert_false(apikey_verify_memo(memo, &k, wrong, APIKEY_LEN));
	assert_true(apikey_verify_memo(memo, &k, key, APIKEY_LEN));
	/* revoked: refused though remembered */
	k.revoked_at_ms = 5;
	assert_false(apikey_verify_memo(memo, &k, key, APIKEY_LEN));
	k.revoked_at_ms = 0;

	/* the row now holds another key with the same id (its hash moved):
	 * the remembered key no longer passes, the new one does */
	struct api_key k2;
	char key2[APIKEY_LEN + 1];
	make(&k2, key2);
	memcpy(key2 + sizeof(APIKEY_PREFIX) - 1, k.key_id, APIKEY_ID_LEN);
	memcpy(k2.key_id, k.key_id, sizeof(k.key_id));
	apikey_sha256(key2, APIKEY_LEN, k2.hash);
	assert_false(apikey_verify_memo(memo, &k2, key, APIKEY_LEN));
	assert_true(apikey_verify_memo(memo, &k2, key2, APIKEY_LEN));
	assert_false(apikey_verify_memo(memo, &k2, key, APIKEY_LEN));

	/* many keys: each still verifies (slots are shared, not trusted) */
	struct api_key many[3 * APIKEY_MEMO_SLOTS];
	char keys[3 * APIKEY_MEMO_SLOTS][APIKEY_LEN + 1];
	for (int i = 0; i < 3 * APIKEY_MEMO_SLOTS; i++)
		make(&many[i], keys[i]);
	for (int round = 0; round < 2; round++)
		for (int i = 0; i < 3 * APIKEY_MEMO_SLOTS; i++) {
			assert_true(apikey_verify_memo(memo, &many[i], keys[i], APIKEY_LEN));
			int j = (i + 1) % (3 * APIKEY_MEMO_SLOTS);
			assert_false(apikey_verify_memo(memo, &many[i], keys[j], APIKEY_LEN));
		}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verify),
		cmocka_unit_test(test_memo_answers_as_hashing_does),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
