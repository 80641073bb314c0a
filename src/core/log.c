/*
 * log: see log.h. Each line is formatted into a stack buffer, escaped as a
 * JSON string, and written with one write(2) so that lines from different
 * threads never interleave.
 */
#include "log.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum log_level log_threshold = LOG_LEVEL_INFO;

static __thread const char *request_id;

void log_set_request_id(const char *id)
{
	request_id = id;
}

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int log_level_parse(const char *s, enum log_level *out)
{
	for (size_t i = 0; i < ARRAY_LEN(level_names); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

void log_write(enum log_level level, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	size_t mlen = (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1;

	char ts[32];
	time_format_rfc3339(time_now_ms(), ts, sizeof(ts));

	char line[4096 + 128];
	size_t o = (size_t)snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"", ts,
				    level_names[level]);
	for (size_t i = 0; i < mlen && o < sizeof(line) - 120; i++) { /* room for the id */
		unsigned char c = (unsigned char)msg[i];
		if (c == '"' || c == '\\') {
			line[o++] = '\\';
			line[o++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			o += (size_t)snprintf(line + o, 7, "\\u%04x", c);
		} else {
			line[o++] = (char)c;
		}
	}
	line[o++] = '"';
	if (request_id)
		o += (size_t)snprintf(line + o, 100, ",\"request_id\":\"%.64s\"", request_id);
	memcpy(line + o, "}\n", 2);
	o += 2;
	ssize_t w = write(STDERR_FILENO, line, o);
	(void)w;
}
