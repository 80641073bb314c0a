/*
 * store_sqlite: the embedded backend, SQLite in WAL mode.
 *
 * Design:
 *  - A writer is a connection owned by one thread. Ops queue up while the
 *    previous transaction commits; the writer takes up to commit_batch of
 *    them, runs them in one BEGIN IMMEDIATE ... COMMIT, and only then
 *    calls each op's done(): many inserts per fsync (group commit). There
 *    are two: one for links and API keys (shortd.db), one for the click
 *    counters (clicks.db), so that a merge of click counters, which can
 *    take a second, never holds up a create; the click writer runs at a
 *    lower priority than the workers (sqlite_writer.c).
 *  - journal_mode=WAL with synchronous=FULL: every COMMIT fsyncs the WAL,
 *    so a committed transaction survives power loss.
 *  - One reader connection per worker thread (struct store_reader). In WAL
 *    mode readers never wait for the writer. A reader keeps its read
 *    transaction (its snapshot) from one lookup to the next until the
 *    writer ends a transaction (commit_gen moves) or the worker releases it
 *    at the end of its loop's turn: beginning and ending a read
 *    transaction costs two fcntl locks and a look at the WAL index, which
 *    was a third of a cache miss. Since commit_gen moves before any op's
 *    done() runs, a read that follows an acknowledged write sees it.
 *    Reads run on the worker's own thread and answer at once (a read
 *    takes microseconds: no thread-pool hop), except in DELAYED_READS
 *    test builds (sqlite_reader.c).
 *  - Two database files: shortd.db (links, API keys) and clicks.db (click
 *    counters, committed every second), attached to every reader as
 *    "clicks", so that the counters' commits do not make the readers of
 *    links drop their page caches and memory maps. The links writer
 *    attaches clicks.db only to migrate it at open; the click writer opens
 *    it alone, as "main". Their schemas, schema_sqlite.sql and
 *    schema_clicks.sql, are compiled in; migrations are applied at open,
 *    and each file's PRAGMA user_version counts its own.
 * The files of the backend are listed in sqlite_internal.h.
 */
#include "sqlite_internal.h"
#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void sqlite_close(struct store *s);

static int sqlite_open(struct store *s, const struct store_config *c, char *err, size_t errlen)
{
	const char *data_dir = c->data_dir;
	int commit_batch = c->commit_batch;
	if (mkdir_p(data_dir) != 0) {
		snprintf(err, errlen, "unable to create data directory '%s': %s", data_dir,
			 strerror(errno));
		return STORE_ERR;
	}
	struct sqlite_store *ss = xcalloc(1, sizeof(*ss));
	s->impl = ss;
	struct buf path;
	buf_init(&path);
	buf_printf(&path, "%s/shortd.db", data_dir);
	ss->path = path.p;
	buf_init(&path);
	buf_printf(&path, "%s/clicks.db", data_dir);
	ss->clicks_path = path.p;
	ss->commit_batch = commit_batch;
	sqlite_writer_init(&ss->links, ss, NULL);
	sqlite_writer_init(&ss->clicks, ss, sqlite_click_writer_setup);
	pthread_mutex_init(&ss->map_lock, NULL);
	pthread_cond_init(&ss->map_cond, NULL);
	if (sqlite3_open_v2(ss->path, &ss->links.db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			    sqlite_vfs_name()) != SQLITE_OK) {
		snprintf(err, errlen, "unable to open database '%s': %s", ss->path,
			 ss->links.db ? sqlite3_errmsg(ss->links.db) : "out of memory");
		goto fail;
	}
	sqlite3_busy_timeout(ss->links.db, BUSY_TIMEOUT_MS);
	sqlite3_wal_hook(ss->links.db, sqlite_on_wal_commit, NULL);
	if (sqlite_schema_apply(ss, err, errlen))
		goto fail;
	if (sqlite3_open_v2(ss->clicks_path, &ss->clicks.db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, sqlite_vfs_name()) != SQLITE_OK) {
		snprintf(err, errlen, "unable to open database '%s': %s", ss->clicks_path,
			 ss->clicks.db ? sqlite3_errmsg(ss->clicks.db) : "out of memory");
		goto fail;
	}
	sqlite3_busy_timeout(ss->clicks.db, BUSY_TIMEOUT_MS);
	sqlite3_wal_hook(ss->clicks.db, sqlite_on_wal_commit, NULL);
	if (sqlite_exec(ss->clicks.db, "PRAGMA synchronous=FULL", err, errlen))
		goto fail;
	if (sqlite_writer_prepare(ss, err, errlen))
		goto fail;
	if (sqlite_writer_start(&ss->links) != 0 || sqlite_writer_start(&ss->clicks) != 0) {
		snprintf(err, errlen, "unable to start the writer threads");
		goto fail;
	}
	log_info("database '%s' open (sqlite %s, WAL, synchronous=FULL)", ss->path,
		 sqlite3_libversion());
	return STORE_OK;
fail:
	sqlite_close(s);
	return STORE_ERR;
}

