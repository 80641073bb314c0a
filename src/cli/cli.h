/*
 * cli: the subcommands other than `serve` (main.c dispatches). Each takes
 * its argv with the subcommand's name first and returns the exit status:
 * 0 done, 1 a run-time failure, 2 bad arguments (3 for an import that
 * skipped lines).
 */
#ifndef SHORTD_CLI_H
#define SHORTD_CLI_H

#include "core/config.h"

/* `shortd key create|list|revoke ...` (key.c) */
int cli_key(int argc, char **argv);
/* `shortd import FILE ...` (import.c) */
int cli_import(int argc, char **argv);
/* `shortd migrate --pg URL [--from-sqlite DIR]` (migrate.c) */
int cli_migrate(int argc, char **argv);

/* 0 when cfg's store may be opened by subcommand cmd: PostgreSQL, an
 * SQLite data directory that holds a database, or init (--init: create
 * one). Otherwise -1, after naming the directory looked at on stderr:
 * a command run from the wrong directory must not make a new empty
 * database there (data_dir.c). */
int cli_data_dir_ready(const struct config *cfg, const char *cmd, int init);

#endif
