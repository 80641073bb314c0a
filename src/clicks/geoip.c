/*
 * geoip: see geoip.h. A MaxMind DB is memory-mapped; a legacy GeoIP.dat
 * (with GeoIPv6.dat beside it) is read into memory once. Lookups of both
 * are read-only and safe from any thread (libGeoIP's _gl calls keep
 * their scratch in the caller's GeoIPLookup, not in the shared handle).
 */
#include "geoip.h"
#include "core/util.h"

#include <GeoIP.h>
#include <maxminddb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct geoip {
	int legacy;
	MMDB_s db;
	GeoIP *v4, *v6; /* legacy: either may be NULL, not both */
};

const char *const geoip_default_paths[] = {
	"/var/lib/GeoIP/GeoLite2-Country.mmdb",
	"/usr/share/GeoIP/GeoLite2-Country.mmdb",
	"/usr/share/GeoIP/dbip-country-lite.mmdb",
	"/usr/share/GeoIP/GeoIP2-Country.mmdb",
	"/usr/share/GeoIP/GeoIP.dat", /* Debian's geoip-database: data of 2019 */
	NULL,
};

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* A legacy country database (IPv4 or IPv6 edition), or NULL. */
static GeoIP *legacy_open(const char *path, int *edition)
{
	if (access(path, R_OK) != 0)
		return NULL;
	GeoIP *gi = GeoIP_open(path, GEOIP_MEMORY_CACHE | GEOIP_SILENCE);
	if (!gi)
		return NULL;
	*edition = GeoIP_database_edition(gi);
	/* libGeoIP takes any file without an edition mark for a country
	 * database: it must also place a well-known address (a name server
	 * of Google's) in a country. */
	GeoIPLookup gl = {0};
	int id = -1;
	if (*edition == GEOIP_COUNTRY_EDITION) {
		id = GeoIP_id_by_ipnum_gl(gi, 0x08080808UL, &gl);
	} else if (*edition == GEOIP_COUNTRY_EDITION_V6) {
		geoipv6_t a = {{{0x20, 0x01, 0x48, 0x60, 0x48, 0x60, 0, 0, 0, 0, 0, 0, 0, 0, 0x88, 0x88}}};
		id = GeoIP_id_by_ipnum_v6_gl(gi, a, &gl);
	}
	if (id <= 0 || (unsigned)id >= GeoIP_num_countries()) {
		GeoIP_delete(gi);
		return NULL;
	}
	return gi;
}

/* path and, when path is a GeoIP.dat, the GeoIPv6.dat beside it (or the
 * other way round): one for each family. */
static struct geoip *open_legacy(const char *path, char *err, size_t errlen)
{
	struct geoip *g = xcalloc(1, sizeof(*g));
	g->legacy = 1;
	int ed = 0;
	GeoIP *gi = legacy_open(path, &ed);
	if (!gi) {
		snprintf(err, errlen,
			 "unable to open GeoIP database '%s': not a legacy GeoIP country database",
			 path);
		free(g);
		return NULL;
	}
	*(ed == GEOIP_COUNTRY_EDITION ? &g->v4 : &g->v6) = gi;
	char other[4200];
	size_t dir = (size_t)(strrchr(path, '/') ? strrchr(path, '/') - path + 1 : 0);
	snprintf(other, sizeof(other), "%.*s%s", (int)dir, path,
		 ed == GEOIP_COUNTRY_EDITION ? "GeoIPv6.dat" : "GeoIP.dat");
	int ed2 = 0;
	GeoIP *gi2 = legacy_open(other, &ed2);
	if (gi2 && ed2 != ed)
		*(ed2 == GEOIP_COUNTRY_EDITION ? &g->v4 : &g->v6) = gi2;
	else if (gi2)
		GeoIP_delete(gi2);
	return g;
}

struct geoip *geoip_open(const char *path, char *err, size_t errlen)
{
	if (ends_with(path, ".dat"))
		return open_legacy(path, err, errlen);
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
	if (g->legacy) {
		if (g->v4)
			GeoIP_delete(g->v4);
		if (g->v6)
			GeoIP_delete(g->v6);
	} else {
		MMDB_close(&g->db);
	}
	free(g);
}

/* A legacy database's answer: "--" is no country, and A1, A2 and O1 are
 * anonymous proxies, satellite providers and "other": unknown too. */
static int legacy_country(const struct geoip *g, const struct sockaddr *sa, char out[3])
{
	GeoIPLookup gl = {0};
	int id = 0;
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a) && g->v4) {
			const uint8_t *b = a->s6_addr + 12;
			unsigned long ip = (unsigned long)b[0] << 24 | (unsigned long)b[1] << 16 |
					   (unsigned long)b[2] << 8 | b[3];
			id = GeoIP_id_by_ipnum_gl(g->v4, ip, &gl);
		} else if (g->v6) {
			id = GeoIP_id_by_ipnum_v6_gl(g->v6, *a, &gl);
		}
	} else if (sa->sa_family == AF_INET && g->v4) {
		uint32_t ip = ntohl(((const struct sockaddr_in *)(const void *)sa)->sin_addr.s_addr);
		id = GeoIP_id_by_ipnum_gl(g->v4, ip, &gl);
	}
	const char *c = id > 0 ? GeoIP_code_by_id(id) : NULL;
	if (!c || strlen(c) != 2 || strcmp(c, "--") == 0 || strcmp(c, "A1") == 0 ||
	    strcmp(c, "A2") == 0 || strcmp(c, "O1") == 0)
		return -1;
	out[0] = c[0];
	out[1] = c[1];
	out[2] = '\0';
	return 0;
}

int geoip_country(struct geoip *g, const struct sockaddr *sa, char out[3])
{
	if (g->legacy)
		return legacy_country(g, sa, out);
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
