/*
 * ratelimit: see ratelimit.h for the algorithm and the memory bound.
 */
#include "ratelimit.h"
#include "core/util.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SHARDS 64

struct slot {
	uint64_t key; /* 0: never used */
	int64_t tat_us[RL_LANES];
};

/* A slot's weight when choosing whom to forget: its largest debt. */
static int64_t slot_tat(const struct slot *s)
{
	int64_t m = s->tat_us[0];
	for (int i = 1; i < RL_LANES; i++)
		if (s->tat_us[i] > m)
			m = s->tat_us[i];
	return m;
}

struct shard {
	pthread_mutex_t lock;
	struct slot *slots;
	size_t mask; /* slots - 1, a power of two */
} __attribute__((aligned(64)));

struct rl_table {
	struct shard shards[SHARDS];
};

struct rl_limit rl_limit_make(long rate, long period_s, long burst)
{
	struct rl_limit l = {0, 0};
	if (rate <= 0)
		return l;
	l.interval_us = (int64_t)period_s * 1000000 / rate;
	if (l.interval_us < 1)
		l.interval_us = 1;
	l.burst = burst > 0 ? burst : 1;
	return l;
}

struct rl_table *rl_table_new(size_t entries)
{
	struct rl_table *t;
	if (posix_memalign((void **)&t, 64, sizeof(*t)) != 0)
		abort();
	size_t per = RL_WAYS;
	while (per * SHARDS < entries)
		per *= 2;
	for (int i = 0; i < SHARDS; i++) {
		pthread_mutex_init(&t->shards[i].lock, NULL);
		t->shards[i].slots = xcalloc(per, sizeof(struct slot));
		t->shards[i].mask = per - 1;
	}
	return t;
}

void rl_table_free(struct rl_table *t)
{
	if (!t)
		return;
	for (int i = 0; i < SHARDS; i++) {
		pthread_mutex_destroy(&t->shards[i].lock);
		free(t->shards[i].slots);
	}
	free(t);
}

uint64_t rl_key(unsigned limiter, const void *bytes, size_t n)
{
	/* not a secret hash, but an attacker only chooses keys within its own
	 * addresses; 0 marks an unused slot */
	uint64_t h = hash_bytes(bytes, n, limiter);
	return h ? h : 1;
}

/* The slot of key in its shard (locked by the caller), or NULL. */
static struct slot *lookup(struct shard *sh, uint64_t key)
{
	size_t base = (size_t)(key >> 6);
	for (size_t i = 0; i < RL_WAYS; i++) {
		struct slot *s = &sh->slots[(base + i) & sh->mask];
		if (s->key == key)
			return s;
	}
	return NULL;
}

/* The slot of key: its own, or else the one of its RL_WAYS with the
 * smallest TAT, which it takes over. A victim whose debts are all paid
 * (TAT <= now) was free: nothing is lost. */
static struct slot *find(struct shard *sh, uint64_t key)
{
	struct slot *victim = lookup(sh, key);
	if (victim)
		return victim;
	size_t base = (size_t)(key >> 6);
	for (size_t i = 0; i < RL_WAYS; i++) {
		struct slot *s = &sh->slots[(base + i) & sh->mask];
		if (!victim || slot_tat(s) < slot_tat(victim))
			victim = s;
	}
	victim->key = key;
	memset(victim->tat_us, 0, sizeof(victim->tat_us));
	return victim;
}

/* The result of a request; a limit that does not limit allows all. */
static void fill(struct rl_result *out, const struct rl_limit *lim, int64_t tat, int64_t now_us,
		 int allowed)
{
	if (!lim->interval_us) {
		memset(out, 0, sizeof(*out));
		out->allowed = 1;
		return;
	}
	int64_t window = lim->interval_us * lim->burst;
	int64_t debt = tat > now_us ? tat - now_us : 0;
	out->allowed = allowed;
	out->limit = lim->burst;
	out->remaining = debt >= window ? 0 : (window - debt) / lim->interval_us;
	out->reset_s = (debt + 999999) / 1000000;
	out->retry_after_s = 0;
	if (!allowed) {
		/* allowed again once max(TAT, now) + T - now <= window */
		int64_t wait = debt + lim->interval_us - window;
		out->retry_after_s = wait > 0 ? (wait + 999999) / 1000000 : 1;
	}
}

/* Lane state after one request at now_us: allowed or not, TAT updated. */
static int take(int64_t *tat, const struct rl_limit *lim, int64_t now_us)
{
	int64_t start = *tat > now_us ? *tat : now_us;
	int64_t next = start + lim->interval_us;
	int allowed = next - now_us <= lim->interval_us * lim->burst;
	if (allowed)
		*tat = next;
	return allowed;
}

