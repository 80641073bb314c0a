/*
 * service: the routes about the service itself: GET / (name, version,
 * where the API is), /healthz (the process answers), /readyz (it should
 * get traffic: 503 while draining or while links cannot be written) and
 * /metrics (on the main listener unless --metrics-listen moves it).
 */
#include "reply.h"
#include "request.h"
#include "version.h"

/* The web UI to a browser (Accept: text/html), the JSON index to others. */
void service_root(struct app_req *r)
{
	if (ui_wants_page(r->ex->req)) {
		ui_page(r);
		return;
	}
	service_api_index(r);
}

void service_api_index(struct app_req *r)
{
	reply_json(r->ex, 200,
		   json_pack("{s:s,s:s,s:s}", "service", "shortd", "version", SHORTD_VERSION, "api",
			     "/api/v1/links"),
		   NULL, NULL);
}

void service_healthz(struct app_req *r)
{
	reply_json(r->ex, 200, json_pack("{s:s}", "status", "ok"), NULL, NULL);
}

void service_readyz(struct app_req *r)
{
	const char *why;
	if (app_ready(r->app, &why))
		reply_json(r->ex, 200, json_pack("{s:s}", "status", "ready"), NULL, NULL);
	else
		reply_error(r->ex, 503, "not_ready", why);
}

void service_metrics(struct app_req *r)
{
	if (r->app->metrics_srv) {
		/* served on --metrics-listen only */
		reply_error(r->ex, 404, "not_found", "no such resource");
		return;
	}
	app_reply_metrics(r->ex, r->app);
}
