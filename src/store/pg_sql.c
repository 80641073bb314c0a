/*
 * pg_sql: the PostgreSQL backend's statements (prepared on every
 * connection, by name), their parameters, and the rows they answer read
 * into links, keys and counters. Parameters and results are text, except
 * the SHA-256 hashes, sent as binary; bytea comes back as \x hex.
 */
#include "pg_internal.h"
#include "core/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LINK_COLS \
	"id, code, url, redirect, created_at, updated_at, expires_at, deleted_at, owner, forward_query"
#define LINK_NCOLS 10 /* a column selected after them is number 10 */
#define KEY_COLS "id, key_id, name, role, hash, created_at, revoked_at"

const struct pg_stmt_def pg_stmts[PG_NSTMTS] = {
	[PG_LINK_GET] = {"link_get", "SELECT " LINK_COLS " FROM links WHERE code = $1", 1},
	/* sent to a replica before a link's read: has it replayed this
	 * process's last commit? (A statement of its own: the read that
	 * follows takes its snapshot after this answer, so it sees that
	 * commit when the answer is yes.) */
	[PG_LSN_GATE] = {"lsn_gate", "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn", 1},
	[PG_LINKS_ALL] = {"links_all",
			  "SELECT " LINK_COLS " FROM links WHERE deleted_at IS NULL AND id < $1"
			  " AND ($3::text IS NULL OR strpos(lower(code), $3) > 0"
			  " OR strpos(lower(url), $3) > 0)"
			  " ORDER BY id DESC LIMIT $2",
			  3},
	[PG_LINKS_OWNER] = {"links_owner",
			    "SELECT " LINK_COLS " FROM links WHERE owner = $3 AND id < $1"
			    " AND deleted_at IS NULL"
			    " AND ($4::text IS NULL OR strpos(lower(code), $4) > 0"
			    " OR strpos(lower(url), $4) > 0)"
			    " ORDER BY id DESC LIMIT $2",
			    4},
	[PG_KEY_GET] = {"key_get", "SELECT " KEY_COLS " FROM api_keys WHERE key_id = $1", 1},
	[PG_KEYS] = {"keys", "SELECT " KEY_COLS " FROM api_keys ORDER BY id DESC", 0},
	[PG_IDEM_GET] = {"idem_get",
			 "SELECT " LINK_COLS ", idem_hash FROM links"
			 " WHERE owner = $1 AND idem_key = $2 AND created_at >= $3",
			 3},
	/* one statement, so one snapshot: the merged counters and how far
	 * this node has merged its deltas into them agree. Rows: (0, seq),
	 * (1, hour, humans, bots), (2, day, clicks, the combination). */
	[PG_CLICKS] = {"clicks",
		       "SELECT 0, coalesce((SELECT seq FROM click_flush WHERE node = $1), 0),"
		       " 0::bigint, 0::bigint, '', '', '', '', ''"
		       " UNION ALL SELECT 1, hour, humans, bots, '', '', '', '', '' FROM click_hours"
		       " WHERE link_id = $2 AND hour BETWEEN $3 AND $4"
		       " UNION ALL SELECT 2, day, clicks, 0, referrer, country, device, browser, os"
		       " FROM click_days WHERE $7 AND link_id = $2 AND day BETWEEN $5 AND $6",
		       7},
	[PG_CLICK_DELTAS] = {"click_deltas",
			     "SELECT seq, data FROM click_deltas WHERE node = $1 AND seq > $2"
			     " ORDER BY seq",
			     2},
	/* the inserts of a batch in one statement, a column an array: the
	 * executor runs once for all of them (a row cost PostgreSQL 125 us
	 * of CPU as a statement of its own, in a batch of 64). ON CONFLICT
	 * DO NOTHING: a taken code (or a used Idempotency-Key) is a row not
	 * returned, not an error that would fail the batch's transaction */
	[PG_INSERT_MANY] = {"insert_many",
			    "INSERT INTO links (id, code, url, redirect, created_at, updated_at,"
			    " expires_at, owner, idem_key, idem_hash, forward_query)"
			    " SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[],"
			    " $4::smallint[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[],"
			    " $9::text[], $10::bytea[], $11::boolean[])"
			    " ON CONFLICT DO NOTHING RETURNING id",
			    11},
	[PG_IDEM_EXPIRE] = {"idem_expire",
			    "UPDATE links SET idem_key = NULL, idem_hash = NULL"
			    " WHERE owner = $1 AND idem_key = $2 AND created_at < $3",
			    3},
	[PG_UPDATE] = {"update",
		       "UPDATE links SET url = CASE WHEN $2 THEN $3 ELSE url END,"
		       " expires_at = CASE WHEN $4 THEN $5::bigint ELSE expires_at END,"
		       " redirect = CASE WHEN $6 THEN $7::smallint ELSE redirect END, updated_at = $8,"
		       " forward_query = CASE WHEN $10 THEN $11::boolean ELSE forward_query END"
		       " WHERE code = $1 AND deleted_at IS NULL AND ($9::bigint < 0 OR owner = $9::bigint)"
		       " RETURNING " LINK_COLS,
		       11},
	[PG_DELETE] = {"delete",
		       "UPDATE links SET deleted_at = $2, updated_at = $2"
		       " WHERE code = $1 AND deleted_at IS NULL AND ($3::bigint < 0 OR owner = $3::bigint)"
		       " RETURNING " LINK_COLS,
		       3},
	[PG_LINK_OWNER] = {"link_owner", "SELECT owner FROM links WHERE code = $1", 1},
	[PG_KEY_INSERT] = {"key_insert",
			   "INSERT INTO api_keys (id, key_id, name, role, hash, created_at)"
			   " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING id",
			   6},
	[PG_KEY_REVOKE] = {"key_revoke",
			   "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL"
			   " RETURNING id",
			   2},
	[PG_KEY_EXISTS] = {"key_exists", "SELECT 1 FROM api_keys WHERE id = $1", 1},
	[PG_SESSION_GET] = {"session_get",
			    "SELECT " KEY_COLS ", (SELECT expires_at FROM sessions WHERE hash = $1)"
			    " FROM api_keys WHERE id = (SELECT key_row FROM sessions WHERE hash = $1)",
			    1},
	[PG_SESSION_PURGE] = {"session_purge", "DELETE FROM sessions WHERE expires_at < $1", 1},
	[PG_SESSION_INSERT] = {"session_insert",
			       "INSERT INTO sessions (hash, key_row, created_at, expires_at)"
			       " VALUES ($1, $2, $3, $4)",
			       4},
	[PG_SESSION_DELETE] = {"session_delete",
			       "DELETE FROM sessions WHERE hash = $1 RETURNING 1", 1},
	[PG_DELTA_ADD] = {"delta_add",
			  "INSERT INTO click_deltas (node, seq, data) VALUES ($1, $2, $3)", 3},
	[PG_DELTA_DROP] = {"delta_drop", "DELETE FROM click_deltas WHERE node = $1 AND seq <= $2",
			   2},
	[PG_FLUSH_SEQ] = {"flush_seq",
			  "INSERT INTO click_flush (node, seq) VALUES ($1, $2)"
			  " ON CONFLICT (node) DO UPDATE SET seq = excluded.seq",
			  2},
	/* a merge's rows as arrays, one statement a table (and a chunk):
	 * the rows of one key are added up before (an upsert may not touch a
	 * row twice) */
	[PG_MERGE_HOURS] = {"merge_hours",
			    "INSERT INTO click_hours (link_id, hour, humans, bots)"
			    " SELECT * FROM unnest($1::bigint[], $2::int[], $3::bigint[], $4::bigint[])"
			    " ON CONFLICT (link_id, hour) DO UPDATE SET"
			    " humans = click_hours.humans + excluded.humans,"
			    " bots = click_hours.bots + excluded.bots",
			    4},
	[PG_MERGE_DAYS] = {"merge_days",
			   "INSERT INTO click_days (link_id, day, referrer, country, device, browser,"
			   " os, clicks) SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[],"
			   " $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[])"
			   " ON CONFLICT (link_id, day, referrer, country, device, browser, os)"
			   " DO UPDATE SET clicks = click_days.clicks + excluded.clicks",
			   8},
};

