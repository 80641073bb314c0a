/*
 * fault: the control file behind fault_hit(). See fault.h for its format.
 */
#include "fault.h"

#ifdef SHORTD_FAULTS
#include "log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct rule {
	int armed;
	unsigned long n;     /* the call that fails first, from 1 */
	int always;          /* every call from the nth on */
	enum fault_kind kind;
	unsigned long calls; /* since the file was loaded */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct rule rules[FAULT_NPOINTS];
static struct stat seen; /* of the file last loaded; st_ino 0: none */

static pthread_once_t once = PTHREAD_ONCE_INIT;
static const char *path; /* the control file, or NULL: no faults */

static void find_path(void)
{
	path = getenv("SHORTD_FAULT_FILE");
}

static const char *const point_names[FAULT_NPOINTS] = {"write", "sync", "commit", "alloc", "read"};

static void parse_line(const char *line)
{
	char point[16], mode[16], err[16] = "eio";
	unsigned long n;
	int fields = sscanf(line, "%15s %lu %15s %15s", point, &n, mode, err);
	if (fields <= 0 || point[0] == '#')
		return;
	int p = -1;
	for (int i = 0; i < FAULT_NPOINTS; i++)
		if (strcmp(point, point_names[i]) == 0)
			p = i;
	int always = fields >= 3 && strcmp(mode, "always") == 0;
	if (p < 0 || fields < 3 || n == 0 || (!always && strcmp(mode, "once") != 0) ||
	    (strcmp(err, "eio") != 0 && strcmp(err, "enospc") != 0)) {
		log_warn("fault file: ignoring rule '%s'", line);
		return;
	}
	rules[p] = (struct rule){.armed = 1, .n = n, .always = always,
				 .kind = strcmp(err, "enospc") == 0 ? FAULT_ENOSPC : FAULT_EIO};
	log_warn("fault injection armed: %s call %lu, %s", point_names[p], n,
		 always ? "and every later one" : "once");
}

/* Called with lock held: reloads the rules when the file changed. */
static void refresh(void)
{
	struct stat st;
	if (stat(path, &st) != 0)
		memset(&st, 0, sizeof(st));
	if (st.st_ino == seen.st_ino && st.st_size == seen.st_size &&
	    st.st_mtim.tv_sec == seen.st_mtim.tv_sec && st.st_mtim.tv_nsec == seen.st_mtim.tv_nsec)
		return;
	seen = st;
	memset(rules, 0, sizeof(rules));
	FILE *f = st.st_ino ? fopen(path, "r") : NULL;
	if (!f) {
		log_warn("fault injection cleared");
		return;
	}
	char line[256];
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\r\n")] = '\0';
		parse_line(line);
	}
	fclose(f);
}

enum fault_kind fault_hit(enum fault_point p)
{
	pthread_once(&once, find_path);
	if (!path)
		return FAULT_NONE;
	pthread_mutex_lock(&lock);
	refresh();
	struct rule *r = &rules[p];
	enum fault_kind k = FAULT_NONE;
	if (r->armed) {
		r->calls++;
		if (r->calls == r->n || (r->always && r->calls > r->n))
			k = r->kind;
	}
	pthread_mutex_unlock(&lock);
	return k;
}
#endif
