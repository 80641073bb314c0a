"""Hostile and tricky target URLs, each with its expected outcome, against a
server with a --blocklist and --deny-private-targets; the blocklist reloads
on SIGHUP."""
import json
import os
import signal
import time

import pytest

from conftest import Server

BLOCKLIST = """# phishing seen in the wild
blocked.example
*.wildcard.example
bücher.example   # an international name, matched in punycode
"""

# (url, status, expected normalised url or a fragment of the error message)
CASES = [
    # script and data schemes, in every case and encoding
    ("javascript:alert(1)", 400, "only http:// and https://"),
    ("JavaScript:alert(document.cookie)", 400, "only http:// and https://"),
    (" javascript:alert(1)", 400, "spaces or control characters"),
    ("java\tscript:alert(1)", 400, "spaces or control characters"),
    ("%6Aavascript:alert(1)", 400, "only http:// and https://"),
    ("jav&#x09;ascript:alert(1)", 400, "only http:// and https://"),
    ("javascript://example.com/%0aalert(1)", 400, "only http:// and https://"),
    ("data:text/html,<script>alert(1)</script>", 400, "only http:// and https://"),
    ("DATA:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==", 400, "only http:// and https://"),
    ("vbscript:msgbox(1)", 400, "only http:// and https://"),
    ("file:///etc/passwd", 400, "only http:// and https://"),
    ("ftp://example.com/file", 400, "only http:// and https://"),
    ("blob:https://example.com/uuid", 400, "only http:// and https://"),
    # relative and scheme-relative
    ("//evil.example/", 400, "only http:// and https://"),
    ("/local/path", 400, "only http:// and https://"),
    ("https:evil.example", 400, "only http:// and https://"),
    ("https:///path-only", 400, "has no host"),
    # credentials tricks
    ("https://good.example@evil.example/", 400, "credentials"),
    ("https://user:pass@example.com/", 400, "credentials"),
    ("https://good.example%40evil.example/", 400, "invalid host name"),
    ("https://evil.example\\@good.example/", 400, "backslash"),
    ("https://good.example:443@evil.example/", 400, "credentials"),
    # header injection and control bytes
    ("https://example.com/\r\nSet-Cookie: a=b", 400, "spaces or control characters"),
    ("https://example.com/\nLocation: https://evil.example", 400, "spaces or control characters"),
    ("https://example.com/\x00.html", 400, "spaces or control characters"),
    ("https://exam\tple.com/", 400, "spaces or control characters"),
    ("https://example.com/%0d%0aSet-Cookie:x", 201, "https://example.com/%0d%0aSet-Cookie:x"),
    ("https://example.com/a b", 400, "spaces or control characters"),
    ("https://example.com/\x7f", 400, "spaces or control characters"),
    # characters no URL may hold are encoded, as browsers do
    ("https://example.com/?q=<script>alert(1)</script>", 201,
     "https://example.com/?q=%3Cscript%3Ealert(1)%3C/script%3E"),
    ('https://example.com/"onmouseover="x', 201, "https://example.com/%22onmouseover=%22x"),
    ("https://example.com/\u202etxt.exe", 201, "https://example.com/%E2%80%AEtxt.exe"),
    # over-long
    ("https://example.com/" + "a" * 9000, 400, "longer than 8192"),
    ("https://example.com/" + "a" * 8000, 201, "https://example.com/" + "a" * 8000),
    # hosts: punycode, lookalikes, odd forms
    ("https://xn--/", 400, "invalid host name"),
    ("https://xn--zz-zzzzz.com/", 400, "invalid punycode"),
    ("https://раураl.com/", 400, "mixes alphabets"),          # Cyrillic + Latin "paypal"
    ("https://xn--l-7sba6dbr.com/", 400, "mixes alphabets"),   # the same, as punycode
    ("https://gοοgle.com/", 400, "mixes alphabets"),          # Greek omicrons
    ("https://пример.рф/путь", 201, "https://xn--e1afmkfd.xn--p1ai/%D0%BF%D1%83%D1%82%D1%8C"),
    ("https://xn--e1afmkfd.xn--p1ai/", 201, "https://xn--e1afmkfd.xn--p1ai/"),
    ("https://BÜCHER.de/", 201, "https://xn--bcher-kva.de/"),
    ("https://example。com/", 201, "https://example.com/"),   # ideographic full stop
    ("https://ex%61mple.com/", 400, "invalid host name"),
    ("https://a..b/", 400, "invalid host name"),
    ("https://-bad-.example/", 400, "invalid host name"),
    ("https://0x7f000001/", 400, "ambiguous host"),
    ("https://2130706433/", 400, "ambiguous host"),
    ("https://127.1/", 400, "ambiguous host"),
    # hosts browsers refuse (WHATWG URL: a name ending in a number is IPv4)
    ("https://256.1.1.1/", 400, "not an IPv4 address a.b.c.d"),
    ("https://1.2.3.4.5/", 400, "not an IPv4 address a.b.c.d"),
    ("https://4294967296/", 400, "not an IPv4 address a.b.c.d"),
    ("https://example.123/", 400, "not an IPv4 address a.b.c.d"),
    ("https://v1.2.example/", 201, "https://v1.2.example/"),
    # whole-script look-alikes (UTS #39 skeletons through ICU)
    ("https://аррӏе.com/", 400, "pass for Latin"),           # Cyrillic "apple"
    ("https://ѕсоре.com/", 400, "pass for Latin"),           # Cyrillic "scope"
    ("https://ɡoogle.com/", 400, "pass for Latin"),          # IPA script g
    ("https://gıthub.com/", 400, "pass for Latin"),          # dotless i
    ("https://ᏚᏟᎪ.com/", 400, "pass for Latin"),             # Cherokee "SCA"
    ("https://xn--80ak6aa92e.com/", 400, "pass for Latin"),  # "аррӏе" as punycode
    ("https://ελληνικά.gr/", 201, "https://xn--hxargifdar.gr/"),
    ("http://[::1", 400, "invalid IPv6 host"),
    ("https://example.com:0/", 400, "invalid port"),
    ("https://example.com:99999/", 400, "invalid port"),
    ("https://example.com/%zz", 400, "invalid percent-escape"),
    ("HTTPS://Example.COM:443/a/../b?x#f", 201, "https://example.com/b?x#f"),
    # private and reserved targets (--deny-private-targets)
    ("http://127.0.0.1:9/", 403, "private"),
    ("http://localhost/admin", 403, "private"),
    ("http://api.localhost/", 403, "private"),
    ("http://10.1.2.3/", 403, "private"),
    ("http://172.16.0.1/", 403, "private"),
    ("http://192.168.1.1/router", 403, "private"),
    ("http://169.254.169.254/latest/meta-data/", 403, "private"),
    ("http://100.64.0.1/", 403, "private"),
    ("http://0.0.0.0/", 403, "private"),
    ("http://[::1]/", 403, "private"),
    ("http://[fe80::1]/", 403, "private"),
    ("http://[fd00::1]/", 403, "private"),
    ("http://[::ffff:127.0.0.1]/", 403, "private"),
    ("http://[64:ff9b::a00:1]/", 403, "private"),
    ("http://localhost.localdomain/", 403, "private"),
    ("http://ip6-localhost/", 403, "private"),
    ("http://intranet/", 403, "private"),                  # one label: the search domain's
    ("http://printer.local/", 403, "private"),
    ("http://metadata.google.internal/computeMetadata/v1/", 403, "private"),
    ("http://router.home.arpa/", 403, "private"),
    ("http://[::10.0.0.1]/", 403, "private"),              # IPv4-compatible, deprecated
    ("http://[::8.8.8.8]/", 403, "private"),
    ("http://[::ffff:10.0.0.1]/", 403, "private"),
    ("http://[2001::1]/", 403, "private"),                 # Teredo
    ("http://[fec0::1]/", 403, "private"),                 # site-local
    ("http://8.8.8.8/", 201, "http://8.8.8.8/"),
    ("http://[2606:4700:4700::1111]/", 201, "http://[2606:4700:4700::1111]/"),
    # the blocklist, with subdomains, case and international names
    ("https://blocked.example/login", 403, "blocked domain"),
    ("https://login.BLOCKED.example/", 403, "blocked domain"),
    ("https://a.b.wildcard.example/", 403, "blocked domain"),
    ("https://bücher.example/", 403, "blocked domain"),
    ("https://xn--bcher-kva.example/", 403, "blocked domain"),
    ("https://notblocked.example/", 201, "https://notblocked.example/"),
    ("https://blocked.example.org/", 201, "https://blocked.example.org/"),
]


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    bl = d / "blocklist.txt"
    bl.write_text(BLOCKLIST)
    s = Server(d, "--blocklist", str(bl), "--deny-private-targets", "1").start()
    yield s
    s.stop()


