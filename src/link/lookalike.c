/*
 * lookalike: see lookalike.h.
 *
 * Skeletons (UTS #39 section 4) map each character to a prototype of the
 * characters it can be confused with: "раураl" and "paypal" have the same
 * one. They are compared per label and joined with dots, ASCII letters in
 * lower case (a skeleton keeps case: Cherokee "ᏚᏟᎪ" gives "SCA").
 */
#include "lookalike.h"
#include "blocklist.h"
#include "core/util.h"

#include <errno.h>
#include <idn2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unicode/uspoof.h>

static const char builtin_domains[] =
#include "lookalike_domains.txt.h"
	;

enum level { LEVEL_HIGHLY, LEVEL_MODERATELY, LEVEL_MINIMALLY, LEVEL_OFF };

struct protected_domain {
	char *skel;    /* skeleton of the whole name */
	char *unicode; /* the name itself, as hosts are checked */
};

struct lookalike {
	USpoofChecker *sc;
	enum level level;
	struct protected_domain *v; /* sorted by skel */
	size_t n;
};

#define SKEL_MAX 2048

/* The skeleton of s[0..len) appended at out[*at], ASCII lowercased; -1
 * when it does not fit or ICU refuses the text. */
static int skeleton(const USpoofChecker *sc, const char *s, size_t len, char *out, size_t *at)
{
	UErrorCode st = U_ZERO_ERROR;
	int32_t n = uspoof_getSkeletonUTF8(sc, 0, s, (int32_t)len, out + *at,
					   (int32_t)(SKEL_MAX - *at), &st);
	if (U_FAILURE(st) || n < 0 || (size_t)n >= SKEL_MAX - *at)
		return -1;
	for (int32_t i = 0; i < n; i++) {
		char c = out[*at + (size_t)i];
		if (c >= 'A' && c <= 'Z')
			out[*at + (size_t)i] = (char)(c + 32);
	}
	*at += (size_t)n;
	out[*at] = '\0';
	return 0;
}

/* The skeleton of a whole name, label by label. */
static int name_skeleton(const USpoofChecker *sc, const char *name, char *out)
{
	size_t at = 0;
	out[0] = '\0';
	for (const char *s = name;;) {
		size_t len = strcspn(s, ".");
		if (skeleton(sc, s, len, out, &at) != 0)
			return -1;
		if (!s[len])
			return 0;
		if (at + 1 >= SKEL_MAX)
			return -1;
		out[at++] = '.';
		s += len + 1;
	}
}

static int by_skel(const void *a, const void *b)
{
	return strcmp(((const struct protected_domain *)a)->skel,
		      ((const struct protected_domain *)b)->skel);
}

/* Adds the domain of one line (ASCII, as blocklist_line_domain gives it). */
static int add_domain(struct lookalike *lk, char *ascii, size_t *cap)
{
	char *u = NULL;
	if (idn2_to_unicode_8z8z(ascii, &u, 0) != IDN2_OK) {
		free(u);
		free(ascii);
		return -1;
	}
	free(ascii);
	char skel[SKEL_MAX];
	if (name_skeleton(lk->sc, u, skel) != 0) {
		free(u);
		return -1;
	}
	if (lk->n == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		lk->v = xrealloc(lk->v, *cap * sizeof(*lk->v));
	}
	lk->v[lk->n].skel = xstrdup(skel);
	lk->v[lk->n].unicode = u;
	lk->n++;
	return 0;
}

/* Reads the list from f (a file), or from the built-in text. */
static int load_domains(struct lookalike *lk, const char *path, char *err, size_t errlen)
{
	FILE *f = NULL;
	if (path && path[0]) {
		f = fopen(path, "r");
		if (!f) {
			snprintf(err, errlen, "--lookalike-domains: cannot open '%s': %s", path,
				 strerror(errno));
			return -1;
		}
	}
	const char *next = builtin_domains;
	char line[1024];
	size_t cap = 0;
	int lineno = 0, rc = 0;
	for (;;) {
		if (f) {
			if (!fgets(line, sizeof(line), f))
				break;
		} else {
			if (!*next)
				break;
			size_t len = strcspn(next, "\n");
			snprintf(line, sizeof(line), "%.*s", (int)len, next);
			next += len + (next[len] == '\n');
		}
		lineno++;
		int bad;
		char *ascii = blocklist_line_domain(line, &bad);
		if (!bad && ascii && add_domain(lk, ascii, &cap) != 0)
			bad = 1;
		if (bad) {
			snprintf(err, errlen, "--lookalike-domains: '%s' line %d is not a domain name",
				 f ? path : "(built-in)", lineno);
			rc = -1;
			break;
		}
	}
	if (f)
		fclose(f);
	if (rc == 0 && lk->n)
		qsort(lk->v, lk->n, sizeof(*lk->v), by_skel);
	return rc;
}

