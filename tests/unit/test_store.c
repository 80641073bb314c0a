/* Unit test: the SQLite store's reader snapshots, against a real database
 * in a temporary directory.
 *  - a reader keeps its snapshot between reads (a row another connection
 *    commits stays unseen) until it releases it;
 *  - a write committed by the store's own writer is seen by the very next
 *    read, released or not: an acknowledged write is never missed;
 *  - the API key rows a reader keeps follow revocations, by another
 *    connection (from its next snapshot) and by the writer (at once);
 *  - with a reader always holding a snapshot, as a busy worker does, the
 *    WAL still starts over, and stays within a bound however many commits
 *    go through it;
 *  - the WAL writes the store's VFS gathers reach the file before anyone
 *    reads them;
 *  - with the code map (store_map_codes), the first two hold the same, and
 *    a get answers what the code index answers: the map's rows for links
 *    committed by the writer, before the map was built or after, through
 *    its rebuilds as it fills; the index for a link another connection
 *    committed (which the map then learns) or renamed by hand;
 *  - a reader opened while another process holds the WAL (as a restart's
 *    recovery does) waits for it instead of failing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/util.h"
#include "store/sqlite_vfs.h"
#include "store/sqlite_internal.h"
#include "store/store.h"

struct waiter {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int pending;
};

static void op_done(struct store_op *op)
{
	struct waiter *w = op->ctx;
	pthread_mutex_lock(&w->lock);
	w->pending--;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

static char dir[64];
static struct store st;

/* A read through a reader without a loop: answered at once. */
static int store_get(struct store *s, struct store_reader *r, const char *code, size_t len,
		     struct link **out)
{
	struct store_read rd = {.kind = STORE_READ_LINK, .code = code, .code_len = len};
	int rc = store_read(s, r, &rd);
	assert_int_not_equal(rc, STORE_AGAIN);
	*out = rd.link;
	return rc;
}

static int store_key_get(struct store *s, struct store_reader *r, const char *key_id,
			 struct api_key *out)
{
	struct store_read rd = {.kind = STORE_READ_KEY, .key_id = key_id};
	int rc = store_read(s, r, &rd);
	*out = rd.key;
	return rc;
}
static int64_t next_id = 1;

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/shortd-test-store-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	char err[256];
	struct store_config sc = {.backend = "sqlite", .data_dir = dir, .commit_batch = 256};
	return store_open(&st, &sc, err, sizeof(err)) == STORE_OK ? 0 : -1;
}

static struct store_stats stats(void)
{
	struct store_stats s;
	store_get_stats(&st, &s);
	return s;
}

/* Waits until the code map has built its builds-th table. */
static void wait_map_builds(uint64_t builds)
{
	for (int i = 0; i < 2000 && stats().map_builds < builds; i++)
		usleep(5000);
	assert_true(stats().map_builds >= builds);
}

