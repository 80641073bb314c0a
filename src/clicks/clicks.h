/*
 * clicks: counting every click without slowing redirects.
 *
 * Design:
 *  - Each worker owns a click_ring, a single-producer single-consumer ring
 *    of fixed-size events. clicks_record() copies the click into the next
 *    slot and publishes it with one release store: no lock, no allocation,
 *    no system call. A full ring drops the click and counts it.
 *  - One aggregator thread drains the rings every few milliseconds and folds
 *    events into counters: per link per hour (humans and bots apart), and
 *    per link per day by referrer host, country, device class, browser and
 *    OS. User-Agent classification and the GeoIP lookup happen here.
 *  - Every flush interval the counters become one batch, submitted to the
 *    store's writer (one transaction, with the batch number). A failed batch
 *    is merged back and retried at the next interval.
 *  - clicks_query() adds to the stored counters those not committed yet
 *    (still in rings, pending, or in the batch being committed), so a user
 *    sees a click at once and counts never go backwards. The batch number
 *    read in the same snapshot as the counters says whether the batch in
 *    flight is already in them.
 *  - clicks_stop() drains and commits everything: graceful shutdown loses
 *    nothing. A crash loses at most the last flush interval.
 * Locking: the aggregator lock guards the counters, the batch in flight and
 * the consumer side of every ring; producers never take it.
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
#define CLICK_REF_MAX STORE_CLICK_VALUE_MAX

struct clicks;
struct click_ring;

/* geo may be NULL (country "unknown"); the aggregator does not own it. */
struct clicks *clicks_new(struct store *store, int nworkers, int flush_ms, struct geoip *geo);
struct click_ring *clicks_ring(struct clicks *c, int worker);
/* Reads the last committed batch number and starts the aggregator. */
int clicks_start(struct clicks *c, struct store_reader *r);
/* Records a click: worker thread of `ring` only. referer is the raw
 * Referer header (NULL if absent); peer the client address. */
void clicks_record(struct click_ring *ring, int64_t link_id, int64_t now_ms, const char *ua,
		   size_t ua_len, const char *referer, size_t ref_len, const struct sockaddr *peer);
/* Producers must have stopped: drains, commits, stops the aggregator. */
void clicks_stop(struct clicks *c);
void clicks_free(struct clicks *c);

/* Every counter of link_id in hours [from_hour, to_hour] (and, with
 * want_dims, in their days), committed or not; rows may repeat a key, the
 * caller sums. out->rows is the caller's to free(). */
int clicks_query(struct clicks *c, struct store_reader *r, int64_t link_id, int32_t from_hour,
		 int32_t to_hour, int want_dims, struct click_rows *out);

struct clicks_stats {
	uint64_t recorded, dropped, flushed, flushes, flush_errors, pending;
};
void clicks_get_stats(struct clicks *c, struct clicks_stats *out);

/* Extracts the lowercased host of a Referer value into out (cap bytes);
 * returns its length, or 0 when there is none to be had. */
size_t clicks_referer_host(const char *ref, size_t len, char *out, size_t cap);

#endif
