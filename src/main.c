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

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "--help-markdown") == 0) {
		config_print_markdown(stdout); /* the options table of docs/operations.md */
		return 0;
	}
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	/* JSON is request-path memory: a failed allocation answers 503, except
	 * while jansson parses, where it aborts (util.h, json_alloc). */
	json_set_alloc_funcs(json_alloc, free);
	int rc;
	if (argc > 1 && strcmp(argv[1], "key") == 0)
		rc = cli_key(argc - 1, argv + 1);
	else if (argc > 1 && strcmp(argv[1], "import") == 0)
		rc = cli_import(argc - 1, argv + 1);
	else if (argc > 1 && strcmp(argv[1], "migrate") == 0)
		rc = cli_migrate(argc - 1, argv + 1);
	else
		rc = serve(argc, argv, argc > 1 && strcmp(argv[1], "serve") == 0 ? 2 : 1);
	curl_global_cleanup();
	return rc;
}
