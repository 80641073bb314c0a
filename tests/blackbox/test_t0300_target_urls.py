"""Target URL validation end to end: hostile URLs are refused with 400 and
the field named; accepted ones come back normalised, and the Location
header can never be split."""
import json

import pytest

HOSTILE = [
    "javascript:alert(1)",
    "JAVASCRIPT:alert(1)",
    "java\tscript:alert(1)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "file:///etc/passwd",
    "ftp://example.com/file",
    "mailto:someone@example.com",
    "//example.com/protocol-relative",
    "example.com",
    "http:/example.com",
    "https:///example.com",
    "https://good.example@evil.example/",
    "https://user:password@example.com/",
    "https://example.com/\r\nSet-Cookie: a=b",
    "https://example.com/\nLocation: https://evil.example",
    "https://example.com/\u0000x",
    "https://example.com\\@evil.example/",
    "https://exa mple.com/",
    "https://example..com/",
    "https://xn--zz.example/",
    "https://example.com:99999/",
    "https://example.com/%GG",
]


@pytest.mark.parametrize("url", HOSTILE)
def test_hostile_url_refused(server, url):
    r = server.request("POST", "/api/v1/links", json_body={"url": url})
    assert r.status == 400, r
    assert r.json()["error"]["field"] == "url"


def test_links_back_to_shortd_refused(server):
    for url in [f"{server.base}/abc", f"http://localhost:{server.port}/x",
                f"http://LOCALHOST:{server.port}", f"http://[::1]:{server.port}/"]:
        r = server.request("POST", "/api/v1/links", json_body={"url": url})
        assert r.status == 400 and "redirect loop" in r.json()["error"]["message"], url


def test_base_url_refused_as_target(make_server):
    s = make_server("--base-url", "https://sho.rt.example/")
    # http:// of an https:// base URL is refused too: sites send it on to https://
    for url in ["https://sho.rt.example/x", "https://SHO.RT.EXAMPLE:443/", "http://sho.rt.example/x"]:
        r = s.request("POST", "/api/v1/links", json_body={"url": url})
        assert r.status == 400, url
    assert s.create("http://sho.rt.example:8080/x")["url"] == "http://sho.rt.example:8080/x"


def test_too_long_url(server):
    url = "https://example.com/" + "a" * 8200
    r = server.request("POST", "/api/v1/links", json_body={"url": url})
    assert r.status == 400 and "8192" in r.json()["error"]["message"]
    ok = "https://example.com/" + "a" * (8192 - 20)
    j = server.create(ok)
    r = server.request("GET", "/" + j["code"])
    assert r.status == 302 and r.headers["location"] == ok


def test_international_and_normalised(server):
    j = server.create("HTTPS://Bücher.DE:443/ü?q=ä#x")
    assert j["url"] == "https://xn--bcher-kva.de/%C3%BC?q=%C3%A4#x"
    r = server.request("GET", "/" + j["code"])
    assert r.headers["location"] == j["url"]


def test_json_escaped_crlf_cannot_split_headers(server):
    body = json.dumps({"url": "https://example.com/a\r\nX-Injected: 1"}).encode()
    r = server.request("POST", "/api/v1/links", body=body,
                       headers={"Content-Type": "application/json"})
    assert r.status == 400
    # percent-encoded CR LF stay encoded in Location
    j = server.create("https://example.com/a%0D%0AX-Injected:%201")
    raw = server.raw(f"GET /{j['code']} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
    assert b"X-Injected" not in raw.split(b"\r\n\r\n")[0].replace(b"%0D%0AX-Injected", b"")
