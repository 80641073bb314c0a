/* Unit test: the click aggregator's flush and merge state machine, driven
 * through a scripted store backend that holds each op until the test
 * completes it (with success or a failure), and that applies merges the
 * way the SQLite backend does. Covers: a key clicked again while its delta
 * is in flight, a failed delta kept and retried, a failed merge retried,
 * a query whose store read is answered after a merge overtook it, and
 * counts that never go backwards or double up through any of it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clicks/clicks.h"

static const char UA[] = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";
#define LINK 7
#define NOW_MS 1767913200000LL

struct script {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct store_op *held[16];
	int nheld;
	uint64_t seq;          /* last merge applied */
	uint64_t merged_humans; /* hour counters merged, for LINK */
	uint64_t merged_day;    /* day counters merged, for LINK */
	int merges_applied;
	int defer_reads;             /* answer the next read later */
	struct store_read *deferred; /* (answered by the test) */
};
static struct script sc = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

/* No op held, nothing merged: a test's first step. */
static void script_reset(void)
{
	memset(&sc.held, 0, sizeof(sc.held));
	sc.nheld = 0;
	sc.seq = sc.merged_humans = sc.merged_day = 0;
	sc.merges_applied = 0;
	sc.defer_reads = 0;
	sc.deferred = NULL;
}

static void fake_submit(struct store *s, struct store_op *op)
{
	(void)s;
	pthread_mutex_lock(&sc.lock);
	sc.held[sc.nheld++] = op;
	pthread_cond_broadcast(&sc.cond);
	pthread_mutex_unlock(&sc.lock);
}

/* The merged counters as they are now, the way a snapshot holds them. */
static void read_merged(int64_t link_id, struct click_rows *out)
{
	pthread_mutex_lock(&sc.lock);
	out->seq = sc.seq;
	if (link_id == LINK && sc.merged_humans) {
		out->rows = calloc(2, sizeof(*out->rows));
		out->rows[0].link_id = out->rows[1].link_id = LINK;
		out->rows[0].kind = STORE_CLICK_HOUR;
		out->rows[0].bucket = (int32_t)(NOW_MS / 3600000);
		out->rows[0].humans = sc.merged_humans;
		out->rows[1].kind = STORE_CLICK_DAY;
		out->rows[1].bucket = (int32_t)(NOW_MS / 86400000);
		out->rows[1].humans = sc.merged_day;
		out->n = 2;
	}
	pthread_mutex_unlock(&sc.lock);
}

/* Reads the snapshot now; with defer_reads, answers it later (the test
 * calls answer_deferred), as a network store would. */
static int fake_read(struct store_reader *r, struct store_read *rd)
{
	(void)r;
	assert_int_equal(rd->kind, STORE_READ_CLICKS);
	read_merged(rd->link_id, &rd->clicks);
	if (sc.defer_reads) {
		sc.defer_reads = 0;
		sc.deferred = rd;
		return STORE_AGAIN;
	}
	return STORE_OK;
}

static void answer_deferred(void)
{
	struct store_read *rd = sc.deferred;
	sc.deferred = NULL;
	rd->status = STORE_OK;
	rd->done(rd);
}

static int fake_click_deltas(struct store_reader *r, uint64_t after,
			     void (*fn)(void *, uint64_t, const void *, size_t), void *ctx)
{
	(void)r, (void)after, (void)fn, (void)ctx;
	return STORE_OK;
}

static const struct store_ops fake_ops = {
	.name = "scripted",
	.submit = fake_submit,
	.read = fake_read,
	.click_deltas = fake_click_deltas,
};

static struct store fake_store = {.ops = &fake_ops};

/* An aggregator started on the scripted store, the script reset: it
 * flushes every flush_ms and merges every merge_ms. */
static struct clicks *start(int flush_ms, int merge_ms)
{
	script_reset();
	struct clicks *c = clicks_new(&fake_store, 1, flush_ms, merge_ms, NULL);
	assert_int_equal(clicks_start(c, NULL), 0);
	return c;
}

