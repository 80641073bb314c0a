-- shortd PostgreSQL schema (the store's second backend: store_pg.c).
--
-- Migrations run in order at start-up (`shortd serve --pg`) or with
-- `shortd migrate --pg URL`, each in its own transaction, under the
-- transaction-level advisory lock 7305840 (pg_advisory_xact_lock), so that
-- several shortd starting at once on an empty database apply each
-- migration once: the others wait for the lock, then find it applied. The
-- table schema_migrations records each migration applied. A line
-- "-- migration N" starts migration N; never edit a migration that has
-- shipped, add the next one.
--
-- The tables are those of the SQLite backend (schema_sqlite.sql and
-- schema_clicks.sql say what each column means), with these differences:
--   - times are BIGINT Unix milliseconds, as there;
--   - codes and keys' public ids use the "C" collation: compared and
--     indexed as bytes, as SQLite does, and faster than a locale's;
--   - several shortd share one database, so the click pipeline's own
--     tables are per node (--node-id, unique per node): each node appends
--     its deltas numbered in its own sequence and records how far it has
--     merged them; the merged counters (click_hours, click_days) are
--     shared, and a merge adds to them (addition commutes, so nodes
--     merging in any order give the same counts).

-- migration 1
CREATE TABLE schema_migrations (
	version    INTEGER PRIMARY KEY,
	applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- links: one row per short link; rows are never removed (a deleted code is
--   never given out again). links_code: the redirect lookup, and what makes
--   codes unique (a random code that collides is retried with another).
--   links_owner: a user key's listing, newest first (live links only).
--   links_idem: an Idempotency-Key is unique per owner while set.
CREATE TABLE links (
	id         BIGINT   PRIMARY KEY,
	code       TEXT     COLLATE "C" NOT NULL,
	url        TEXT     NOT NULL,
	redirect   SMALLINT NOT NULL DEFAULT 302,
	created_at BIGINT   NOT NULL,
	updated_at BIGINT   NOT NULL,
	expires_at BIGINT,
	deleted_at BIGINT,
	owner      BIGINT   NOT NULL DEFAULT 0,
	idem_key   TEXT     COLLATE "C",
	idem_hash  BYTEA
);
CREATE UNIQUE INDEX links_code ON links (code);
CREATE INDEX links_owner ON links (owner, id) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX links_idem ON links (owner, idem_key) WHERE idem_key IS NOT NULL;

-- api_keys: one row per API key (auth/apikey.h); key_id, the public part of
--   the key, finds its row; hash is SHA-256 of the whole key, never the key
--   itself; revoked_at NULL = valid.
CREATE TABLE api_keys (
	id         BIGINT PRIMARY KEY,
	key_id     TEXT   COLLATE "C" NOT NULL UNIQUE,
	name       TEXT   NOT NULL,
	role       TEXT   NOT NULL CHECK (role IN ('admin', 'user')),
	hash       BYTEA  NOT NULL,
	created_at BIGINT NOT NULL,
	revoked_at BIGINT
);

-- click_hours, click_days: the merged counters (schema_clicks.sql).
CREATE TABLE click_hours (
	link_id BIGINT  NOT NULL,
	hour    INTEGER NOT NULL,
	humans  BIGINT  NOT NULL,
	bots    BIGINT  NOT NULL,
	PRIMARY KEY (link_id, hour)
);
CREATE TABLE click_days (
	link_id  BIGINT  NOT NULL,
	day      INTEGER NOT NULL,
	referrer TEXT    COLLATE "C" NOT NULL,
	country  TEXT    COLLATE "C" NOT NULL,
	device   TEXT    COLLATE "C" NOT NULL,
	browser  TEXT    COLLATE "C" NOT NULL,
	os       TEXT    COLLATE "C" NOT NULL,
	clicks   BIGINT  NOT NULL,
	PRIMARY KEY (link_id, day, referrer, country, device, browser, os)
);
-- click_deltas: node's batches of counters (the delta format of
--   schema_clicks.sql), numbered in the node's own sequence, until that
--   node merges them. click_flush: the last delta each node has merged.
CREATE TABLE click_deltas (
	node INTEGER NOT NULL,
	seq  BIGINT  NOT NULL,
	data BYTEA   NOT NULL,
	PRIMARY KEY (node, seq)
);
CREATE TABLE click_flush (
	node INTEGER PRIMARY KEY,
	seq  BIGINT  NOT NULL
);

-- migration 2
-- links.forward_query: true, a redirect appends the request's query string
--   to the target (false for the links made before it).
ALTER TABLE links ADD COLUMN forward_query BOOLEAN NOT NULL DEFAULT false;

-- migration 3
-- sessions: web UI sign-ins, as in schema_sqlite.sql (migration 6).
CREATE TABLE sessions (
	hash       BYTEA  PRIMARY KEY,
	key_row    BIGINT NOT NULL,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);
