"""Links API: create, read, change, delete, list, and every refusal."""
import subprocess
import time

import pytest


def test_create_returns_link_and_location(server):
    r = server.request("POST", "/api/v1/links", json_body={"url": "https://example.com/a"})
    assert r.status == 201
    j = r.json()
    assert set(j) >= {"code", "short_url", "url", "created_at", "expires_at", "redirect"}
    assert len(j["code"]) == 7
    assert j["short_url"] == f"{server.base}/{j['code']}"
    assert j["url"] == "https://example.com/a"
    assert j["redirect"] == 302
    assert j["expires_at"] is None
    assert r.headers["location"] == f"{server.base}/api/v1/links/{j['code']}"
    assert r.headers["content-type"] == "application/json"


def test_redirect_and_head(server):
    j = server.create("https://example.com/target?q=1")
    r = server.request("GET", "/" + j["code"])
    assert r.status == 302
    assert r.headers["location"] == "https://example.com/target?q=1"
    assert r.headers["cache-control"] == "private, max-age=90"
    assert int(r.headers["content-length"]) == len(r.body)
    h = server.request("HEAD", "/" + j["code"])
    assert h.status == 302 and h.body == b""
    assert h.headers["location"] == r.headers["location"]


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirect_status_per_link(server, status):
    j = server.create("https://example.com/s", redirect=status)
    assert j["redirect"] == status
    assert server.request("GET", "/" + j["code"]).status == status


def test_default_redirect_status_option(make_server):
    s = make_server("--redirect-status", "301")
    j = s.create()
    assert s.request("GET", "/" + j["code"]).status == 301


def test_alias_and_conflict(server):
    j = server.create("https://example.com/1", alias="My-Link_1")
    assert j["code"] == "My-Link_1"
    r = server.request("POST", "/api/v1/links",
                       json_body={"url": "https://example.com/2", "alias": "My-Link_1"})
    assert r.status == 409
    assert r.json()["error"]["code"] == "alias_taken"
    # codes are case-sensitive: another case is another alias
    assert server.create("https://example.com/3", alias="my-link_1")["code"] == "my-link_1"
    assert server.request("GET", "/My-Link_1").headers["location"] == "https://example.com/1"
    # a deleted link's alias is never given again, and the answer says why
    assert server.request("DELETE", "/api/v1/links/my-link_1").status == 204
    r = server.request("POST", "/api/v1/links",
                       json_body={"url": "https://example.com/4", "alias": "my-link_1"})
    assert r.status == 409 and r.json()["error"]["code"] == "alias_deleted", r
    assert "never reused" in r.json()["error"]["message"]


@pytest.mark.parametrize("alias,why", [
    ("ab", "3 to 64"), ("a" * 65, "3 to 64"), ("has space", "letters"), ("dot.ted", "letters"),
    ("slash/x", "letters"), ("api", "reserved"), ("Healthz", "reserved"), ("metrics", "reserved"),
    ("static", "reserved"), ("readyz", "reserved"), (5, "string"),
])
def test_bad_aliases(server, alias, why):
    r = server.request("POST", "/api/v1/links", json_body={"url": "https://e.example/", "alias": alias})
    assert r.status == 400
    err = r.json()["error"]
    assert err["code"] == "invalid_field" and err["field"] == "alias"
    assert why in err["message"]


def test_get_patch_delete(server):
    j = server.create("https://example.com/old", alias="changing")
    r = server.request("GET", "/api/v1/links/changing")
    assert r.status == 200 and r.json()["url"] == "https://example.com/old"
    assert server.request("GET", "/changing").headers["location"] == "https://example.com/old"
    r = server.request("PATCH", "/api/v1/links/changing",
                       json_body={"url": "https://example.com/new", "redirect": 308})
    assert r.status == 200
    assert r.json()["url"] == "https://example.com/new" and r.json()["redirect"] == 308
    assert r.json()["created_at"] == j["created_at"]
    # the cache is invalidated at once: no stale redirect
    r = server.request("GET", "/changing")
    assert r.status == 308 and r.headers["location"] == "https://example.com/new"
    r = server.request("DELETE", "/api/v1/links/changing")
    assert r.status == 204 and r.body == b""
    assert "content-length" not in r.headers  # RFC 9110 8.6
    assert server.request("GET", "/changing").status == 410
    assert server.request("GET", "/api/v1/links/changing").status == 410
    assert server.request("DELETE", "/api/v1/links/changing").status == 410
    assert server.request("PATCH", "/api/v1/links/changing",
                          json_body={"url": "https://e.example/"}).status == 410
    # a deleted alias stays taken: old short links never start pointing elsewhere
    r = server.request("POST", "/api/v1/links",
                       json_body={"url": "https://evil.example/", "alias": "changing"})
    assert r.status == 409