int lookalike_open(struct lookalike **out, const char *level, const char *path, char *err,
		   size_t errlen)
{
	static const char *const names[] = {"highly", "moderately", "minimally", "off"};
	static const URestrictionLevel icu_levels[] = {
		USPOOF_HIGHLY_RESTRICTIVE, USPOOF_MODERATELY_RESTRICTIVE, USPOOF_MINIMALLY_RESTRICTIVE,
		USPOOF_UNRESTRICTIVE};
	struct lookalike *lk = xcalloc(1, sizeof(*lk));
	lk->level = LEVEL_OFF + 1;
	for (int i = 0; i < (int)ARRAY_LEN(names); i++)
		if (strcmp(level, names[i]) == 0)
			lk->level = (enum level)i;
	if (lk->level > LEVEL_OFF) {
		snprintf(err, errlen,
			 "--idn-restriction: '%s' is not highly, moderately, minimally or off", level);
		free(lk);
		return -1;
	}
	UErrorCode st = U_ZERO_ERROR;
	lk->sc = uspoof_open(&st);
	if (U_SUCCESS(st)) {
		uspoof_setRestrictionLevel(lk->sc, icu_levels[lk->level]);
		uspoof_setChecks(lk->sc, USPOOF_RESTRICTION_LEVEL | USPOOF_INVISIBLE | USPOOF_MIXED_NUMBERS,
				 &st);
	}
	if (U_FAILURE(st)) {
		snprintf(err, errlen, "ICU's spoof checker failed to start: %s", u_errorName(st));
		lookalike_close(lk);
		return -1;
	}
	if (load_domains(lk, path, err, errlen) != 0) {
		lookalike_close(lk);
		return -1;
	}
	*out = lk;
	return 0;
}

void lookalike_close(struct lookalike *lk)
{
	if (!lk)
		return;
	for (size_t i = 0; i < lk->n; i++) {
		free(lk->v[i].skel);
		free(lk->v[i].unicode);
	}
	free(lk->v);
	if (lk->sc)
		uspoof_close(lk->sc);
	free(lk);
}

size_t lookalike_domains(const struct lookalike *lk)
{
	return lk ? lk->n : 0;
}

static const struct protected_domain *find(const struct lookalike *lk, const char *skel)
{
	size_t lo = 0, hi = lk->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(skel, lk->v[mid].skel);
		if (c == 0)
			return &lk->v[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

int lookalike_check(const struct lookalike *lk, const char *host, const char **why)
{
	static __thread char msg[600];
	char skel[SKEL_MAX];
	size_t at = 0, skel_at[128], host_at[128], nlabels = 0;
	skel[0] = '\0';
	for (const char *s = host;;) {
		size_t len = strcspn(s, ".");
		int ascii = 1;
		for (size_t i = 0; i < len; i++)
			ascii &= (unsigned char)s[i] < 0x80;
		if (!ascii && lk->level != LEVEL_OFF) {
			UErrorCode st = U_ZERO_ERROR;
			int32_t r = uspoof_checkUTF8(lk->sc, s, (int32_t)len, NULL, &st);
			if (U_FAILURE(st)) {
				*why = "has an invalid international domain name";
				return -1;
			}
			if (r & USPOOF_RESTRICTION_LEVEL) {
				*why = "mixes alphabets in one part of its host name (a lookalike of "
				       "another name)";
				return -1;
			}
			if (r & (USPOOF_INVISIBLE | USPOOF_MIXED_NUMBERS)) {
				*why = "has invisible marks or digits of two numbering systems in its "
				       "host name";
				return -1;
			}
		}
		if (nlabels == ARRAY_LEN(skel_at)) {
			*why = "has too many labels in its host name";
			return -1;
		}
		skel_at[nlabels] = at;
		host_at[nlabels++] = (size_t)(s - host);
		size_t from = at;
		if (skeleton(lk->sc, s, len, skel, &at) != 0) {
			*why = "has an invalid international domain name";
			return -1;
		}
		if (!ascii && lk->level <= LEVEL_MODERATELY &&
		    strspn(skel + from, "abcdefghijklmnopqrstuvwxyz0123456789-") == at - from) {
			snprintf(msg, sizeof(msg),
				 "has a host name label written with letters that pass for Latin "
				 "ones: '%.*s' reads as '%s' (a lookalike of another name)",
				 (int)len, s, skel + from);
			*why = msg;
			return -1;
		}
		if (!s[len])
			break;
		if (at + 2 > SKEL_MAX) {
			*why = "has an invalid international domain name";
			return -1;
		}
		skel[at++] = '.';
		skel[at] = '\0';
		s += len + 1;
	}
	/* the longest name first: a subdomain of a listed domain is its own */
	for (size_t i = 0; i + 1 < nlabels; i++) {
		const struct protected_domain *d = find(lk, skel + skel_at[i]);
		if (!d)
			continue;
		if (strcmp(host + host_at[i], d->unicode) == 0)
			return 0;
		snprintf(msg, sizeof(msg),
			 "has a host name that looks like %s (a lookalike of a well-known name)",
			 d->unicode);
		*why = msg;
		return -1;
	}
	return 0;
}