def test_the_table_is_big_enough():
    assert len(CASES) >= 50


@pytest.mark.parametrize("url,status,expect", CASES,
                         ids=[f"{i:02d}" for i in range(len(CASES))])
def test_hostile_target(hostile_server, url, status, expect):
    r = hostile_server.request("POST", "/api/v1/links",
                               body=json.dumps({"url": url}, ensure_ascii=False).encode(),
                               headers={"Content-Type": "application/json"})
    assert r.status == status, (url, r)
    if status == 201:
        assert r.json()["url"] == expect
        # and it redirects there exactly
        loc = hostile_server.request("GET", "/" + r.json()["code"]).headers["location"]
        assert loc == expect
    else:
        err = r.json()["error"]
        assert err["field"] == "url"
        assert err["code"] == ("target_blocked" if status == 403 else "invalid_field")
        assert expect in err["message"], err


def test_links_back_to_shortd_are_refused(make_server):
    """Every spelling of the service itself: its base URL (and http:// of
    an https:// one, which is sent on to it), and its listen address in
    any form: each loopback and the unspecified address at its port."""
    s = make_server("--base-url", "https://sho.rt/x")
    p = s.port
    for url in (f"http://127.0.0.1:{p}/abc", "https://sho.rt/x/abc", "https://SHO.RT/x",
                "https://sho.rt:443/x/", "http://sho.rt/x/abc", f"http://localhost:{p}/",
                f"http://[::ffff:127.0.0.1]:{p}/abc", f"http://[::ffff:7f00:1]:{p}/",
                f"http://0.0.0.0:{p}/abc", f"http://[::]:{p}/", f"http://127.0.0.2:{p}/",
                f"http://[::1]:{p}/", f"http://[0:0:0:0:0:0:0:1]:{p}/"):
        r = s.request("POST", "/api/v1/links", json_body={"url": url})
        assert r.status == 400 and "redirect loop" in r.json()["error"]["message"], (url, r)
    for url in ("https://sho.rt/elsewhere", f"http://127.0.0.1:{p + 1}/", "https://sho.rt:8443/x/a"):
        assert s.request("POST", "/api/v1/links", json_body={"url": url}).status == 201, url


