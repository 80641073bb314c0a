/*
 * fault: injected failures, for tests (builds with -DSHORTD_FAULTS only).
 *
 * A test writes a control file, named by SHORTD_FAULT_FILE, and shortd
 * reads it again whenever it changes (a stat per fault point, which is why
 * release builds compile all of this out). One rule per line:
 *
 *     POINT N MODE [ERROR]
 *
 * POINT: write (SQLite writing the database or the WAL: each of its xWrite
 *        calls, before the WAL's are gathered), sync (an fsync by
 *        SQLite), commit (the store's COMMIT), alloc (an allocation on the
 *        request path: see util.h try_*), read (a store read, where the
 *        backend runs it: the read answers STORE_ERR).
 * N:     the Nth call at that point after the file was (re)loaded, from 1.
 * MODE:  once (only the Nth call fails: a transient fault), or always (the
 *        Nth and every later call fail until the file changes: persistent).
 * ERROR: for write and sync, eio (the default) or enospc.
 *
 * An empty or missing file clears every fault. Unreadable rules are logged
 * and ignored. In a release build fault_hit() is a constant 0.
 */
#ifndef SHORTD_FAULT_H
#define SHORTD_FAULT_H

enum fault_point { FAULT_WRITE, FAULT_SYNC, FAULT_COMMIT, FAULT_ALLOC, FAULT_READ, FAULT_NPOINTS };

/* What an injected failure looks like. */
enum fault_kind { FAULT_NONE = 0, FAULT_EIO, FAULT_ENOSPC };

#ifdef SHORTD_FAULTS
/* FAULT_NONE, or how this call at point p must fail. Thread-safe. */
enum fault_kind fault_hit(enum fault_point p);
#define FAULTS_COMPILED 1
#else
static inline enum fault_kind fault_hit(enum fault_point p)
{
	(void)p;
	return FAULT_NONE;
}
#define FAULTS_COMPILED 0
#endif

#endif
