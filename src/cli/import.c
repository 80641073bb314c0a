/*
 * import: `shortd import FILE`, links in bulk from CSV or JSON lines,
 * straight into the store (the server may run meanwhile: SQLite lets both
 * write, one transaction at a time).
 *
 * Formats (by --format, else by the file's extension, .csv or .jsonl):
 *   CSV:  url[,alias[,expires_at]] per line (RFC 4180 quoting for URLs
 *         with commas); a first line "url,..." is a header and skipped.
 *   JSONL: one object per line with the fields of POST /api/v1/links.
 * Every line passes the rules of the API (link_input.h, the blocklist and
 * --deny-private-targets); a line that does not is reported on stderr with
 * its number and skipped. Links are committed in large transactions
 * (group commit), each acknowledged only once it is on disk, like the
 * API's (the same code choice and collision retry: app/create.h);
 * --codes FILE writes the code of each imported link, in order of commit. Exit status: 0 all imported, 3 some lines skipped, 1 the
 * import could not run.
 */
#include "cli.h"
#include "app/app.h"
#include "app/create.h"
#include "core/config.h"
#include "core/idgen.h"
#include "core/log.h"
#include "link/blocklist.h"
#include "link/link_input.h"
#include "store/store.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WINDOW 8192 /* writes in flight */

struct importer {
	struct store store;
	struct idgen idgen;
	struct create_rules rules;
	struct blocklist_slot blocklist;
	const struct config *cfg;
	int64_t owner;
	FILE *codes;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	long in_flight, imported, skipped;
};

struct item {
	struct store_op op;
	struct importer *im;
	long line;
	int random_code, attempts;
};

/* Any thread. */
static void report(struct importer *im, long line, const char *why)
{
	pthread_mutex_lock(&im->lock);
	fprintf(stderr, "line %ld: skipped: %s\n", line, why);
	im->skipped++;
	pthread_mutex_unlock(&im->lock);
}

/* Writer thread. */
static void on_done(struct store_op *op)
{
	struct item *it = op->ctx;
	struct importer *im = it->im;
	if (op->status == STORE_CONFLICT && it->random_code &&
	    create_retry(&im->rules, op, &it->attempts)) {
		store_submit(&im->store, &it->op, on_done, it);
		return;
	}
	if (op->status != STORE_OK)
		report(im, it->line,
		       op->status == STORE_CONFLICT ? "the alias is taken"
		       : op->status == STORE_FULL   ? "the disk is full"
						    : "the store failed (see the log)");
	pthread_mutex_lock(&im->lock);
	if (op->status == STORE_OK) {
		im->imported++;
		if (im->codes)
			fprintf(im->codes, "%s\n", op->link->code);
	}
	im->in_flight--;
	pthread_cond_signal(&im->cond);
	pthread_mutex_unlock(&im->lock);
	if (op->result)
		link_unref(op->result);
	link_unref(op->link);
	free(it);
}

/* One CSV field at *p (quoted or not) into out; *p moves past its comma. */
static int csv_field(const char **p, struct buf *out)
{
	const char *s = *p;
	if (*s == '"') {
		s++;
		for (;;) {
			if (!*s)
				return -1;
			if (*s == '"') {
				if (s[1] == '"') {
					buf_append(out, "\"", 1);
					s += 2;
					continue;
				}
				s++;
				break;
			}
			buf_append(out, s++, 1);
		}
		if (*s && *s != ',')
			return -1;
	} else {
		size_t n = strcspn(s, ",");
		buf_append(out, s, n);
		s += n;
	}
	*p = *s == ',' ? s + 1 : s;
	return 0;
}

/* A CSV line as the JSON body the API would take (so both formats pass
 * the same parser). 0, or -1 with a reason. */
static int csv_to_json(const char *line, struct buf *json, const char **why)
{
	struct buf f[3];
	int n = 0, rc = 0;
	for (int i = 0; i < 3; i++)
		buf_init(&f[i]);
	const char *p = line;
	while (*p && n < 3) {
		if (csv_field(&p, &f[n++]) != 0) {
			*why = "a quoted field is not closed";
			rc = -1;
			goto out;
		}
	}
	if (*p) {
		*why = "more than three fields (url, alias, expires_at)";
		rc = -1;
		goto out;
	}
	json_t *o = json_object();
	json_object_set_new(o, "url", json_stringn(f[0].p ? f[0].p : "", f[0].len));
	if (n > 1 && f[1].len)
		json_object_set_new(o, "alias", json_stringn(f[1].p, f[1].len));
	if (n > 2 && f[2].len)
		json_object_set_new(o, "expires_at", json_stringn(f[2].p, f[2].len));
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!s) {
		*why = "the line is not valid UTF-8";
		rc = -1;
		goto out;
	}
	buf_puts(json, s);
	free(s);
