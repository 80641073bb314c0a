-- shortd SQLite schema.
--
-- Migrations run in order at start-up, each in its own transaction, and
-- PRAGMA user_version records the last one applied. A line
-- "-- migration N" starts migration N; never edit a migration that has
-- shipped, add the next one.
--
-- links: one row per short link; rows are never removed.
--   id          Snowflake id (time, node, sequence): primary key, and the
--               keyset for listing newest first (ORDER BY id DESC).
--   code        the short code or custom alias, case-sensitive; UNIQUE
--               index links_code: the redirect lookup, and what makes
--               random codes unique (an insert that collides is retried
--               with a new code).
--   url         normalised target URL (http or https, at most 8192 bytes)
--   redirect    301, 302, 307 or 308
--   created_at, updated_at, expires_at, deleted_at: Unix milliseconds;
--               expires_at NULL = never; deleted_at NULL = live. A deleted
--               link keeps its row, so its code is never reused and
--               redirects to it answer 410.

-- migration 1
CREATE TABLE links (
	id         INTEGER PRIMARY KEY,
	code       TEXT    NOT NULL,
	url        TEXT    NOT NULL,
	redirect   INTEGER NOT NULL DEFAULT 302,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	expires_at INTEGER,
	deleted_at INTEGER
);
CREATE UNIQUE INDEX links_code ON links (code);

-- click_hours: clicks per link per hour (UTC), humans and bots apart.
--   hour        Unix milliseconds / 3600000
-- click_dims: human clicks per link per day (UTC) by dimension value.
--   day         Unix milliseconds / 86400000
--   dim         1 referrer host, 2 country, 3 device class, 4 browser
--               family, 5 OS family (device class also counts bots, as
--               "bot")
-- Both are primary-keyed (WITHOUT ROWID) on exactly what the stats API
-- reads: one link over a range of hours or days.
-- click_flush: the number of the last aggregator batch committed. It is
--   written in the batch's own transaction, so a reader's snapshot tells
--   which batch its counts include.

-- migration 2
CREATE TABLE click_hours (
	link_id INTEGER NOT NULL,
	hour    INTEGER NOT NULL,
	humans  INTEGER NOT NULL,
	bots    INTEGER NOT NULL,
	PRIMARY KEY (link_id, hour)
) WITHOUT ROWID;
CREATE TABLE click_dims (
	link_id INTEGER NOT NULL,
	day     INTEGER NOT NULL,
	dim     INTEGER NOT NULL,
	value   TEXT    NOT NULL,
	clicks  INTEGER NOT NULL,
	PRIMARY KEY (link_id, day, dim, value)
) WITHOUT ROWID;
CREATE TABLE click_flush (
	id  INTEGER PRIMARY KEY CHECK (id = 1),
	seq INTEGER NOT NULL
);
INSERT INTO click_flush (id, seq) VALUES (1, 0);
