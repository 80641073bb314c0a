/*
 * sqlite_vfs: see sqlite_vfs.h. Every method but the WAL's writes is a
 * plain forward, so a test build's I/O is the release build's I/O plus the
 * injected failures.
 */
#include "sqlite_vfs.h"
#include "core/fault.h"
#include "core/log.h"
#include "core/util.h"

#include <sqlite3.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* Gathered writes per WAL file: a batch of 100 creates writes about 500
 * KiB of frames. SQLite's unix VFS writes at most 128 KiB - 1 per call. */
#define GATHER_MAX (512 * 1024)
#define WRITE_MAX (64 * 1024)

struct shim_file {
	sqlite3_file base;  /* must be first: SQLite sees this */
	sqlite3_file *real; /* follows this struct, szOsFile of the real VFS */
	int wal;
	char *buf; /* gathered writes, from file offset at; allocated on the first */
	size_t len;
	sqlite3_int64 at;
	struct shim_file **listed; /* its entry in its thread's pending[] */
};

/* This thread's WAL files with gathered writes: a transaction runs on one
 * thread, and touches at most shortd.db's and clicks.db's WALs. A file
 * that finds no free entry is written through. */
static __thread struct shim_file *pending[4];

static sqlite3_vfs *real_vfs;

#define REAL(f) (((struct shim_file *)(f))->real)

static int injected(enum fault_kind k, int eio)
{
	return k == FAULT_ENOSPC ? SQLITE_FULL : eio;
}

/* Passes f's gathered writes on; SQLITE_OK or the first error. They are
 * dropped either way: after an error the transaction rolls back, and
 * frames past the last commit are never read. */
static int pass_on(struct shim_file *f)
{
	if (f->listed) {
		*f->listed = NULL;
		f->listed = NULL;
	}
	int rc = SQLITE_OK;
	for (size_t done = 0; done < f->len && rc == SQLITE_OK; done += WRITE_MAX) {
		size_t n = f->len - done < WRITE_MAX ? f->len - done : WRITE_MAX;
		rc = f->real->pMethods->xWrite(f->real, f->buf + done, (int)n,
					       f->at + (sqlite3_int64)done);
	}
	f->len = 0;
	return rc;
}

/* SQLITE_OK if f's writes could be gathered, or what writing it through
 * returned. */
static int gather(struct shim_file *f, const void *p, int n, sqlite3_int64 off)
{
	if (f->len && (off != f->at + (sqlite3_int64)f->len || f->len + (size_t)n > GATHER_MAX)) {
		int rc = pass_on(f);
		if (rc != SQLITE_OK)
			return rc;
	}
	if (!f->len && !f->listed) {
		for (size_t i = 0; i < ARRAY_LEN(pending) && !f->listed; i++)
			if (!pending[i]) {
				pending[i] = f;
				f->listed = &pending[i];
			}
	}
	if (!f->listed || (size_t)n > GATHER_MAX ||
	    (!f->buf && !(f->buf = sqlite3_malloc(GATHER_MAX)))) {
		int rc = pass_on(f);
		return rc != SQLITE_OK ? rc : f->real->pMethods->xWrite(f->real, p, n, off);
	}
	if (!f->len)
		f->at = off;
	memcpy(f->buf + f->len, p, (size_t)n);
	f->len += (size_t)n;
	return SQLITE_OK;
}

static int f_close(sqlite3_file *f)
{
	struct shim_file *sf = (struct shim_file *)f;
	pass_on(sf); /* only an unfinished transaction's frames */
	sqlite3_free(sf->buf);
	return REAL(f)->pMethods->xClose(REAL(f));
}

static int f_read(sqlite3_file *f, void *p, int n, sqlite3_int64 off)
{
	int rc = pass_on((struct shim_file *)f);
	return rc != SQLITE_OK ? rc : REAL(f)->pMethods->xRead(REAL(f), p, n, off);
}

static int f_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off)
{
	enum fault_kind k = fault_hit(FAULT_WRITE);
	if (k)
		return injected(k, SQLITE_IOERR_WRITE);
	struct shim_file *sf = (struct shim_file *)f;
	if (sf->wal)
		return gather(sf, p, n, off);
	return REAL(f)->pMethods->xWrite(REAL(f), p, n, off);
}