static int would_allow(int64_t tat, const struct rl_limit *lim, int64_t now_us)
{
	int64_t start = tat > now_us ? tat : now_us;
	return !lim->interval_us || start + lim->interval_us - now_us <= lim->interval_us * lim->burst;
}

void rl_take_lane(struct rl_table *t, const struct rl_limit *lim, uint64_t key, int lane,
		  int64_t now_us, struct rl_result *out)
{
	if (!lim->interval_us) {
		fill(out, lim, 0, now_us, 1);
		return;
	}
	struct shard *sh = &t->shards[key & (SHARDS - 1)];
	pthread_mutex_lock(&sh->lock);
	struct slot *s = find(sh, key);
	int allowed = take(&s->tat_us[lane], lim, now_us);
	int64_t tat = s->tat_us[lane];
	pthread_mutex_unlock(&sh->lock);
	fill(out, lim, tat, now_us, allowed);
}

void rl_take(struct rl_table *t, const struct rl_limit *lim, uint64_t key, int64_t now_us,
	     struct rl_result *out)
{
	rl_take_lane(t, lim, key, 0, now_us, out);
}

int rl_take_and_peek(struct rl_table *t, const struct rl_limit *lim, const struct rl_limit *peek_lim,
		     uint64_t key, int64_t now_us, struct rl_result *out)
{
	struct shard *sh = &t->shards[key & (SHARDS - 1)];
	pthread_mutex_lock(&sh->lock);
	struct slot *s = find(sh, key);
	int allowed = !lim->interval_us || take(&s->tat_us[0], lim, now_us);
	int64_t tat = s->tat_us[0];
	int peek = (would_allow(s->tat_us[1], peek_lim, now_us) ? RL_PEEK_OK : 0) |
		   (s->tat_us[1] > now_us ? RL_PEEK_DEBT : 0);
	pthread_mutex_unlock(&sh->lock);
	fill(out, lim, tat, now_us, allowed);
	return peek;
}

void rl_charge_lane(struct rl_table *t, const struct rl_limit *lim, uint64_t key, int lane,
		    int64_t max_debt_us, int64_t now_us, struct rl_result *out)
{
	if (!lim->interval_us) {
		fill(out, lim, 0, now_us, 1);
		return;
	}
	struct shard *sh = &t->shards[key & (SHARDS - 1)];
	pthread_mutex_lock(&sh->lock);
	struct slot *s = find(sh, key);
	int64_t *tat = &s->tat_us[lane];
	int allowed = would_allow(*tat, lim, now_us);
	*tat = (*tat > now_us ? *tat : now_us) + lim->interval_us;
	if (*tat - now_us > max_debt_us)
		*tat = now_us + max_debt_us;
	int64_t v = *tat;
	pthread_mutex_unlock(&sh->lock);
	fill(out, lim, v, now_us, allowed);
}

void rl_peek_lane(struct rl_table *t, const struct rl_limit *lim, uint64_t key, int lane,
		  int64_t now_us, struct rl_result *out)
{
	struct shard *sh = &t->shards[key & (SHARDS - 1)];
	pthread_mutex_lock(&sh->lock);
	struct slot *s = lookup(sh, key);
	int64_t tat = s ? s->tat_us[lane] : 0;
	pthread_mutex_unlock(&sh->lock);
	fill(out, lim, tat, now_us, would_allow(tat, lim, now_us));
}

void rl_repay(struct rl_table *t, uint64_t key, int lane, int64_t amount_us,
	      const struct rl_limit *cap, int cap_lane, int64_t now_us)
{
	struct shard *sh = &t->shards[key & (SHARDS - 1)];
	pthread_mutex_lock(&sh->lock);
	struct slot *s = lookup(sh, key); /* no slot: no debt */
	if (s && s->tat_us[lane] > now_us &&
	    (!cap->interval_us || take(&s->tat_us[cap_lane], cap, now_us))) {
		s->tat_us[lane] -= amount_us;
		if (s->tat_us[lane] < now_us)
			s->tat_us[lane] = now_us;
	}
	pthread_mutex_unlock(&sh->lock);
}

size_t rl_table_used(struct rl_table *t, int64_t now_us)
{
	size_t used = 0;
	for (int i = 0; i < SHARDS; i++) {
		struct shard *sh = &t->shards[i];
		pthread_mutex_lock(&sh->lock);
		for (size_t j = 0; j <= sh->mask; j++)
			used += sh->slots[j].key && slot_tat(&sh->slots[j]) > now_us;
		pthread_mutex_unlock(&sh->lock);
	}
	return used;
}