static void sqlite_close(struct store *s)
{
	struct sqlite_store *ss = s->impl;
	if (!ss)
		return;
	if (ss->map) {
		pthread_mutex_lock(&ss->map_lock);
		atomic_store(&ss->map_stopping, 1);
		pthread_cond_signal(&ss->map_cond);
		pthread_mutex_unlock(&ss->map_lock);
		pthread_join(ss->mapper, NULL);
	}
	sqlite_writer_stop(&ss->links);
	sqlite_writer_stop(&ss->clicks);
	sqlite3_finalize(ss->insert);
	sqlite3_finalize(ss->update);
	sqlite3_finalize(ss->del);
	sqlite3_finalize(ss->exists);
	sqlite3_finalize(ss->idem_expire);
	sqlite3_finalize(ss->key_insert);
	sqlite3_finalize(ss->key_revoke);
	sqlite3_finalize(ss->key_exists);
	sqlite3_finalize(ss->session_insert);
	sqlite3_finalize(ss->session_purge);
	sqlite3_finalize(ss->session_delete);
	sqlite3_finalize(ss->click_hour);
	sqlite3_finalize(ss->click_day);
	sqlite3_finalize(ss->click_seq);
	sqlite3_finalize(ss->delta_add);
	sqlite3_finalize(ss->delta_drop);
	sqlite_writer_close(&ss->links, ss->path);
	sqlite_writer_close(&ss->clicks, ss->clicks_path);
	pthread_mutex_destroy(&ss->map_lock);
	pthread_cond_destroy(&ss->map_cond);
	code_map_free(ss->map);
	free(ss->path);
	free(ss->clicks_path);
	free(ss);
	s->impl = NULL;
}

static void sqlite_stats(struct store *s, struct store_stats *out)
{
	struct sqlite_store *ss = s->impl;
	memset(out, 0, sizeof(*out));
	for (int i = 0; i < 2; i++) {
		const struct writer *w = i ? &ss->clicks : &ss->links;
		hist_sum_add(&out->commit_latency, &w->commit_latency);
		hist_sum_add(&out->batch_size, &w->batch_size);
		out->commits += metric_read(&w->commits);
		out->commit_errors += metric_read(&w->commit_errors);
	}
	if (ss->map) {
		struct code_map_stats m;
		code_map_get_stats(ss->map, &m);
		out->map_entries = m.entries;
		out->map_bytes = m.bytes;
		out->map_builds = m.builds;
		out->map_found = metric_read(&ss->map_found);
		out->map_missed = metric_read(&ss->map_missed);
	}
}

static int sqlite_ready(struct store *s, char *why, size_t len)
{
	struct sqlite_store *ss = s->impl;
	/* what a client's write depends on: a click commit that fails is
	 * retried with its counts kept, and counted apart */
	if (ss->links.last_commit_ok)
		return 1;
	snprintf(why, len, "the last commit of links or keys failed");
	return 0;
}

const struct store_ops store_sqlite_ops = {
	.name = "sqlite",
	.open = sqlite_open,
	.close = sqlite_close,
	.reader_open = sqlite_reader_open,
	.reader_close = sqlite_reader_close,
	.reader_release = sqlite_reader_release,
	.read = sqlite_read,
	.submit = sqlite_submit,
	.ready = sqlite_ready,
	.click_deltas = sqlite_click_deltas,
	.stats = sqlite_stats,
	.map_codes = sqlite_map_codes,
};
