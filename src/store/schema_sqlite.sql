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

-- Click counters. The aggregator appends each flush as a delta (one row,
-- a blob: cheap and durable), and merges deltas into click_hours and
-- click_days about once a minute, so a busy link costs one upsert per
-- merge, not one per flush. At start-up, deltas not merged yet are read
-- back into memory.
--
-- click_hours: clicks per link per hour (UTC), humans and bots apart.
--   hour        Unix milliseconds / 3600000
-- click_days: clicks per link per day (UTC) per combination of referrer
--   host ('direct', 'unknown' or a host), country (ISO code or
--   'unknown'), device class, browser family and OS family. Bot clicks
--   have device 'bot' and '-' elsewhere. Breakdowns by one dimension sum
--   over the others.
--   day         Unix milliseconds / 86400000
-- Both are primary-keyed (WITHOUT ROWID) by what the stats API reads: one
-- link over a range of hours or days.
-- click_deltas: flushed batches not merged yet. data is in one of two
--   formats (both are read back; shortd writes format 2):
--   format 2: the 8 bytes "SCD2" 00 00 00 FF, then unsigned LEB128
--     varints (zz: zigzag-encoded signed): base hour (zz); the number of
--     combinations, then each as five strings (a length u8 and its bytes:
--     referrer, country, device, browser, os); then records: link_id,
--     kind (0: an hour counter; k > 0: a day counter of combination k),
--     bucket minus the base hour, or minus base hour / 24 for a day (zz),
--     humans, bots. About 13 bytes a counter.
--   format 1: records, integers little-endian: link_id i64, bucket i32,
--     kind u8 (0 hour, 1 day), humans u64, bots u64, and for kind 1 the
--     five strings as above. No record starts with format 2's 8 bytes:
--     as an i64 they are negative, and link ids are not.
-- click_flush: seq is the last delta merged into click_hours and
--   click_days, written in the merge's own transaction, so a reader's
--   snapshot tells which deltas its counts include.

-- migration 2
CREATE TABLE click_hours (
	link_id INTEGER NOT NULL,
	hour    INTEGER NOT NULL,
	humans  INTEGER NOT NULL,
	bots    INTEGER NOT NULL,
	PRIMARY KEY (link_id, hour)
) WITHOUT ROWID;
CREATE TABLE click_days (
	link_id  INTEGER NOT NULL,
	day      INTEGER NOT NULL,
	referrer TEXT    NOT NULL,
	country  TEXT    NOT NULL,
	device   TEXT    NOT NULL,
	browser  TEXT    NOT NULL,
	os       TEXT    NOT NULL,
	clicks   INTEGER NOT NULL,
	PRIMARY KEY (link_id, day, referrer, country, device, browser, os)
) WITHOUT ROWID;
CREATE TABLE click_deltas (
	seq  INTEGER PRIMARY KEY,
	data BLOB    NOT NULL
);
CREATE TABLE click_flush (
	id  INTEGER PRIMARY KEY CHECK (id = 1),
	seq INTEGER NOT NULL
);
INSERT INTO click_flush (id, seq) VALUES (1, 0);

-- API keys, link owners and idempotent creates.
--
-- api_keys: one row per API key (auth/apikey.h). key_id is the public part
--   of the key, UNIQUE: how a request finds its row; hash is SHA-256 of the
--   whole key, which itself is never stored; role 'admin' or 'user';
--   revoked_at NULL = valid (revoked rows stay: links keep their owner).
-- links.owner: api_keys.id of the key that created the link; 0 for an
--   anonymous create (--allow-anonymous) or a link older than keys. Index
--   links_owner: a user key's listing, newest first.
-- links.idem_key, idem_hash: the create's Idempotency-Key and SHA-256 of
--   its body. Unique per owner while set; a key is honoured for 24 hours,
--   after which the next create with it clears it from the old row.

-- migration 3
CREATE TABLE api_keys (
	id         INTEGER PRIMARY KEY,
	key_id     TEXT    NOT NULL,
	name       TEXT    NOT NULL,
	role       TEXT    NOT NULL CHECK (role IN ('admin', 'user')),
	hash       BLOB    NOT NULL,
	created_at INTEGER NOT NULL,
	revoked_at INTEGER
);
CREATE UNIQUE INDEX api_keys_key_id ON api_keys (key_id);
ALTER TABLE links ADD COLUMN owner INTEGER NOT NULL DEFAULT 0;
ALTER TABLE links ADD COLUMN idem_key TEXT;
ALTER TABLE links ADD COLUMN idem_hash BLOB;
CREATE INDEX links_owner ON links (owner, id);
CREATE UNIQUE INDEX links_idem ON links (owner, idem_key) WHERE idem_key IS NOT NULL;