out:
	for (int i = 0; i < 3; i++)
		buf_release(&f[i]);
	return rc;
}

static void import_line(struct importer *im, const struct url_policy *pol, long lineno,
			const char *body, size_t len)
{
	struct link_input in;
	struct link_input_error err;
	int64_t now = time_now_ms();
	if (link_input_parse(body, len, 0, pol, now, &in, &err) != 0) {
		char why[400];
		snprintf(why, sizeof(why), "%s%s%s", err.field ? err.field : "",
			 err.field ? ": " : "", err.msg);
		report(im, lineno, why);
		link_input_release(&in);
		return;
	}
	const char *why;
	struct blocklist *bl = blocklist_current(&im->blocklist);
	int allowed = link_target_allowed(in.url.p, bl, im->cfg->deny_private_targets, &why);
	blocklist_unref(bl);
	if (allowed != 0) {
		char msg[200];
		snprintf(msg, sizeof(msg), "url: %s", why);
		report(im, lineno, msg);
		link_input_release(&in);
		return;
	}
	int random;
	struct link *l = create_link(&im->rules, &in, im->owner, now, &random);
	if (!l) {
		report(im, lineno, "no randomness available");
		link_input_release(&in);
		return;
	}
	struct item *it = xcalloc(1, sizeof(*it));
	it->im = im;
	it->line = lineno;
	it->random_code = random;
	it->op.kind = STORE_OP_INSERT;
	it->op.link = l;
	it->op.owner = im->owner;
	link_input_release(&in);
	pthread_mutex_lock(&im->lock);
	while (im->in_flight >= WINDOW)
		pthread_cond_wait(&im->cond, &im->lock);
	im->in_flight++;
	pthread_mutex_unlock(&im->lock);
	store_submit(&im->store, &it->op, on_done, it);
}

static const char usage[] =
	"usage: shortd import FILE [--format csv|jsonl] [--owner KEY_ID] [--codes OUT] [--data DIR]\n"
	"                          [--init]\n"
	"  CSV lines: url[,alias[,expires_at]]; JSON lines: {\"url\": ..., \"alias\": ...}\n"
	"  --owner: the links belong to this API key (by its id); default: no owner\n"
	"  --codes: write the code of each imported link to OUT\n"
	"  --init: create the database if DIR holds none (otherwise that is an error)\n";

