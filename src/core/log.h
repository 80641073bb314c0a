/*
 * log: structured JSON log lines on stderr.
 *
 * One line per event: {"ts":"...","level":"info","msg":"..."}. The level
 * macros test the level before formatting, so a disabled debug line costs a
 * comparison. Messages are lowercase with the subject quoted, and callers
 * pass errno explicitly (log_errno-style formatting is the caller's job with
 * strerror), so that nothing here reads global error state.
 */
#ifndef SHORTD_LOG_H
#define SHORTD_LOG_H

enum log_level { LOG_LEVEL_ERROR = 0, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

/* The one process-wide logging setting; written once at start-up. */
extern enum log_level log_threshold;

/* Parses "error", "warn", "info" or "debug"; returns -1 for anything else. */
int log_level_parse(const char *s, enum log_level *out);

void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Sets the request id that this thread's log lines carry (NULL: none). The
 * string must stay valid until it is replaced. */
void log_set_request_id(const char *id);

#define LOG_AT(lvl, ...)                                                                   \
	do {                                                                               \
		if ((lvl) <= log_threshold)                                                \
			log_write((lvl), __VA_ARGS__);                                     \
	} while (0)
#define log_error(...) LOG_AT(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) LOG_AT(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) LOG_AT(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) LOG_AT(LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif
