/*
 * sqlite_internal: what the files of the SQLite backend share (see
 * store_sqlite.c for its design). Nothing outside src/store/sqlite_*.c and
 * store_sqlite.c includes this, except the store's unit tests.
 *
 *   store_sqlite.c   open, close, statistics, the backend's table
 *   sqlite_schema.c  schema, migrations, rows read into links and keys
 *   sqlite_writer.c  the two writers: group commit, checkpoints
 *   sqlite_reader.c  the readers: snapshots, every kind of read, and the
 *                    delayed answers of the DELAYED_READS test build
 *   sqlite_mapper.c  the code map's builder thread
 *   sqlite_vfs.c     the VFS shim that fault injection goes through
 */
#ifndef SHORTD_SQLITE_INTERNAL_H
#define SHORTD_SQLITE_INTERNAL_H

#include "store.h"
#include "code_map.h"
#include "sqlite_vfs.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <uv.h>

#define BUSY_TIMEOUT_MS 5000

/* WAL thresholds, in pages (sqlite_writer.c runs the checkpoints). A commit
 * that leaves this many in the WAL is followed by a checkpoint that copies
 * what it can without waiting for readers ... */
#define SQLITE_CHECKPOINT_PAGES 8000
/* ... and one that leaves this many, by a checkpoint that waits for them
 * (up to 20 ms), copies everything and has the WAL start over. */
#define SQLITE_RESTART_PAGES 32000

#define LINK_COLUMNS \
	"id, code, url, redirect, created_at, updated_at, expires_at, deleted_at, owner," \
	" forward_query"
#define LINK_NCOLUMNS 10 /* a column selected after them is number 10 */
#define KEY_COLUMNS "id, key_id, name, role, hash, created_at, revoked_at"
#define KEY_NCOLUMNS 7

/* A writer: its connection, its thread and the ops queued for it. */
struct writer {
	struct sqlite_store *ss;
	sqlite3 *db;
	void (*setup)(void); /* run first on its thread, or NULL */
	pthread_t thread;
	int started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct store_op *head, *tail;
	int stopping;
	atomic_int last_commit_ok;
	/* owned by the writer's thread */
	struct histogram commit_latency, batch_size;
	metric_counter commits, commit_errors;
};

struct sqlite_store {
	char *path, *clicks_path; /* shortd.db, clicks.db */
	struct writer links;      /* shortd.db; clicks.db only while migrating */
	struct writer clicks;     /* clicks.db, opened as "main" */
	sqlite3_stmt *insert, *update, *del, *exists, *idem_expire, *key_insert, *key_revoke,
		*key_exists, *session_insert, *session_purge, *session_delete;
	sqlite3_stmt *click_hour, *click_day, *click_seq, *delta_add, *delta_drop; /* clicks.db */
	int commit_batch;
	atomic_ulong commit_gen; /* transactions the writers have ended */
	/* The code map (store_map_codes) and the thread that builds its
	 * tables, with its own connection; NULL/0 without one. */
	struct code_map *map;
	pthread_t mapper;
	pthread_mutex_t map_lock;
	pthread_cond_t map_cond;
	int map_wanted;		/* under map_lock */
	atomic_int map_stopping;
	metric_counter map_found, map_missed;
};

/* API key rows a reader read, each with the data version of shortd.db it
 * was read at (see sqlite_reader.c, read_key). */
#define KEY_ROWS 4

struct key_row {
	struct api_key key; /* key_id "": an empty slot */
	unsigned version;
};

struct store_reader {
	struct sqlite_store *ss;
	sqlite3 *db;
	sqlite3_stmt *begin, *end;
	unsigned long gen; /* ss->commit_gen when the snapshot began */
	struct key_row keys[KEY_ROWS];
	unsigned next_key; /* the slot the next new row takes */
	uint64_t map_found, map_missed; /* not yet added to ss's */
	sqlite3_stmt *get, *get_id, *list, *list_owner, *key_get, *key_list, *idem_get, *session_get;
	sqlite3_stmt *hours, *days, *seq, *deltas;
	/* DELAYED_READS builds: reads answered later, oldest first, by a
	 * timer on the reader's loop (NULL: no loop, every read at once). */
	uv_loop_t *loop;
	uv_timer_t *timer;
	struct store_read *delayed, *delayed_tail;
};

/* sqlite_schema.c */
int sqlite_exec(sqlite3 *db, const char *sql, char *err, size_t errlen);
int sqlite_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, char *err, size_t errlen);
/* Attaches clicks.db (made if missing) to db as "clicks". */
int sqlite_attach_clicks(sqlite3 *db, const char *path, char *err, size_t errlen);
/* WAL mode and every migration of both files, through the links writer's
 * connection (clicks.db attached for it, detached after). */
int sqlite_schema_apply(struct sqlite_store *ss, char *err, size_t errlen);
/* A row of LINK_COLUMNS (one reference for the caller) / KEY_COLUMNS. */
struct link *sqlite_row_to_link(sqlite3_stmt *st);
void sqlite_row_to_key(sqlite3_stmt *st, struct api_key *k);

/* sqlite_writer.c */
void sqlite_writer_init(struct writer *w, struct sqlite_store *ss, void (*setup)(void));
int sqlite_writer_start(struct writer *w);
/* Runs the ops queued, then ends the thread. */
void sqlite_writer_stop(struct writer *w);
void sqlite_writer_close(struct writer *w, const char *path);
void sqlite_click_writer_setup(void);
int sqlite_on_wal_commit(void *ctx, sqlite3 *db, const char *schema, int pages);
void sqlite_submit(struct store *s, struct store_op *op);
int sqlite_writer_prepare(struct sqlite_store *ss, char *err, size_t errlen);

/* sqlite_mapper.c */
void sqlite_map_add(struct sqlite_store *ss, const char *code, size_t len, int64_t id);
int sqlite_map_codes(struct store *s);

/* sqlite_reader.c */
int sqlite_reader_open(struct store *s, uv_loop_t *loop, struct store_reader **out);
void sqlite_reader_close(struct store_reader *r);
void sqlite_reader_release(struct store_reader *r);
int sqlite_read(struct store_reader *r, struct store_read *rd);
int sqlite_click_deltas(struct store_reader *r, uint64_t after_seq,
			void (*fn)(void *ctx, uint64_t seq, const void *blob, size_t len),
			void *ctx);

#endif
