/*
 * import: `shortd import FILE`, links in bulk from CSV or JSON lines (or
 * the exports of YOURLS, Kutt, Shlink and bit.ly: import_format.h),
 * straight into the store (the server may run meanwhile: SQLite lets both
 * write, one transaction at a time).
 *
 * Every line passes the rules of the API (link_input.h, the blocklist and
 * --deny-private-targets); a line that does not is refused: the first 20
 * are reported on stderr with their numbers, and a summary by reason ends
 * the run. Links are committed in large transactions (group commit), each
 * counted only once it is on disk, like the API's (the same code choice
 * and collision retry: app/create.h); --codes FILE writes the code of each
 * imported link, in order of commit. On a terminal a progress line shows
 * lines read, imported, refused, the rate and the time left.
 *
 * --skip-existing makes a second run of the same file a no-op: a line
 * whose alias (or code) already holds its target, or without one whose
 * target the owner already has a link to, is counted as present and not
 * imported again. It reads every live link first (16 bytes each in
 * memory). Exit status: 0 every line imported or present, 3 some lines
 * refused, 1 the import could not run.
 */
#include "cli.h"
#include "import_format.h"
#include "app/app.h"
#include "app/create.h"
#include "core/config.h"
#include "core/idgen.h"
#include "core/log.h"
#include "link/blocklist.h"
#include "link/link_input.h"
#include "store/store.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define WINDOW 8192        /* writes in flight */
#define SHOW_REFUSED 20    /* refused lines reported one by one */
#define REASONS_MAX 32     /* distinct reasons counted; others are "other" */
#define RECORD_MAX (1 << 20)

/* A set of 64-bit hashes (open addressing; 0 marks a free slot). */
struct hset {
	uint64_t *slot;
	size_t mask, n;
};

static void hset_add(struct hset *h, uint64_t v);

static int hset_has(const struct hset *h, uint64_t v)
{
	v |= 1;
	if (!h->slot)
		return 0;
	for (size_t i = (size_t)v & h->mask;; i = (i + 1) & h->mask) {
		if (h->slot[i] == v)
			return 1;
		if (!h->slot[i])
			return 0;
	}
}

static void hset_put(uint64_t *slot, size_t mask, uint64_t v)
{
	size_t i = (size_t)v & mask;
	while (slot[i] && slot[i] != v)
		i = (i + 1) & mask;
	slot[i] = v;
}

static void hset_add(struct hset *h, uint64_t v)
{
	v |= 1;
	if (2 * (h->n + 1) > h->mask) {
		size_t cap = h->slot ? 2 * (h->mask + 1) : 1024;
		uint64_t *s = xcalloc(cap, sizeof(*s));
		for (size_t i = 0; h->slot && i <= h->mask; i++)
			if (h->slot[i])
				hset_put(s, cap - 1, h->slot[i]);
		free(h->slot);
		h->slot = s;
		h->mask = cap - 1;
	}
	if (!hset_has(h, v)) {
		hset_put(h->slot, h->mask, v);
		h->n++;
	}
}

/* What --skip-existing compares: a target of an owner, a code's target. */
static uint64_t target_key(int64_t owner, const char *url, size_t len)
{
	return hash_bytes(url, len, (uint64_t)owner * 0x9e3779b97f4a7c15ULL + 1);
}

static uint64_t code_key(const char *code, size_t code_len, const char *url, size_t len)
{
	return hash_bytes(url, len, hash_bytes(code, code_len, 2));
}

struct reason {
	char *text;
	long count;
};

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
	long in_flight, imported, refused, present;
	int tty;           /* stderr is a terminal: progress, cleared lines */
	int skip_existing;
	struct hset targets, codes_set;
	struct reason reasons[REASONS_MAX + 1]; /* the last: every other */
	int nreasons;
};

struct item {
	struct store_op op;
	struct importer *im;
	long line;
	int random_code, attempts;
};

/* Any thread. The first SHOW_REFUSED refused lines are reported; every
 * one is counted by its reason. */
