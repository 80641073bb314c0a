/*
 * link_json: see link_json.h.
 */
#include "link_json.h"

#include <string.h>

static void put_time(struct buf *b, int64_t ms)
{
	char t[32];
	buf_lit(b, "\"");
	buf_append(b, t, time_format_rfc3339(ms, t, sizeof(t)));
	buf_lit(b, "\"");
}

void link_json(struct buf *b, const char *base_url, const struct link *l, const uint64_t *clicks)
{
	size_t base_len = strlen(base_url);
	buf_reserve(b, 256 + l->url_len + l->code_len * 2 + base_len);
	buf_lit(b, "{\"code\":");
	buf_put_json_string(b, l->code, l->code_len);
	buf_lit(b, ",\"short_url\":\"");
	buf_put_json_chars(b, base_url, base_len);
	buf_lit(b, "/");
	buf_put_json_chars(b, l->code, l->code_len);
	buf_lit(b, "\",\"url\":");
	buf_put_json_string(b, l->url, l->url_len);
	buf_lit(b, ",\"redirect\":");
	buf_putu64(b, (uint64_t)l->redirect);
	if (l->forward_query)
		buf_lit(b, ",\"forward_query\":true");
	else
		buf_lit(b, ",\"forward_query\":false");
	buf_lit(b, ",\"created_at\":");
	put_time(b, l->created_at_ms);
	buf_lit(b, ",\"updated_at\":");
	put_time(b, l->updated_at_ms);
	buf_lit(b, ",\"expires_at\":");
	if (l->expires_at_ms)
		put_time(b, l->expires_at_ms);
	else
		buf_lit(b, "null");
	if (clicks) {
		buf_lit(b, ",\"clicks\":");
		buf_putu64(b, clicks[0]);
		buf_lit(b, ",\"bot_clicks\":");
		buf_putu64(b, clicks[1]);
	}
	buf_lit(b, "}");
}