static int setup_mapped(void **state)
{
	if (setup(state) != 0 || store_map_codes(&st) != STORE_OK)
		return -1;
	wait_map_builds(1);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	store_close(&st);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Queues n inserts (codes prefix-0, prefix-1, ...) counted down in w. */
static struct store_op *submit_links(const char *prefix, int n, struct waiter *w)
{
	struct store_op *ops = calloc((size_t)n, sizeof(*ops));
	pthread_mutex_lock(&w->lock);
	w->pending += n;
	pthread_mutex_unlock(&w->lock);
	for (int i = 0; i < n; i++) {
		char code[32], url[96];
		int cl = snprintf(code, sizeof(code), "%s-%d", prefix, i);
		int ul = snprintf(url, sizeof(url), "https://example.com/%s/%d/padding-to-fill-pages",
				  prefix, i);
		struct link *l = link_new(code, (size_t)cl, url, (size_t)ul);
		l->id = next_id++;
		l->redirect = 302;
		l->created_at_ms = l->updated_at_ms = 1767913200000LL;
		ops[i].kind = STORE_OP_INSERT;
		ops[i].link = l;
		store_submit(&st, &ops[i], op_done, w);
	}
	return ops;
}

/* Frees ops (all done); returns how many were stored. */
static int links_stored(struct store_op *ops, int n)
{
	int ok = 0;
	for (int i = 0; i < n; i++) {
		ok += ops[i].status == STORE_OK;
		link_unref(ops[i].link);
		if (ops[i].result)
			link_unref(ops[i].result);
	}
	free(ops);
	return ok;
}

static void wait_all(struct waiter *w)
{
	pthread_mutex_lock(&w->lock);
	while (w->pending)
		pthread_cond_wait(&w->cond, &w->lock);
	pthread_mutex_unlock(&w->lock);
}

static int insert_links(const char *prefix, int n)
{
	struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
	struct store_op *ops = submit_links(prefix, n, &w);
	wait_all(&w);
	return links_stored(ops, n);
}

static int lookup(struct store_reader *r, const char *code)
{
	struct link *l = NULL;
	int rc = store_get(&st, r, code, strlen(code), &l);
	if (l)
		link_unref(l);
	return rc;
}

/* Runs sql on a connection of its own, as another process (or an operator
 * with the sqlite3 shell) would; returns how many rows it changed. */
static int exec_elsewhere(const char *sql)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/shortd.db", dir);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	int n = sqlite3_changes(db);
	sqlite3_close(db);
	return n;
}

static void test_snapshot_kept_until_release(void **state)
{
	(void)state;
	struct store_reader *r;
	assert_int_equal(store_reader_open(&st, NULL, &r), STORE_OK);
	assert_int_equal(lookup(r, "outside"), STORE_NOTFOUND);

	/* Another connection commits: not the store's writer, so nothing
	 * tells the reader, which keeps the snapshot of its first read. */
	assert_int_equal(exec_elsewhere("INSERT INTO links (id, code, url, created_at, updated_at)"
					" VALUES (1000000, 'outside', 'https://example.com/', 1, 1)"),
			 1);
	assert_int_equal(lookup(r, "outside"), STORE_NOTFOUND);

	store_reader_release(&st, r);
	assert_int_equal(lookup(r, "outside"), STORE_OK);
	store_reader_close(&st, r);
}

/* Another process makes the WAL look as a crash leaves it: the first copy
 * of the wal-index header zeroed (so the next reader must rebuild the
 * index), with the locks a recovery in progress holds (the WAL's write,
 * checkpoint and recover locks: bytes 120-122 of the -shm file, from
 * SQLite's WALINDEX_LOCK_OFFSET) for 300 ms.
 * Opening a reader reads the schema: it must wait, not fail with
 * "database is locked" (a start-up after a kill -9 failed so). */
static void test_reader_waits_for_a_recovery(void **state)
{
	(void)state;
	assert_int_equal(exec_elsewhere("SELECT count(*) FROM links"), 0); /* the -shm exists */
	char shm[128];
	snprintf(shm, sizeof(shm), "%s/shortd.db-shm", dir);
	int ready[2];
	assert_int_equal(pipe(ready), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(shm, O_RDWR);
		struct flock lk = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 120, .l_len = 3};
		static const char zero[48];
		int ok = fd >= 0 && fcntl(fd, F_SETLK, &lk) == 0 &&
			 pwrite(fd, zero, sizeof(zero), 0) == (ssize_t)sizeof(zero);
		if (write(ready[1], ok ? "y" : "n", 1) != 1)
			_exit(1);
		usleep(300 * 1000);
		_exit(0); /* the lock goes with the process */
	}
	char c = 0;
	assert_int_equal(read(ready[0], &c, 1), 1);
	assert_int_equal(c, 'y');
	struct store_reader *r;
	assert_int_equal(store_reader_open(&st, NULL, &r), STORE_OK);
	assert_int_equal(lookup(r, "absent"), STORE_NOTFOUND);
	store_reader_close(&st, r);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	close(ready[0]);
	close(ready[1]);
}

