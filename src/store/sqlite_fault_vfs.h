/*
 * sqlite_fault_vfs: the VFS name a test build opens its databases with
 * (writes and syncs fail on demand, see core/fault.h); NULL, SQLite's
 * default VFS, in a release build.
 */
#ifndef SHORTD_SQLITE_FAULT_VFS_H
#define SHORTD_SQLITE_FAULT_VFS_H

#ifdef SHORTD_FAULTS
const char *sqlite_fault_vfs(void);
#else
static inline const char *sqlite_fault_vfs(void)
{
	return 0;
}
#endif

#endif
