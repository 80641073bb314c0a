/* Unit tests: target URL validation and normalisation, aliases, codes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "link/link.h"
#include "link/link_input.h"
#include "link/lookalike.h"

#include <stdio.h>
#include <unistd.h>

static struct url_policy pol;

static int setup(void **state)
{
	(void)state;
	const char *why;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	return url_policy_init(&pol, "https://sho.rt", "127.0.0.1", 8080, &why);
}

struct ok_case {
	const char *in, *out;
};

static void test_normalises(void **state)
{
	(void)state;
	static const struct ok_case cases[] = {
		{"https://example.com", "https://example.com/"},
		{"HTTPS://EXAMPLE.com/Path?Q=1#Frag", "https://example.com/Path?Q=1#Frag"},
		{"http://example.com:80/a", "http://example.com/a"},
		{"https://example.com:443/a", "https://example.com/a"},
		{"https://example.com:8443/a", "https://example.com:8443/a"},
		{"http://example.com/a/./b/../c", "http://example.com/a/c"},
		{"https://bücher.de/straße", "https://xn--bcher-kva.de/stra%C3%9Fe"},
		{"https://xn--bcher-kva.de/", "https://xn--bcher-kva.de/"},
		{"https://例え.テスト/", "https://xn--r8jz45g.xn--zckzah/"},
		{"http://[2001:db8::1]:8080/x", "http://[2001:db8::1]:8080/x"},
		{"http://192.0.2.1/", "http://192.0.2.1/"},
		{"https://a.example/%0D%0A", "https://a.example/%0D%0A"},
		{"https://sho.rt.example.com/x", "https://sho.rt.example.com/x"},
		{"https://localhost:9999/", "https://localhost:9999/"},
		{"http://127.0.0.1:9999/", "http://127.0.0.1:9999/"}, /* another port */
		{"http://[::ffff:8.8.8.8]/", "http://[::ffff:8.8.8.8]/"},
		{"https://1.2.3.4/", "https://1.2.3.4/"},
		{"https://v1.2.example/", "https://v1.2.example/"},
		{"https://пример.рф/", "https://xn--e1afmkfd.xn--p1ai/"},
		{"https://straße.de/", "https://xn--strae-oqa.de/"},
		{"https://日本語.jp/", "https://xn--wgv71a119e.jp/"},
		{"https://café.example/", "https://xn--caf-dma.example/"},
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct buf out;
		buf_init(&out);
		const char *why = NULL;
		int rc = link_url_normalize(cases[i].in, strlen(cases[i].in), &pol, &out, &why);
		if (rc != 0)
			fail_msg("'%s' refused: %s", cases[i].in, why);
		if (strcmp(out.p, cases[i].out) != 0)
			fail_msg("'%s' gave '%s', want '%s'", cases[i].in, out.p, cases[i].out);
		buf_release(&out);
	}
}

