/*
 * app: shortd's runtime state and HTTP handlers (router, redirects, the
 * links API). Everything a handler needs hangs off struct app, built once in
 * main and passed explicitly; struct app_worker is the per-thread part.
 */
#ifndef SHORTD_APP_H
#define SHORTD_APP_H

#include "cache/cache.h"
#include "core/config.h"
#include "core/idgen.h"
#include "http/http_server.h"
#include "link/link.h"
#include "store/store.h"

struct app {
	const struct config *cfg;
	struct store store;
	struct cache *cache;
	struct idgen idgen;
	struct url_policy policy;
	char base_url[1024]; /* no trailing '/' */
	struct http_server *srv;
};

struct app_worker {
	struct app *app;
	struct store_reader *reader;
	int idx;
};

/* The handler table for http_server_create(); handler.app must be set. */
extern const struct http_handler app_http_handler;

#endif