def test_lookalikes_of_listed_domains(make_server, tmp_path):
    """--idn-restriction minimally lets scripts mix, but a name whose
    skeleton is a listed domain's is still refused; --lookalike-domains
    replaces the built-in list."""
    s = make_server("--idn-restriction", "minimally")
    for url, brand in (("https://раураl.com/", "paypal.com"), ("https://gıthub.com/x", "github.com"),
                       ("https://login.аррlе.com/", "apple.com")):
        r = s.request("POST", "/api/v1/links", json_body={"url": url})
        assert r.status == 400, (url, r)
        assert f"looks like {brand}" in r.json()["error"]["message"], r.json()
    assert s.request("POST", "/api/v1/links", json_body={"url": "https://gıthub.example/"}).status == 201
    s.stop()
    own = tmp_path / "ours.txt"
    own.write_text("# our brands\nshortd.example\n")
    s2 = make_server("--idn-restriction", "off", "--lookalike-domains", str(own))
    r = s2.request("POST", "/api/v1/links", json_body={"url": "https://ѕhortd.example/"})
    assert r.status == 400 and "looks like shortd.example" in r.json()["error"]["message"], r.json()
    # not on this list, and no level: passes
    assert s2.request("POST", "/api/v1/links", json_body={"url": "https://раураl.com/"}).status == 201
    s2.stop()
    own.write_text("-bad-.example\n")
    bad = Server(tmp_path, "--lookalike-domains", str(own), port=None)
    bad.key = "unused"
    bad.start(wait=False)
    assert bad.proc.wait(10) == 2
    bad.logf.close()
    assert "--lookalike-domains" in bad.log()


