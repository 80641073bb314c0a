/*
 * link_json: a link as the API shows it (docs/api.md, "The link object").
 */
#ifndef SHORTD_LINK_JSON_H
#define SHORTD_LINK_JSON_H

#include <stdint.h>

#include "core/util.h"
#include "link/link.h"

/* Appends the link's JSON object to b; short_url is base_url/code. With
 * clicks, its all-time counts {humans, bots} as "clicks" and "bot_clicks". */
void link_json(struct buf *b, const char *base_url, const struct link *l, const uint64_t *clicks);

#endif
