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
    s = make_server("--base-url", "https://sho.rt/x")
    for url in (f"http://127.0.0.1:{s.port}/abc", "https://sho.rt/x/abc", "https://SHO.RT/x",
                "https://sho.rt:443/x/"):
        r = s.request("POST", "/api/v1/links", json_body={"url": url})
        assert r.status == 400 and "redirect loop" in r.json()["error"]["message"], (url, r)
    assert s.request("POST", "/api/v1/links",
                     json_body={"url": "https://sho.rt/elsewhere"}).status == 201


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