static void test_own_commits_seen_at_once(void **state)
{
	(void)state;
	struct store_reader *r;
	assert_int_equal(store_reader_open(&st, NULL, &r), STORE_OK);
	for (int round = 0; round < 50; round++) {
		char prefix[16], code[32];
		snprintf(prefix, sizeof(prefix), "own%d", round);
		snprintf(code, sizeof(code), "%s-0", prefix);
		assert_int_equal(lookup(r, code), STORE_NOTFOUND); /* a snapshot, held */
		assert_int_equal(insert_links(prefix, 1), 1);
		assert_int_equal(lookup(r, code), STORE_OK); /* no release between */
	}
	store_reader_close(&st, r);
}

/* One key op through the store's writer, waited for. */
static int key_op(enum store_op_kind kind, struct api_key *k)
{
	struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 1};
	struct store_op op;
	memset(&op, 0, sizeof(op));
	op.kind = kind;
	op.key = k;
	store_submit(&st, &op, op_done, &w);
	wait_all(&w);
	return op.status;
}

static int64_t revoked_at(struct store_reader *r, const char *key_id)
{
	struct api_key k;
	assert_int_equal(store_key_get(&st, r, key_id, &k), STORE_OK);
	return k.revoked_at_ms;
}

/* The reader keeps the key rows it read while nothing is committed to
 * shortd.db: a revocation, by another process or by the store's writer,
 * must still be seen where a fresh read would see it. */
static void test_key_rows_follow_revocations(void **state)
{
	(void)state;
	struct api_key k[3];
	memset(k, 0, sizeof(k));
	for (int i = 0; i < 3; i++) {
		k[i].id = i + 1;
		memset(k[i].key_id, 'a' + i, APIKEY_ID_LEN);
		k[i].role = APIKEY_ADMIN;
		k[i].created_at_ms = 1;
		assert_int_equal(key_op(STORE_OP_KEY_INSERT, &k[i]), STORE_OK);
	}
	struct store_reader *r;
	assert_int_equal(store_reader_open(&st, NULL, &r), STORE_OK);
	struct api_key got;
	assert_int_equal(store_key_get(&st, r, "nosuchkey0", &got), STORE_NOTFOUND);
	/* every row read twice in each of a few turns (then from memory) */
	for (int turn = 0; turn < 3; turn++) {
		for (int i = 0; i < 6; i++)
			assert_true(revoked_at(r, k[i % 3].key_id) == 0);
		store_reader_release(&st, r);
	}
	for (int i = 0; i < 3; i++)
		assert_true(revoked_at(r, k[i].key_id) == 0);

	/* another process revokes a key while the worker's turn holds a
	 * snapshot: unseen until the next one, which the key's read begins */
	char path[128];
	snprintf(path, sizeof(path), "%s/shortd.db", dir);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	assert_int_equal(sqlite3_exec(db, "UPDATE api_keys SET revoked_at = 7 WHERE id = 1", NULL,
				      NULL, NULL),
			 SQLITE_OK);
	assert_true(revoked_at(r, k[0].key_id) == 0); /* the turn's snapshot */
	store_reader_release(&st, r);
	assert_true(revoked_at(r, k[0].key_id) == 7);
	assert_true(revoked_at(r, k[0].key_id) == 7);
	/* again, with a redirect's lookup beginning the next snapshot */
	assert_int_equal(sqlite3_exec(db, "UPDATE api_keys SET revoked_at = 8 WHERE id = 2", NULL,
				      NULL, NULL),
			 SQLITE_OK);
	store_reader_release(&st, r);
	assert_int_equal(lookup(r, "nosuchlink"), STORE_NOTFOUND);
	assert_true(revoked_at(r, k[1].key_id) == 8);
	sqlite3_close(db);

	/* the store's writer revokes one: seen by the next read, no release */
	assert_true(revoked_at(r, k[2].key_id) == 0);
	k[2].revoked_at_ms = 9;
	assert_int_equal(key_op(STORE_OP_KEY_REVOKE, &k[2]), STORE_OK);
	assert_int_equal(lookup(r, "nosuchlink"), STORE_NOTFOUND);
	assert_true(revoked_at(r, k[2].key_id) == 9);
	assert_true(revoked_at(r, k[0].key_id) == 7);
	store_reader_close(&st, r);
}