/* Waits for the next op the aggregator submits; returns it, still held. */
static struct store_op *next_op(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 5;
	pthread_mutex_lock(&sc.lock);
	while (sc.nheld == 0)
		if (pthread_cond_timedwait(&sc.cond, &sc.lock, &ts) != 0)
			break;
	struct store_op *op = sc.nheld ? sc.held[0] : NULL;
	if (op) {
		memmove(sc.held, sc.held + 1, (size_t)(--sc.nheld) * sizeof(sc.held[0]));
	}
	pthread_mutex_unlock(&sc.lock);
	assert_non_null(op);
	return op;
}

/* Completes op as the SQLite backend would (merges are applied). */
static void complete(struct store_op *op, int status)
{
	if (status == STORE_OK && op->kind == STORE_OP_CLICK_MERGE) {
		pthread_mutex_lock(&sc.lock);
		for (size_t i = 0; i < op->nclicks; i++) {
			if (op->clicks[i].link_id != LINK)
				continue;
			if (op->clicks[i].kind == STORE_CLICK_HOUR)
				sc.merged_humans += op->clicks[i].humans;
			else
				sc.merged_day += op->clicks[i].humans;
		}
		sc.seq = op->click_seq;
		sc.merges_applied++;
		pthread_mutex_unlock(&sc.lock);
	}
	op->status = status;
	op->done(op);
}

/* A query answered at once (the scripted store answers at once unless
 * told otherwise). */
static int clicks_query(struct clicks *c, struct store_reader *r, int64_t link, int32_t from,
			int32_t to, int want_dims, struct click_rows *out)
{
	struct clicks_query q = {.link_id = link, .from_hour = from, .to_hour = to,
				 .want_dims = want_dims};
	int rc = clicks_query_start(c, r, &q);
	assert_int_not_equal(rc, STORE_AGAIN);
	*out = q.rows;
	return rc;
}

/* Hour and day humans of `link` over [from, to] hours, as a query sees them. */
static void range_sums(struct clicks *c, int64_t link, int32_t from, int32_t to, uint64_t *h,
		       uint64_t *d)
{
	struct click_rows rows;
	assert_int_equal(clicks_query(c, NULL, link, from, to, 1, &rows), STORE_OK);
	*h = *d = 0;
	for (size_t i = 0; i < rows.n; i++) {
		assert_int_equal(rows.rows[i].link_id, link);
		if (rows.rows[i].kind == STORE_CLICK_HOUR)
			*h += rows.rows[i].humans;
		else
			*d += rows.rows[i].humans;
	}
	free(rows.rows);
}

/* Every click of `link` a query sees, checking its hour and day counts agree. */
static uint64_t humans_of(struct clicks *c, int64_t link)
{
	uint64_t h, day;
	range_sums(c, link, 0, INT32_MAX - 1, &h, &day);
	assert_int_equal(h, day); /* the two counters of a click agree */
	return h;
}

static uint64_t humans_now(struct clicks *c)
{
	return humans_of(c, LINK);
}

static void *stop_thread(void *c)
{
	clicks_stop(c);
	return NULL;
}

static void clickn(struct click_ring *r, int n)
{
	for (int i = 0; i < n; i++)
		clicks_record(r, LINK, NOW_MS, UA, sizeof(UA) - 1, NULL, 0, NULL);
}