static void test_refuses(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"",
		"javascript:alert(1)",
		"JavaScript:alert(1)",
		" javascript:alert(1)",
		"data:text/html,<script>alert(1)</script>",
		"file:///etc/passwd",
		"ftp://example.com/",
		"vbscript:msgbox(1)",
		"//example.com/x",
		"example.com",
		"http:/example.com",
		"http:example.com",
		"https:///path",
		"http://",
		"https://good.example@evil.example/",
		"https://user:pass@example.com/",
		"https://example.com/a\r\nSet-Cookie: x=1",
		"https://example.com/a\nb",
		"https://example.com/ a",
		"https://example.com/\x7f",
		"https://example.com\\@evil.example/",
		"https://exa mple.com/",
		"https://example..com/",
		"https://example.com./",
		"https://-/",
		"https://example.com:0/",
		"https://example.com:99999/",
		"https://example.com:8a/",
		"https://xn--zz.example/",
		"https://xn--/",
		"https://[::1/",
		"https://example.com/%zz",
		"https://example.com/%4",
		"https://sho.rt/abc",
		"https://SHO.RT/abc",
		"https://sho.rt:443/",
		"http://127.0.0.1:8080/abc",
		"http://localhost:8080/",
		"http://[::1]:8080/x",
		/* every other spelling of this service */
		"http://sho.rt/x",  /* http:// of an https:// base is sent on to it */
		"http://[::ffff:127.0.0.1]:8080/",
		"http://[::ffff:7f00:1]:8080/",
		"http://[0:0:0:0:0:0:0:1]:8080/",
		"http://0.0.0.0:8080/",
		"http://[::]:8080/",
		"http://127.0.0.2:8080/",
		"http://[::127.0.0.1]:8080/",
		/* hosts browsers refuse: numeric, but not a.b.c.d */
		"https://256.1.1.1/",
		"https://1.2.3.4.5/",
		"https://4294967296/",
		"https://0x7f000001/",
		"https://127.1/",
		"https://01.2.3.4/",
		"https://example.123/",
		/* whole-script look-alikes */
		"https://аррӏе.com/",
		"https://ѕсоре.com/",
		"https://ɡoogle.com/",
		"https://gıthub.com/",
		"https://ᏚᏟᎪ.com/",
		"https://раураl.com/",
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		struct buf out;
		buf_init(&out);
		const char *why = NULL;
		if (link_url_normalize(bad[i], strlen(bad[i]), &pol, &out, &why) == 0)
			fail_msg("'%s' accepted as '%s'", bad[i], out.p);
		assert_non_null(why);
		buf_release(&out);
	}
	/* NUL inside the string (JSON can carry one) */
	struct buf out;
	buf_init(&out);
	const char *why;
	assert_int_equal(link_url_normalize("https://a.example/\0x", 20, &pol, &out, &why), -1);
	buf_release(&out);
}

static void test_length_limit(void **state)
{
	(void)state;
	size_t n = LINK_URL_MAX + 1;
	char *u = malloc(n + 1);
	memcpy(u, "https://example.com/", 20);
	memset(u + 20, 'a', n - 20);
	u[n] = '\0';
	struct buf out;
	buf_init(&out);
	const char *why;
	assert_int_equal(link_url_normalize(u, n, &pol, &out, &why), -1);
	u[LINK_URL_MAX] = '\0';
	assert_int_equal(link_url_normalize(u, LINK_URL_MAX, &pol, &out, &why), 0);
	/* non-ASCII that grows past the limit when percent-encoded */
	buf_release(&out);
	buf_init(&out);
	memset(u + 20, 0, 1);
	char *p = u + 20;
	for (int i = 0; i < 3000; i++) {
		memcpy(p, "\xc3\xa9", 2);
		p += 2;
	}
	*p = '\0';
	assert_int_equal(link_url_normalize(u, strlen(u), &pol, &out, &why), -1);
	buf_release(&out);
	free(u);
}

static void test_aliases(void **state)
{
	(void)state;
	const char *why;
	assert_int_equal(link_alias_check("my-link_1", 9, &why), 0);
	assert_int_equal(link_alias_check("abc", 3, &why), 0);
	assert_int_equal(link_alias_check("ab", 2, &why), -1);
	char long_alias[66];
	memset(long_alias, 'a', 65);
	assert_int_equal(link_alias_check(long_alias, 64, &why), 0);
	assert_int_equal(link_alias_check(long_alias, 65, &why), -1);
	assert_int_equal(link_alias_check("a b", 3, &why), -1);
	assert_int_equal(link_alias_check("a/b", 3, &why), -1);
	assert_int_equal(link_alias_check("abc.d", 5, &why), -1);
	assert_int_equal(link_alias_check("bü1", 4, &why), -1);
	assert_int_equal(link_alias_check("api", 3, &why), -1);
	assert_int_equal(link_alias_check("API", 3, &why), -1);
	assert_int_equal(link_alias_check("Metrics", 7, &why), -1);
	assert_int_equal(link_alias_check("healthz", 7, &why), -1);
	assert_int_equal(link_alias_check("readyz", 6, &why), -1);
	assert_int_equal(link_alias_check("static", 6, &why), -1);
	assert_true(link_code_syntax_ok("Ab3_-", 5));
	assert_false(link_code_syntax_ok("", 0));
	assert_false(link_code_syntax_ok("a.b", 3));
}