static atomic_int stop_reading;

/* A busy worker whose turns are long: lookups for 5 ms, then it releases
 * its snapshot and at once takes the next. Some snapshot is held almost
 * all the time, and the WAL can only start over if the writer waits for
 * the end of a turn. */
static void *reader_main(void *arg)
{
	(void)arg;
	struct store_reader *r;
	if (store_reader_open(&st, NULL, &r) != STORE_OK)
		return NULL;
	unsigned n = 0;
	uint64_t turn_start = time_mono_ns();
	while (!atomic_load(&stop_reading)) {
		char code[32];
		snprintf(code, sizeof(code), "wal-%u", n++ % 4000);
		lookup(r, code);
		if (time_mono_ns() - turn_start >= 5000000) {
			store_reader_release(&st, r);
			turn_start = time_mono_ns();
		}
	}
	store_reader_close(&st, r);
	return NULL;
}

static void test_wal_starts_over_under_held_snapshots(void **state)
{
	(void)state;
	pthread_t t;
	atomic_store(&stop_reading, 0);
	assert_int_equal(pthread_create(&t, NULL, reader_main, NULL), 0);
	char path[128];
	snprintf(path, sizeof(path), "%s/shortd.db-wal", dir);
	/* Far more pages than the restart threshold go through the
	 * WAL, in commits that follow each other with no pause: codes in
	 * many prefixes spread index updates over many pages. */
	enum { BATCHES = 6000, PER = 100 };
	struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
	struct store_op **ops = calloc(BATCHES, sizeof(*ops));
	for (int b = 0; b < BATCHES; b++) {
		char prefix[16];
		snprintf(prefix, sizeof(prefix), "wal%x", (unsigned)((unsigned)b * 2654435761u) >> 8);
		ops[b] = submit_links(prefix, PER, &w);
	}
	long long biggest = 0;
	for (;;) {
		struct stat sb;
		if (stat(path, &sb) == 0 && sb.st_size > biggest)
			biggest = sb.st_size;
		pthread_mutex_lock(&w.lock);
		int left = w.pending;
		pthread_mutex_unlock(&w.lock);
		if (!left)
			break;
		usleep(500);
	}
	for (int b = 0; b < BATCHES; b++)
		assert_int_equal(links_stored(ops[b], PER), PER);
	free(ops);
	atomic_store(&stop_reading, 1);
	pthread_join(t, NULL);
	/* The restart threshold and what one commit adds, with frame headers. */
	long long bound = (SQLITE_RESTART_PAGES + 1000LL) * (4096 + 24);
	printf("largest WAL: %lld bytes (bound %lld)\n", biggest, bound);
	/* it did grow past the passive checkpoints' threshold (the reader's
	 * snapshots held it), and never past the restart's */
	assert_true(biggest > SQLITE_CHECKPOINT_PAGES * 4096LL);
	assert_true(biggest <= bound);
}

/* What a reader thread found in table t (test_vfs_...). */
struct t_rows {
	sqlite3 *db;
	int count, min_n, rc;
	int64_t bytes;
};