void pg_params_init(struct pg_params *p)
{
	p->n = 0;
}

void pg_param_int(struct pg_params *p, int64_t v)
{
	int i = p->n++;
	p->len[i] = (int)fmt_int(p->num[i], v);
	p->v[i] = p->num[i];
	p->fmt[i] = 0;
}

void pg_param_text(struct pg_params *p, const char *s, size_t n)
{
	int i = p->n++;
	p->v[i] = s;
	p->len[i] = (int)n;
	p->fmt[i] = 0;
}

void pg_param_null(struct pg_params *p)
{
	int i = p->n++;
	p->v[i] = NULL;
	p->len[i] = 0;
	p->fmt[i] = 0;
}

void pg_param_bytes(struct pg_params *p, const void *b, size_t n)
{
	int i = p->n++;
	p->v[i] = b;
	p->len[i] = (int)n;
	p->fmt[i] = 1;
}

enum pg_stmt pg_read_params(const struct store_read *rd, int node, struct pg_params *p)
{
	pg_params_init(p);
	switch (rd->kind) {
	case STORE_READ_LINK: {
		/* the code points into the request, which goes on after it */
		size_t n = rd->code_len < LINK_CODE_MAX ? rd->code_len : LINK_CODE_MAX;
		memcpy(p->code, rd->code, n);
		p->code[n] = '\0';
		pg_param_text(p, p->code, n);
		return PG_LINK_GET;
	}
	case STORE_READ_LINKS:
		pg_param_int(p, rd->before_id > 0 ? rd->before_id : INT64_MAX);
		pg_param_int(p, rd->limit);
		if (rd->owner != STORE_ANY_OWNER)
			pg_param_int(p, rd->owner);
		if (rd->q)
			pg_param_text(p, rd->q, strlen(rd->q));
		else
			pg_param_null(p);
		return rd->owner == STORE_ANY_OWNER ? PG_LINKS_ALL : PG_LINKS_OWNER;
	case STORE_READ_KEY:
		pg_param_text(p, rd->key_id, strlen(rd->key_id));
		return PG_KEY_GET;
	case STORE_READ_KEYS:
		return PG_KEYS;
	case STORE_READ_SESSION:
		pg_param_bytes(p, rd->session_hash, 32);
		return PG_SESSION_GET;
	case STORE_READ_IDEM:
		pg_param_int(p, rd->owner);
		pg_param_text(p, rd->idem_key, strlen(rd->idem_key));
		pg_param_int(p, rd->now_ms - STORE_IDEM_TTL_MS);
		return PG_IDEM_GET;
	case STORE_READ_CLICKS:
		pg_param_int(p, node);
		pg_param_int(p, rd->link_id);
		pg_param_int(p, rd->from_hour);
		pg_param_int(p, rd->to_hour);
		pg_param_int(p, rd->from_hour / 24);
		pg_param_int(p, rd->to_hour / 24);
		pg_param_text(p, rd->want_dims ? "t" : "f", 1);
		return PG_CLICKS;
	}
	return PG_LINK_GET;
}

