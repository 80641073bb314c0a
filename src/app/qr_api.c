/*
 * qr_api: GET /api/v1/links/{code}/qr?format=svg|png&size=&margin=&ecc=
 *
 * A QR code of the link's short URL, drawn by libqrencode: SVG (one path,
 * a run of dark modules a segment, scaled by the viewer without blur) or
 * PNG (8-bit grey through libpng's simplified API, whole modules of equal
 * pixels). The same keys may draw it as may read the link. Options:
 *   format  svg (default) or png
 *   size    the image's width in pixels, 64 to 1024 (default 256); a PNG
 *           is as wide as the whole modules that fit (never wider)
 *   margin  quiet zone in modules, 0 to 16 (default 4, the standard's)
 *   ecc     error correction L, M (default), Q or H
 * The answer carries an ETag of what it is drawn from (short URL and
 * options), so If-None-Match gets 304 without drawing. Drawing is done on
 * the worker, and the size cap bounds what it costs there (docs/api.md).
 */
#include "reply.h"
#include "request.h"

#include <png.h>
#include <qrencode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QR_SIZE_MIN 64
#define QR_SIZE_MAX 1024
#define QR_MARGIN_MAX 16

static const char nosniff[] = "nosniff";
static const char cache_control[] = "private, max-age=3600";

/* An integer query parameter in [lo, hi], or def when absent: 0, or -1. */
static int int_param(const struct http_request *req, const char *name, int lo, int hi, int def,
		     int *out)
{
	const char *v;
	long n = app_query_param(req, name, &v);
	*out = def;
	if (n < 0)
		return 0;
	if (n == 0 || n > 5)
		return -1;
	int x = 0;
	for (long i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		x = x * 10 + (v[i] - '0');
	}
	if (x < lo || x > hi)
		return -1;
	*out = x;
	return 0;
}

/* The options, checked before the link is read: 0, or an answer. */
static int read_options(struct app_req *r)
{
	const struct http_request *req = r->ex->req;
	struct app_qr *q = &r->u.qr;
	const char *v;
	long n = app_query_param(req, "format", &v);
	q->png = n == 3 && memcmp(v, "png", 3) == 0;
	if (n >= 0 && !q->png && !(n == 3 && memcmp(v, "svg", 3) == 0)) {
		reply_field_error(r->ex, "format", "must be svg or png");
		return -1;
	}
	if (int_param(req, "size", QR_SIZE_MIN, QR_SIZE_MAX, 256, &q->size) != 0) {
		reply_field_error(r->ex, "size", "must be an integer from 64 to 1024 (pixels)");
		return -1;
	}
	if (int_param(req, "margin", 0, QR_MARGIN_MAX, 4, &q->margin) != 0) {
		reply_field_error(r->ex, "margin", "must be an integer from 0 to 16 (modules)");
		return -1;
	}
	n = app_query_param(req, "ecc", &v);
	q->ecc = 'M';
	if (n >= 0) {
		if (n != 1 || !strchr("LMQH", v[0])) {
			reply_field_error(r->ex, "ecc", "must be L, M, Q or H");
			return -1;
		}
		q->ecc = v[0];
	}
	return 0;
}

static QRecLevel level_of(char ecc)
{
	switch (ecc) {
	case 'L': return QR_ECLEVEL_L;
	case 'Q': return QR_ECLEVEL_Q;
	case 'H': return QR_ECLEVEL_H;
	default: return QR_ECLEVEL_M;
	}
}

/* The SVG: a white square, and the dark modules as one path of runs. */
static void draw_svg(const QRcode *qr, const struct app_qr *q, struct buf *out)
{
	int w = qr->width, total = w + 2 * q->margin;
	buf_printf(out,
		   "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" width=\"%d\" "
		   "height=\"%d\" shape-rendering=\"crispEdges\"><rect width=\"%d\" height=\"%d\" "
		   "fill=\"#fff\"/><path fill=\"#000\" d=\"",
		   total, total, q->size, q->size, total, total);
	for (int y = 0; y < w; y++) {
		for (int x = 0; x < w;) {
			if (!(qr->data[y * w + x] & 1)) {
				x++;
				continue;
			}
			int run = 1;
			while (x + run < w && (qr->data[y * w + x + run] & 1))
				run++;
			buf_printf(out, "M%d %dh%dv1h-%dz", x + q->margin, y + q->margin, run, run);
			x += run;
		}
	}
	buf_puts(out, "\"/></svg>\n");
}

static void png_put(png_structp png, png_bytep data, size_t n)
{
	buf_append(png_get_io_ptr(png), data, n);
}

static void png_flush_nothing(png_structp png)
{
	(void)png;
}

/* The PNG: 1 bit a pixel, whole modules of scale pixels each, written row
 * by row through libpng (an 8-bit image took 15 ms at 1024 px: eight
 * times the bytes to compress, twice). 0 if it could not be made. */
