/*
 * stats_api: GET /api/v1/links/{code}/stats?from=&to=&interval=hour|day
 *
 * Answers total human and bot clicks in [from, to], a zero-filled time
 * series per hour or day (UTC), and the top 10 referrer hosts, countries,
 * device classes, browsers and OS families with an "other" bucket for the
 * rest. Breakdowns are kept per whole UTC day, so they cover the days that
 * [from, to] touches. Counts include clicks not yet committed
 * (clicks_query), so a user sees their own click at once.
 */
#include "reply.h"
#include "request.h"

#include <stdlib.h>
#include <string.h>

#define HOUR_MS 3600000LL
#define DAY_MS 86400000LL
#define MAX_HOUR_POINTS (24 * 92)
#define MAX_DAY_POINTS 3660
#define TOP_N 10

struct tally {
	const char *value; /* points into the rows */
	uint64_t clicks;
};

static int tally_cmp(const void *a, const void *b)
{
	const struct tally *x = a, *y = b;
	if (x->clicks != y->clicks)
		return x->clicks < y->clicks ? 1 : -1;
	return strcmp(x->value, y->value);
}

enum dim { DIM_REFERRER, DIM_COUNTRY, DIM_DEVICE, DIM_BROWSER, DIM_OS };

static const char *dim_value(const struct click_count *k, enum dim d)
{
	switch (d) {
	case DIM_REFERRER: return k->referrer;
	case DIM_COUNTRY: return k->country;
	case DIM_DEVICE: return k->device;
	case DIM_BROWSER: return k->browser;
	default: return k->os;
	}
}

static int value_cmp(const void *a, const void *b)
{
	return strcmp(((const struct tally *)a)->value, ((const struct tally *)b)->value);
}

/* Sums the day rows by one dimension; the top 10 and "other". Bots count
 * only in the device breakdown (as "bot"). Rows are sorted by value and
 * runs summed: O(n log n) however many distinct values a link has. */
static json_t *top(const struct click_rows *rows, enum dim d)
{
	struct tally *t = xmalloc((rows->n ? rows->n : 1) * sizeof(*t));
	size_t n = 0;
	for (size_t i = 0; i < rows->n; i++) {
		const struct click_count *k = &rows->rows[i];
		if (k->kind != STORE_CLICK_DAY || !k->humans)
			continue;
		if (d != DIM_DEVICE && strcmp(k->device, "bot") == 0)
			continue;
		t[n].value = dim_value(k, d);
		t[n].clicks = k->humans;
		n++;
	}
	qsort(t, n, sizeof(*t), value_cmp);
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		if (m && strcmp(t[m - 1].value, t[i].value) == 0)
			t[m - 1].clicks += t[i].clicks;
		else
			t[m++] = t[i];
	}
	qsort(t, m, sizeof(*t), tally_cmp);
	json_t *arr = json_array();
	uint64_t other = 0;
	for (size_t i = 0; i < m; i++) {
		if (i < TOP_N)
			json_array_append_new(arr, json_pack("{s:s,s:I}", "value", t[i].value, "clicks",
							     (json_int_t)t[i].clicks));
		else
			other += t[i].clicks;
	}
	if (other)
		json_array_append_new(arr, json_pack("{s:s,s:I}", "value", "other", "clicks",
						     (json_int_t)other));
	free(t);
	return arr;
}

/* Parses an RFC 3339 query value, where ':' may come percent-encoded. */
static int query_time(const struct http_request *req, const char *name, int64_t *out)
{
	const char *v;
	long n = app_query_param(req, name, &v);
	if (n < 0)
		return 1; /* absent */
	char buf[64];
	size_t o = 0;
	for (long i = 0; i < n && o < sizeof(buf) - 1; i++) {
		if (v[i] == '%' && i + 2 < n && v[i + 1] == '3' && (v[i + 2] == 'A' || v[i + 2] == 'a')) {
			buf[o++] = ':';
			i += 2;
		} else if (v[i] == '%' && i + 2 < n && v[i + 1] == '2' && (v[i + 2] == 'B' || v[i + 2] == 'b')) {
			buf[o++] = '+';
			i += 2;
		} else {
			buf[o++] = v[i];
		}
	}
	return time_parse_rfc3339(buf, o, out) == 0 ? 0 : -1;
}