static void *read_t(void *arg)
{
	struct t_rows *t = arg;
	sqlite3_stmt *q;
	t->rc = sqlite3_prepare_v2(t->db, "SELECT count(*), sum(length(x)), min(n) FROM t", -1, &q,
				   NULL);
	if (t->rc == SQLITE_OK && (t->rc = sqlite3_step(q)) == SQLITE_ROW) {
		t->count = sqlite3_column_int(q, 0);
		t->bytes = sqlite3_column_int64(q, 1);
		t->min_n = sqlite3_column_int(q, 2);
	}
	sqlite3_finalize(q);
	return NULL;
}

/* The store's VFS keeps WAL writes in memory until SQLite syncs the WAL
 * (store/sqlite_vfs.c). With synchronous=NORMAL a commit publishes its
 * frames without a sync: the WAL index barrier before that must pass them
 * on, or a reader in another thread reads pages that are not in the file
 * (the small commits at the end fail without it). And the writing
 * connection reads back frames it spilled in mid-transaction (a 10-page
 * cache), which must be in the file by then (the first rounds fail if a
 * read does not pass them on). */
/* lookup(), and that the row it found holds code. */
static int lookup_checked(struct store_reader *r, const char *code)
{
	struct link *l = NULL;
	int rc = store_get(&st, r, code, strlen(code), &l);
	if (l) {
		assert_string_equal(l->code, code);
		link_unref(l);
	}
	return rc;
}

static void test_code_map_answers_as_the_index(void **state)
{
	(void)state;
	assert_int_equal(insert_links("before", 1000), 1000);
	assert_int_equal(store_map_codes(&st), STORE_OK);
	wait_map_builds(1);
	struct store_stats s = stats();
	assert_int_equal(s.map_entries, 1000);
	assert_true(s.map_bytes >= 1000 * 9);

	struct store_reader *r;
	assert_int_equal(store_reader_open(&st, NULL, &r), STORE_OK);
	char code[32];
	for (int i = 0; i < 1000; i++) {
		snprintf(code, sizeof(code), "before-%d", i);
		assert_int_equal(lookup_checked(r, code), STORE_OK);
	}
	assert_int_equal(lookup(r, "before-1000"), STORE_NOTFOUND);
	store_reader_release(&st, r); /* adds the reader's counts */
	s = stats();
	assert_int_equal(s.map_found, 1000);
	assert_int_equal(s.map_missed, 1);

	/* the writer's commits go into the map, and past 80% of its slots
	 * (1,000 links: 2,624) a bigger table is built */
	assert_int_equal(insert_links("after", 2500), 2500);
	wait_map_builds(2);
	for (int i = 0; i < 2500; i += 7) {
		snprintf(code, sizeof(code), "after-%d", i);
		assert_int_equal(lookup_checked(r, code), STORE_OK);
	}
	for (int i = 0; i < 1000; i += 7) {
		snprintf(code, sizeof(code), "before-%d", i);
		assert_int_equal(lookup_checked(r, code), STORE_OK);
	}
	store_reader_release(&st, r);
	s = stats();
	assert_int_equal(s.map_missed, 1);
	assert_int_equal(s.map_found, 1000 + 358 + 143);
	assert_true(s.map_entries >= 3500);

	/* a row another connection committed: read from the index, then
	 * learned */
	assert_int_equal(exec_elsewhere("INSERT INTO links (id, code, url, created_at, updated_at)"
					" VALUES (9000000, 'outside', 'https://example.com/', 1, 1)"),
			 1);
	store_reader_release(&st, r);
	assert_int_equal(lookup_checked(r, "outside"), STORE_OK);
	assert_int_equal(lookup_checked(r, "outside"), STORE_OK);
	store_reader_release(&st, r);
	s = stats();
	assert_int_equal(s.map_missed, 2);
	assert_int_equal(s.map_found, 1000 + 358 + 143 + 1);

	/* a row renamed by hand: the map's entry for the old code leads to a
	 * row with another code, which is not taken for it */
	assert_int_equal(
		exec_elsewhere("UPDATE links SET code = 'renamed' WHERE code = 'before-5'"), 1);
	assert_int_equal(lookup_checked(r, "before-5"), STORE_NOTFOUND);
	assert_int_equal(lookup_checked(r, "renamed"), STORE_OK);
	store_reader_close(&st, r);
}

