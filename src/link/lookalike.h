/*
 * lookalike: international host names made to pass for others (UTS #39,
 * through ICU's spoof checker).
 *
 * Three rules, checked on the Unicode form of each label of a host that
 * has an international (xn--) label; ASCII hosts cost nothing here:
 *  - restriction level: a label may not mix scripts beyond the level set
 *    (default "moderately": Latin with one other script, never Cyrillic or
 *    Greek; so "раураl", Cyrillic with a Latin "l", is refused), nor hold
 *    invisible characters or digits of two numbering systems;
 *  - whole-script lookalikes: a label written only with letters whose
 *    confusable skeleton is ASCII ("аррӏе", "ѕсоре", "ɡoogle", "gıthub")
 *    could be any ASCII name, and is refused at "moderately" and
 *    "highly" (Chrome shows such names as punycode for the same reason);
 *  - protected domains: a host, or one of its parent domains, whose
 *    skeleton is that of a listed domain without being it ("looks like
 *    paypal.com"). The list is the operator's (--lookalike-domains FILE,
 *    one domain per line as in the blocklist); the built-in default holds
 *    the most-phished brands (lookalike_domains.txt).
 *
 * Levels: "highly", "moderately" (default), "minimally" (mixes allowed,
 * no whole-script rule), "off" (only the protected domains).
 * A policy is read-only once built: checks run from any thread.
 */
#ifndef SHORTD_LOOKALIKE_H
#define SHORTD_LOOKALIKE_H

#include <stddef.h>

struct lookalike;

/* Builds a policy: level as above, domains from path (NULL or "": the
 * built-in list). 0, or -1 with a message in err. */
int lookalike_open(struct lookalike **out, const char *level, const char *path, char *err,
		   size_t errlen);
void lookalike_close(struct lookalike *lk);
size_t lookalike_domains(const struct lookalike *lk);

/* Checks a host in Unicode (UTF-8, lowercase, labels split by '.').
 * 0, or -1 with *why set (a message valid until the thread's next call). */
int lookalike_check(const struct lookalike *lk, const char *host, const char **why);

#endif