static void test_states(void **state)
{
	(void)state;
	assert_int_equal(link_state_of(0, 0, 1000), LINK_LIVE);
	assert_int_equal(link_state_of(2000, 0, 1999), LINK_LIVE);
	assert_int_equal(link_state_of(2000, 0, 2000), LINK_EXPIRED);
	assert_int_equal(link_state_of(2000, 1, 1000), LINK_DELETED);
	assert_int_equal(link_state_of(0, 1, 1000), LINK_DELETED);
}

/* URLs that curl gives back unchanged skip its parser (link.c,
 * curl_keeps); each answer must be the one the parser gives, near every
 * edge of that rule. */
static void test_same_answer_without_curl(void **state)
{
	(void)state;
	static const char *const urls[] = {
		"https://example.com/",
		"https://example.com",
		"https://example.com?q",
		"https://example.com/a?",
		"https://example.com/a#",
		"https://example.com/a?#",
		"https://example.com/a?#f",
		"https://example.com/a?b#",
		"https://example.com/a??",
		"https://example.com/a##",
		"https://example.com/a?x=/../y#/./z",
		"https://example.com/a/.b/..c",
		"https://example.com/a/./b",
		"https://example.com/a/..",
		"https://example.com/.well-known/x",
		"https://example.com/a%2e%2e/b",
		"https://example.com//a//b",
		"https://example.com/~u/@x:y;z'(c)*d!e$f&g=h+i,j",
		"https://example.com/[x]?[y]",
		"https://example.com:8443",
		"https://example.com:08443/x",
		"http://0x7f.1/",
		"http://127.1/",
		"http://abc.de/",
		"http://foo.123/",
		"http://1.2.3.4/x",
		"http://a_b.example/x",
		"http://[2001:DB8::1]/x",
		"https://sho.rt/",
		"https://sho.rt/x?y",
		"https://sho.rt.example/x",
		"https://localhost:8080/x",
		"http://localhost:8080/x",
		"https://bücher.de/straße?ü#ö",
	};
	for (size_t i = 0; i < ARRAY_LEN(urls); i++) {
		struct buf fast, slow;
		buf_init(&fast);
		buf_init(&slow);
		const char *fast_why = NULL, *slow_why = NULL;
		int fast_rc = link_url_normalize(urls[i], strlen(urls[i]), &pol, &fast, &fast_why);
		link_url_always_curl = 1;
		int slow_rc = link_url_normalize(urls[i], strlen(urls[i]), &pol, &slow, &slow_why);
		link_url_always_curl = 0;
		if (fast_rc != slow_rc || (fast_rc == 0 && strcmp(fast.p, slow.p) != 0) ||
		    (fast_rc != 0 && strcmp(fast_why, slow_why) != 0))
			fail_msg("'%s': '%s' (%s) without curl, '%s' (%s) with it", urls[i],
				 fast_rc ? "" : fast.p, fast_rc ? fast_why : "ok", slow_rc ? "" : slow.p,
				 slow_rc ? slow_why : "ok");
		buf_release(&fast);
		buf_release(&slow);
	}
}

/* Flat bodies skip jansson (link_input.c, read_flat); each must be read
 * as jansson reads it: the same fields, or the same error. */
