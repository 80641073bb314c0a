/* Unit tests: User-Agent classification, Referer hosts, the click ring's
 * overflow accounting, and histogram exposition. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "clicks/clicks.h"
#include "clicks/ua.h"
#include "core/metrics.h"

struct ua_case {
	const char *ua;
	const char *device, *browser, *os;
	int bot;
};

static void test_user_agents(void **state)
{
	(void)state;
	static const struct ua_case cases[] = {
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
		 "desktop", "chrome", "windows", 0},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0",
		 "desktop", "edge", "windows", 0},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
		 "desktop", "safari", "macos", 0},
		{"Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0", "desktop",
		 "firefox", "linux", 0},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
		 "mobile", "safari", "ios", 0},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/120.0.6099.119 Mobile/15E148 Safari/604.1",
		 "mobile", "chrome", "ios", 0},
		{"Mozilla/5.0 (iPad; CPU OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
		 "tablet", "safari", "ios", 0},
		{"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36",
		 "mobile", "chrome", "android", 0},
		{"Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
		 "tablet", "chrome", "android", 0},
		{"Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36",
		 "mobile", "samsung", "android", 0},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 OPR/105.0.0.0",
		 "desktop", "opera", "windows", 0},
		{"Mozilla/5.0 (Windows NT 10.0; Trident/7.0; rv:11.0) like Gecko", "desktop", "ie",
		 "windows", 0},
		{"Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
		 "desktop", "chrome", "chromeos", 0},
		{"Microsoft Office/16.0 (Microsoft Outlook 16.0.17126; Pro)", "desktop", "other", "other", 0},
		{"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "bot", "other",
		 "other", 1},
		{"facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", "bot", "other",
		 "other", 1},
		{"Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", "bot", "other", "other", 1},
		{"TelegramBot (like TwitterBot)", "bot", "other", "other", 1},
		{"WhatsApp/2.23.20.0", "bot", "other", "other", 1},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36",
		 "bot", "chrome", "windows", 1},
		{"curl/7.88.1", "bot", "other", "other", 1},
		{"python-requests/2.31.0", "bot", "other", "other", 1},
		{"", "bot", "other", "other", 1},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ua_class u;
		ua_classify(cases[i].ua, strlen(cases[i].ua), &u);
		if (strcmp(ua_device_name(u.device), cases[i].device) ||
		    strcmp(ua_browser_name(u.browser), cases[i].browser) ||
		    strcmp(ua_os_name(u.os), cases[i].os) || u.bot != cases[i].bot)
			fail_msg("'%s': got %s/%s/%s bot=%d, want %s/%s/%s bot=%d", cases[i].ua,
				 ua_device_name(u.device), ua_browser_name(u.browser), ua_os_name(u.os),
				 u.bot, cases[i].device, cases[i].browser, cases[i].os, cases[i].bot);
	}
}

static void test_referer_hosts(void **state)
{
	(void)state;
	struct {
		const char *in, *out;
	} cases[] = {
		{"https://News.Example.org/item?id=1", "news.example.org"},
		{"http://example.com", "example.com"},
		{"https://example.com:8443/x", "example.com"},
		{"https://user:pw@example.com/", "example.com"},
		{"android-app://com.slack/", "com.slack"},
		{"https://[2001:DB8::1]:8443/", "[2001:db8::1]"},
		{"https://[2001:db8::1/", ""},
		{"not a url", ""},
		{"https://", ""},
		{"https://exa mple.com/", ""},
		{"https://bücher.de/", ""},
		{"https://Example.COM#top", "example.com"},
		{"https://a_b-1.EXAMPLE?q=1", "a_b-1.example"},
		{"https://exam{ple.com/", ""},
		{"https://exam@ple@x.com/", ""}, /* userinfo holds no unencoded @ */
		{"https://10.0.0.1:80/", "10.0.0.1"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[STORE_CLICK_REF_MAX];
		size_t n = clicks_referer_host(cases[i].in, strlen(cases[i].in), out, sizeof(out));
		if (n != strlen(cases[i].out) || memcmp(out, cases[i].out, n) != 0)
			fail_msg("'%s' gave '%.*s', want '%s'", cases[i].in, (int)n, out, cases[i].out);
	}
	char big[200] = "https://";
	memset(big + 8, 'a', 150);
	char out[STORE_CLICK_REF_MAX];
	assert_int_equal(clicks_referer_host(big, strlen(big), out, sizeof(out)), 0);
}

static void test_ring_overflow_is_counted(void **state)
{
	(void)state;
	/* No aggregator runs: the ring fills up and the rest is dropped. */
	struct clicks *c = clicks_new(NULL, 1, 1000, 60000, NULL);
	struct click_ring *r = clicks_ring(c, 0);
	for (int i = 0; i < CLICK_RING_SIZE + 100; i++)
		clicks_record(r, 42, 1000, "ua", 2, NULL, 0, NULL);
	struct clicks_stats st;
	clicks_get_stats(c, &st);
	assert_int_equal(st.recorded, CLICK_RING_SIZE);
	assert_int_equal(st.dropped, 100);
	clicks_free(c);
}

static void test_histogram_exposition(void **state)
{
	(void)state;
	struct histogram h;
	memset(&h, 0, sizeof(h));
	hist_observe(&h, 40000);      /* 40 us: first bucket */
	hist_observe(&h, 700000);     /* 0.7 ms: le 0.001 */
	hist_observe(&h, 20000000000); /* 20 s: only +Inf */
	struct hist_sum s;
	memset(&s, 0, sizeof(s));
	hist_sum_add(&s, &h);
	struct buf b;
	buf_init(&b);
	metrics_histogram(&b, "x_seconds", "route=\"r\"", &s, 0);
	assert_non_null(strstr(b.p, "x_seconds_bucket{route=\"r\",le=\"5e-05\"} 1\n"));
	assert_non_null(strstr(b.p, "x_seconds_bucket{route=\"r\",le=\"0.0005\"} 1\n"));
	assert_non_null(strstr(b.p, "x_seconds_bucket{route=\"r\",le=\"0.001\"} 2\n"));
	assert_non_null(strstr(b.p, "x_seconds_bucket{route=\"r\",le=\"10\"} 2\n"));
	assert_non_null(strstr(b.p, "x_seconds_bucket{route=\"r\",le=\"+Inf\"} 3\n"));
	assert_non_null(strstr(b.p, "x_seconds_count{route=\"r\"} 3\n"));
	assert_non_null(strstr(b.p, "x_seconds_sum{route=\"r\"} 20.00074\n"));
	buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_user_agents),
		cmocka_unit_test(test_referer_hosts),
		cmocka_unit_test(test_ring_overflow_is_counted),
		cmocka_unit_test(test_histogram_exposition),
	};
	return cmocka_run_group_tests_name("clicks", tests, NULL, NULL);
}