static void test_flush_and_merge_paths(void **state)
{
	(void)state;
	struct clicks *c = start(10, 50);
	struct click_ring *r = clicks_ring(c, 0);

	clickn(r, 5);
	struct store_op *d1 = next_op();
	assert_int_equal(d1->kind, STORE_OP_CLICK_DELTA);
	assert_true(d1->blob_len > 0);
	uint64_t seq1 = d1->click_seq; /* the aggregator reuses its op */
	clickn(r, 3); /* the same keys again, while their delta is in flight */
	assert_int_equal(humans_now(c), 8);
	complete(d1, STORE_ERR); /* the 5 must not be lost */
	assert_int_equal(humans_now(c), 8);

	struct store_op *d2 = next_op(); /* the retry carries all 8 */
	assert_int_equal(d2->kind, STORE_OP_CLICK_DELTA);
	assert_true(d2->click_seq > seq1);
	assert_int_equal(humans_now(c), 8);
	complete(d2, STORE_OK);
	assert_int_equal(humans_now(c), 8);

	struct store_op *m1 = next_op();
	assert_int_equal(m1->kind, STORE_OP_CLICK_MERGE);
	assert_int_equal(m1->nclicks, 2); /* one hour counter, one day combination */
	assert_int_equal(m1->click_seq, d2->click_seq);
	clickn(r, 2); /* pending while the merge is in flight */
	assert_int_equal(humans_now(c), 10);
	complete(m1, STORE_ERR); /* durable counts stay in memory */
	assert_int_equal(humans_now(c), 10);

	/* The next flush and merge go through; nothing doubles. */
	struct store_op *d3 = next_op();
	assert_int_equal(d3->kind, STORE_OP_CLICK_DELTA);
	complete(d3, STORE_OK);
	struct store_op *m2 = next_op();
	assert_int_equal(m2->kind, STORE_OP_CLICK_MERGE);
	assert_int_equal(humans_now(c), 10);
	complete(m2, STORE_OK);
	assert_int_equal(sc.merged_humans, 10);
	assert_int_equal(humans_now(c), 10); /* now all from the tables */

	/* the aggregator applies a finished op after its done() returns */
	struct clicks_stats st;
	for (int i = 0; i < 500; i++) {
		clicks_get_stats(c, &st);
		if (st.merges == 1)
			break;
		usleep(10000);
	}
	assert_int_equal(st.recorded, 10);
	assert_int_equal(st.flushed, 10);
	assert_int_equal(st.flush_errors, 1);
	assert_int_equal(st.merges, 1);
	assert_int_equal(st.merge_errors, 1);
	assert_int_equal(st.pending, 0);
	assert_int_equal(st.unmerged_counters, 0);

	/* Shutdown appends what is pending, and waits for it. */
	clickn(r, 4);
	pthread_t t;
	struct store_op *last = NULL;
	pthread_create(&t, NULL, stop_thread, c);
	for (;;) { /* the aggregator may still flush or merge before stopping */
		struct store_op *op = next_op();
		if (op->kind == STORE_OP_CLICK_DELTA) {
			last = op;
			complete(op, STORE_OK);
			break;
		}
		complete(op, STORE_OK);
	}
	pthread_join(t, NULL);
	assert_non_null(last);
	clicks_get_stats(c, &st);
	assert_int_equal(st.flushed, 14);
	clicks_free(c);
}

static void on_query_done(struct clicks_query *q)
{
	*(int *)q->data = 1;
}

/* A query reads the store without the aggregator's lock, and a network
 * store answers later: here its snapshot is taken before a merge commits,
 * and answered after the merge's counts have left memory. Added up as it
 * stands, that snapshot would miss the merged clicks; the query notices
 * the merge and reads again. */
static void test_query_overtaken_by_a_merge(void **state)
{
	(void)state;
	struct clicks *c = start(10, 50);
	struct click_ring *r = clicks_ring(c, 0);
	clickn(r, 5);
	struct store_op *d1 = next_op();
	assert_int_equal(d1->kind, STORE_OP_CLICK_DELTA);
	complete(d1, STORE_OK);
	struct store_op *m1 = next_op();
	assert_int_equal(m1->kind, STORE_OP_CLICK_MERGE);

	int done = 0;
	struct clicks_query q = {.link_id = LINK, .from_hour = 0, .to_hour = INT32_MAX - 1,
				 .want_dims = 1, .done = on_query_done, .data = &done};
	sc.defer_reads = 1;
	assert_int_equal(clicks_query_start(c, NULL, &q), STORE_AGAIN);
	complete(m1, STORE_OK); /* the merge commits after the snapshot */
	struct clicks_stats st;
	for (int i = 0; i < 500; i++) { /* ... and its counts leave memory */
		clicks_get_stats(c, &st);
		if (st.merges == 1)
			break;
		usleep(10000);
	}
	assert_int_equal(st.merges, 1);
	answer_deferred();
	assert_int_equal(done, 1);
	assert_int_equal(q.status, STORE_OK);
	uint64_t hours = 0, days = 0;
	for (size_t i = 0; i < q.rows.n; i++) {
		if (q.rows.rows[i].kind == STORE_CLICK_HOUR)
			hours += q.rows.rows[i].humans;
		else
			days += q.rows.rows[i].humans;
	}
	free(q.rows.rows);
	assert_int_equal(hours, 5);
	assert_int_equal(days, 5);

	pthread_t t;
	pthread_create(&t, NULL, stop_thread, c);
	pthread_join(t, NULL);
	clicks_free(c);
}

