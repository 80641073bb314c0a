/*
 * key: `shortd key create|list|revoke`, API keys from the command line
 * (the first admin key must come from here). It opens the database the
 * server uses (--data, or --config, or SHORTD_DATA); SQLite lets it do so
 * while the server runs, and the server sees the change on its next
 * request.
 */
#include "cli.h"
#include "app/app.h"
#include "core/config.h"
#include "core/idgen.h"
#include "core/log.h"
#include "store/store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_create[] =
	"usage: shortd key create --name NAME --role admin|user [--data DIR] [--init]\n"
	"  makes an API key and prints it once (only its SHA-256 is stored)\n"
	"  --name: 1 to 64 bytes of text without control characters\n"
	"  --role: admin (every link, and keys) or user (its own links)\n"
	"  --init: create the database if DIR holds none (otherwise that is an error)\n";
static const char usage_list[] =
	"usage: shortd key list [--data DIR]\n"
	"  ids, roles, creation and revocation times, names; never a secret\n";
static const char usage_revoke[] =
	"usage: shortd key revoke ID [--data DIR]\n"
	"  revokes a key: requests with it get 401 from the next one on\n";
static const char usage_tail[] =
	"(each also takes --config FILE or --pg URL; SHORTD_DATA and the other SHORTD_*\n"
	"variables work as for the server)\n";

static void print_usage(FILE *out, const char *sub)
{
	int all = !sub || (strcmp(sub, "create") && strcmp(sub, "list") && strcmp(sub, "revoke"));
	if (all || strcmp(sub, "create") == 0)
		fputs(usage_create, out);
	if (all || strcmp(sub, "list") == 0)
		fputs(usage_list, out);
	if (all || strcmp(sub, "revoke") == 0)
		fputs(usage_revoke, out);
	fputs(usage_tail, out);
}

static int help_asked(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return 1;
	return 0;
}

struct wait_op {
	struct store_op op;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int done;
};

