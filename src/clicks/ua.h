/*
 * ua: classifies a User-Agent into device class, browser family, OS family,
 * and bot or human. Substring rules on the lowercased string, checked in
 * order; documented in docs/operations.md. Not on the redirect hot path:
 * the click aggregator calls it.
 */
#ifndef SHORTD_UA_H
#define SHORTD_UA_H

#include <stddef.h>
#include <stdint.h>

enum ua_device { UA_DESKTOP = 0, UA_MOBILE, UA_TABLET, UA_BOT, UA_DEVICE_COUNT };
enum ua_browser {
	UA_BROWSER_OTHER = 0,
	UA_CHROME,
	UA_FIREFOX,
	UA_SAFARI,
	UA_EDGE,
	UA_OPERA,
	UA_SAMSUNG,
	UA_IE,
	UA_BROWSER_COUNT
};
enum ua_os {
	UA_OS_OTHER = 0,
	UA_WINDOWS,
	UA_MACOS,
	UA_IOS,
	UA_ANDROID,
	UA_LINUX,
	UA_CHROMEOS,
	UA_OS_COUNT
};

struct ua_class {
	uint8_t device;  /* enum ua_device; UA_BOT for bots */
	uint8_t browser; /* enum ua_browser */
	uint8_t os;      /* enum ua_os */
	uint8_t bot;     /* 1: a bot, crawler, link-preview fetcher or HTTP library */
};

void ua_classify(const char *ua, size_t len, struct ua_class *out);
const char *ua_device_name(int d);
const char *ua_browser_name(int b);
const char *ua_os_name(int o);

#endif
