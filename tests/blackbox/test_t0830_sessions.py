"""Web UI sessions: POST /api/v1/session with an API key sets an HttpOnly,
SameSite=Strict cookie; the server keeps only the token's hash; requests
signed in by the cookie that change something need X-Shortd-CSRF;
signing out, expiry and revoking the key end the session at once."""
import glob
import os
import time

import pytest

from conftest import Server

CSRF = {"X-Shortd-CSRF": "1"}


def sign_in(s, key, headers=CSRF):
    r = s.request("POST", "/api/v1/session", json_body={"key": key}, headers=headers, key=False)
    return r


def cookie_of(r):
    """The session token and the cookie's attributes."""
    c = r.headers["set-cookie"]
    first, *attrs = [p.strip() for p in c.split(";")]
    name, _, value = first.partition("=")
    assert name == "shortd_session"
    return value, attrs


def with_cookie(token, extra=None):
    h = {"Cookie": f"theme=dark; shortd_session={token}; other=1"}
    h.update(extra or {})
    return h


def test_sign_in_cookie_and_csrf(server):
    r = sign_in(server, server.key)
    assert r.status == 201, r
    body = r.json()
    assert body["role"] == "admin" and body["expires_at"] and "key" not in body
    token, attrs = cookie_of(r)
    assert len(token) == 43
    assert {"Path=/", "HttpOnly", "SameSite=Strict", "Max-Age=604800"} <= set(attrs)
    assert "Secure" not in attrs  # the base URL is http here
    # reads work with the cookie alone
    r = server.request("GET", "/api/v1/links", headers=with_cookie(token), key=False)
    assert r.status == 200
    # a change without the CSRF header is refused, with it it is made
    body = {"url": "https://example.com/s"}
    r = server.request("POST", "/api/v1/links", json_body=body, headers=with_cookie(token),
                       key=False)
    assert r.status == 403 and r.json()["error"]["code"] == "csrf_header_missing"
    r = server.request("POST", "/api/v1/links", json_body=body, headers=with_cookie(token, CSRF),
                       key=False)
    assert r.status == 201
    code = r.json()["code"]
    r = server.request("DELETE", "/api/v1/links/" + code, headers=with_cookie(token), key=False)
    assert r.status == 403
    # an API key needs no CSRF header: it is never sent by a browser on its own
    assert server.request("DELETE", "/api/v1/links/" + code).status == 204


def test_sign_in_refusals(server):
    assert sign_in(server, server.key, headers={}).status == 403           # no CSRF header
    r = sign_in(server, "shortd_AAAAAAAAAA_" + "B" * 43)
    assert r.status == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert sign_in(server, "nonsense").status == 401
    r = server.request("POST", "/api/v1/session", body=b'{"key": "x", "extra": 1}',
                       headers={**CSRF, "Content-Type": "application/json"}, key=False)
    assert r.status == 400 and r.json()["error"]["code"] == "invalid_json"
    r = server.request("POST", "/api/v1/session", body=b'{"key": "x"}',
                       headers={**CSRF, "Content-Type": "text/plain"}, key=False)
    assert r.status == 415                                                 # no form can sign in
    for bad in ("shortd_session=short", "shortd_session=" + "A" * 42 + "!"):
        r = server.request("GET", "/api/v1/links", headers={"Cookie": bad}, key=False)
        assert r.status == 401 and r.json()["error"]["code"] == "invalid_session"
        assert "Max-Age=0" in r.headers["set-cookie"]
    r = server.request("DELETE", "/api/v1/session", headers=CSRF, key=False)
    assert r.status == 401 and r.json()["error"]["code"] == "no_session"


def test_sign_out_and_revoke_end_sessions(server):
    user = server.request("POST", "/api/v1/keys", json_body={"name": "u", "role": "user"}).json()
    t1, _ = cookie_of(sign_in(server, user["key"]))
    t2, _ = cookie_of(sign_in(server, user["key"]))
    assert t1 != t2
    # a user's session sees what the user's key sees
    r = server.request("GET", "/api/v1/keys", headers=with_cookie(t1), key=False)
    assert r.status == 403
    # signing out ends that session only
    r = server.request("DELETE", "/api/v1/session", headers=with_cookie(t1), key=False)
    assert r.status == 403                                                 # needs CSRF too
    r = server.request("DELETE", "/api/v1/session", headers=with_cookie(t1, CSRF), key=False)
    assert r.status == 204 and "Max-Age=0" in r.headers["set-cookie"]
    assert server.request("GET", "/api/v1/links", headers=with_cookie(t1), key=False).status == 401
    assert server.request("GET", "/api/v1/links", headers=with_cookie(t2), key=False).status == 200
    # revoking the key ends the other at once
    assert server.request("DELETE", "/api/v1/keys/" + user["id"]).status == 204
    r = server.request("GET", "/api/v1/links", headers=with_cookie(t2), key=False)
    assert r.status == 401 and r.json()["error"]["code"] == "invalid_session"
    assert sign_in(server, user["key"]).status == 401


def test_expiry_restart_and_only_a_hash_stored(tmp_path, backend):
    s = Server(tmp_path, "--session-ttl-s", "2", "--base-url", "https://sho.rt.example").start()
    try:
        r = sign_in(s, s.key)
        token, attrs = cookie_of(r)
        assert "Secure" in attrs and "Max-Age=2" in attrs
        s.stop()
        s.start()  # sessions are stored, not kept in memory
        assert s.request("GET", "/api/v1/links", headers=with_cookie(token), key=False).status == 200
        if backend == "sqlite":
            blobs = b"".join(open(f, "rb").read() for f in glob.glob(os.path.join(s.data, "*"))
                             if os.path.isfile(f))
        else:
            blobs = s.sql("SELECT encode(hash, 'escape') FROM sessions").encode()
        assert token.encode() not in blobs and len(s.rows("SELECT hash FROM sessions")) == 1
        time.sleep(2.2)
        r = s.request("GET", "/api/v1/links", headers=with_cookie(token), key=False)
        assert r.status == 401
        # a new sign-in drops the expired session
        cookie_of(sign_in(s, s.key))
        assert len(s.rows("SELECT hash FROM sessions")) == 1
    finally:
        s.stop()


def test_cors_grants_no_cookie_requests(make_server):
    """Even an origin allowed by --cors-origins gets no credentials and no
    X-Shortd-CSRF header from a preflight: another site cannot make a
    signed-in browser change anything."""
    s = make_server("--cors-origins", "https://app.example")
    r = s.request("OPTIONS", "/api/v1/links", key=False, headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-shortd-csrf, content-type"})
    assert r.status == 204 and r.headers["access-control-allow-origin"] == "https://app.example"
    assert "x-shortd-csrf" not in r.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in r.headers