int cli_import(int argc, char **argv)
{
	const char *file = NULL, *format = NULL, *owner = NULL, *codes = NULL, *init = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(usage, stdout);
			return 0;
		}
	}
	const struct config_flag flags[] = {{"--format", &format, 0},
					    {"--owner", &owner, 0},
					    {"--codes", &codes, 0},
					    {"--init", &init, 1}};
	struct config cfg;
	char err[512];
	int rc = config_load_sub(&cfg, argc, argv, 1, flags, ARRAY_LEN(flags), &file, err,
				 sizeof(err));
	if (rc != CONFIG_OK || !file) {
		if (rc == CONFIG_ERR)
			fprintf(stderr, "shortd import: %s\n", err);
		fputs(usage, stderr);
		config_release(&cfg);
		return rc == CONFIG_OK || rc == CONFIG_ERR ? 2 : 0;
	}
	size_t fl = strlen(file);
	int jsonl = format ? strcmp(format, "jsonl") == 0
			   : (fl > 6 && strcmp(file + fl - 6, ".jsonl") == 0);
	if (format && !jsonl && strcmp(format, "csv") != 0) {
		fprintf(stderr, "shortd import: --format must be csv or jsonl\n");
		config_release(&cfg);
		return 2;
	}
	if (cli_data_dir_ready(&cfg, "import", init != NULL) != 0) {
		config_release(&cfg);
		return 2;
	}
	FILE *in = strcmp(file, "-") == 0 ? stdin : fopen(file, "r");
	if (!in) {
		fprintf(stderr, "shortd import: cannot open '%s'\n", file);
		config_release(&cfg);
		return 1;
	}
	log_threshold = LOG_LEVEL_WARN;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	struct importer im = {.cfg = &cfg};
	pthread_mutex_init(&im.lock, NULL);
	blocklist_slot_init(&im.blocklist);
	pthread_cond_init(&im.cond, NULL);
	rc = 1;
	struct url_policy pol = {0};
	const char *why;
	char base[1100];
	snprintf(base, sizeof(base), "%s", cfg.base_url[0] ? cfg.base_url : "http://localhost");
	if (url_policy_init(&pol, base, "localhost", 0, &why) != 0) {
		fprintf(stderr, "shortd import: invalid --base-url: %s\n", why);
		goto out_file;
	}
	if (url_policy_lookalikes(&pol, cfg.idn_restriction, cfg.lookalike_domains, err,
				  sizeof(err)) != 0) {
		fprintf(stderr, "shortd import: %s\n", err);
		goto out_file;
	}
	if (cfg.blocklist[0]) {
		struct blocklist *b;
		if (blocklist_load(cfg.blocklist, &b, err, sizeof(err)) != 0) {
			fprintf(stderr, "shortd import: %s\n", err);
			goto out_file;
		}
		blocklist_install(&im.blocklist, b);
	}
	if (codes && !(im.codes = fopen(codes, "w"))) {
		fprintf(stderr, "shortd import: cannot write '%s'\n", codes);
		goto out_file;
	}
	struct store_config sc;
	app_store_config(&cfg, &sc);
	sc.commit_batch = 4096;
	if (store_open(&im.store, &sc, err, sizeof(err)) != STORE_OK) {
		fprintf(stderr, "shortd import: %s\n", err);
		goto out_file;
	}
	if (owner) {
		struct store_reader *r;
		struct store_read rd = {.kind = STORE_READ_KEY, .key_id = owner};
		const struct api_key *k = &rd.key;
		int krc = STORE_ERR;
		if (store_reader_open(&im.store, NULL, &r) == STORE_OK) {
			krc = store_read(&im.store, r, &rd);
			store_reader_close(&im.store, r);
		}
		if (krc != STORE_OK || k->revoked_at_ms) {
			fprintf(stderr, "shortd import: --owner '%s' is not a valid key id\n", owner);
			store_close(&im.store);
			goto out_file;
		}
		im.owner = k->id;
	}
	idgen_init(&im.idgen, (unsigned)cfg.node_id, time_now_ms);
	im.rules = (struct create_rules){&im.idgen, cfg.code_length, cfg.redirect_status};
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	long lineno = 0;
	struct buf json;
	buf_init(&json);
	uint64_t t0 = time_mono_ns();
	while ((n = getline(&line, &cap, in)) > 0) {
		lineno++;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (n == 0)
			continue;
		if (jsonl) {
			import_line(&im, &pol, lineno, line, (size_t)n);
			continue;
		}
		if (lineno == 1 && strncmp(line, "url", 3) == 0 && (line[3] == ',' || !line[3]))
			continue; /* a header */
		json.len = 0;
		if (csv_to_json(line, &json, &why) != 0) {
			report(&im, lineno, why);
			continue;
		}
		import_line(&im, &pol, lineno, json.p, json.len);
	}
	free(line);
	buf_release(&json);
	store_close(&im.store); /* commits and answers every write first */
	double s = (double)(time_mono_ns() - t0) / 1e9;
	fprintf(stderr, "imported %ld links, skipped %ld lines, in %.1f s (%.0f links/s)\n",
		im.imported, im.skipped, s, s > 0 ? (double)im.imported / s : 0.0);
	rc = im.skipped ? 3 : 0;
out_file:
	if (im.codes && fclose(im.codes) != 0) {
		fprintf(stderr, "shortd import: writing '%s' failed\n", codes);
		rc = 1;
	}
	if (in != stdin)
		fclose(in);
	blocklist_slot_release(&im.blocklist);
	url_policy_release(&pol);
	pthread_mutex_destroy(&im.lock);
	pthread_cond_destroy(&im.cond);
	curl_global_cleanup();
	config_release(&cfg);
	return rc;
}