/* Many links and combinations: link L is clicked once with combination
 * L % 5 (referrer host and device), then, while the merge of those is in
 * flight, once with a new referrer host. The merge rows carry each key's
 * own strings, and so do the counters kept across the merge (the table
 * and its interned combinations are rebuilt then). */
#define MANY 5000 /* 10,000 nodes: three chunks of them, and the table grown twice */
#define FIRST_LINK 100
static const char UA_PHONE[] = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) "
			       "AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 "
			       "Safari/604.1";

static void click_as(struct click_ring *r, int64_t link, const char *host)
{
	char ref[64];
	int n = snprintf(ref, sizeof(ref), "https://%s/page", host);
	if (link % 2)
		clicks_record(r, link, NOW_MS, UA_PHONE, sizeof(UA_PHONE) - 1, ref, (size_t)n, NULL);
	else
		clicks_record(r, link, NOW_MS, UA, sizeof(UA) - 1, ref, (size_t)n, NULL);
}

static void host_of(int64_t link, int round, char *out, size_t cap)
{
	snprintf(out, cap, round ? "n%d.example" : "r%d.example", (int)(link % 5));
}

/* Checks a merge's rows: every link once per kind, with its own strings. */
static void check_merge_rows(const struct store_op *m, int round, int64_t twice)
{
	assert_int_equal(m->nclicks, 2 * MANY);
	static int seen[MANY][2];
	memset(seen, 0, sizeof(seen));
	for (size_t i = 0; i < m->nclicks; i++) {
		const struct click_count *k = &m->clicks[i];
		assert_in_range(k->link_id, FIRST_LINK, FIRST_LINK + MANY - 1);
		seen[k->link_id - FIRST_LINK][k->kind]++;
		assert_int_equal(k->humans, k->link_id == twice ? 2 : 1);
		assert_int_equal(k->bots, 0);
		if (k->kind == STORE_CLICK_DAY) {
			char host[32];
			host_of(k->link_id, round, host, sizeof(host));
			assert_string_equal(k->referrer, host);
			assert_string_equal(k->device, k->link_id % 2 ? "mobile" : "desktop");
			assert_string_equal(k->os, k->link_id % 2 ? "ios" : "linux");
			assert_string_equal(k->country, "unknown");
		}
	}
	for (int i = 0; i < MANY; i++)
		assert_true(seen[i][0] == 1 && seen[i][1] == 1);
}

/* Completes deltas until the next merge, which it returns, held. */
static struct store_op *next_merge(void)
{
	for (;;) {
		struct store_op *op = next_op();
		if (op->kind == STORE_OP_CLICK_MERGE)
			return op;
		complete(op, STORE_OK);
	}
}

