/*
 * blocklist: domains whose links shortd refuses (--blocklist FILE), and
 * the other target rules that answer 403 rather than 400: the URL is
 * well-formed, but this service will not send people there.
 *
 * The file holds one domain per line; '#' starts a comment; "*.d" means
 * the same as "d". A domain blocks itself and every subdomain. Names are
 * compared in their ASCII (punycode) form, lowercased, as normalised URLs
 * carry them, so "bücher.example" in the file blocks the link that was
 * typed with either spelling.
 *
 * The live list is swapped whole on reload (SIGHUP): readers take a
 * reference under a lock held for a pointer copy, so a reload never waits
 * for a create, and a create never sees half a list.
 */
#ifndef SHORTD_BLOCKLIST_H
#define SHORTD_BLOCKLIST_H

#include <pthread.h>
#include <stddef.h>

struct blocklist;

/* Reads path into a new list. 0, or -1 with a message in err. */
int blocklist_load(const char *path, struct blocklist **out, char *err, size_t errlen);
size_t blocklist_size(const struct blocklist *b);
/* One line of such a file: its domain (ASCII, lowercase; the caller
 * frees it), or NULL for a blank line or a comment, and for a line that
 * is not a domain with *bad set. The line is changed. */
char *blocklist_line_domain(char *line, int *bad);
struct blocklist *blocklist_ref(struct blocklist *b);
void blocklist_unref(struct blocklist *b);
/* 1 if host (ASCII, lowercase) or one of its parent domains is listed. */
int blocklist_match(const struct blocklist *b, const char *host);

/* Where the live list is kept (the server's, an import's): swapped whole
 * under its lock. */
struct blocklist_slot {
	pthread_mutex_t lock;
	struct blocklist *live; /* NULL: none */
};
void blocklist_slot_init(struct blocklist_slot *s);
/* Drops the live list. */
void blocklist_slot_release(struct blocklist_slot *s);
/* The live list (NULL: none), as a reference the caller drops with
 * blocklist_unref(). */
struct blocklist *blocklist_current(struct blocklist_slot *s);
/* Installs b (taking over the caller's reference; NULL clears). */
void blocklist_install(struct blocklist_slot *s, struct blocklist *b);

/* Checks a normalised URL against the 403 rules: the blocklist (bl may be
 * NULL) and, with deny_private, targets on loopback, private, link-local,
 * shared, reserved or multicast IP addresses (IPv4 embedded in IPv6
 * included), single-label names and names under localhost, localdomain,
 * local, internal, home.arpa, lan, intranet, corp, home and private.
 * Returns 0, or -1 with *why set. Targets are not resolved: a public
 * name that resolves to a private address ("10.0.0.1.nip.io") passes;
 * its answer could change after the check anyway (DNS rebinding). */
int link_target_allowed(const char *url, const struct blocklist *bl, int deny_private,
			const char **why);

#endif