def test_unknown_codes(server):
    assert server.request("GET", "/nosuchcode").status == 404
    r = server.request("GET", "/nosuchcode")
    assert r.json() == {"error": {"code": "not_found", "message": "no link with this code"}}
    assert server.request("GET", "/api/v1/links/nosuchcode").status == 404
    assert server.request("PATCH", "/api/v1/links/nosuchcode",
                          json_body={"url": "https://e.example/"}).status == 404
    assert server.request("DELETE", "/api/v1/links/nosuchcode").status == 404
    assert server.request("GET", "/no.such").status == 404
    assert server.request("GET", "/a/b").status == 404
    assert server.request("GET", "/api/v2/links").status == 404


def test_unknown_code_then_created(server):
    # a cached 404 must not hide a link created right after it
    assert server.request("GET", "/soon-here").status == 404
    server.create("https://example.com/now", alias="soon-here")
    assert server.request("GET", "/soon-here").status == 302


def test_expiry_with_ttl_and_expires_at(server):
    j = server.create("https://example.com/brief", ttl_s=1)
    assert j["expires_at"] is not None
    assert server.request("GET", "/" + j["code"]).status == 302
    time.sleep(1.3)
    r = server.request("GET", "/" + j["code"])
    assert r.status == 410 and r.json()["error"]["code"] == "expired"
    # the owner can still see it, and extend it
    assert server.request("GET", "/api/v1/links/" + j["code"]).status == 200
    r = server.request("PATCH", "/api/v1/links/" + j["code"], json_body={"expires_at": None})
    assert r.status == 200 and r.json()["expires_at"] is None
    assert server.request("GET", "/" + j["code"]).status == 302
    j2 = server.create("https://example.com/later", expires_at="2099-01-01T00:00:00+02:00")
    assert j2["expires_at"] == "2098-12-31T22:00:00.000Z"


