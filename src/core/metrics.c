/*
 * metrics: see metrics.h.
 */
#include "metrics.h"

#include <stdio.h>
#include <string.h>

static const uint64_t bounds_ns[HIST_BUCKETS] = {
	50000ULL,     100000ULL,    250000ULL,     500000ULL,     1000000ULL,    2500000ULL,
	5000000ULL,   10000000ULL,  25000000ULL,   50000000ULL,   100000000ULL,  250000000ULL,
	500000000ULL, 1000000000ULL, 2500000000ULL, 5000000000ULL, 10000000000ULL,
};

const char *const hist_bounds_text[HIST_BUCKETS] = {
	"5e-05", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
	"0.05",	 "0.1",	   "0.25",    "0.5",	"1",	 "2.5",	   "5",	    "10",
};

static int bucket_of(uint64_t ns)
{
	int i = 0;
	while (i < HIST_BUCKETS && ns > bounds_ns[i])
		i++;
	return i;
}

void hist_observe(struct histogram *h, uint64_t ns)
{
	int i = bucket_of(ns);
	if (i < HIST_BUCKETS)
		metric_add(&h->bucket[i], 1);
	metric_add(&h->count, 1);
	metric_add(&h->sum_ns, ns);
}

void hist_observe_shared(struct histogram *h, uint64_t ns)
{
	int i = bucket_of(ns);
	if (i < HIST_BUCKETS)
		metric_add_shared(&h->bucket[i], 1);
	metric_add_shared(&h->count, 1);
	metric_add_shared(&h->sum_ns, ns);
}

void hist_observe_value(struct histogram *h, uint64_t v)
{
	int i = 0;
	while (i < HIST_BUCKETS && v > (1ULL << i))
		i++;
	if (i < HIST_BUCKETS)
		metric_add(&h->bucket[i], 1);
	metric_add(&h->count, 1);
	metric_add(&h->sum_ns, v);
}

void hist_sum_add(struct hist_sum *s, const struct histogram *h)
{
	for (int i = 0; i < HIST_BUCKETS; i++)
		s->bucket[i] += metric_read(&h->bucket[i]);
	s->count += metric_read(&h->count);
	s->sum += metric_read(&h->sum_ns);
}

void metrics_family(struct buf *out, const char *name, const char *type, const char *help)
{
	buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void metrics_sample(struct buf *out, const char *name, const char *labels, uint64_t v)
{
	if (labels && labels[0])
		buf_printf(out, "%s{%s} %llu\n", name, labels, (unsigned long long)v);
	else
		buf_printf(out, "%s %llu\n", name, (unsigned long long)v);
}

void metrics_sample_double(struct buf *out, const char *name, const char *labels, double v)
{
	if (labels && labels[0])
		buf_printf(out, "%s{%s} %.9g\n", name, labels, v);
	else
		buf_printf(out, "%s %.9g\n", name, v);
}

void metrics_histogram(struct buf *out, const char *name, const char *labels,
		       const struct hist_sum *s, int value_buckets)
{
	const char *sep = labels && labels[0] ? "," : "";
	const char *lab = labels ? labels : "";
	uint64_t cum = 0;
	for (int i = 0; i < HIST_BUCKETS; i++) {
		cum += s->bucket[i];
		if (value_buckets)
			buf_printf(out, "%s_bucket{%s%sle=\"%llu\"} %llu\n", name, lab, sep,
				   1ULL << i, (unsigned long long)cum);
		else
			buf_printf(out, "%s_bucket{%s%sle=\"%s\"} %llu\n", name, lab, sep,
				   hist_bounds_text[i], (unsigned long long)cum);
	}
	buf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, lab, sep,
		   (unsigned long long)s->count);
	char full[160];
	snprintf(full, sizeof(full), "%s_sum", name);
	if (value_buckets)
		metrics_sample(out, full, labels, s->sum);
	else
		metrics_sample_double(out, full, labels, (double)s->sum / 1e9);
	snprintf(full, sizeof(full), "%s_count", name);
	metrics_sample(out, full, labels, s->count);
}