static void test_bodies_read_as_jansson_reads(void **state)
{
	(void)state;
	static const char *const bodies[] = {
		"{\"url\":\"https://example.com/a\"}",
		" {\r\n\t\"url\" : \"https://example.com/\" , \"alias\" : \"my-link\" } \n",
		"{\"url\":\"https://example.com/\",\"alias\":null,\"redirect\":308,\"ttl_s\":60}",
		"{\"url\":\"https://example.com/\",\"expires_at\":\"2030-01-31T12:00:00Z\"}",
		"{\"url\":\"https://example.com/\",\"expires_at\":null}",
		"{\"url\":\"https://example.com/\",\"expires_at\":\"2030-01-31T12:00:00Z\",\"ttl_s\":5}",
		"{\"url\":\"https://example.com/\",\"url\":\"https://example.org/\"}",
		"{\"url\":\"https://example.com/\",\"ttl_s\":0}",
		"{\"url\":\"https://example.com/\",\"ttl_s\":01}",
		"{\"url\":\"https://example.com/\",\"ttl_s\":-5}",
		"{\"url\":\"https://example.com/\",\"ttl_s\":1e3}",
		"{\"url\":\"https://example.com/\",\"ttl_s\":99999999999999999999999}",
		"{\"url\":\"https://example.com/\",\"ttl_s\":315360001}",
		"{\"url\":\"https://example.com/\",\"redirect\":302.0}",
		"{\"url\":\"https://example.com/\",\"redirect\":true}",
		"{\"url\":\"https://example.com/\",\"redirect\":nul}",
		"{\"url\":\"https://example.com/\",\"alias\":\"api\"}",
		"{\"url\":\"https://example.com/\",\"alias\":\"a\\u0062c\"}",
		"{\"url\":\"https://bücher.de/\"}",
		"{\"url\":\"https://example.com/\",\"color\":\"red\"}",
		"{\"url\":\"https://example.com/\",}",
		"{\"url\":\"https://example.com/\"} x",
		"{\"url\":\"https://example.com/\"",
		"{\"url\":[\"https://example.com/\"]}",
		"{\"url\":\"javascript:alert(1)\"}",
		"{\"url\":\"https://sho.rt/x\"}",
		"{}",
		"[]",
		"\"url\"",
		"{\"redirect\":301}",
		"{\"code\":\"abc\"}",
		"{\"alias\":\"abc\"}",
	};
	const int64_t now = 1800000000000LL;
	for (size_t i = 0; i < ARRAY_LEN(bodies) * 2; i++) {
		const char *b = bodies[i / 2];
		int is_patch = (int)(i & 1);
		struct link_input f, j;
		struct link_input_error ferr, jerr;
		int frc = link_input_parse(b, strlen(b), is_patch, &pol, now, &f, &ferr);
		link_input_always_jansson = 1;
		int jrc = link_input_parse(b, strlen(b), is_patch, &pol, now, &j, &jerr);
		link_input_always_jansson = 0;
		if (frc != jrc)
			fail_msg("%s (patch %d): %d here, %d by jansson", b, is_patch, frc, jrc);
		if (frc) {
			if (strcmp(ferr.msg, jerr.msg) != 0 || (ferr.field == NULL) != (jerr.field == NULL) ||
			    (ferr.field && strcmp(ferr.field, jerr.field) != 0))
				fail_msg("%s (patch %d): '%s: %s' here, '%s: %s' by jansson", b, is_patch,
					 ferr.field ? ferr.field : "", ferr.msg,
					 jerr.field ? jerr.field : "", jerr.msg);
		} else {
			assert_int_equal(f.url.len, j.url.len);
			if (f.url.len)
				assert_memory_equal(f.url.p, j.url.p, f.url.len);
			assert_int_equal(f.alias == NULL, j.alias == NULL);
			if (f.alias)
				assert_string_equal(f.alias, j.alias);
			assert_int_equal(f.has_expires, j.has_expires);
			assert_int_equal(f.expires_at_ms, j.expires_at_ms);
			assert_int_equal(f.has_redirect, j.has_redirect);
			assert_int_equal(f.redirect, j.redirect);
		}
		link_input_release(&f);
		link_input_release(&j);
	}
	/* and the flat reader's answer is the right one */
	struct link_input in;
	struct link_input_error err;
	const char *b = "{\"url\":\"https://example.com/x\",\"alias\":\"my-link\",\"ttl_s\":60,"
			"\"redirect\":301}";
	assert_int_equal(link_input_parse(b, strlen(b), 0, &pol, now, &in, &err), 0);
	assert_null(in.root); /* read without jansson */
	assert_string_equal(in.url.p, "https://example.com/x");
	assert_string_equal(in.alias, "my-link");
	assert_int_equal(in.expires_at_ms, now + 60000);
	assert_int_equal(in.redirect, 301);
	link_input_release(&in);
}

