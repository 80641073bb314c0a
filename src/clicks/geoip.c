/*
 * geoip: see geoip.h. The database is memory-mapped; lookups are
 * read-only and safe from any thread.
 */
#include "geoip.h"
#include "core/util.h"

#include <maxminddb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct geoip {
	MMDB_s db;
};

const char *const geoip_default_paths[] = {
	"/var/lib/GeoIP/GeoLite2-Country.mmdb",
	"/usr/share/GeoIP/GeoLite2-Country.mmdb",
	"/usr/share/GeoIP/dbip-country-lite.mmdb",
	"/usr/share/GeoIP/GeoIP2-Country.mmdb",
	NULL,
};

struct geoip *geoip_open(const char *path, char *err, size_t errlen)
{
	struct geoip *g = xcalloc(1, sizeof(*g));
	int rc = MMDB_open(path, MMDB_MODE_MMAP, &g->db);
	if (rc != MMDB_SUCCESS) {
		snprintf(err, errlen, "unable to open GeoIP database '%s': %s", path,
			 MMDB_strerror(rc));
		free(g);
		return NULL;
	}
	return g;
}

struct geoip *geoip_open_auto(const char **used)
{
	char err[256];
	for (int i = 0; geoip_default_paths[i]; i++) {
		if (access(geoip_default_paths[i], R_OK) != 0)
			continue;
		struct geoip *g = geoip_open(geoip_default_paths[i], err, sizeof(err));
		if (g) {
			*used = geoip_default_paths[i];
			return g;
		}
	}
	return NULL;
}

void geoip_close(struct geoip *g)
{
	if (!g)
		return;
	MMDB_close(&g->db);
	free(g);
}

int geoip_country(struct geoip *g, const struct sockaddr *sa, char out[3])
{
	int mmdb_err;
	MMDB_lookup_result_s r = MMDB_lookup_sockaddr(&g->db, sa, &mmdb_err);
	if (mmdb_err != MMDB_SUCCESS || !r.found_entry)
		return -1;
	MMDB_entry_data_s d;
	if (MMDB_get_value(&r.entry, &d, "country", "iso_code", NULL) != MMDB_SUCCESS ||
	    !d.has_data || d.type != MMDB_DATA_TYPE_UTF8_STRING || d.data_size != 2)
		return -1;
	out[0] = d.utf8_string[0];
	out[1] = d.utf8_string[1];
	out[2] = '\0';
	return 0;
}
