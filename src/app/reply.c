/*
 * reply: see reply.h.
 */
#include "reply.h"
#include "core/log.h"
#include "store/store.h"

#include <stdio.h>
#include <string.h>

static const char nosniff[] = "nosniff";
static const char no_referrer[] = "no-referrer";
static const char csp[] = "default-src 'none'; frame-ancestors 'none'";

/* Sends body[0..len) (len + 1 bytes writable: a newline ends it), or,
 * when body is NULL, the 503 of an answer that could not be built. */
static void reply_body(struct http_exchange *ex, int status, char *body, size_t len,
		       const char *extra_header, const char *extra_value)
{
	if (!body) {
		/* Some allocation for this answer failed: a partial body
		 * would be a lie. */
		static const char oom[] =
			"{\"error\":{\"code\":\"out_of_memory\",\"message\":\"out of memory, try again\"}}\n";
		http_respond_start(ex, 503);
		http_respond_header(ex, "X-Content-Type-Options", nosniff, sizeof(nosniff) - 1);
		http_respond_finish(ex, "application/json", oom, sizeof(oom) - 1);
		return;
	}
	http_respond_start(ex, status);
	http_respond_header(ex, "X-Content-Type-Options", nosniff, sizeof(nosniff) - 1);
	http_respond_header(ex, "Referrer-Policy", no_referrer, sizeof(no_referrer) - 1);
	http_respond_header(ex, "Content-Security-Policy", csp, sizeof(csp) - 1);
	if (extra_header && http_respond_header(ex, extra_header, extra_value, strlen(extra_value)))
		log_error("refused to write header '%s' with a line break", extra_header);
	body[len] = '\n'; /* replaces the NUL: the body is sent by length */
	http_respond_finish(ex, "application/json", body, len + 1);
}

void reply_json(struct http_exchange *ex, int status, json_t *j, const char *extra_header,
		const char *extra_value)
{
	char *body = alloc_failures || !j ? NULL : json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (body && alloc_failures) {
		/* jansson 2.14 can finish a dump whose appends failed: never
		 * send what it made then. */
		free(body);
		body = NULL;
	}
	if (!body && !alloc_failures) {
		/* Not memory: jansson refused a value (text that is not
		 * UTF-8). A bug of ours, and said to be one. */
		static const char bug[] =
			"{\"error\":{\"code\":\"internal_error\",\"message\":\"the answer could not be formatted\"}}";
		char text[sizeof(bug) + 1];
		memcpy(text, bug, sizeof(bug));
		log_error("an answer with status %d could not be formatted as JSON", status);
		reply_body(ex, 500, text, sizeof(bug) - 1, NULL, NULL);
		return;
	}
	reply_body(ex, status, body, body ? strlen(body) : 0, extra_header, extra_value);
	free(body);
}

void reply_json_buf(struct http_exchange *ex, int status, struct buf *b,
		    const char *extra_header, const char *extra_value)
{
	int ok = !b->failed && !alloc_failures && buf_reserve(b, 1) == 0;
	reply_body(ex, status, ok ? b->p : NULL, b->len, extra_header, extra_value);
	buf_release(b);
}

/* {"error":{"code":code,"message":msg[,"field":field]}}, built as text:
 * msg and field may come from the request (a JSON key the client sent) and
 * are escaped whole, never cut. */
static void reply_error_field(struct http_exchange *ex, int status, const char *code,
			      const char *msg_prefix, const char *msg, const char *field)
{
	struct buf b;
	buf_init_soft(&b);
	buf_lit(&b, "{\"error\":{\"code\":");
	buf_put_json_string(&b, code, strlen(code));
	buf_lit(&b, ",\"message\":\"");
	if (msg_prefix) {
		buf_put_json_chars(&b, msg_prefix, strlen(msg_prefix));
		buf_lit(&b, ": ");
	}
	buf_put_json_chars(&b, msg, strlen(msg));
	buf_lit(&b, "\"");
	if (field) {
		buf_lit(&b, ",\"field\":");
		buf_put_json_string(&b, field, strlen(field));
	}
	buf_lit(&b, "}}");
	reply_json_buf(ex, status, &b, NULL, NULL);
}

void reply_error(struct http_exchange *ex, int status, const char *code, const char *msg)
{
	reply_error_field(ex, status, code, NULL, msg, NULL);
}

void reply_store_unavailable(struct http_exchange *ex)
{
	reply_error(ex, 503, "store_unavailable", "the link store is unavailable, try again");
}

void reply_write_failed(struct http_exchange *ex, int status)
{
	if (status == STORE_FULL)
		reply_error(ex, 507, "insufficient_storage",
			    "the disk is full: nothing was stored, try again later");
	else
		reply_store_unavailable(ex);
}

void reply_field_error(struct http_exchange *ex, const char *field, const char *msg)
{
	reply_error_field(ex, 400, "invalid_field", field, msg, field);
}

void reply_method_not_allowed(struct http_exchange *ex, const char *allow)
{
	reply_json(ex, 405,
		   json_pack("{s:{s:s,s:s}}", "error", "code", "method_not_allowed", "message",
			     "method not allowed on this resource"),
		   "Allow", allow);
}

void reply_options(struct http_exchange *ex, const char *allow)
{
	http_respond_start(ex, 204);
	http_respond_header(ex, "Allow", allow, strlen(allow));
	http_respond_finish(ex, NULL, NULL, 0);
}
