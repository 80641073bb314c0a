/*
 * ui: the web UI's files, compiled in (the ui directory, and Chart.js from Debian's
 * libjs-chart.js, embedded at build time like the SQL schema).
 *
 *   GET /                 index.html, to a client that asks for HTML
 *                         (Accept: text/html); others get the JSON index
 *   GET /static/NAME      app.HASH.js, app.HASH.css, chart.HASH.js: HASH
 *                         is the start of the file's SHA-256, so a file
 *                         can be cached for ever (Cache-Control:
 *                         immutable) and a new build changes its name
 *
 * index.html names the files by placeholders ({{app.js}}, ...) filled in
 * once at start. Every file has an ETag (If-None-Match: 304) and, where
 * gzip makes it at least a tenth smaller, a gzip copy made once at start
 * and sent to clients that accept it. The page's Content-Security-Policy
 * allows scripts, styles and connections to this origin only: no inline
 * script or style, no eval.
 */
#include "reply.h"
#include "request.h"
#include "auth/apikey.h"
#include "core/log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static const char index_src[] =
#include "ui_index.html.h"
	;
static const char app_js[] =
#include "ui_app.js.h"
	;
static const char app_css[] =
#include "ui_app.css.h"
	;
static const char chart_js[] =
#include "chart.min.js.h"
	;

struct asset {
	const char *stem, *ext, *type;
	const char *data;
	size_t len;
	char path[64];    /* "/static/app.0123456789abcdef.js"; index: "/" */
	char etag[24];
	char *gz;         /* NULL: not worth it */
	size_t gz_len;
	char *own;        /* data built at start (index.html) */
};

enum { A_APP_JS, A_APP_CSS, A_CHART_JS, A_INDEX, A_COUNT };
static struct asset assets[A_COUNT] = {
	[A_APP_JS] = {"app", "js", "text/javascript; charset=utf-8", app_js, sizeof(app_js) - 1},
	[A_APP_CSS] = {"app", "css", "text/css; charset=utf-8", app_css, sizeof(app_css) - 1},
	[A_CHART_JS] = {"chart", "js", "text/javascript; charset=utf-8", chart_js,
			sizeof(chart_js) - 1},
	[A_INDEX] = {"index", "html", "text/html; charset=utf-8", index_src, sizeof(index_src) - 1},
};
static pthread_once_t once = PTHREAD_ONCE_INIT;

static const char page_csp[] =
	"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
	"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/* A gzip copy of a's data, if it saves a tenth or more. */
static void gzip_copy(struct asset *a)
{
	z_stream z;
	memset(&z, 0, sizeof(z));
	if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) != Z_OK)
		return;
	size_t cap = deflateBound(&z, (uLong)a->len);
	char *out = malloc(cap);
	z.next_in = (Bytef *)(uintptr_t)a->data;
	z.avail_in = (uInt)a->len;
	z.next_out = (Bytef *)out;
	z.avail_out = (uInt)cap;
	int rc = out ? deflate(&z, Z_FINISH) : Z_MEM_ERROR;
	size_t n = cap - z.avail_out;
	deflateEnd(&z);
	if (rc != Z_STREAM_END || n > a->len - a->len / 10) {
		free(out);
		return;
	}
	a->gz = out;
	a->gz_len = n;
}

static void hash_name(struct asset *a)
{
	uint8_t h[32];
	apikey_sha256(a->data, a->len, h);
	char hex[17];
	for (int i = 0; i < 8; i++)
		snprintf(hex + 2 * i, 3, "%02x", h[i]);
	snprintf(a->etag, sizeof(a->etag), "\"%s\"", hex);
	snprintf(a->path, sizeof(a->path), "/static/%s.%s.%s", a->stem, hex, a->ext);
}

/* index.html with each {{stem.ext}} replaced by that file's path. */
static void build_index(void)
{
	struct buf b;
	buf_init(&b);
	const char *p = index_src;
	while (*p) {
		const char *open = strstr(p, "{{");
		const char *close = open ? strstr(open, "}}") : NULL;
		if (!close) {
			buf_puts(&b, p);
			break;
		}
		buf_append(&b, p, (size_t)(open - p));
		const char *name = open + 2;
		size_t nl = (size_t)(close - name);
		const struct asset *hit = NULL;
		for (int i = 0; i < A_INDEX && !hit; i++) {
			char want[32];
			snprintf(want, sizeof(want), "%s.%s", assets[i].stem, assets[i].ext);
			if (strlen(want) == nl && memcmp(want, name, nl) == 0)
				hit = &assets[i];
		}
		if (hit)
			buf_puts(&b, hit->path);
		else
			buf_append(&b, open, (size_t)(close + 2 - open));
		p = close + 2;
	}
	struct asset *a = &assets[A_INDEX];
	a->own = b.p;
	a->data = b.p;
	a->len = b.len;
}

