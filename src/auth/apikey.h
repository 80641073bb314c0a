/*
 * apikey: API keys, their format, hashing and verification. No HTTP and
 * no storage here (the store keeps struct api_key rows; app/auth.c asks).
 *
 * A key reads  shortd_<id>_<secret>  where <id> is APIKEY_ID_LEN base62
 * characters, public, which finds the row, and <secret> is
 * APIKEY_SECRET_LEN base62 characters from the OS RNG (about 190 bits).
 * Only SHA-256 of the whole key is stored; the key itself is shown once,
 * when it is made. Verification compares hashes in constant time, so the
 * time taken says nothing about how much of a guess was right.
 */
#ifndef SHORTD_APIKEY_H
#define SHORTD_APIKEY_H

#include <stddef.h>
#include <stdint.h>

#define APIKEY_PREFIX "shortd_"
#define APIKEY_ID_LEN 10
#define APIKEY_SECRET_LEN 32
/* prefix, id, '_', secret */
#define APIKEY_LEN (sizeof(APIKEY_PREFIX) - 1 + APIKEY_ID_LEN + 1 + APIKEY_SECRET_LEN)
#define APIKEY_NAME_MAX 64
/* A name: 1 to 64 bytes of printable UTF-8 (util.h, text_printable). */
#define APIKEY_NAME_RULE "must be 1 to 64 bytes of UTF-8 text without control characters"

enum apikey_role { APIKEY_USER = 1, APIKEY_ADMIN = 2 };

struct api_key {
	int64_t id;                     /* row id: links.owner refers to it */
	char key_id[APIKEY_ID_LEN + 1]; /* public part of the key */
	char name[APIKEY_NAME_MAX + 1];
	int role;                       /* enum apikey_role */
	uint8_t hash[32];               /* SHA-256 of the whole key */
	int64_t created_at_ms;
	int64_t revoked_at_ms;          /* 0: valid */
};

/* Makes a new key: fills k (id, key_id, hash; the caller sets the rest) and
 * writes the key itself, NUL-terminated, to out (cap > APIKEY_LEN).
 * Returns 0, or -1 if the RNG failed. */
int apikey_generate(struct api_key *k, char *out, size_t cap);
/* 0 and the public id (NUL-terminated) if s has the shape of a key; -1 if
 * not. */
int apikey_parse(const char *s, size_t len, char id[APIKEY_ID_LEN + 1]);
/* 1 if s (a key) hashes to k->hash and k is not revoked. Constant time in
 * the secret. */
int apikey_verify(const struct api_key *k, const char *s, size_t len);

/* Keys a thread has verified: with one, apikey_verify_memo() compares the
 * key sent with the one that was hashed before (in constant time) instead
 * of hashing it again, as long as the row's hash is the same. Hashing was
 * about 3% of an API create. Zeroed: empty. */
#define APIKEY_MEMO_SLOTS 8
struct apikey_memo {
	char key[APIKEY_LEN];
	uint8_t hash[32];
	unsigned char used;
};
/* apikey_verify(), remembering in memo (APIKEY_MEMO_SLOTS of them). */
int apikey_verify_memo(struct apikey_memo *memo, const struct api_key *k, const char *s,
		       size_t len);
void apikey_sha256(const void *p, size_t n, uint8_t out[32]);
/* "admin", "user" and back; 0 for an unknown name. */
const char *apikey_role_name(int role);
int apikey_role_parse(const char *s);

#endif
