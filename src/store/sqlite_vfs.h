/*
 * sqlite_vfs: the VFS every shortd connection opens its databases with. It
 * forwards to SQLite's default VFS, and
 *  - gathers a WAL file's writes in memory until SQLite syncs, reads,
 *    sizes, truncates or closes that file, then passes them on in writes
 *    of 64 KiB (a commit wrote two write() calls per frame: the frame's
 *    header, then its page);
 *  - in a test build (-DSHORTD_FAULTS), fails writes and syncs when
 *    fault_hit() says so (see core/fault.h).
 * Gathering relies on synchronous=FULL, which the store sets on every
 * connection: a commit then syncs the WAL, so its frames are in the file
 * before SQLite makes them visible to readers. Should a commit ever make
 * frames visible without a sync, the barrier that comes first passes them
 * on, and a failure there ends the process rather than let readers see
 * frames that are not in the file.
 */
#ifndef SHORTD_SQLITE_VFS_H
#define SHORTD_SQLITE_VFS_H

/* The VFS's name, registered on the first call (before any thread opens a
 * database), or NULL if registering it failed. */
const char *sqlite_vfs_name(void);

#endif