static void test_many_links_and_combinations(void **state)
{
	(void)state;
	struct clicks *c = start(10, 50);
	struct click_ring *r = clicks_ring(c, 0);
	char host[32];
	for (int64_t l = FIRST_LINK; l < FIRST_LINK + MANY; l++) {
		host_of(l, 0, host, sizeof(host));
		click_as(r, l, host);
	}
	struct store_op *m1 = next_merge();
	check_merge_rows(m1, 0, -1);
	for (int64_t l = FIRST_LINK; l < FIRST_LINK + MANY; l++) {
		host_of(l, 1, host, sizeof(host));
		click_as(r, l, host);
	}
	/* folded before the merge completes: new combinations, old table */
	struct clicks_stats st;
	do {
		usleep(1000);
		clicks_get_stats(c, &st);
	} while (st.recorded != 2 * MANY);
	struct click_rows rows;
	assert_int_equal(clicks_query(c, NULL, FIRST_LINK + 3, 0, INT32_MAX - 1, 1, &rows), STORE_OK);
	/* two clicks in one hour, each with its combination: the hour's two
	 * rows add up to 2, and each combination has its day row */
	uint64_t hour_sum = 0;
	int day_rows = 0;
	for (size_t i = 0; i < rows.n; i++) {
		if (rows.rows[i].kind == STORE_CLICK_HOUR) {
			hour_sum += rows.rows[i].humans;
		} else {
			day_rows++;
			assert_int_equal(rows.rows[i].humans, 1);
		}
	}
	assert_int_equal(hour_sum, 2);
	assert_int_equal(day_rows, 2);
	free(rows.rows);
	complete(m1, STORE_OK);

	/* What was kept across the merge has its own strings. */
	assert_int_equal(clicks_query(c, NULL, FIRST_LINK + 3, 0, INT32_MAX - 1, 1, &rows), STORE_OK);
	assert_int_equal(rows.n, 2);
	for (size_t i = 0; i < rows.n; i++) {
		assert_int_equal(rows.rows[i].humans, 1);
		if (rows.rows[i].kind == STORE_CLICK_DAY) {
			assert_string_equal(rows.rows[i].referrer, "n3.example");
			assert_string_equal(rows.rows[i].browser, "safari");
		}
	}
	free(rows.rows);

	/* The same User-Agent, referrer and country as the last click before
	 * the rebuild: its remembered combination named the old table's id. */
	int64_t last = FIRST_LINK + MANY - 1;
	host_of(last, 1, host, sizeof(host));
	click_as(r, last, host);
	do {
		usleep(1000);
		clicks_get_stats(c, &st);
	} while (st.recorded != 2 * MANY + 1);
	assert_int_equal(clicks_query(c, NULL, last, 0, INT32_MAX - 1, 1, &rows), STORE_OK);
	for (size_t i = 0; i < rows.n; i++)
		if (rows.rows[i].kind == STORE_CLICK_DAY)
			assert_string_equal(rows.rows[i].referrer, host);
	free(rows.rows);
	struct store_op *m2 = next_merge();
	check_merge_rows(m2, 1, FIRST_LINK + MANY - 1);
	complete(m2, STORE_OK);

	pthread_t t;
	pthread_create(&t, NULL, stop_thread, c);
	pthread_join(t, NULL);
	clicks_free(c);
}

/* After a merge commits, the pending counters move to a new table a slice
 * at a time (8,192 nodes, a millisecond apart). A query meanwhile adds up
 * both tables: EARLY, clicked first, moves in the first slice and must not
 * count twice; LINK, clicked last, moves last and must not go missing. */
#define MOVED 40000
#define MOVED_FIRST 1000000
#define EARLY 5

/* One click on each of n links from MOVED_FIRST. */
static void click_range(struct clicks *c, struct click_ring *r, int64_t n, uint64_t want_recorded)
{
	struct clicks_stats st;
	for (int64_t l = MOVED_FIRST; l < MOVED_FIRST + n; l++) {
		clicks_record(r, l, NOW_MS, UA, sizeof(UA) - 1, NULL, 0, NULL);
		if ((l - MOVED_FIRST) % 4096 == 4095)
			usleep(20000); /* the ring holds 16,384; it is drained every 10 ms */
	}
	clicks_get_stats(c, &st);
	assert_int_equal(st.recorded, want_recorded);
	assert_int_equal(st.dropped, 0);
}

static void test_query_while_rebuilding(void **state)
{
	(void)state;
	struct clicks *c = start(10, 50);
	struct click_ring *r = clicks_ring(c, 0);
	click_range(c, r, MOVED, MOVED);
	struct store_op *m1 = next_merge();
	assert_int_equal(m1->nclicks, 2 * MOVED);
	/* pending while the merge is in flight */
	for (int i = 0; i < 3; i++)
		clicks_record(r, EARLY, NOW_MS, UA, sizeof(UA) - 1, NULL, 0, NULL);
	click_range(c, r, MOVED, 2 * MOVED + 3);
	clickn(r, 3);
	struct clicks_stats st;
	do {
		usleep(1000);
		clicks_get_stats(c, &st);
	} while (st.pending != MOVED + 6);
	complete(m1, STORE_OK);
	int queries = 0;
	do { /* the move takes about 10 slices */
		assert_int_equal(humans_of(c, EARLY), 3);
		assert_int_equal(humans_now(c), 3);
		queries++;
		usleep(100);
		clicks_get_stats(c, &st);
	} while (st.merges != 1);
	assert_true(queries > 1);
	assert_int_equal(humans_of(c, EARLY), 3);
	assert_int_equal(humans_now(c), 3);

	pthread_t t;
	pthread_create(&t, NULL, stop_thread, c);
	for (;;) { /* the rebuild ends, then the last delta carries every pending click */
		struct store_op *op = next_op();
		int delta = op->kind == STORE_OP_CLICK_DELTA;
		complete(op, STORE_OK);
		if (delta)
			break;
	}
	pthread_join(t, NULL);
	clicks_get_stats(c, &st);
	assert_int_equal(st.pending, 0);
	assert_int_equal(st.flushed, 2 * MOVED + 6);
	clicks_free(c);
}

