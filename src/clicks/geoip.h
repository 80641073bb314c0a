/*
 * geoip: client IP address -> ISO 3166 country code, from a MaxMind DB
 * (.mmdb) country or city database (GeoLite2, DB-IP lite and compatible)
 * read with libmaxminddb, or from a legacy GeoIP country database (.dat,
 * such as Debian's geoip-database) read with libGeoIP. Optional: without a
 * database every country is "unknown" and nothing fails.
 */
#ifndef SHORTD_GEOIP_H
#define SHORTD_GEOIP_H

#include <stddef.h>
#include <sys/socket.h>

struct geoip;

/* Usual places of a country database, tried by geoip_open_auto(). */
extern const char *const geoip_default_paths[];

/* Opens path; NULL with err filled on failure. */
struct geoip *geoip_open(const char *path, char *err, size_t errlen);
/* Opens the first of geoip_default_paths that exists; NULL if none does.
 * *used is set to its path. */
struct geoip *geoip_open_auto(const char **used);
void geoip_close(struct geoip *g);
/* Writes the two-letter code into out[3]; returns 0, or -1 if unknown. */
int geoip_country(struct geoip *g, const struct sockaddr *sa, char out[3]);

#endif