static void on_done(struct store_op *op)
{
	struct wait_op *w = op->ctx;
	pthread_mutex_lock(&w->lock);
	w->done = 1;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

/* Submits a key op and waits for its commit; the op's status. */
static int run_op(struct store *s, enum store_op_kind kind, struct api_key *k)
{
	struct wait_op w = {.op = {.kind = kind, .key = k}};
	pthread_mutex_init(&w.lock, NULL);
	pthread_cond_init(&w.cond, NULL);
	store_submit(s, &w.op, on_done, &w);
	pthread_mutex_lock(&w.lock);
	while (!w.done)
		pthread_cond_wait(&w.cond, &w.lock);
	pthread_mutex_unlock(&w.lock);
	pthread_mutex_destroy(&w.lock);
	pthread_cond_destroy(&w.cond);
	return w.op.status;
}

static int key_create(struct store *s, const char *name, const char *role)
{
	struct api_key k = {0};
	k.role = role ? apikey_role_parse(role) : 0;
	if (!name || !name[0] || strlen(name) > APIKEY_NAME_MAX || !k.role) {
		fprintf(stderr, "shortd key create: give --name (1 to 64 bytes) and --role admin|user\n");
		return 2;
	}
	if (!text_printable(name, strlen(name))) {
		fprintf(stderr, "shortd key create: --name %s\n", APIKEY_NAME_RULE);
		return 2;
	}
	snprintf(k.name, sizeof(k.name), "%s", name);
	struct idgen g;
	idgen_init(&g, 1023, time_now_ms); /* node 1023: no server's by default */
	k.id = idgen_next(&g);
	k.created_at_ms = time_now_ms();
	char secret[APIKEY_LEN + 1];
	if (apikey_generate(&k, secret, sizeof(secret)) != 0) {
		fprintf(stderr, "shortd key create: no randomness available\n");
		return 1;
	}
	int rc = run_op(s, STORE_OP_KEY_INSERT, &k);
	if (rc != STORE_OK) {
		fprintf(stderr, "shortd key create: the key could not be stored (see the log)\n");
		return 1;
	}
	printf("%s\n", secret);
	fprintf(stderr,
		"created %s key '%s' (id %s). It is shown only this once: keep it.\n"
		"Use it with: curl -H 'Authorization: Bearer %s' ...\n",
		apikey_role_name(k.role), k.name, k.key_id, secret);
	return 0;
}

/* A name as it may be printed: one stored before names were checked
 * could hold terminal escapes; it is shown as JSON escapes instead. */
static const char *shown_name(const char *name)
{
	static char out[APIKEY_NAME_MAX * 6 + 3];
	if (text_printable(name, strlen(name)))
		return name;
	struct buf b;
	buf_init(&b);
	buf_put_json_string(&b, name, strlen(name));
	/* the escapes of JSON leave \u202e and the like as they are */
	size_t o = 0;
	for (size_t i = 0; i < b.len && o + 7 < sizeof(out); i++) {
		unsigned char c = (unsigned char)b.p[i];
		if (c >= 0x80)
			o += (size_t)snprintf(out + o, sizeof(out) - o, "\\x%02x", c);
		else
			out[o++] = (char)c;
	}
	out[o] = '\0';
	buf_release(&b);
	return out;
}

static int key_list(struct store *s)
{
	struct store_reader *r;
	struct store_read rd = {.kind = STORE_READ_KEYS};
	if (store_reader_open(s, NULL, &r) != STORE_OK)
		return 1;
	int rc = store_read(s, r, &rd);
	store_reader_close(s, r);
	if (rc != STORE_OK)
		return 1;
	struct api_key *keys = rd.keys;
	int n = rd.nkeys;
	printf("%-12s %-6s %-24s %-24s %s\n", "ID", "ROLE", "CREATED", "REVOKED", "NAME");
	for (int i = 0; i < n; i++) {
		char created[32], revoked[32] = "-";
		time_format_rfc3339(keys[i].created_at_ms, created, sizeof(created));
		if (keys[i].revoked_at_ms)
			time_format_rfc3339(keys[i].revoked_at_ms, revoked, sizeof(revoked));
		printf("%-12s %-6s %-24s %-24s %s\n", keys[i].key_id,
		       apikey_role_name(keys[i].role), created, revoked, shown_name(keys[i].name));
	}
	store_read_release(&rd);
	return 0;
}

static int key_revoke(struct store *s, const char *id)
{
	struct store_reader *r;
	struct store_read rd = {.kind = STORE_READ_KEY, .key_id = id};
	if (!id) {
		print_usage(stderr, "revoke");
		return 2;
	}
	if (store_reader_open(s, NULL, &r) != STORE_OK)
		return 1;
	int rc = store_read(s, r, &rd);
	store_reader_close(s, r);
	struct api_key k = rd.key;
	if (rc == STORE_OK) {
		k.revoked_at_ms = time_now_ms();
		rc = run_op(s, STORE_OP_KEY_REVOKE, &k);
	}
	switch (rc) {
	case STORE_OK:
		fprintf(stderr, "revoked key %s ('%s')\n", k.key_id, shown_name(k.name));
		return 0;
	case STORE_NOTFOUND:
		fprintf(stderr, "shortd key revoke: no key with id '%s'\n", id);
		return 1;
	case STORE_GONE:
		fprintf(stderr, "shortd key revoke: key '%s' was revoked before\n", id);
		return 1;
	default:
		fprintf(stderr, "shortd key revoke: the store failed (see the log)\n");
		return 1;
	}
}

int cli_key(int argc, char **argv)
{
	if (help_asked(argc, argv)) {
		print_usage(stdout, argc > 1 && argv[1][0] != '-' ? argv[1] : NULL);
		return 0;
	}
	if (argc < 2) {
		print_usage(stderr, NULL);
		return 2;
	}
	const char *sub = argv[1], *name = NULL, *role = NULL, *id = NULL, *init = NULL;
	const struct config_flag flags[] = {
		{"--name", &name, 0}, {"--role", &role, 0}, {"--init", &init, 1}};
	struct config cfg;
	char err[512];
	int rc = config_load_sub(&cfg, argc, argv, 2, flags, ARRAY_LEN(flags), &id, err, sizeof(err));
	if (rc != CONFIG_OK) {
		if (rc == CONFIG_ERR)
			fprintf(stderr, "shortd key: %s\n", err);
		config_release(&cfg);
		return rc == CONFIG_ERR ? 2 : 0;
	}
	if (strcmp(sub, "create") != 0 && strcmp(sub, "list") != 0 && strcmp(sub, "revoke") != 0) {
		fprintf(stderr, "shortd key: unknown command '%s' (create, list or revoke)\n", sub);
		print_usage(stderr, NULL);
		config_release(&cfg);
		return 2;
	}
	if (id && strcmp(sub, "revoke") != 0) {
		fprintf(stderr, "shortd key %s: unexpected argument '%s'\n", sub, id);
		config_release(&cfg);
		return 2;
	}
	if (cli_data_dir_ready(&cfg, "key", init != NULL) != 0) {
		config_release(&cfg);
		return 2;
	}
	log_threshold = LOG_LEVEL_WARN;
	struct store s;
	struct store_config sc;
	app_store_config(&cfg, &sc);
	if (store_open(&s, &sc, err, sizeof(err)) != STORE_OK) {
		fprintf(stderr, "shortd key: %s\n", err);
		config_release(&cfg);
		return 1;
	}
	if (strcmp(sub, "create") == 0)
		rc = key_create(&s, name, role);
	else if (strcmp(sub, "list") == 0)
		rc = key_list(&s);
	else
		rc = key_revoke(&s, id);
	store_close(&s);
	config_release(&cfg);
	return rc;
}