/* A merge collects its rows a slice of 8,192 nodes at a time, chunk after
 * chunk of 4,096: with three full chunks the first slice ends exactly where
 * a chunk does, and the collection must go on to the third (a build that
 * took that end for the last one merged 8,192 links and dropped the rest
 * of the durable counts). */
#define WHOLE_CHUNKS (3 * 4096)
static void test_merge_of_whole_chunks(void **state)
{
	(void)state;
	struct clicks *c = start(10, 50);
	struct click_ring *r = clicks_ring(c, 0);
	click_range(c, r, WHOLE_CHUNKS, WHOLE_CHUNKS);
	struct store_op *m = next_merge();
	assert_int_equal(m->nclicks, 2 * WHOLE_CHUNKS);
	int64_t seen = 0;
	for (size_t i = 0; i < m->nclicks; i++)
		if (m->clicks[i].kind == STORE_CLICK_HOUR)
			seen += m->clicks[i].link_id == MOVED_FIRST + WHOLE_CHUNKS - 1 ||
				m->clicks[i].link_id == MOVED_FIRST;
	assert_int_equal(seen, 2); /* the first link and the last */
	complete(m, STORE_OK);
	pthread_t t;
	pthread_create(&t, NULL, stop_thread, c);
	pthread_join(t, NULL);
	clicks_free(c);
}

/* A query finds one link's counters by probing its keys when the table
 * spans few buckets, and by walking every slot when its hours span more
 * than an eighth of the slots (the last range below): both clip hours to
 * the range and take the days that meet it, and neither sees another
 * link's counters. */
static void test_query_ranges(void **state)
{
	(void)state;
	struct clicks *c = start(3600000, 3600000);
	struct click_ring *r = clicks_ring(c, 0);
	const int64_t link = LINK + 4;
	const int32_t hs = (int32_t)(NOW_MS / 86400000) * 24; /* a day's first hour */
	const int32_t at[] = {0, 1, 30, 5000};             /* hours after hs */
	for (int i = 0; i < 4; i++)
		for (int n = 0; n <= i; n++) /* 1, 2, 3 and 4 clicks */
			clicks_record(r, link, (int64_t)(hs + at[i]) * 3600000 + 1000, UA,
				      sizeof(UA) - 1, NULL, 0, NULL);
	clicks_record(r, link + 1, (int64_t)hs * 3600000, UA, sizeof(UA) - 1, NULL, 0, NULL);
	static const struct {
		int32_t from, to; /* hours after hs, but for the whole range */
		uint64_t hours, days;
	} cases[] = {
		{0, 0, 1, 3},       /* the first day holds hours 0 and 1 */
		{0, 1, 3, 3},       {2, 29, 0, 6}, /* no hour, but both days */
		{0, 30, 6, 6},      {4999, 6000, 4, 4},
		{-1, -1, 10, 10},   /* everything: 5001 hours, more than 8192 / 8 */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t h, d;
		if (cases[i].from < 0)
			range_sums(c, link, 0, INT32_MAX - 1, &h, &d);
		else
			range_sums(c, link, hs + cases[i].from, hs + cases[i].to, &h, &d);
		assert_int_equal(h, cases[i].hours);
		assert_int_equal(d, cases[i].days);
	}
	pthread_t t;
	pthread_create(&t, NULL, stop_thread, c);
	complete(next_op(), STORE_OK); /* the last flush */
	pthread_join(t, NULL);
	clicks_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_flush_and_merge_paths),
		cmocka_unit_test(test_query_overtaken_by_a_merge),
		cmocka_unit_test(test_many_links_and_combinations),
		cmocka_unit_test(test_query_ranges),
		cmocka_unit_test(test_query_while_rebuilding),
		cmocka_unit_test(test_merge_of_whole_chunks),
	};
	return cmocka_run_group_tests_name("click_pipeline", tests, NULL, NULL);
}
