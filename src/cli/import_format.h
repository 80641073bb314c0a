/*
 * import_format: what `shortd import` reads, line by line, turned into the
 * body the API takes (so that every format passes the API's own parser).
 *
 * CSV records may span lines (RFC 4180 quotes); a first line that names
 * known columns is a header and says where each one is. Known headers:
 *
 *   shortd   url, alias, expires_at
 *   YOURLS   keyword, url (title, timestamp, ip, clicks ignored)
 *   Kutt     address, target, expire_in (link, visit_count, ... ignored)
 *   Shlink   shortCode or shortUrl, longUrl, validUntil (the web client's
 *            export and the "Long URL, Short code" import layout)
 *   bit.ly   link or bitlink (the short URL), long_url (title, tags, ...)
 *
 * Column names match without regard to case, spaces, '_' or '-'. A CSV
 * file without a header is url[,alias[,expires_at]] per line.
 */
#ifndef SHORTD_IMPORT_FORMAT_H
#define SHORTD_IMPORT_FORMAT_H

#include <stdio.h>

#include "core/util.h"

enum import_kind { IMPORT_CSV, IMPORT_JSONL };

struct import_layout {
	enum import_kind kind;
	const char *source;   /* "shortd", "YOURLS", ...: for messages */
	int peer;             /* codes come from another shortener */
	int header;           /* the first record was a header */
	int url, code, short_url, expires; /* column numbers; -1: none */
};

/* --format values, for the usage text. */
extern const char import_format_names[];
int import_format_known(const char *format);

/* The layout for --format NAME (NULL: guess) and the file's first record
 * (a header or data); name is the file's name ("-": stdin). 0, or -1 with
 * a message for the user. */
int import_layout_detect(struct import_layout *lay, const char *format, const char *name,
			 const char *first, char *err, size_t errlen);

/* Reads a file record by record: a line, or more lines while a CSV quote
 * is open. */
struct import_reader {
	FILE *f;
	int csv;
	size_t max;      /* a longer record is cut there (too_long) */
	struct buf rec;  /* the record, NUL-terminated, without its line end */
	long lineno;     /* the record's first line */
	long lines;      /* lines read so far */
	int too_long;
	char *line;
	size_t cap;
};

void import_reader_init(struct import_reader *r, FILE *f, size_t max);
void import_reader_release(struct import_reader *r);
/* The next record into r->rec: 1, or 0 at the end of the file. */
int import_reader_next(struct import_reader *r);

/* A CSV record as an API body: json gets {"url":...,"alias":...,
 * "expires_at":...}; a code kept from another shortener goes to code
 * (NUL-terminated, "" if none) rather than into the body, because such
 * codes may be shorter than new aliases. 0, or -1 with *why. */
int import_csv_row(const struct import_layout *lay, const char *rec, size_t len,
		   struct buf *json, char code[65], const char **why);

#endif
