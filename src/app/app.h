/*
 * app: the shortd service, as `shortd serve` runs it. app_open() builds
 * everything from the options (store, cache, click pipeline, limits, the
 * HTTP servers) and undoes what it built when a step fails; app_run()
 * serves until SIGTERM or SIGINT and drains; app_close() commits what is
 * queued and frees everything. The files of the app layer are listed in
 * app_internal.h.
 */
#ifndef SHORTD_APP_H
#define SHORTD_APP_H

#include "core/config.h"

struct app;

/* The service, listening but not serving yet; NULL after printing why,
 * with the exit status in *status (1: run-time failure, 2: bad options). */
struct app *app_open(const struct config *cfg, int *status);
/* Serves until a signal ends it (SIGHUP reloads the blocklist); 0 after
 * an orderly drain, 1 if the workers could not start. */
int app_run(struct app *app);
/* Commits every queued write and click, closes the store, frees app. */
void app_close(struct app *app);

/* The store the options name (SQLite in --data, or PostgreSQL with --pg),
 * for the service and the commands that share its data. */
struct store_config;
void app_store_config(const struct config *cfg, struct store_config *out);

#endif