static int draw_png(const QRcode *qr, const struct app_qr *q, struct buf *out)
{
	int w = qr->width, total = w + 2 * q->margin;
	int scale = q->size / total;
	if (scale < 1)
		scale = 1; /* a long URL at a small size: larger than asked */
	int px = total * scale;
	size_t row_bytes = ((size_t)px + 7) / 8;
	unsigned char *row = malloc(row_bytes);
	png_structp png = row ? png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL)
			      : NULL;
	png_infop info = png ? png_create_info_struct(png) : NULL;
	if (!info || setjmp(png_jmpbuf(png))) {
		/* libpng failed (it jumps back here), or never began */
		png_destroy_write_struct(&png, &info);
		free(row);
		return 0;
	}
	png_set_write_fn(png, out, png_put, png_flush_nothing);
	png_set_IHDR(png, info, (png_uint_32)px, (png_uint_32)px, 1, PNG_COLOR_TYPE_GRAY,
		     PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
	png_set_filter(png, 0, PNG_FILTER_NONE); /* rows repeat: zlib finds them */
	png_write_info(png, info);
	for (int y = 0; y < total; y++) {
		memset(row, 0xff, row_bytes); /* 1: white */
		int my = y - q->margin;
		for (int x = 0; my >= 0 && my < w && x < w; x++) {
			if (!(qr->data[my * w + x] & 1))
				continue;
			for (int i = (x + q->margin) * scale, e = i + scale; i < e; i++)
				row[i >> 3] &= (unsigned char)~(0x80u >> (i & 7));
		}
		for (int k = 0; k < scale; k++)
			png_write_row(png, row);
	}
	png_write_end(png, info);
	png_destroy_write_struct(&png, &info);
	free(row);
	return !out->failed;
}

/* The ETag of an image: a hash of the short URL and the options. */
static void etag_of(const char *url, size_t len, const struct app_qr *q, char out[24])
{
	uint64_t h = hash_bytes(url, len, 0x51c0de);
	h = mix64(h ^ (uint64_t)q->png << 40 ^ (uint64_t)q->size << 20 ^
		  (uint64_t)q->margin << 8 ^ (uint64_t)(unsigned char)q->ecc);
	snprintf(out, 24, "\"%016llx\"", (unsigned long long)h);
}

/* If-None-Match holds this ETag (or is "*"). */
static int not_modified(const struct http_request *req, const char *etag)
{
	const struct http_header *h = http_header_get(req, HTTP_H_IF_NONE_MATCH);
	if (!h)
		return 0;
	size_t el = strlen(etag);
	for (size_t i = 0; i < h->value_len;) {
		while (i < h->value_len && (h->value[i] == ' ' || h->value[i] == ','))
			i++;
		size_t s = i;
		while (i < h->value_len && h->value[i] != ',')
			i++;
		size_t e = i;
		while (e > s && h->value[e - 1] == ' ')
			e--;
		const char *t = h->value + s;
		size_t tl = e - s;
		if (tl >= 2 && t[0] == 'W' && t[1] == '/') { /* weak comparison */
			t += 2;
			tl -= 2;
		}
		if ((tl == 1 && t[0] == '*') || (tl == el && memcmp(t, etag, el) == 0))
			return 1;
	}
	return 0;
}

static void qr_found(struct app_req *r)
{
	struct http_exchange *ex = r->ex;
	const struct app_qr *q = &r->u.qr;
	char url[2200];
	int n = snprintf(url, sizeof(url), "%s/%.*s", r->app->base_url, (int)r->link->code_len,
			 r->link->code);
	link_unref(r->link);
	r->link = NULL;
	if (n < 0 || (size_t)n >= sizeof(url)) {
		reply_error(ex, 500, "internal_error", "the short URL is too long to draw");
		return;
	}
	char etag[24];
	etag_of(url, (size_t)n, q, etag);
	if (not_modified(ex->req, etag)) {
		http_respond_start(ex, 304);
		http_respond_header(ex, "ETag", etag, strlen(etag));
		http_respond_header(ex, "Cache-Control", cache_control, sizeof(cache_control) - 1);
		http_respond_finish(ex, NULL, NULL, 0);
		return;
	}
	QRcode *qr = QRcode_encodeData(n, (const unsigned char *)url, 0, level_of(q->ecc));
	struct buf img;
	buf_init_soft(&img);
	int ok = qr && (q->png ? draw_png(qr, q, &img) : (draw_svg(qr, q, &img), 1)) && !img.failed;
	if (qr)
		QRcode_free(qr);
	if (!ok || !img.p) {
		buf_release(&img);
		reply_error(ex, 503, "out_of_memory", "out of memory, try again");
		return;
	}
	http_respond_start(ex, 200);
	http_respond_header(ex, "X-Content-Type-Options", nosniff, sizeof(nosniff) - 1);
	/* an SVG opened on its own is a document: it may run nothing */
	static const char csp[] = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'";
	http_respond_header(ex, "Content-Security-Policy", csp, sizeof(csp) - 1);
	http_respond_header(ex, "ETag", etag, strlen(etag));
	http_respond_header(ex, "Cache-Control", cache_control, sizeof(cache_control) - 1);
	http_respond_finish(ex, q->png ? "image/png" : "image/svg+xml", img.p, img.len);
	buf_release(&img);
}

static void qr_authed(struct app_req *r)
{
	if (app_require(r, 0) != REQ_GO_ON || read_options(r) != 0)
		return;
	app_find_link(r, qr_found);
}

void qr_get(struct app_req *r)
{
	app_authenticate(r, qr_authed);
}
