/*
 * apikey: see apikey.h.
 */
#include "apikey.h"
#include "core/idgen.h"
#include "core/util.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <string.h>

void apikey_sha256(const void *p, size_t n, uint8_t out[32])
{
	unsigned int len = 32;
	/* EVP_Digest fails only on allocation failure inside OpenSSL; a zero
	 * hash then matches no stored key. */
	if (EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) != 1)
		memset(out, 0, 32);
}

int apikey_generate(struct api_key *k, char *out, size_t cap)
{
	const size_t plen = sizeof(APIKEY_PREFIX) - 1;
	if (cap <= APIKEY_LEN)
		return -1;
	memcpy(out, APIKEY_PREFIX, plen);
	if (code_random(out + plen, APIKEY_ID_LEN) != 0)
		return -1;
	out[plen + APIKEY_ID_LEN] = '_';
	if (code_random(out + plen + APIKEY_ID_LEN + 1, APIKEY_SECRET_LEN) != 0)
		return -1;
	out[APIKEY_LEN] = '\0';
	memcpy(k->key_id, out + plen, APIKEY_ID_LEN);
	k->key_id[APIKEY_ID_LEN] = '\0';
	apikey_sha256(out, APIKEY_LEN, k->hash);
	return 0;
}

static int base62_char(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

int apikey_parse(const char *s, size_t len, char id[APIKEY_ID_LEN + 1])
{
	const size_t plen = sizeof(APIKEY_PREFIX) - 1;
	if (len != APIKEY_LEN || memcmp(s, APIKEY_PREFIX, plen) != 0 ||
	    s[plen + APIKEY_ID_LEN] != '_')
		return -1;
	for (size_t i = plen; i < len; i++)
		if (i != plen + APIKEY_ID_LEN && !base62_char((unsigned char)s[i]))
			return -1;
	memcpy(id, s + plen, APIKEY_ID_LEN);
	id[APIKEY_ID_LEN] = '\0';
	return 0;
}

/* 1 if s hashes to k->hash; constant time in the secret. */
static int hashes_to(const struct api_key *k, const char *s, size_t len)
{
	uint8_t h[32];
	apikey_sha256(s, len, h);
	return CRYPTO_memcmp(h, k->hash, sizeof(h)) == 0;
}

int apikey_verify(const struct api_key *k, const char *s, size_t len)
{
	return hashes_to(k, s, len) && k->revoked_at_ms == 0;
}

int apikey_verify_memo(struct apikey_memo *memo, const struct api_key *k, const char *s,
		       size_t len)
{
	if (len != APIKEY_LEN)
		return apikey_verify(k, s, len);
	struct apikey_memo *m =
		&memo[hash_bytes(k->key_id, strlen(k->key_id), 0) % APIKEY_MEMO_SLOTS];
	int same;
	if (m->used && memcmp(m->hash, k->hash, sizeof(m->hash)) == 0) {
		/* m->key hashes to k->hash: only the same key does */
		same = CRYPTO_memcmp(m->key, s, APIKEY_LEN) == 0;
	} else if ((same = hashes_to(k, s, len))) {
		memcpy(m->key, s, APIKEY_LEN);
		memcpy(m->hash, k->hash, sizeof(m->hash));
		m->used = 1;
	}
	return same && k->revoked_at_ms == 0;
}

const char *apikey_role_name(int role)
{
	return role == APIKEY_ADMIN ? "admin" : role == APIKEY_USER ? "user" : "unknown";
}

int apikey_role_parse(const char *s)
{
	if (strcmp(s, "admin") == 0)
		return APIKEY_ADMIN;
	if (strcmp(s, "user") == 0)
		return APIKEY_USER;
	return 0;
}
