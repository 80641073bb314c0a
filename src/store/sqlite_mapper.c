/*
 * sqlite_mapper: builds the code map (code_map.h) from shortd.db on a
 * thread of its own, and keeps it told of new links (store_map_codes).
 */
#include "sqlite_internal.h"
#include "core/log.h"
#include "core/util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

/* Tells the code map that row id holds code, and has a new table built
 * when the map asks for one. */
void sqlite_map_add(struct sqlite_store *ss, const char *code, size_t len, int64_t id)
{
	if (code_map_add(ss->map, code_map_hash(ss->map, code, len), id)) {
		pthread_mutex_lock(&ss->map_lock);
		ss->map_wanted = 1;
		pthread_cond_signal(&ss->map_cond);
		pthread_mutex_unlock(&ss->map_lock);
	}
}

/* Reads every code and row id into a new table for the code map, in
 * chunks of MAP_CHUNK codes, each chunk in its own read transaction so
 * that the build does not hold one snapshot (and the WAL's growth) for
 * seconds. A link committed after its chunk was read is not missed: the
 * writer adds it to the map after its commit, which is after the build
 * began, so the map keeps it for the new table. Returns 0, or -1 if the
 * build stopped (error or shutdown). */
#define MAP_CHUNK 65536

static int build_code_map(struct sqlite_store *ss, sqlite3 *db)
{
	uint64_t t0 = time_mono_ns();
	sqlite3_stmt *count = NULL, *chunk = NULL;
	struct code_table *t = NULL;
	char err[256] = "";
	code_map_build_begin(ss->map);
	if (sqlite_prepare(db, "SELECT count(*) FROM links", &count, err, sizeof(err)) ||
	    sqlite_prepare(db,
		    "SELECT code, id FROM links INDEXED BY links_code WHERE code > ?1"
		    " ORDER BY code LIMIT ?2",
		    &chunk, err, sizeof(err)))
		goto fail;
	if (sqlite3_step(count) != SQLITE_ROW) {
		snprintf(err, sizeof(err), "%s", sqlite3_errmsg(db));
		goto fail;
	}
	int64_t rows = sqlite3_column_int64(count, 0);
	sqlite3_reset(count); /* ends its read transaction: each chunk has its own */
	/* The first table is sized for the links there are (a server
	 * restarted on its data grows slowly); one built because the map
	 * filled up holds 1.6 times more than that, so that it lasts until
	 * the table doubles: each rebuild reads every link, and under a
	 * stream of creates they were 5% of a create's CPU at 1.28 times. */
	struct code_map_stats before;
	code_map_get_stats(ss->map, &before);
	size_t room = before.builds ? (size_t)rows + (size_t)rows / 16 * 9 : (size_t)rows;
	if (!(t = code_table_new(room))) {
		snprintf(err, sizeof(err), "no memory for %lld links", (long long)rows);
		goto fail;
	}
	char last[LINK_CODE_MAX + 1] = "";
	for (;;) {
		int n = 0, rc;
		sqlite3_bind_text(chunk, 1, last, -1, SQLITE_STATIC);
		sqlite3_bind_int(chunk, 2, MAP_CHUNK);
		while ((rc = sqlite3_step(chunk)) == SQLITE_ROW) {
			const char *code = (const char *)sqlite3_column_text(chunk, 0);
			size_t len = (size_t)sqlite3_column_bytes(chunk, 0);
			int64_t id = sqlite3_column_int64(chunk, 1);
			code_table_put(t, code_map_hash(ss->map, code, len), id);
			if (++n == MAP_CHUNK)
				snprintf(last, sizeof(last), "%.*s", (int)len, code);
		}
		sqlite3_reset(chunk);
		if (rc != SQLITE_DONE) {
			snprintf(err, sizeof(err), "%s", sqlite3_errmsg(db));
			goto fail;
		}
		if (n < MAP_CHUNK)
			break;
		if (atomic_load(&ss->map_stopping))
			goto fail;
	}
	sqlite3_finalize(count);
	sqlite3_finalize(chunk);
	code_map_build_end(ss->map, t);
	struct code_map_stats st;
	code_map_get_stats(ss->map, &st);
	log_info("code map: %llu links in %.1f s, %llu MiB",
		 (unsigned long long)st.entries, (double)(time_mono_ns() - t0) / 1e9,
		 (unsigned long long)(st.bytes >> 20));
	return 0;
fail:
	if (err[0])
		log_warn("unable to build the code map (misses read the code index): %s", err);
	sqlite3_finalize(count);
	sqlite3_finalize(chunk);
	code_map_build_abort(ss->map, t);
	return -1;
}

/* The code map's builder. Its connection is opened for each build and
 * closed after it, without a memory map: a build reads the code index once,
 * in order, and its pages need not stay mapped (and counted in the
 * process's RSS) afterwards. */
static void *mapper_main(void *arg)
{
	struct sqlite_store *ss = arg;
	pthread_mutex_lock(&ss->map_lock);
	for (;;) {
		while (!ss->map_wanted && !atomic_load(&ss->map_stopping))
			pthread_cond_wait(&ss->map_cond, &ss->map_lock);
		if (atomic_load(&ss->map_stopping))
			break;
		ss->map_wanted = 0;
		pthread_mutex_unlock(&ss->map_lock);
		sqlite3 *db = NULL;
		char err[256] = "";
		int failed = 1;
		if (sqlite3_open_v2(ss->path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
				    sqlite_vfs_name()) != SQLITE_OK) {
			log_warn("unable to build the code map: %s",
				 db ? sqlite3_errmsg(db) : "no memory");
			code_map_build_abort(ss->map, NULL);
		} else if (sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS) != SQLITE_OK ||
			   sqlite_exec(db, "PRAGMA query_only=1", err, sizeof(err))) {
			log_warn("unable to build the code map: %s", err);
			code_map_build_abort(ss->map, NULL);
		} else {
			failed = build_code_map(ss, db);
		}
		sqlite3_close(db);
		pthread_mutex_lock(&ss->map_lock);
		if (failed)
			break;
	}
	pthread_mutex_unlock(&ss->map_lock);
	return NULL;
}

int sqlite_map_codes(struct store *s)
{
	struct sqlite_store *ss = s->impl;
	if (ss->map)
		return STORE_OK;
	ss->map = code_map_new();
	ss->map_wanted = 1;
	if (pthread_create(&ss->mapper, NULL, mapper_main, ss) != 0) {
		log_warn("unable to start the code map's thread: misses read the code index");
		code_map_free(ss->map);
		ss->map = NULL;
		return STORE_ERR;
	}
	return STORE_OK;
}
