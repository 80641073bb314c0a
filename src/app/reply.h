/*
 * reply: the answers of the API: JSON bodies with the security headers
 * every answer carries, and the error shape {"error":{"code":...,
 * "message":...}} (docs/api.md lists every code). Each one finishes the
 * exchange's response.
 */
#ifndef SHORTD_REPLY_H
#define SHORTD_REPLY_H

#include <jansson.h>

#include "core/util.h"
#include "http/http_server.h"

/* {"error":{"code":code,"message":msg}} with status. */
void reply_error(struct http_exchange *ex, int status, const char *code, const char *msg);
/* 503 store_unavailable: nothing was stored, the client may retry. */
void reply_store_unavailable(struct http_exchange *ex);
/* A write that was not committed: 507 for STORE_FULL, else 503. */
void reply_write_failed(struct http_exchange *ex, int status);
/* 400 invalid_field, naming the field. */
void reply_field_error(struct http_exchange *ex, const char *field, const char *msg);
/* 405 with Allow. */
void reply_method_not_allowed(struct http_exchange *ex, const char *allow);
/* 204 with Allow, for OPTIONS. */
void reply_options(struct http_exchange *ex, const char *allow);
/* Sends j (the reference is stolen) as the JSON body. extra_header may be
 * NULL, else a "Name" with value extra_value. */
void reply_json(struct http_exchange *ex, int status, json_t *j, const char *extra_header,
		const char *extra_value);
/* Sends b's JSON text (a soft buffer, released here), or the 503 of an
 * answer that could not be built when an allocation for it failed. */
void reply_json_buf(struct http_exchange *ex, int status, struct buf *b,
		    const char *extra_header, const char *extra_value);

#endif
