-- shortd SQLite schema of clicks.db, the click counters.
--
-- They live in a database file of their own, beside shortd.db: the
-- aggregator commits every second, and a commit to shortd.db would make
-- every reader of links drop its page cache and memory map (SQLite does
-- that when another connection changed the file), which made each cache
-- miss fault its pages in again. Migrations work as in schema_sqlite.sql,
-- with this file's own user_version; they run on shortd.db's connection
-- with clicks.db attached as "clicks", so names say their schema.
--
-- The aggregator appends each flush as a delta (one row, a blob: cheap
-- and durable), and merges deltas into click_hours and click_days about
-- once a minute, so a busy link costs one upsert per merge, not one per
-- flush. At start-up, deltas not merged yet are read back into memory.
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

-- migration 1
-- Also copies the counters of an older shortd.db (its migration 2 tables)
-- when there are any, in the same transaction (store_sqlite.c).
CREATE TABLE clicks.click_hours (
	link_id INTEGER NOT NULL,
	hour    INTEGER NOT NULL,
	humans  INTEGER NOT NULL,
	bots    INTEGER NOT NULL,
	PRIMARY KEY (link_id, hour)
) WITHOUT ROWID;
CREATE TABLE clicks.click_days (
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
CREATE TABLE clicks.click_deltas (
	seq  INTEGER PRIMARY KEY,
	data BLOB    NOT NULL
);
CREATE TABLE clicks.click_flush (
	id  INTEGER PRIMARY KEY CHECK (id = 1),
	seq INTEGER NOT NULL
);
INSERT INTO clicks.click_flush (id, seq) VALUES (1, 0);
