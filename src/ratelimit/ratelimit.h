/*
 * ratelimit: GCRA (the generic cell rate algorithm, a token bucket kept as
 * one timestamp) per key, in process, in bounded memory.
 *
 * A limit is `rate` requests per `period`, with bursts of up to `burst`.
 * Each key keeps only its theoretical arrival time (TAT): the moment its
 * bucket would be full again. A request at `now` is allowed when
 *     max(TAT, now) + T - now <= T * burst        (T = period / rate)
 * and then TAT becomes max(TAT, now) + T. A key whose TAT has passed holds
 * a full bucket, which is the same as holding nothing: such slots are free.
 *
 * Memory: a table of `entries` slots (32 bytes each: a 64-bit key hash and
 * RL_LANES TATs in microseconds) in 64 shards, each with its own lock. A
 * key has RL_LANES independent buckets ("lanes"), so the limits on one
 * client (every request, its 404s, and how fast its valid requests may
 * pay its 404s back) cost one lookup together. A key may
 * sit in any of RL_WAYS slots after its hash; a new key takes a free slot
 * there, or else evicts the slot with the smallest TAT (the client nearest
 * to a full bucket), so memory never grows and a flood of new keys costs
 * the least-indebted clients their debt, nothing more. Keys are hashes:
 * two keys colliding in 64 bits share a bucket.
 *
 * Times are passed in (microseconds on any monotonic clock), so the math is
 * tested with a fake clock.
 */
#ifndef SHORTD_RATELIMIT_H
#define SHORTD_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "core/metrics.h"

#define RL_WAYS 8
#define RL_LANES 3

struct rl_limit {
	int64_t interval_us; /* T: one request's worth of time; 0: no limit */
	int64_t burst;       /* requests allowed at once */
};

/* rate per period_s, burst; rate 0 gives a limit that never limits. */
struct rl_limit rl_limit_make(long rate, long period_s, long burst);

/* What a check found, for the RateLimit-* and Retry-After headers. */
struct rl_result {
	int allowed;
	int64_t limit;         /* the burst */
	int64_t remaining;     /* requests left right now, after this one */
	int64_t reset_s;       /* seconds until the bucket is full again */
	int64_t retry_after_s; /* refused: seconds until one is allowed */
};

struct rl_table;

/* entries: total slots (rounded up to a multiple of 64 * RL_WAYS). */
struct rl_table *rl_table_new(size_t entries);
void rl_table_free(struct rl_table *t);

/* Counts one request of key in lane 0 against lim at now_us. */
void rl_take(struct rl_table *t, const struct rl_limit *lim, uint64_t key, int64_t now_us,
	     struct rl_result *out);
/* The same in any lane (0 .. RL_LANES-1). */
void rl_take_lane(struct rl_table *t, const struct rl_limit *lim, uint64_t key, int lane,
		  int64_t now_us, struct rl_result *out);
/* Counts one request in lane 0 against lim (out), and says what lane 1
 * holds against peek (without counting anything there): RL_PEEK_OK if it
 * would allow a request, RL_PEEK_DEBT if it is not full. One lookup. */
enum { RL_PEEK_OK = 1, RL_PEEK_DEBT = 2 };
int rl_take_and_peek(struct rl_table *t, const struct rl_limit *lim, const struct rl_limit *peek,
		     uint64_t key, int64_t now_us, struct rl_result *out);
/* Counts one request in lane against lim even when refused: a refused
 * request adds to the debt too (the bucket's TAT moves on by T each
 * time, up to max_debt_us ahead of now), so a client that goes on asking
 * while refused stays refused. out says whether it was allowed. */
void rl_charge_lane(struct rl_table *t, const struct rl_limit *lim, uint64_t key, int lane,
		    int64_t max_debt_us, int64_t now_us, struct rl_result *out);
/* What lane holds against lim at now_us, counting nothing. */
void rl_peek_lane(struct rl_table *t, const struct rl_limit *lim, uint64_t key, int lane,
		  int64_t now_us, struct rl_result *out);
/* Pays amount_us of lane's debt back (never past a full bucket), if the
 * request is allowed in cap_lane against cap: what repays a debt is
 * itself limited. */
void rl_repay(struct rl_table *t, uint64_t key, int lane, int64_t amount_us,
	      const struct rl_limit *cap, int cap_lane, int64_t now_us);
/* Slots in use (TAT in the future) at now_us: for tests and metrics. */
size_t rl_table_used(struct rl_table *t, int64_t now_us);

/* A key for (limiter, bytes): limiters share one table. */
uint64_t rl_key(unsigned limiter, const void *bytes, size_t n);

#endif