static int f_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	int rc = pass_on((struct shim_file *)f);
	return rc != SQLITE_OK ? rc : REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int f_sync(sqlite3_file *f, int flags)
{
	int rc = pass_on((struct shim_file *)f);
	if (rc != SQLITE_OK)
		return rc;
	enum fault_kind k = fault_hit(FAULT_SYNC);
	if (k)
		return injected(k, SQLITE_IOERR_FSYNC);
	return REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int f_size(sqlite3_file *f, sqlite3_int64 *size)
{
	int rc = pass_on((struct shim_file *)f);
	return rc != SQLITE_OK ? rc : REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int f_lock(sqlite3_file *f, int level)
{
	return REAL(f)->pMethods->xLock(REAL(f), level);
}

static int f_unlock(sqlite3_file *f, int level)
{
	return REAL(f)->pMethods->xUnlock(REAL(f), level);
}

static int f_check_lock(sqlite3_file *f, int *out)
{
	return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int f_control(sqlite3_file *f, int op, void *arg)
{
	return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int f_sector(sqlite3_file *f)
{
	return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int f_caps(sqlite3_file *f)
{
	return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int f_shm_map(sqlite3_file *f, int region, int size, int extend, void volatile **pp)
{
	return REAL(f)->pMethods->xShmMap(REAL(f), region, size, extend, pp);
}

static int f_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
	return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}

/* SQLite calls this while it publishes a commit's WAL index header: the
 * commit's frames must be in the file by then (see sqlite_vfs.h). */
static void f_shm_barrier(sqlite3_file *f)
{
	for (size_t i = 0; i < ARRAY_LEN(pending); i++) {
		if (pending[i] && pass_on(pending[i]) != SQLITE_OK) {
			log_error("unable to write WAL frames that a commit was publishing: stopping");
			abort();
		}
	}
	REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int f_shm_unmap(sqlite3_file *f, int del)
{
	return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

static int f_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp)
{
	return REAL(f)->pMethods->xFetch(REAL(f), off, n, pp);
}

static int f_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
	return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static const sqlite3_io_methods shim_io = {
	.iVersion = 3,
	.xClose = f_close,
	.xRead = f_read,
	.xWrite = f_write,
	.xTruncate = f_truncate,
	.xSync = f_sync,
	.xFileSize = f_size,
	.xLock = f_lock,
	.xUnlock = f_unlock,
	.xCheckReservedLock = f_check_lock,
	.xFileControl = f_control,
	.xSectorSize = f_sector,
	.xDeviceCharacteristics = f_caps,
	.xShmMap = f_shm_map,
	.xShmLock = f_shm_lock,
	.xShmBarrier = f_shm_barrier,
	.xShmUnmap = f_shm_unmap,
	.xFetch = f_fetch,
	.xUnfetch = f_unfetch,
};

static int v_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *out)
{
	(void)vfs;
	struct shim_file *sf = (struct shim_file *)file;
	memset(sf, 0, sizeof(*sf));
	sf->real = (sqlite3_file *)(sf + 1);
	sf->wal = (flags & SQLITE_OPEN_WAL) != 0;
	int rc = real_vfs->xOpen(real_vfs, name, sf->real, flags, out);
	/* SQLite calls xClose only when pMethods is set: mirror the real file. */
	sf->base.pMethods = sf->real->pMethods ? &shim_io : NULL;
	return rc;
}

static int v_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
	(void)vfs;
	return real_vfs->xDelete(real_vfs, name, sync_dir);
}

static int v_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	(void)vfs;
	return real_vfs->xAccess(real_vfs, name, flags, out);
}

static int v_full_path(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
	(void)vfs;
	return real_vfs->xFullPathname(real_vfs, name, n, out);
}

static int v_randomness(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return real_vfs->xRandomness(real_vfs, n, out);
}

static int v_sleep(sqlite3_vfs *vfs, int us)
{
	(void)vfs;
	return real_vfs->xSleep(real_vfs, us);
}

static int v_time(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
	(void)vfs;
	return real_vfs->xCurrentTimeInt64(real_vfs, out);
}

static int v_last_error(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return real_vfs->xGetLastError ? real_vfs->xGetLastError(real_vfs, n, out) : 0;
}

static sqlite3_vfs shim_vfs = {
	.iVersion = 2,
	.zName = "shortd",
	.xOpen = v_open,
	.xDelete = v_delete,
	.xAccess = v_access,
	.xFullPathname = v_full_path,
	.xRandomness = v_randomness,
	.xSleep = v_sleep,
	.xCurrentTimeInt64 = v_time,
	.xGetLastError = v_last_error,
};

const char *sqlite_vfs_name(void)
{
	if (!real_vfs) { /* called first before any thread opens a database */
		/* Before SQLite initialises (sqlite3_vfs_find() does): without
		 * the memory statistics, which nothing here reads, its malloc
		 * and free take no global mutex. A lookup by row id made five
		 * such lock and unlock pairs (callgrind). MISUSE if it already
		 * started (a test that opened a database first): then it stays. */
		sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
		real_vfs = sqlite3_vfs_find(NULL);
		shim_vfs.szOsFile = (int)sizeof(struct shim_file) + real_vfs->szOsFile;
		shim_vfs.mxPathname = real_vfs->mxPathname;
		if (sqlite3_vfs_register(&shim_vfs, 0) != SQLITE_OK)
			return NULL;
	}
	return shim_vfs.zName;
}