/* The counters are read: the answer. */
static void counted(struct app_req *r)
{
	struct clicks_query *q = &r->u.clicks.q;
	int hourly = r->u.clicks.hourly;
	if (q->status != STORE_OK) {
		reply_store_unavailable(r->ex);
		return;
	}
	int64_t step = hourly ? HOUR_MS : DAY_MS;
	int64_t first = r->u.clicks.first, last = r->u.clicks.last, to = r->u.clicks.to_ms;
	struct click_rows *rows = &q->rows;
	size_t npoints = (size_t)(last - first + 1);
	uint64_t *humans = xcalloc(npoints, sizeof(*humans)), *bots = xcalloc(npoints, sizeof(*bots));
	uint64_t total = 0, total_bots = 0;
	for (size_t i = 0; i < rows->n; i++) {
		const struct click_count *k = &rows->rows[i];
		if (k->kind != STORE_CLICK_HOUR)
			continue;
		int64_t idx = (int64_t)k->bucket * HOUR_MS / step - first;
		if (idx < 0 || idx >= (int64_t)npoints)
			continue;
		humans[idx] += k->humans;
		bots[idx] += k->bots;
		total += k->humans;
		total_bots += k->bots;
	}
	json_t *series = json_array();
	char t[40];
	for (size_t i = 0; i < npoints; i++) {
		time_format_rfc3339((first + (int64_t)i) * step, t, sizeof(t));
		json_array_append_new(series, json_pack("{s:s,s:I,s:I}", "t", t, "clicks",
							(json_int_t)humans[i], "bots", (json_int_t)bots[i]));
	}
	free(humans);
	free(bots);
	char from_s[40], to_s[40];
	time_format_rfc3339(first * step, from_s, sizeof(from_s));
	time_format_rfc3339(to, to_s, sizeof(to_s));
	json_t *j = json_pack("{s:s,s:s,s:s,s:I,s:I,s:o}", "from", from_s,
			      "to", to_s, "interval", hourly ? "hour" : "day", "total",
			      (json_int_t)total, "bots", (json_int_t)total_bots, "series", series);
	json_object_set_new(j, "code", json_stringn(r->arg, r->arg_len));
	json_object_set_new(j, "referrers", top(rows, DIM_REFERRER));
	json_object_set_new(j, "countries", top(rows, DIM_COUNTRY));
	json_object_set_new(j, "devices", top(rows, DIM_DEVICE));
	json_object_set_new(j, "browsers", top(rows, DIM_BROWSER));
	json_object_set_new(j, "os", top(rows, DIM_OS));
	free(rows->rows);
	reply_json(r->ex, 200, j, NULL, NULL);
}

/* The link is found: the range, then its counters. */
static void stats_found(struct app_req *r)
{
	const struct http_request *req = r->ex->req;
	struct http_exchange *ex = r->ex;
	int64_t link_id = r->link->id, created = r->link->created_at_ms;
	link_unref(r->link);
	r->link = NULL;

	const char *v;
	long vl = app_query_param(req, "interval", &v);
	int hourly = 0;
	if (vl == 4 && memcmp(v, "hour", 4) == 0)
		hourly = 1;
	else if (vl >= 0 && !(vl == 3 && memcmp(v, "day", 3) == 0)) {
		reply_field_error(ex, "interval", "must be hour or day");
		return;
	}
	int64_t step = hourly ? HOUR_MS : DAY_MS;
	int64_t to = time_now_ms(), from;
	int rc = query_time(req, "to", &to);
	if (rc < 0) {
		reply_field_error(ex, "to", "must be an RFC 3339 date-time such as 2030-01-31T12:00:00Z");
		return;
	}
	rc = query_time(req, "from", &from);
	if (rc < 0) {
		reply_field_error(ex, "from", "must be an RFC 3339 date-time such as 2030-01-31T12:00:00Z");
		return;
	}
	if (rc == 1) { /* default: the last 24 hours or 30 days, not before the link */
		from = to - (hourly ? 24 * HOUR_MS : 30 * DAY_MS) + step;
		if (from < created)
			from = created;
	}
	if (from > to) {
		reply_field_error(ex, "from", "must not be after to");
		return;
	}
	int64_t first = from / step, last = to / step;
	if (last - first + 1 > (hourly ? MAX_HOUR_POINTS : MAX_DAY_POINTS)) {
		reply_field_error(ex, "from", hourly ? "hourly stats cover at most 92 days"
						     : "daily stats cover at most 3660 days");
		return;
	}
	r->u.clicks.hourly = hourly;
	r->u.clicks.first = first;
	r->u.clicks.last = last;
	r->u.clicks.to_ms = to;
	struct clicks_query *q = &r->u.clicks.q;
	q->link_id = link_id;
	q->from_hour = (int32_t)(first * step / HOUR_MS);
	q->to_hour = (int32_t)(((last + 1) * step - 1) / HOUR_MS);
	q->want_dims = 1;
	req_clicks(r, counted);
}

static void stats_authed(struct app_req *r)
{
	if (app_require(r, 0) != REQ_GO_ON)
		return;
	if (!r->app->clicks) {
		reply_error(r->ex, 404, "analytics_off", "click analytics are turned off (--analytics 0)");
		return;
	}
	app_find_link(r, stats_found);
}

void stats_get(struct app_req *r)
{
	app_authenticate(r, stats_authed);
}