def test_key_names_with_control_characters_are_refused(server):
    for name in ("evil\x1b[31mred", "tab\there", "bell\x07", "rtl\u202eexe.txt", "zw\u200bsp",
                 "c1\u0085"):
        r = server.request("POST", "/api/v1/keys", json_body={"name": name, "role": "user"})
        assert r.status == 400, (name, r)
        err = r.json()["error"]
        assert err["field"] == "name" and "control characters" in err["message"], err
    r = server.request("POST", "/api/v1/keys", json_body={"name": "Équipe Ünïcode 東京", "role": "user"})
    assert r.status == 201
    out = server.cli("key", "create", "--name", "evil\x1b]0;owned\x07", "--role", "user")
    assert out.returncode == 2 and "control characters" in out.stderr
    listing = server.cli("key", "list").stdout
    assert "\x1b" not in listing and "Équipe Ünïcode 東京" in listing


def test_unknown_non_ascii_key_is_a_field_error(server):
    """A long non-ASCII unknown key is named whole in the message: never a
    cut UTF-8 character, never reported as a lack of memory."""
    for key in ("é" * 256, "€" * 1000, "\U0001F600" * 300):
        r = server.request("POST", "/api/v1/links",
                           body=json.dumps({key: 1, "url": "https://example.com/"},
                                           ensure_ascii=False).encode(),
                           headers={"Content-Type": "application/json"})
        assert r.status == 400, r
        err = r.json()["error"]
        assert err["code"] == "invalid_field" and err["field"] == key
        assert err["message"].startswith(key) and "unknown field" in err["message"]


def test_private_targets_allowed_by_default(server):
    assert server.request("POST", "/api/v1/links",
                          json_body={"url": "http://192.168.1.1/"}).status == 201


def test_blocklist_reloads_on_sighup(tmp_path):
    bl = tmp_path / "blocklist.txt"
    bl.write_text("first.example\n")
    s = Server(tmp_path, "--blocklist", str(bl)).start()
    try:
        def create(host):
            return s.request("POST", "/api/v1/links", json_body={"url": f"https://{host}/"}).status

        assert create("first.example") == 403
        assert create("second.example") == 201
        bl.write_text("second.example\n")
        s.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while create("second.example") != 403 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert create("second.example") == 403
        assert create("first.example") == 201
        # a file that no longer loads leaves the last good list in force
        bl.write_text("-not-a-domain.example\n")
        s.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while "previous blocklist stays in force" not in s.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "previous blocklist stays in force" in s.log()
        assert create("second.example") == 403
        # PATCH is checked too
        code = s.create("https://ok.example/")["code"]
        r = s.request("PATCH", f"/api/v1/links/{code}", json_body={"url": "https://second.example/"})
        assert r.status == 403
    finally:
        s.stop()
    # and a bad file at start-up is a configuration error
    os.remove(bl)
    s2 = Server(tmp_path, "--blocklist", str(bl), port=None)
    s2.key = "unused"
    s2.start(wait=False)
    assert s2.proc.wait(10) == 2
    s2.logf.close()