static int64_t col_int(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? 0 : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int pg_col_bytes(const PGresult *res, int row, int col, uint8_t *out, size_t n)
{
	memset(out, 0, n);
	const char *v = PQgetvalue(res, row, col);
	if (PQgetisnull(res, row, col) || strncmp(v, "\\x", 2) != 0 || strlen(v) != 2 + 2 * n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int hi = hexval(v[2 + 2 * i]), lo = hexval(v[3 + 2 * i]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

struct link *pg_row_link(const PGresult *res, int row)
{
	struct link *l = link_new(PQgetvalue(res, row, 1), (size_t)PQgetlength(res, row, 1),
				  PQgetvalue(res, row, 2), (size_t)PQgetlength(res, row, 2));
	l->id = col_int(res, row, 0);
	l->redirect = (int)col_int(res, row, 3);
	l->created_at_ms = col_int(res, row, 4);
	l->updated_at_ms = col_int(res, row, 5);
	l->expires_at_ms = col_int(res, row, 6);
	l->deleted_at_ms = col_int(res, row, 7);
	l->owner = col_int(res, row, 8);
	l->forward_query = PQgetvalue(res, row, 9)[0] == 't';
	return l;
}

static void row_key(const PGresult *res, int row, struct api_key *k)
{
	memset(k, 0, sizeof(*k));
	k->id = col_int(res, row, 0);
	snprintf(k->key_id, sizeof(k->key_id), "%s", PQgetvalue(res, row, 1));
	snprintf(k->name, sizeof(k->name), "%s", PQgetvalue(res, row, 2));
	k->role = apikey_role_parse(PQgetvalue(res, row, 3));
	pg_col_bytes(res, row, 4, k->hash, sizeof(k->hash));
	k->created_at_ms = col_int(res, row, 5);
	k->revoked_at_ms = col_int(res, row, 6);
}

static void col_name(const PGresult *res, int row, int col, char *out, size_t cap)
{
	snprintf(out, cap, "%s", PQgetvalue(res, row, col));
}

static struct click_count *rows_push(struct click_rows *out, size_t *cap)
{
	if (out->n == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		out->rows = xrealloc(out->rows, *cap * sizeof(*out->rows));
	}
	struct click_count *c = &out->rows[out->n++];
	memset(c, 0, sizeof(*c));
	return c;
}

int pg_read_take(struct store_read *rd, const PGresult *res)
{
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return STORE_ERR;
	int n = PQntuples(res);
	switch (rd->kind) {
	case STORE_READ_LINK:
		if (n == 0)
			return STORE_NOTFOUND;
		rd->link = pg_row_link(res, 0);
		return STORE_OK;
	case STORE_READ_LINKS:
		rd->links = xcalloc((size_t)n + 1, sizeof(*rd->links));
		for (int i = 0; i < n; i++)
			rd->links[i] = pg_row_link(res, i);
		rd->nlinks = n;
		return STORE_OK;
	case STORE_READ_KEY:
		if (n == 0)
			return STORE_NOTFOUND;
		row_key(res, 0, &rd->key);
		return STORE_OK;
	case STORE_READ_SESSION:
		if (n == 0)
			return STORE_NOTFOUND;
		row_key(res, 0, &rd->key);
		rd->session_expires_ms = col_int(res, 0, 7);
		return STORE_OK;
	case STORE_READ_KEYS:
		rd->keys = xmalloc(((size_t)n + 1) * sizeof(*rd->keys));
		for (int i = 0; i < n; i++)
			row_key(res, i, &rd->keys[i]);
		rd->nkeys = n;
		return STORE_OK;
	case STORE_READ_IDEM:
		if (n == 0)
			return STORE_NOTFOUND;
		rd->link = pg_row_link(res, 0);
		pg_col_bytes(res, 0, LINK_NCOLS, rd->idem_hash, sizeof(rd->idem_hash));
		return STORE_OK;
	case STORE_READ_CLICKS: {
		struct click_rows *out = &rd->clicks;
		size_t cap = 0;
		for (int i = 0; i < n; i++) {
			int64_t part = col_int(res, i, 0);
			if (part == 0) {
				out->seq = (uint64_t)col_int(res, i, 1);
				continue;
			}
			struct click_count *c = rows_push(out, &cap);
			c->link_id = rd->link_id;
			c->bucket = (int32_t)col_int(res, i, 1);
			if (part == 1) {
				c->kind = STORE_CLICK_HOUR;
				c->humans = (uint64_t)col_int(res, i, 2);
				c->bots = (uint64_t)col_int(res, i, 3);
			} else {
				c->kind = STORE_CLICK_DAY;
				c->humans = (uint64_t)col_int(res, i, 2);
				col_name(res, i, 4, c->referrer, sizeof(c->referrer));
				col_name(res, i, 5, c->country, sizeof(c->country));
				col_name(res, i, 6, c->device, sizeof(c->device));
				col_name(res, i, 7, c->browser, sizeof(c->browser));
				col_name(res, i, 8, c->os, sizeof(c->os));
			}
		}
		return STORE_OK;
	}
	}
	return STORE_ERR;
}

int pg_prepare_all(PGconn *c, char *err, size_t errlen)
{
	for (int i = 0; i < PG_NSTMTS; i++) {
		PGresult *r = PQprepare(c, pg_stmts[i].name, pg_stmts[i].sql, pg_stmts[i].nparams, NULL);
		int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
		if (!ok)
			snprintf(err, errlen, "unable to prepare '%s': %s", pg_stmts[i].name,
				 PQresultErrorMessage(r));
		PQclear(r);
		if (!ok)
			return -1;
	}
	return 0;
}