/* The three lookalike rules, each level, and the operator's list. */
static void test_lookalikes(void **state)
{
	(void)state;
	struct lookalike *lk;
	char err[256];
	const char *why;
	assert_int_equal(lookalike_open(&lk, "moderately", NULL, err, sizeof(err)), 0);
	assert_true(lookalike_domains(lk) >= 50);
	static const char *const refused[] = {
		"раураl.com", "аррӏе.com", "ѕсоре.com", "ɡoogle.com", "gıthub.com",
		"login.раураl.com",
	};
	for (size_t i = 0; i < ARRAY_LEN(refused); i++)
		if (lookalike_check(lk, refused[i], &why) == 0)
			fail_msg("'%s' passed", refused[i]);
	static const char *const passed[] = {
		"пример.рф", "bücher.de", "straße.de", "日本語.jp", "café.example", "paypal.com",
		"www.paypal.com", "example.com", "ελληνικά.gr", "中文網.tw",
	};
	for (size_t i = 0; i < ARRAY_LEN(passed); i++)
		if (lookalike_check(lk, passed[i], &why) != 0)
			fail_msg("'%s' refused: %s", passed[i], why);
	lookalike_close(lk);

	/* minimally: mixed scripts pass, a listed domain's look-alike does not */
	assert_int_equal(lookalike_open(&lk, "minimally", NULL, err, sizeof(err)), 0);
	assert_int_equal(lookalike_check(lk, "gıthub.example", &why), 0);
	assert_int_equal(lookalike_check(lk, "gıthub.com", &why), -1);
	assert_non_null(strstr(why, "github.com"));
	assert_int_equal(lookalike_check(lk, "раураl.com", &why), -1);
	assert_non_null(strstr(why, "paypal.com"));
	lookalike_close(lk);

	/* the operator's list replaces the built-in one */
	char path[] = "/tmp/shortd-lookalike-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char text[] = "# ours\nexample.org\n*.bücher.de  # international\n";
	assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t)(sizeof(text) - 1));
	close(fd);
	assert_int_equal(lookalike_open(&lk, "off", path, err, sizeof(err)), 0);
	assert_int_equal(lookalike_domains(lk), 2);
	assert_int_equal(lookalike_check(lk, "gıthub.com", &why), 0); /* not listed now */
	assert_int_equal(lookalike_check(lk, "еxample.org", &why), -1); /* Cyrillic е */
	assert_int_equal(lookalike_check(lk, "bücher.de", &why), 0);
	assert_int_equal(lookalike_check(lk, "shop.bücher.de", &why), 0);
	lookalike_close(lk);
	FILE *f = fopen(path, "w");
	fputs("fine.example\n-bad-.example\n", f);
	fclose(f);
	assert_int_equal(lookalike_open(&lk, "off", path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "line 2"));
	unlink(path);
	assert_int_equal(lookalike_open(&lk, "loose", NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "--idn-restriction"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_normalises), cmocka_unit_test(test_refuses),
		cmocka_unit_test(test_length_limit), cmocka_unit_test(test_aliases),
		cmocka_unit_test(test_states), cmocka_unit_test(test_same_answer_without_curl),
		cmocka_unit_test(test_bodies_read_as_jansson_reads),
		cmocka_unit_test(test_lookalikes),
	};
	return cmocka_run_group_tests_name("link", tests, setup, NULL);
}
