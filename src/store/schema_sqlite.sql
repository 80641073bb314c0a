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
--   forward_query 1: a redirect appends the request's query string to the
--               target (added by migration 5; 0 for the links before it).

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

-- Click counters (migration 2) lived here until migration 4 dropped them:
-- they are in clicks.db now (schema_clicks.sql), moved there by the first
-- migration of clicks.db, which runs between this file's 3 and 4.

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

-- migration 4
DROP TABLE click_hours;
DROP TABLE click_days;
DROP TABLE click_deltas;
DROP TABLE click_flush;

-- migration 5
ALTER TABLE links ADD COLUMN forward_query INTEGER NOT NULL DEFAULT 0;

-- migration 6
-- sessions: web UI sign-ins (POST /api/v1/session). hash: SHA-256 of the
--   session token, which only the browser's cookie holds; key_row: the
--   api_keys row it acts for (revoking the key ends its sessions, as every
--   request reads the key through the session); expires_at: Unix ms.
--   sessions_expiry: expired sessions are dropped when a new one is made.
CREATE TABLE sessions (
	hash       BLOB    PRIMARY KEY,
	key_row    INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_expiry ON sessions (expires_at);
