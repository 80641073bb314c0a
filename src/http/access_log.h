/*
 * access_log: one JSON line per response, written without blocking the
 * workers.
 *
 * Each worker appends to its own buffer under its own mutex, which the
 * writer thread holds only to swap the buffer for an empty one; the file
 * write happens outside any lock. The writer runs every 200 ms and at
 * close. A worker whose buffer already holds ACCESS_LOG_MAX_PENDING bytes
 * drops the line and counts it, so a slow disk can never slow requests.
 */
#ifndef SHORTD_ACCESS_LOG_H
#define SHORTD_ACCESS_LOG_H

#include <stddef.h>
#include <stdint.h>

#define ACCESS_LOG_MAX_PENDING (8u << 20)

struct access_log;

/* path "-" means stderr. Returns NULL with err filled on failure. */
struct access_log *access_log_open(const char *path, int nworkers, char *err, size_t errlen);
void access_log_append(struct access_log *al, int worker, const char *line, size_t len);
/* Writes what is pending, stops the writer, closes the file. */
void access_log_close(struct access_log *al);
uint64_t access_log_dropped(struct access_log *al);

#endif