static void report(struct importer *im, long line, const char *why)
{
	pthread_mutex_lock(&im->lock);
	if (im->refused++ < SHOW_REFUSED)
		fprintf(stderr, "%sline %ld: refused: %s\n", im->tty ? "\r\033[K" : "", line, why);
	int i = 0;
	while (i < im->nreasons && strcmp(im->reasons[i].text, why) != 0)
		i++;
	if (i == im->nreasons) {
		if (im->nreasons < REASONS_MAX)
			im->reasons[im->nreasons++].text = xstrdup(why);
		else
			i = REASONS_MAX; /* "other reasons" */
	}
	im->reasons[i].count++;
	pthread_mutex_unlock(&im->lock);
}

static int by_count(const void *a, const void *b)
{
	const struct reason *x = a, *y = b;
	return (y->count > x->count) - (y->count < x->count);
}

static void report_summary(struct importer *im)
{
	if (im->refused > SHOW_REFUSED)
		fprintf(stderr, "(%ld more refused lines not shown)\n", im->refused - SHOW_REFUSED);
	if (!im->refused)
		return;
	qsort(im->reasons, (size_t)im->nreasons, sizeof(im->reasons[0]), by_count);
	fprintf(stderr, "refused lines by reason:\n");
	for (int i = 0; i < im->nreasons; i++)
		fprintf(stderr, "%10ld  %s\n", im->reasons[i].count, im->reasons[i].text);
	if (im->reasons[REASONS_MAX].count)
		fprintf(stderr, "%10ld  (other reasons)\n", im->reasons[REASONS_MAX].count);
	for (int i = 0; i < im->nreasons; i++)
		free(im->reasons[i].text);
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
		       op->status == STORE_CONFLICT ? "the alias is taken (or was, by a deleted link)"
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

/* A line as the API's body (and a code kept from another shortener, or
 * ""): checked, then submitted. */
static void import_line(struct importer *im, const struct url_policy *pol, long lineno,
			const char *body, size_t len, const char *code)
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
	if (code[0]) {
		/* Codes another shortener made may be shorter than the API's
		 * aliases (YOURLS counts 1, 2, ... a, b): they are kept, so that
		 * its links go on working, if they are codes shortd can serve. */
		size_t cl = strlen(code);
		if (!link_code_syntax_ok(code, cl)) {
			report(im, lineno, "code: may contain only letters, digits, '_' and '-'");
			link_input_release(&in);
			return;
		}
		if (link_code_reserved(code, cl)) {
			report(im, lineno, "code: is a reserved word");
			link_input_release(&in);
			return;
		}
		memcpy(in.alias_buf, code, cl + 1);
		in.alias = in.alias_buf;
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
	if (im->skip_existing) {
		/* the main thread's alone: the writer never touches the sets */
		uint64_t k = in.alias ? code_key(in.alias, strlen(in.alias), in.url.p, in.url.len)
				      : target_key(im->owner, in.url.p, in.url.len);
		struct hset *set = in.alias ? &im->codes_set : &im->targets;
		if (hset_has(set, k)) {
			pthread_mutex_lock(&im->lock);
			im->present++;
			pthread_mutex_unlock(&im->lock);
			link_input_release(&in);
			return;
		}
		hset_add(set, k);
		hset_add(&im->targets, target_key(im->owner, in.url.p, in.url.len));
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

/* --skip-existing: every live link's target (by owner) and code. */
static int load_existing(struct importer *im, char *err, size_t errlen)
{
	struct store_reader *r;
	if (store_reader_open(&im->store, NULL, &r) != STORE_OK) {
		snprintf(err, errlen, "cannot read the links (see the log)");
		return -1;
	}
	int64_t before = 0;
	int rc = 0;
	for (;;) {
		struct store_read rd = {.kind = STORE_READ_LINKS, .owner = STORE_ANY_OWNER,
					.before_id = before, .limit = 1000};
		if (store_read(&im->store, r, &rd) != STORE_OK) {
			snprintf(err, errlen, "cannot read the links (see the log)");
			rc = -1;
			break;
		}
		for (int i = 0; i < rd.nlinks; i++) {
			const struct link *l = rd.links[i];
			hset_add(&im->targets, target_key(l->owner, l->url, l->url_len));
			hset_add(&im->codes_set, code_key(l->code, l->code_len, l->url, l->url_len));
		}
		int n = rd.nlinks;
		if (n)
			before = rd.links[n - 1]->id;
		store_read_release(&rd);
		if (n < 1000)
			break;
	}
	store_reader_close(&im->store, r);
	return rc;
}

/* A "1:05" or "2:01:05" for the progress line. */
static void fmt_duration(double s, char *out, size_t cap)
{
	long t = s > 0 && s < 1e7 ? (long)(s + 0.5) : 0;
	if (t >= 3600)
		snprintf(out, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
	else
		snprintf(out, cap, "%ld:%02ld", t / 60, t % 60);
}

/* The progress line on a terminal (stderr), at most four times a second. */
static void progress(struct importer *im, long lines, FILE *in, off_t size, uint64_t t0,
		     uint64_t *last)
{
	uint64_t now = time_mono_ns();
	if (now - *last < 250000000ULL)
		return;
	*last = now;
	double s = (double)(now - t0) / 1e9;
	char eta[32] = "?";
	off_t pos = size > 0 ? ftello(in) : -1;
	if (pos > 0 && s > 0)
		fmt_duration((double)(size - pos) * s / (double)pos, eta, sizeof(eta));
	pthread_mutex_lock(&im->lock);
	char present[48] = "";
	if (im->skip_existing)
		snprintf(present, sizeof(present), ", %ld present", im->present);
	fprintf(stderr, "\r%ld lines read, %ld imported, %ld refused%s, %.0f lines/s, %s left\033[K",
		lines, im->imported, im->refused, present, s > 0 ? (double)lines / s : 0.0, eta);
	pthread_mutex_unlock(&im->lock);
}

static const char usage[] =
	"usage: shortd import FILE|- [--format FORMAT] [--skip-existing] [--owner KEY_ID]\n"
	"                            [--codes OUT] [--data DIR] [--init]\n"
	"  FORMAT: csv, jsonl, yourls, kutt, shlink or bitly; by default from the file: JSON\n"
	"    lines by the name (.jsonl, .ndjson) or a first '{', else CSV, whose header names\n"
	"    the columns (shortd's url,alias,expires_at or another shortener's export)\n"
	"  CSV without a header: url[,alias[,expires_at]]; JSON lines: the API's fields\n"
	"  --skip-existing: lines whose link is already there are not imported again, so the\n"
	"    same file can be run twice (keyed on the alias and target, or the owner and target)\n"
	"  --owner: the links belong to this API key (by its id); default: no owner\n"
	"  --codes: write the code of each imported link to OUT\n"
	"  --init: create the database if DIR holds none (otherwise that is an error)\n"
	"  Progress is shown on a terminal; the first 20 refused lines are listed, then a\n"
	"  count by reason. Exit 0: every line imported or present; 3: some refused.\n";

int cli_import(int argc, char **argv)
{
	const char *file = NULL, *format = NULL, *owner = NULL, *codes = NULL, *init = NULL,
		   *skip = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(usage, stdout);
			return 0;
		}
	}
	const struct config_flag flags[] = {{"--format", &format, 0},
					    {"--owner", &owner, 0},
					    {"--codes", &codes, 0},
					    {"--init", &init, 1},
					    {"--skip-existing", &skip, 1}};
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
	struct import_layout lay;
	if (format && !import_format_known(format)) {
		fprintf(stderr, "shortd import: --format must be %s\n", import_format_names);
		config_release(&cfg);
		return 2;
	}
	if (cli_data_dir_ready(&cfg, "import", init != NULL) != 0) {
		config_release(&cfg);
		return 2;
	}
	FILE *in = strcmp(file, "-") == 0 ? stdin : fopen(file, "r");
	if (!in) {
		fprintf(stderr, "shortd import: cannot open '%s': %s\n", file, strerror(errno));
		config_release(&cfg);
		return 1;
	}
	struct stat st;
	off_t size = fstat(fileno(in), &st) == 0 && S_ISREG(st.st_mode) ? st.st_size : 0;
	log_threshold = LOG_LEVEL_WARN;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	struct importer im = {.cfg = &cfg, .tty = isatty(STDERR_FILENO), .skip_existing = !!skip};
	pthread_mutex_init(&im.lock, NULL);
	blocklist_slot_init(&im.blocklist);
	pthread_cond_init(&im.cond, NULL);
	struct import_reader rdr;
	import_reader_init(&rdr, in, RECORD_MAX);
	struct buf json;
	buf_init(&json);
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
	/* The first record says the format (and may be a header). */
	int have = import_reader_next(&rdr);
	if (import_layout_detect(&lay, format, file, have ? rdr.rec.p : "", err, sizeof(err)) != 0) {
		fprintf(stderr, "shortd import: %s\n", err);
		rc = 2;
		goto out_file;
	}
	rdr.csv = lay.kind == IMPORT_CSV;
	if (lay.header && lay.source && strcmp(lay.source, "shortd") != 0)
		fprintf(stderr, "reading a %s export\n", lay.source);
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
	if (im.skip_existing && load_existing(&im, err, sizeof(err)) != 0) {
		fprintf(stderr, "shortd import: %s\n", err);
		store_close(&im.store);
		goto out_file;
	}
	idgen_init(&im.idgen, (unsigned)cfg.node_id, time_now_ms);
	im.rules = (struct create_rules){&im.idgen, cfg.code_length, cfg.redirect_status,
					 cfg.forward_query};
	uint64_t t0 = time_mono_ns(), shown = 0; /* the first line at once */
	char code[65];
	if (have && lay.header)
		have = import_reader_next(&rdr);
	for (long records = 0; have; have = import_reader_next(&rdr)) {
		if (im.tty && (++records & 1023) == 0)
			progress(&im, rdr.lines, in, size, t0, &shown);
		const char *rec = rdr.rec.p;
		size_t n = rdr.rec.len;
		if (n == 0)
			continue;
		if (rdr.too_long) {
			report(&im, rdr.lineno, "longer than 1 MiB");
			continue;
		}
		if (lay.kind == IMPORT_JSONL) {
			import_line(&im, &pol, rdr.lineno, rec, n, "");
			continue;
		}
		if (import_csv_row(&lay, rec, n, &json, code, &why) != 0) {
			report(&im, rdr.lineno, why);
			continue;
		}
		import_line(&im, &pol, rdr.lineno, json.p, json.len, code);
	}
	if (ferror(in))
		fprintf(stderr, "shortd import: reading '%s' failed: %s\n", file, strerror(errno));
	store_close(&im.store); /* commits and answers every write first */
	double s = (double)(time_mono_ns() - t0) / 1e9;
	if (im.tty)
		fputs("\r\033[K", stderr);
	report_summary(&im);
	char present[64] = "";
	if (im.skip_existing)
		snprintf(present, sizeof(present), ", %ld already present", im.present);
	fprintf(stderr, "imported %ld link%s, refused %ld line%s%s, in %.1f s (%.0f links/s)\n",
		im.imported, im.imported == 1 ? "" : "s", im.refused, im.refused == 1 ? "" : "s",
		present, s, s > 0 ? (double)im.imported / s : 0.0);
	rc = ferror(in) ? 1 : im.refused ? 3 : 0;
out_file:
	if (im.codes && fclose(im.codes) != 0) {
		fprintf(stderr, "shortd import: writing '%s' failed\n", codes);
		rc = 1;
	}
	import_reader_release(&rdr);
	buf_release(&json);
	if (in != stdin)
		fclose(in);
	free(im.targets.slot);
	free(im.codes_set.slot);
	blocklist_slot_release(&im.blocklist);
	url_policy_release(&pol);
	pthread_mutex_destroy(&im.lock);
	pthread_cond_destroy(&im.cond);
	curl_global_cleanup();
	config_release(&cfg);
	return rc;
}
