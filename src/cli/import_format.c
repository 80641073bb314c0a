/*
 * import_format: records, headers and rows of `shortd import` (see
 * import_format.h for the formats).
 */
#include "import_format.h"

#include <jansson.h>
#include <string.h>
#include <sys/types.h>

#define FIELDS_MAX 256 /* columns of a header-led record */

/* A shortener's export: which header names hold what (names normalised,
 * several separated by '|'). A file is taken for a source when its header
 * has the url column and the code or the short URL column. */
struct source {
	const char *format, *label;
	const char *url, *code, *short_url, *expires;
	int peer;
};

/* Tried in this order: Shlink's longUrl is bit.ly's long_url too, so
 * Shlink (with shortCode) goes first; shortd's url,alias last, after
 * YOURLS's url,keyword. */
static const struct source sources[] = {
	{"shlink", "Shlink", "longurl", "shortcode", "shorturl", "validuntil", 1},
	{"bitly", "bit.ly", "longurl", NULL, "bitlink|link|id", NULL, 1},
	{"kutt", "Kutt", "target", "address", "link|shorturl", "expirein|expiresat", 1},
	{"yourls", "YOURLS", "url", "keyword", "shorturl", NULL, 1},
	{"csv", "shortd", "url", "alias", NULL, "expiresat", 0},
};

const char import_format_names[] = "csv, jsonl, yourls, kutt, shlink or bitly";

int import_format_known(const char *format)
{
	if (strcmp(format, "jsonl") == 0)
		return 1;
	for (size_t i = 0; i < ARRAY_LEN(sources); i++)
		if (strcmp(format, sources[i].format) == 0)
			return 1;
	return 0;
}

void import_reader_init(struct import_reader *r, FILE *f, size_t max)
{
	memset(r, 0, sizeof(*r));
	r->f = f;
	r->csv = 1;
	r->max = max;
	buf_init(&r->rec);
}

void import_reader_release(struct import_reader *r)
{
	buf_release(&r->rec);
	free(r->line);
}

int import_reader_next(struct import_reader *r)
{
	int open = 0; /* a CSV quote is open: the record goes on */
	r->rec.len = 0;
	r->too_long = 0;
	r->lineno = r->lines + 1;
	for (;;) {
		ssize_t n = getline(&r->line, &r->cap, r->f);
		if (n <= 0)
			break;
		r->lines++;
		size_t len = (size_t)n;
		if (r->csv)
			for (size_t i = 0; i < len; i++)
				open ^= r->line[i] == '"';
		if (!open) {
			while (len > 0 && (r->line[len - 1] == '\n' || r->line[len - 1] == '\r'))
				len--;
		}
		if (r->rec.len + len > r->max) {
			r->too_long = 1;
			len = r->rec.len < r->max ? r->max - r->rec.len : 0;
		}
		buf_append(&r->rec, r->line, len);
		if (!open)
			break;
	}
	if (r->lines < r->lineno && r->rec.len == 0)
		return 0;
	if (r->lineno == 1 && r->rec.len >= 3 && memcmp(r->rec.p, "\xef\xbb\xbf", 3) == 0) {
		memmove(r->rec.p, r->rec.p + 3, r->rec.len - 3); /* a UTF-8 byte order mark */
		r->rec.len -= 3;
	}
	buf_append(&r->rec, "", 1);
	r->rec.len--;
	return 1;
}

/* One CSV field at *p (quoted or not, up to end) into out. 1 when a comma
 * follows (*p moves past it), 0 at the end, -1 for a quote not closed or
 * followed by more than a comma. */
static int csv_field(const char **p, const char *end, struct buf *out)
{
	const char *s = *p;
	if (s < end && *s == '"') {
		s++;
		for (;;) {
			if (s == end)
				return -1;
			if (*s == '"') {
				if (s + 1 < end && s[1] == '"') {
					buf_append(out, "\"", 1);
					s += 2;
					continue;
				}
				s++;
				break;
			}
			buf_append(out, s++, 1);
		}
		if (s < end && *s != ',')
			return -1;
	} else {
		const char *c = memchr(s, ',', (size_t)(end - s));
		const char *e = c ? c : end;
		buf_append(out, s, (size_t)(e - s));
		s = e;
	}
	if (s == end) {
		*p = s;
		return 0;
	}
	*p = s + 1;
	return 1;
}

/* Splits a record into at most max fields ("a," is two, the second
 * empty): their number, or -1 for a bad quote, -2 for more than max. */
static int csv_split(const char *rec, size_t len, struct buf *f, int max)
{
	const char *p = rec, *end = rec + len;
	int n = 0;
	for (;;) {
		if (n == max)
			return -2;
		f[n].len = 0;
		int more = csv_field(&p, end, &f[n++]);
		if (more < 0)
			return -1;
		if (!more)
			return n;
	}
}

/* A header name as compared: lower case letters and digits only. */
static void normalise(const struct buf *in, char *out, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < in->len && o + 1 < cap; i++) {
		unsigned char c = (unsigned char)in->p[i];
		if (c >= 'A' && c <= 'Z')
			out[o++] = (char)(c - 'A' + 'a');
		else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
			out[o++] = (char)c;
	}
	out[o] = '\0';
}

/* The first column whose name is one of names ("a|b"), or -1. */
static int column(char (*names)[48], int n, const char *want)
{
	if (!want)
		return -1;
	for (const char *w = want; *w;) {
		size_t wl = strcspn(w, "|");
		for (int i = 0; i < n; i++)
			if (strlen(names[i]) == wl && memcmp(names[i], w, wl) == 0)
				return i;
		w += wl + (w[wl] == '|');
	}
	return -1;
}

