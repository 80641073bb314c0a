/*
 * clicks: counting every click without slowing redirects.
 *
 * Design:
 *  - Each worker owns a click_ring, a single-producer single-consumer ring
 *    of fixed-size events. clicks_record() copies the click into the next
 *    slot and publishes it with one release store: no lock, no allocation,
 *    no system call. A full ring drops the click and counts it.
 *  - One aggregator thread drains the rings every few milliseconds and
 *    folds each event into one counter: its link, its hour and its
 *    combination of referrer host, country, device, browser and OS, humans
 *    and bots apart. The link's hour counts (summed over combinations) and
 *    its day counts per combination (summed over hours) are derived from
 *    these when they are committed, merged or queried. User-Agent classes
 *    are cached; the GeoIP lookup happens here too.
 *  - Every flush interval the new counters are appended to the store as
 *    one delta (a blob, one row, one transaction): durable, and cheap
 *    however many links were clicked. About once a merge interval the
 *    deltas are merged into the per-link tables in one transaction that
 *    also drops them, so a busy link costs one upsert per merge. Deltas
 *    not merged before a stop or a crash are read back at start-up and
 *    merged at once.
 *  - clicks_query_start() adds to the merged counters those still in memory
 *    (unmerged deltas, the flush in flight, pending counters, rings), so a
 *    user sees a click at once and counts never go backwards. The merge
 *    number read in the same snapshot as the counters says whether the
 *    unmerged deltas are already in them; the store is read without the
 *    aggregator's lock, and a query that a merge overtook reads again
 *    (query.c).
 *  - clicks_stop() drains and appends everything: graceful shutdown loses
 *    nothing. A crash loses at most the last flush interval.
 *  - Work that grows with the number of counters (encoding a delta, taking
 *    in its outcome, collecting a merge's rows, moving the pending counters
 *    to a new table after a merge) is done 8,192 counters at a time, a
 *    millisecond apart, so that a worker sharing the aggregator's core is
 *    never held up for long. Sorting a merge's rows is the store's job, on
 *    its writer thread; the store's done() callback only records the
 *    outcome.
 * Locking: the aggregator lock guards the counters, the op in flight and
 * the consumer side of every ring; producers never take it. One store op
 * (a flush or a merge) is in flight at a time.
 */
#ifndef SHORTD_CLICKS_H
#define SHORTD_CLICKS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "clicks/geoip.h"
#include "store/store.h"

#define CLICK_RING_SIZE 16384 /* events per worker; a power of two */
#define CLICK_UA_MAX 192
#define CLICK_REF_MAX STORE_CLICK_REF_MAX

struct clicks;
struct click_ring;

/* geo may be NULL (country "unknown"); the aggregator does not own it. */
struct clicks *clicks_new(struct store *store, int nworkers, int flush_ms, int merge_ms,
			  struct geoip *geo);
struct click_ring *clicks_ring(struct clicks *c, int worker);
/* Reads back deltas not merged yet and starts the aggregator. */
int clicks_start(struct clicks *c, struct store_reader *r);
/* Records a click: worker thread of `ring` only. referer is the raw
 * Referer header (NULL if absent); peer the client address. */
void clicks_record(struct click_ring *ring, int64_t link_id, int64_t now_ms, const char *ua,
		   size_t ua_len, const char *referer, size_t ref_len, const struct sockaddr *peer);
/* Producers must have stopped: drains, commits, stops the aggregator. */
void clicks_stop(struct clicks *c);
void clicks_free(struct clicks *c);

/* A query of one link's counters, owned by the caller, who fills in the
 * question and done. */
struct clicks_query {
	int64_t link_id;
	int32_t from_hour, to_hour;
	int want_dims;
	/* the answer: every counter of link_id in hours [from_hour, to_hour]
	 * (and, with want_dims, in their days), committed or not; rows may
	 * repeat a key, the caller sums. rows.rows is the caller's to free(). */
	int status;
	struct click_rows rows;
	/* Called on the reader's loop when clicks_query_start() returned
	 * STORE_AGAIN. */
	void (*done)(struct clicks_query *q);
	void *data;
	/* the query's own */
	struct clicks *c;
	struct store_reader *reader;
	uint64_t gen;
	int tries;
	struct store_read rd;
};
/* Starts q through reader r (the caller's thread's): its status, or
 * STORE_AGAIN and q->done(q) later on r's loop (see store_read()). */
int clicks_query_start(struct clicks *c, struct store_reader *r, struct clicks_query *q);

struct clicks_stats {
	uint64_t recorded, dropped;       /* by redirects */
	uint64_t flushed;                 /* clicks appended durably */
	uint64_t flushes, flush_errors;   /* deltas */
	uint64_t merges, merge_errors;
	uint64_t pending;                 /* clicks not durable yet */
	uint64_t unmerged_counters;       /* counters held until the next merge */
};
void clicks_get_stats(struct clicks *c, struct clicks_stats *out);

/* Live counts, for server-sent events (watch.c): while a link is watched
 * (by at most CLICKS_WATCH_MAX links at once), each of its clicks the
 * aggregator folds is also counted in its watch counters (humans, bots),
 * which only grow: a watcher compares them with what it read at first. A
 * link not watched costs the aggregator nothing. */
#define CLICKS_WATCH_MAX 1024
/* 0, or -1 if CLICKS_WATCH_MAX links are watched already. */
int clicks_watch(struct clicks *c, int64_t link_id);
void clicks_unwatch(struct clicks *c, int64_t link_id);
/* The link's watch counters (0 if it is not watched). */
void clicks_watched(struct clicks *c, int64_t link_id, uint64_t *humans, uint64_t *bots);

/* Extracts the lowercased host of a Referer value into out (cap bytes);
 * returns its length, or 0 when there is none to be had. */
size_t clicks_referer_host(const char *ref, size_t len, char *out, size_t cap);

#endif