@pytest.mark.parametrize("body,field", [
    ({}, "url"),
    ({"url": 5}, "url"),
    ({"url": ""}, "url"),
    ({"url": "https://e.example/", "expires_at": "yesterday"}, "expires_at"),
    ({"url": "https://e.example/", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
    ({"url": "https://e.example/", "ttl_s": 0}, "ttl_s"),
    ({"url": "https://e.example/", "ttl_s": 1.5}, "ttl_s"),
    ({"url": "https://e.example/", "ttl_s": "60"}, "ttl_s"),
    ({"url": "https://e.example/", "ttl_s": 60, "expires_at": "2099-01-01T00:00:00Z"}, "ttl_s"),
    ({"url": "https://e.example/", "redirect": 303}, "redirect"),
    ({"url": "https://e.example/", "redirect": "301"}, "redirect"),
    ({"url": "https://e.example/", "colour": "blue"}, "colour"),
])
def test_invalid_fields_named(server, body, field):
    r = server.request("POST", "/api/v1/links", json_body=body)
    assert r.status == 400, r
    err = r.json()["error"]
    assert err["code"] == "invalid_field"
    assert err["field"] == field
    assert err["message"].startswith(field + ": ")


@pytest.mark.parametrize("raw", [
    b"", b"{", b"[1,2]", b'"url"', b"null", b'{"url": "https://e.example/",}',
    b'{"url":"https://e.example/","url":"https://f.example/"}', b"\xff\xfe{}",
    b'{"url":"https://e.example/\xc3"}',
])
def test_invalid_json(server, raw):
    r = server.request("POST", "/api/v1/links", body=raw,
                       headers={"Content-Type": "application/json"})
    assert r.status == 400
    assert r.json()["error"]["code"] == "invalid_json"


def test_wrong_content_type(server):
    r = server.request("POST", "/api/v1/links", body=b'{"url":"https://e.example/"}',
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 415
    r = server.request("POST", "/api/v1/links", body=b'{"url":"https://e.example/"}',
                       headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status == 201


def test_patch_refusals(server):
    server.create(alias="patchme")
    for body, want in [({}, "invalid_json"), ({"alias": "x"}, "invalid_field"),
                       ({"code": "y"}, "invalid_field"), ({"url": "ftp://x"}, "invalid_field")]:
        r = server.request("PATCH", "/api/v1/links/patchme", json_body=body)
        assert r.status == 400 and r.json()["error"]["code"] == want, (body, r)


def test_methods_and_options(server):
    r = server.request("PUT", "/api/v1/links")
    assert r.status == 501  # PUT is not implemented anywhere
    r = server.request("DELETE", "/api/v1/links")
    assert r.status == 405 and r.headers["allow"] == "GET, HEAD, POST, OPTIONS"
    r = server.request("POST", "/abcdef")
    assert r.status == 405 and "GET" in r.headers["allow"]
    r = server.request("OPTIONS", "/api/v1/links/abc")
    assert r.status == 204 and "PATCH" in r.headers["allow"]


def test_list_newest_first_with_cursor(server):
    codes = [server.create(f"https://example.com/{i}")["code"] for i in range(25)]
    server.request("DELETE", "/api/v1/links/" + codes[3])
    seen, cursor = [], None
    while True:
        q = "/api/v1/links?limit=10" + (f"&cursor={cursor}" if cursor else "")
        r = server.request("GET", q)
        assert r.status == 200
        j = r.json()
        assert len(j["links"]) <= 10
        seen += [l["code"] for l in j["links"]]
        cursor = j["next_cursor"]
        if cursor is None:
            break
    expected = [c for c in reversed(codes) if c != codes[3]]
    assert seen == expected
    assert len(server.request("GET", "/api/v1/links").json()["links"]) == 24


@pytest.mark.parametrize("q,field", [
    ("limit=0", "limit"), ("limit=1001", "limit"), ("limit=abc", "limit"), ("limit=", "limit"),
    ("cursor=!!", "cursor"), ("cursor=", "cursor"), ("cursor=abc", "cursor"),
    ("cursor=zzzzzzzzzzzz", "cursor"), ("search=x", "search"), ("tag=a", "tag"), ("sort=url", "sort"),
    ("limit=5&Limit=5", "Limit"), ("flag", "flag"),
])
def test_list_bad_params(server, q, field):
    r = server.request("GET", "/api/v1/links?" + q)
    assert r.status == 400 and r.json()["error"]["field"] == field, r


def test_unknown_query_parameters_on_every_api_route(server):
    code = server.create("https://example.com/q", alias="with-query")["code"]
    for method, path in [("GET", f"/api/v1/links/{code}"), ("GET", f"/api/v1/links/{code}/stats"),
                         ("GET", "/api/v1/keys"), ("DELETE", f"/api/v1/links/{code}")]:
        r = server.request(method, path + "?verbose=1")
        assert r.status == 400, (method, path, r)
        assert r.json()["error"]["field"] == "verbose"
    # the known ones, and empty pieces, pass
    assert server.request("GET", f"/api/v1/links/{code}/stats?interval=day&").status == 200
    assert server.request("GET", "/api/v1/links?&limit=5").status == 200
    # a cursor that was cut by one character is refused, the whole one works
    for i in range(3):
        server.create(f"https://example.com/page/{i}")
    cur = server.request("GET", "/api/v1/links?limit=1").json()["next_cursor"]
    assert server.request("GET", f"/api/v1/links?limit=1&cursor={cur}").status == 200
    assert server.request("GET", f"/api/v1/links?limit=1&cursor={cur[:-1]}").status == 400
    # the redirect takes any query
    assert server.request("GET", f"/{code}?utm_source=x").status == 302


def test_error_shape_everywhere(server):
    for method, path in [("GET", "/nope"), ("GET", "/api/nope"), ("DELETE", "/healthz")]:
        r = server.request(method, path)
        e = r.json()["error"]
        assert isinstance(e["code"], str) and isinstance(e["message"], str)
        assert r.headers["content-type"] == "application/json"


def test_reads_see_every_answered_write_under_load(make_server):
    """No cache, and both workers kept busy by wrk (so each holds a database
    snapshot through most of its loop turns): a redirect that follows an
    answered create, change or delete sees it, every time. (With readers
    that never renew their snapshot, the first redirect answers 404.)"""
    s = make_server("--cache-mb", "0", "--threads", "2")
    busy = s.create("https://example.com/busy")["code"]
    wrk = subprocess.Popen(["wrk", "-t2", "-c32", "-d60s", f"http://127.0.0.1:{s.port}/{busy}"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        for i in range(150):
            code = s.create(f"https://example.com/ryw/{i}")["code"]
            r = s.request("GET", "/" + code)
            assert r.status == 302 and r.headers["location"] == f"https://example.com/ryw/{i}"
            assert s.request("PATCH", "/api/v1/links/" + code,
                             json_body={"url": f"https://example.com/ryw/{i}/new"}).status == 200
            r = s.request("GET", "/" + code)
            assert r.status == 302 and r.headers["location"] == f"https://example.com/ryw/{i}/new"
            assert s.request("DELETE", "/api/v1/links/" + code).status == 204
            assert s.request("GET", "/" + code).status == 410
    finally:
        wrk.terminate()
        wrk.wait()


def map_metric(s, name):
    for line in s.request("GET", "/metrics").body.decode().splitlines():
        if line.startswith(f"shortd_code_map_{name} "):
            return int(line.split()[1])
    raise AssertionError(f"no metric shortd_code_map_{name}")


def wait_map_builds(s, n):
    deadline = time.monotonic() + 20
    while map_metric(s, "builds_total") < n:
        assert time.monotonic() < deadline, "the code map was not built"
        time.sleep(0.05)


@pytest.mark.sqlite_only
def test_code_map_finds_rows_and_keeps_answers(make_server, tmp_path):
    """With no cache, every redirect is a lookup. Links made before the
    start (read into the map at start-up) and after it (added by the
    writer) are found through the code map; an unknown code goes to the
    index and still answers 404; a deleted link 410. With --code-map 0 the
    same redirects answer the same, from the index."""
    data = str(tmp_path / "mapdata")
    s = make_server("--cache-mb", "0", data=data)
    before = [s.create(f"https://example.com/before/{i}")["code"] for i in range(30)]
    s.stop()
    s = make_server("--cache-mb", "0", data=data)
    wait_map_builds(s, 1)
    assert map_metric(s, "links") == 30 and map_metric(s, "bytes") > 0
    after = [s.create(f"https://example.com/after/{i}")["code"] for i in range(30)]
    gone = s.create("https://example.com/gone")["code"]
    assert s.request("DELETE", "/api/v1/links/" + gone).status == 204
    expect = {c: f"https://example.com/before/{i}" for i, c in enumerate(before)}
    expect.update({c: f"https://example.com/after/{i}" for i, c in enumerate(after)})
    found0, missed0 = map_metric(s, "found_total"), map_metric(s, "missed_total")
    for code, url in expect.items():
        r = s.request("GET", "/" + code)
        assert r.status == 302 and r.headers["location"] == url
    assert s.request("GET", "/" + gone).status == 410
    assert s.request("GET", "/NoSuchCode1").status == 404
    deadline = time.monotonic() + 5  # the workers add their counts once a turn
    while map_metric(s, "found_total") - found0 < 61:
        assert time.monotonic() < deadline, (map_metric(s, "found_total"), found0)
        time.sleep(0.05)
    assert map_metric(s, "missed_total") - missed0 >= 1
    s.stop()

    s = make_server("--cache-mb", "0", "--code-map", "0", data=data)
    for code, url in expect.items():
        r = s.request("GET", "/" + code)
        assert r.status == 302 and r.headers["location"] == url
    assert s.request("GET", "/" + gone).status == 410
    assert map_metric(s, "links") == 0 and map_metric(s, "found_total") == 0


def test_forward_query(make_server):
    """forward_query passes a short URL's query string on to the target:
    after the target's own query, before its fragment; off by default,
    on for new links with --forward-query 1; changed by PATCH at once."""
    s = make_server()
    on = s.create("https://example.com/p?a=1#frag", forward_query=True)
    assert on["forward_query"] is True
    r = s.request("GET", "/%s?utm_source=news&b=%%20" % on["code"])
    assert r.status == 302
    assert r.headers["location"] == "https://example.com/p?a=1&utm_source=news&b=%20#frag"
    assert s.request("HEAD", "/%s?x=1" % on["code"]).headers["location"] == \
        "https://example.com/p?a=1&x=1#frag"
    assert s.request("GET", "/%s" % on["code"]).headers["location"] == \
        "https://example.com/p?a=1#frag"
    bare = s.create("https://example.com/bare", forward_query=True)
    assert s.request("GET", "/%s?x=1" % bare["code"]).headers["location"] == \
        "https://example.com/bare?x=1"
    off = s.create("https://example.com/q")
    assert off["forward_query"] is False
    assert s.request("GET", "/%s?x=1" % off["code"]).headers["location"] == "https://example.com/q"
    # PATCH turns it on, and the cached link follows at once
    r = s.request("PATCH", "/api/v1/links/" + off["code"], json_body={"forward_query": True})
    assert r.status == 200 and r.json()["forward_query"] is True
    assert s.request("GET", "/%s?x=1" % off["code"]).headers["location"] == \
        "https://example.com/q?x=1"
    assert s.request("GET", "/api/v1/links/" + off["code"]).json()["forward_query"] is True
    for bad in ("yes", 1, None):
        r = s.request("PATCH", "/api/v1/links/" + off["code"], json_body={"forward_query": bad})
        assert r.status == 400 and r.json()["error"]["field"] == "forward_query", r.json()
    s2 = make_server("--forward-query", "1", data=str(s.workdir) + "/data2")
    link = s2.create("https://example.com/d")
    assert link["forward_query"] is True
    assert s2.request("GET", "/%s?y=2" % link["code"]).headers["location"] == \
        "https://example.com/d?y=2"
    assert s2.create("https://example.com/e", forward_query=False)["forward_query"] is False
    # kept across a restart (the store has it, not only the cache)
    s.stop()
    s.start()
    assert s.request("GET", "/%s?z=3" % on["code"]).headers["location"] == \
        "https://example.com/p?a=1&z=3#frag"


def test_list_search(make_server):
    """q= keeps the links whose code or target holds it (ASCII letters in
    any case), newest first, page by page, within the caller's scope."""
    s = make_server()
    s.create("https://example.com/Alpha", alias="cat-1")
    s.create("https://shop.example.org/beta", alias="dog-1")
    s.create("https://example.com/gamma", alias="Cat-2")
    user = s.request("POST", "/api/v1/keys", json_body={"name": "u", "role": "user"}).json()
    s.request("POST", "/api/v1/links", json_body={"url": "https://example.com/cat", "alias": "u-1"},
              key=user["key"])

    def codes(query, key=True):
        r = s.request("GET", "/api/v1/links?" + query, key=key)
        assert r.status == 200, r
        return [l["code"] for l in r.json()["links"]], r.json()["next_cursor"]

    assert codes("q=cat")[0] == ["u-1", "Cat-2", "cat-1"]           # code or target
    assert codes("q=ALPHA")[0] == ["cat-1"]
    assert codes("q=shop.example")[0] == ["dog-1"]
    assert codes("q=%2Fbeta")[0] == ["dog-1"]                       # percent-decoded
    assert codes("q=cat", key=user["key"])[0] == ["u-1"]            # a user's own only
    assert codes("q=nothing-like-it") == ([], None)
    assert len(codes("q=")[0]) == 4                                 # empty: no filter
    page, cursor = codes("q=cat&limit=2")
    assert page == ["u-1", "Cat-2"] and cursor
    assert codes("q=cat&limit=2&cursor=" + cursor) == (["cat-1"], None)
    for bad in ("q=" + "a" * 201, "q=%00"):
        r = s.request("GET", "/api/v1/links?" + bad)
        assert r.status == 400 and r.json()["error"]["field"] == "q", r