static int source_matches(const struct source *src, char (*names)[48], int n,
			  struct import_layout *lay)
{
	int url = column(names, n, src->url);
	int code = column(names, n, src->code);
	int short_url = column(names, n, src->short_url);
	if (url < 0 || (code < 0 && short_url < 0 && src->peer))
		return 0;
	lay->source = src->label;
	lay->peer = src->peer;
	lay->header = 1;
	lay->url = url;
	lay->code = code;
	lay->short_url = short_url;
	lay->expires = column(names, n, src->expires);
	return 1;
}

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

int import_layout_detect(struct import_layout *lay, const char *format, const char *name,
			 const char *first, char *err, size_t errlen)
{
	*lay = (struct import_layout){IMPORT_CSV, "shortd", 0, 0, 0, 1, -1, 2};
	const struct source *want = NULL;
	if (format) {
		if (strcmp(format, "jsonl") == 0) {
			lay->kind = IMPORT_JSONL;
			return 0;
		}
		for (size_t i = 0; i < ARRAY_LEN(sources); i++)
			if (strcmp(format, sources[i].format) == 0)
				want = &sources[i];
		if (!want) {
			snprintf(err, errlen, "--format must be %s", import_format_names);
			return -1;
		}
	} else {
		const char *p = first;
		while (*p == ' ' || *p == '\t')
			p++;
		if (ends_with(name, ".jsonl") || ends_with(name, ".ndjson") || *p == '{') {
			lay->kind = IMPORT_JSONL;
			return 0;
		}
	}
	struct buf f[FIELDS_MAX];
	char names[FIELDS_MAX][48];
	for (int i = 0; i < FIELDS_MAX; i++)
		buf_init(&f[i]);
	int n = csv_split(first, strlen(first), f, FIELDS_MAX);
	for (int i = 0; i < n; i++)
		normalise(&f[i], names[i], sizeof(names[i]));
	int found = 0;
	for (size_t i = 0; i < ARRAY_LEN(sources) && !found && n > 0; i++)
		if (!want || want == &sources[i])
			found = source_matches(&sources[i], names, n, lay);
	for (int i = 0; i < FIELDS_MAX; i++)
		buf_release(&f[i]);
	if (!found && want && want->peer) {
		snprintf(err, errlen,
			 "the first line is not a header of a %s export (it needs the columns '%s' "
			 "and '%s')",
			 want->label, want->url, want->code ? want->code : want->short_url);
		return -1;
	}
	return 0;
}

/* The code of a short URL: its path without the '/', query and fragment
 * ("https://bit.ly/3xYz" and "bit.ly/3xYz" give "3xYz"). */
static void code_of_short_url(const struct buf *u, struct buf *out)
{
	const char *s = u->p ? u->p : "", *end = s + u->len;
	const char *scheme = memmem(s, u->len, "://", 3);
	if (scheme)
		s = scheme + 3;
	const char *slash = memchr(s, '/', (size_t)(end - s));
	out->len = 0;
	if (!slash)
		return;
	s = slash + 1;
	size_t n = strcspn(s, "?#");
	if (s + n > end)
		n = (size_t)(end - s);
	while (n > 0 && s[n - 1] == '/')
		n--;
	buf_append(out, s, n);
}

int import_csv_row(const struct import_layout *lay, const char *rec, size_t len,
		   struct buf *json, char code[65], const char **why)
{
	struct buf f[FIELDS_MAX], c;
	int max = lay->header ? FIELDS_MAX : 3, rc = -1;
	for (int i = 0; i < max; i++)
		buf_init(&f[i]);
	buf_init(&c);
	code[0] = '\0';
	int n = csv_split(rec, len, f, max);
	if (n == -1) {
		*why = "a quoted field is not closed";
		goto out;
	}
	if (n == -2) {
		*why = lay->header ? "more fields than a record may have (256)"
				   : "more than three fields (url, alias, expires_at)";
		goto out;
	}
	const struct buf *url = lay->url < n ? &f[lay->url] : NULL;
	const struct buf *exp = lay->expires >= 0 && lay->expires < n ? &f[lay->expires] : NULL;
	if (lay->code >= 0 && lay->code < n && f[lay->code].len)
		buf_append(&c, f[lay->code].p, f[lay->code].len);
	else if (lay->short_url >= 0 && lay->short_url < n)
		code_of_short_url(&f[lay->short_url], &c);
	json_t *o = json_object();
	json_object_set_new(o, "url", url && url->p ? json_stringn(url->p, url->len) : json_string(""));
	if (c.len && !lay->peer)
		json_object_set_new(o, "alias", json_stringn(c.p, c.len));
	if (exp && exp->len)
		json_object_set_new(o, "expires_at", json_stringn(exp->p, exp->len));
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!s) {
		*why = "the line is not valid UTF-8";
		goto out;
	}
	if (c.len && lay->peer) {
		if (c.len > 64) {
			*why = "code: longer than 64 characters";
			free(s);
			goto out;
		}
		memcpy(code, c.p, c.len);
		code[c.len] = '\0';
	}
	json->len = 0;
	buf_puts(json, s);
	free(s);
	rc = 0;
out:
	for (int i = 0; i < max; i++)
		buf_release(&f[i]);
	buf_release(&c);
	return rc;
}