static void init(void)
{
	for (int i = 0; i < A_INDEX; i++)
		hash_name(&assets[i]);
	build_index();
	hash_name(&assets[A_INDEX]);
	snprintf(assets[A_INDEX].path, sizeof(assets[A_INDEX].path), "/");
	for (int i = 0; i < A_COUNT; i++)
		gzip_copy(&assets[i]);
}

void ui_init(void)
{
	pthread_once(&once, init);
}

/* The request's header k lists token (comma-separated, any case). */
static int header_lists(const struct http_request *req, enum http_known k, const char *token)
{
	const struct http_header *h = http_header_get(req, k);
	size_t tl = strlen(token);
	for (size_t i = 0; h && i + tl <= h->value_len; i++)
		if (ascii_casecmp_n(h->value + i, tl, token, tl) == 0 &&
		    (i == 0 || h->value[i - 1] == ' ' || h->value[i - 1] == ',') &&
		    (i + tl == h->value_len || strchr(" ,;", h->value[i + tl])))
			return 1;
	return 0;
}

static int etag_matches(const struct http_request *req, const char *etag)
{
	const struct http_header *h = http_header_get(req, HTTP_H_IF_NONE_MATCH);
	size_t el = strlen(etag);
	for (size_t i = 0; h && i + el <= h->value_len; i++)
		if (memcmp(h->value + i, etag, el) == 0)
			return 1;
	return h && h->value_len == 1 && h->value[0] == '*';
}

static void serve(struct app_req *r, const struct asset *a, const char *cache_control)
{
	struct http_exchange *ex = r->ex;
	const struct http_request *req = ex->req;
	static const char nosniff[] = "nosniff", vary[] = "Accept-Encoding";
	if (etag_matches(req, a->etag)) {
		http_respond_start(ex, 304);
		http_respond_header(ex, "ETag", a->etag, strlen(a->etag));
		http_respond_header(ex, "Cache-Control", cache_control, strlen(cache_control));
		http_respond_finish(ex, NULL, NULL, 0);
		return;
	}
	int gz = a->gz && header_lists(req, HTTP_H_ACCEPT_ENCODING, "gzip");
	http_respond_start(ex, 200);
	http_respond_header(ex, "X-Content-Type-Options", nosniff, sizeof(nosniff) - 1);
	http_respond_header(ex, "ETag", a->etag, strlen(a->etag));
	http_respond_header(ex, "Cache-Control", cache_control, strlen(cache_control));
	if (a->gz)
		http_respond_header(ex, "Vary", vary, sizeof(vary) - 1);
	if (gz)
		http_respond_header(ex, "Content-Encoding", "gzip", 4);
	if (a == &assets[A_INDEX]) {
		static const char no_referrer[] = "no-referrer";
		http_respond_header(ex, "Content-Security-Policy", page_csp, sizeof(page_csp) - 1);
		http_respond_header(ex, "Referrer-Policy", no_referrer, sizeof(no_referrer) - 1);
	}
	http_respond_finish(ex, a->type, gz ? a->gz : a->data, gz ? a->gz_len : a->len);
}

int ui_wants_page(const struct http_request *req)
{
	return header_lists(req, HTTP_H_ACCEPT, "text/html");
}

void ui_page(struct app_req *r)
{
	ui_init();
	serve(r, &assets[A_INDEX], "no-cache");
}

void ui_static(struct app_req *r)
{
	ui_init();
	for (int i = 0; i < A_INDEX; i++) {
		const char *name = assets[i].path + 8; /* after "/static/" */
		if (strlen(name) == r->arg_len && memcmp(name, r->arg, r->arg_len) == 0) {
			serve(r, &assets[i], "public, max-age=31536000, immutable");
			return;
		}
	}
	reply_error(r->ex, 404, "not_found", "no such file (names change with every build)");
}
