/*
 * ua: see ua.h. The rules, in order:
 *  bot      empty User-Agent, or any of bot_tokens (crawlers, link-preview
 *           fetchers of chat and social apps, HTTP libraries and tools)
 *  device   tablet: ipad, tablet, kindle, silk, or android without "mobile";
 *           mobile: mobi, iphone, ipod, android, windows phone;
 *           desktop otherwise
 *  browser  edge (edg/), opera (opr/, opera), samsung (samsungbrowser),
 *           chrome (chrome/, crios/, chromium), firefox (firefox/, fxios/),
 *           ie (msie, trident/), safari (safari/ with version/), else other
 *  os       windows (windows), ios (iphone, ipad, ipod), macos (mac os x,
 *           macintosh), android, chromeos ("cros "), linux, else other
 */
#include "ua.h"

#include <string.h>

#define UA_SCAN_MAX 512

static const char *const bot_tokens[] = {
	"bot",		"crawl",	  "spider",	     "slurp",	      "facebookexternalhit",
	"facebookcatalog", "whatsapp",	  "telegram",	     "skypeuripreview", "embedly",
	"preview",	"curl/",	  "wget/",	     "python-",	      "python/",
	"go-http-client", "java/",	  "okhttp",	     "httpclient",     "libwww",
	"headlesschrome", "lighthouse",	  "phantomjs",	     "scrapy",	      "axios/",
	"node-fetch",	"feedfetcher",	  "mediapartners",   "ia_archiver",    "pingdom",
	"uptime",	"monitoring",	  "validator",	     "httpie/",	      "postman",
};

static const char *const device_names[UA_DEVICE_COUNT] = {"desktop", "mobile", "tablet", "bot"};
static const char *const browser_names[UA_BROWSER_COUNT] = {
	"other", "chrome", "firefox", "safari", "edge", "opera", "samsung", "ie"};
static const char *const os_names[UA_OS_COUNT] = {"other",   "windows", "macos",   "ios",
						  "android", "linux",	"chromeos"};

const char *ua_device_name(int d)
{
	return d >= 0 && d < UA_DEVICE_COUNT ? device_names[d] : "other";
}

const char *ua_browser_name(int b)
{
	return b >= 0 && b < UA_BROWSER_COUNT ? browser_names[b] : "other";
}

const char *ua_os_name(int o)
{
	return o >= 0 && o < UA_OS_COUNT ? os_names[o] : "other";
}

static int has(const char *s, const char *t)
{
	return strstr(s, t) != NULL;
}

void ua_classify(const char *ua, size_t len, struct ua_class *out)
{
	char s[UA_SCAN_MAX + 1];
	if (len > UA_SCAN_MAX)
		len = UA_SCAN_MAX;
	for (size_t i = 0; i < len; i++) {
		char c = ua[i];
		s[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : (c == '\0' ? ' ' : c);
	}
	s[len] = '\0';

	out->bot = len == 0;
	for (size_t i = 0; !out->bot && i < sizeof(bot_tokens) / sizeof(bot_tokens[0]); i++)
		out->bot = has(s, bot_tokens[i]) ? 1 : 0;

	int android = has(s, "android");
	if (out->bot)
		out->device = UA_BOT;
	else if (has(s, "ipad") || has(s, "tablet") || has(s, "kindle") || has(s, "silk/") ||
		 (android && !has(s, "mobile")))
		out->device = UA_TABLET;
	else if (has(s, "mobi") || has(s, "iphone") || has(s, "ipod") || android ||
		 has(s, "windows phone"))
		out->device = UA_MOBILE;
	else
		out->device = UA_DESKTOP;

	if (has(s, "edg/") || has(s, "edga/") || has(s, "edgios/"))
		out->browser = UA_EDGE;
	else if (has(s, "opr/") || has(s, "opera"))
		out->browser = UA_OPERA;
	else if (has(s, "samsungbrowser"))
		out->browser = UA_SAMSUNG;
	else if (has(s, "chrome/") || has(s, "crios/") || has(s, "chromium"))
		out->browser = UA_CHROME;
	else if (has(s, "firefox/") || has(s, "fxios/"))
		out->browser = UA_FIREFOX;
	else if (has(s, "msie ") || has(s, "trident/"))
		out->browser = UA_IE;
	else if (has(s, "safari/") && has(s, "version/"))
		out->browser = UA_SAFARI;
	else
		out->browser = UA_BROWSER_OTHER;

	if (has(s, "windows"))
		out->os = UA_WINDOWS;
	else if (has(s, "iphone") || has(s, "ipad") || has(s, "ipod"))
		out->os = UA_IOS;
	else if (has(s, "mac os x") || has(s, "macintosh"))
		out->os = UA_MACOS;
	else if (android)
		out->os = UA_ANDROID;
	else if (has(s, "cros ")) /* "X11; CrOS x86_64"; bare "cros" is inside "microsoft" */
		out->os = UA_CHROMEOS;
	else if (has(s, "linux"))
		out->os = UA_LINUX;
	else
		out->os = UA_OS_OTHER;
}
