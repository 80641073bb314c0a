/*
 * metrics: counters and latency histograms kept per thread, summed when
 * scraped, and written in the Prometheus text exposition format.
 *
 * Design: every counter and histogram has exactly one writing thread (a
 * worker, the writer, the aggregator), so an increment is a relaxed load
 * and store (no locked instruction, no contention); a scrape reads them
 * with relaxed loads from another thread and may see a count a moment old,
 * never a torn one. Histogram buckets are fixed: 50 us to 10 s.
 */
#ifndef SHORTD_METRICS_H
#define SHORTD_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "util.h"

typedef _Atomic uint64_t metric_counter;

/* Single-writer increment: only the owning thread may call it. */
static inline void metric_add(metric_counter *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

/* An increment by any thread (a locked add: for figures off the hot path,
 * such as a database server's, which every worker's reads count). */
static inline void metric_add_shared(metric_counter *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static inline uint64_t metric_read(const metric_counter *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

#define HIST_BUCKETS 17 /* finite upper bounds; +Inf is `count` */

struct histogram {
	metric_counter bucket[HIST_BUCKETS]; /* not cumulative */
	metric_counter count;
	metric_counter sum_ns;
};

/* Upper bounds of the buckets in seconds, as printed. */
extern const char *const hist_bounds_text[HIST_BUCKETS];

/* Single-writer observation of a duration in nanoseconds. */
void hist_observe(struct histogram *h, uint64_t ns);
/* hist_observe() by any thread (locked adds). */
void hist_observe_shared(struct histogram *h, uint64_t ns);
/* Observation of a plain value (batch sizes): bucket bounds 1, 2, 4, ... */
void hist_observe_value(struct histogram *h, uint64_t v);

/* A sum of histograms, for writing out. */
struct hist_sum {
	uint64_t bucket[HIST_BUCKETS];
	uint64_t count;
	uint64_t sum; /* ns for durations, the plain sum for values */
};
void hist_sum_add(struct hist_sum *s, const struct histogram *h);

/* Writes HELP and TYPE lines for a metric family. */
void metrics_family(struct buf *out, const char *name, const char *type, const char *help);
/* Writes a sample: name{labels} value. labels may be NULL or "". */
void metrics_sample(struct buf *out, const char *name, const char *labels, uint64_t v);
void metrics_sample_double(struct buf *out, const char *name, const char *labels, double v);
/* Writes the _bucket, _sum and _count samples of a histogram. value_buckets
 * selects the 1, 2, 4, ... bounds of hist_observe_value. */
void metrics_histogram(struct buf *out, const char *name, const char *labels,
		       const struct hist_sum *s, int value_buckets);

#endif
