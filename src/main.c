/*
 * main: shortd's entry: process-wide set-up, then the subcommand.
 *
 *   shortd [serve] [OPTIONS]   the service (app/app.h)
 *   shortd key ...             API keys (cli/key.c)
 *   shortd import FILE ...     links in bulk (cli/import.c)
 *   shortd migrate --pg URL    the PostgreSQL schema; an SQLite directory
 *                              copied into it (cli/migrate.c)
 *
 * Exit codes: 0 clean, 1 run-time failure (cannot listen, cannot open the
 * database), 2 bad options.
 */
#include "app/app.h"
#include "cli/cli.h"
#include "core/config.h"
#include "core/log.h"
#include "core/util.h"
#include "version.h"

#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static int serve(int argc, char **argv, int first)
{
	struct config cfg;
	char err[512];
	int rc = 0;
	switch (config_load(&cfg, argc, argv, first, err, sizeof(err))) {
	case CONFIG_HELP:
		config_print_help(stdout, "shortd");
		goto out;
	case CONFIG_VERSION:
		printf("shortd %s\n", SHORTD_VERSION);
		goto out;
	case CONFIG_ERR:
		fprintf(stderr, "shortd: %s\n", err);
		rc = 2;
		goto out;
	case CONFIG_OK:
		break;
	}
	enum log_level lvl;
	if (log_level_parse(cfg.log_level, &lvl) == 0)
		log_threshold = lvl;
	struct app *app = app_open(&cfg, &rc);
	if (app) {
		rc = app_run(app);
		app_close(app);
		if (rc == 0)
			log_info("shut down cleanly");
	}
out:
	config_release(&cfg);
	return rc;
}

/* The subcommands, with their line of `shortd --help` and of the man page. */
static const struct command {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv); /* argv[0] is the command's name */
} commands[] = {
	{"serve", "the service (the default: `shortd [OPTIONS]` serves)", NULL},
	{"key", "API keys: create, list, revoke", cli_key},
	{"import", "links in bulk from CSV or JSON lines", cli_import},
	{"migrate", "apply the PostgreSQL schema; copy an SQLite directory into it", cli_migrate},
	{"help", "help about a command: shortd help key create", NULL},
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void print_commands(FILE *out)
{
	fputs("commands:\n", out);
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
	fputs("`shortd CMD --help` (or -h, or `shortd help CMD`) shows a command's own usage.\n\n",
	      out);
}

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

/* The man page, shortd(1), from the command and option tables: the build
 * writes it with `shortd --help-man`, so it can never disagree. */
static void print_man(void)
{
	printf(".TH SHORTD 1 \"\" \"shortd %s\" \"User Commands\"\n"
	       ".SH NAME\nshortd \\- a URL shortener service\n"
	       ".SH SYNOPSIS\n.B shortd\n.RB [ serve ]\n.RI [ OPTIONS ]\n.br\n"
	       ".B shortd\n.I COMMAND\n.RI [ ARGS ]\n"
	       ".SH DESCRIPTION\n"
	       "shortd serves short links over HTTP/1.1: POST /api/v1/links creates one\n"
	       "(with an API key), GET /{code} redirects to its target. Links live in SQLite\n"
	       "in the data directory, or in PostgreSQL with\n.BR \\-\\-pg .\n"
	       "Every option is also an environment variable and a line of a\n"
	       ".B \\-\\-config\nfile (name = value); a flag beats the environment, which beats the file.\n"
	       ".SH COMMANDS\n",
	       SHORTD_VERSION);
	for (size_t i = 0; i < NCOMMANDS; i++)
		printf(".TP\n.B %s\n%s.\n", commands[i].name, commands[i].summary);
	printf(".SH OPTIONS\n");
	config_print_man_options(stdout);
	printf(".TP\n.B \\-h, \\-\\-help\nShow the usage (of a command, after it).\n"
	       ".TP\n.B \\-\\-version\nShow the version.\n"
	       ".SH SIGNALS\n.TP\n.B SIGTERM, SIGINT\nStop accepting, finish requests in flight "
	       "(for up to\n.BR \\-\\-drain\\-s ),\ncommit every queued write, exit 0.\n"
	       ".TP\n.B SIGHUP\nReload the\n.B \\-\\-blocklist\nfile.\n"
	       ".SH EXIT STATUS\n0 after a clean shutdown; 1 when it cannot run (the database cannot be\n"
	       "opened); 2 for invalid options, or an address or data directory another server "
	       "already uses; 3 for an import that skipped lines.\n"
	       ".SH FILES\n.TP\n.I DATA/shortd.db, DATA/clicks.db\nThe SQLite databases.\n"
	       ".TP\n.I DATA/serve.lock\nHeld while a server uses the data directory.\n"
	       ".SH SEE ALSO\nThe documentation in /usr/share/doc/shortd (api.md, operations.md).\n");
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "--help-markdown") == 0) {
		config_print_markdown(stdout); /* the options table of docs/operations.md */
		return 0;
	}
	if (argc == 2 && strcmp(argv[1], "--help-man") == 0) {
		print_man();
		return 0;
	}
	if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
			  strcmp(argv[1], "help") == 0)) {
		printf("usage: shortd [COMMAND] [ARGS]\n\nshortd serves short links.\n\n");
		print_commands(stdout);
		config_print_help(stdout, "shortd");
		return 0;
	}
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	/* JSON is request-path memory: a failed allocation answers 503, except
	 * while jansson parses, where it aborts (util.h, json_alloc). */
	json_set_alloc_funcs(json_alloc, free);
	int rc;
	if (argc > 2 && strcmp(argv[1], "help") == 0) {
		/* shortd help CMD [SUB]: the same as shortd CMD [SUB] --help */
		const struct command *c = find_command(argv[2]);
		if (!c || c->run == NULL) {
			if (c && strcmp(c->name, "serve") == 0) {
				config_print_help(stdout, "shortd");
				rc = 0;
			} else if (c) { /* help help */
				print_commands(stdout);
				rc = 0;
			} else {
				fprintf(stderr, "shortd: unknown command '%s'\n", argv[2]);
				print_commands(stderr);
				rc = 2;
			}
		} else {
			char *args[4] = {argv[2], argc > 3 ? argv[3] : "--help",
					 argc > 3 ? "--help" : NULL, NULL};
			rc = c->run(argc > 3 ? 3 : 2, args);
		}
	} else if (argc > 1 && argv[1][0] != '-') {
		const struct command *c = find_command(argv[1]);
		if (c && c->run)
			rc = c->run(argc - 1, argv + 1);
		else if (c && strcmp(c->name, "serve") == 0)
			rc = serve(argc, argv, 2);
		else {
			fprintf(stderr, "shortd: unknown command '%s'\n", argv[1]);
			print_commands(stderr);
			rc = 2;
		}
	} else {
		rc = serve(argc, argv, 1);
	}
	curl_global_cleanup();
	return rc;
}