static void test_vfs_gathered_writes_reach_the_file(void **state)
{
	(void)state;
	char tmp[] = "/tmp/shortd-vfs-XXXXXX", path[64];
	assert_non_null(mkdtemp(tmp));
	snprintf(path, sizeof(path), "%s/t.db", tmp);
	sqlite3 *w;
	struct t_rows t = {0};
	const char *vfs = sqlite_vfs_name();
	assert_non_null(vfs);
	assert_int_equal(sqlite3_open_v2(path, &w, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs),
			 SQLITE_OK);
	assert_int_equal(sqlite3_exec(w, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
				      " PRAGMA cache_size=10; CREATE TABLE t (n INTEGER, x BLOB)",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_open_v2(path, &t.db, SQLITE_OPEN_READONLY | SQLITE_OPEN_FULLMUTEX,
					 vfs),
			 SQLITE_OK);
	for (int round = 1; round <= 20; round++) {
		char sql[256];
		snprintf(sql, sizeof(sql),
			 "BEGIN; WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s"
			 " WHERE i < 200) INSERT INTO t SELECT %d, randomblob(1000) FROM s;"
			 " UPDATE t SET n = n + 1000 WHERE n = %d; COMMIT",
			 round, round);
		assert_int_equal(sqlite3_exec(w, sql, NULL, NULL, NULL), SQLITE_OK);
		pthread_t th;
		assert_int_equal(pthread_create(&th, NULL, read_t, &t), 0);
		pthread_join(th, NULL);
		assert_int_equal(t.rc, SQLITE_ROW);
		assert_int_equal(t.count, round * 200);
		assert_int_equal(t.bytes, (int64_t)round * 200 * 1000);
		assert_int_equal(t.min_n, 1001);
	}
	/* small commits, without spills or frames written twice, so that
	 * nothing but the barrier passes their frames on */
	assert_int_equal(sqlite3_exec(w, "PRAGMA cache_size=-2000", NULL, NULL, NULL), SQLITE_OK);
	for (int i = 1; i <= 50; i++) {
		assert_int_equal(sqlite3_exec(w, "INSERT INTO t VALUES (5000, randomblob(1000))", NULL,
					      NULL, NULL),
				 SQLITE_OK);
		pthread_t th;
		assert_int_equal(pthread_create(&th, NULL, read_t, &t), 0);
		pthread_join(th, NULL);
		assert_int_equal(t.rc, SQLITE_ROW);
		assert_int_equal(t.count, 20 * 200 + i);
		assert_int_equal(t.bytes, (int64_t)(20 * 200 + i) * 1000);
	}
	sqlite3_stmt *q;
	assert_int_equal(sqlite3_prepare_v2(t.db, "PRAGMA integrity_check", -1, &q, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(q, 0), "ok");
	sqlite3_finalize(q);
	sqlite3_close(t.db);
	sqlite3_close(w);
	char rm[128];
	snprintf(rm, sizeof(rm), "rm -rf %s", tmp);
	assert_int_equal(system(rm), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_snapshot_kept_until_release, setup, teardown),
		cmocka_unit_test_setup_teardown(test_own_commits_seen_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_kept_until_release, setup_mapped,
						teardown),
		cmocka_unit_test_setup_teardown(test_own_commits_seen_at_once, setup_mapped,
						teardown),
		cmocka_unit_test_setup_teardown(test_code_map_answers_as_the_index, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_rows_follow_revocations, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reader_waits_for_a_recovery, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wal_starts_over_under_held_snapshots, setup,
						teardown),
		cmocka_unit_test(test_vfs_gathered_writes_reach_the_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
