"""API keys, roles, ownership and idempotent creates."""
import concurrent.futures
import os
import sqlite3
import subprocess

import pytest

from conftest import Server

LINKS = "/api/v1/links"


def key_cli(s, *args):
    return subprocess.run([s.binary, "key", *args, *s.store_args()], capture_output=True,
                          text=True, timeout=30)


def test_no_key_is_401_with_a_challenge(server):
    code = server.create("https://example.com/a")["code"]
    for method, path in [("GET", LINKS), ("POST", LINKS), ("GET", f"{LINKS}/{code}"),
                         ("PATCH", f"{LINKS}/{code}"), ("DELETE", f"{LINKS}/{code}"),
                         ("GET", f"{LINKS}/{code}/stats"), ("GET", "/api/v1/keys"),
                         ("POST", "/api/v1/keys"), ("DELETE", "/api/v1/keys/abcdefghij")]:
        r = server.request(method, path, json_body={} if method in ("POST", "PATCH") else None,
                           key=False)
        assert r.status == 401, (method, path, r)
        assert r.json()["error"]["code"] == "missing_api_key"
        assert r.headers["www-authenticate"] == 'Bearer realm="shortd"'
    # redirects never need a key
    assert server.request("GET", "/" + code).status == 302


@pytest.mark.parametrize("header", [
    "Bearer nonsense",
    "Bearer shortd_AAAAAAAAAA_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB",  # well-formed, unknown
    "Basic dXNlcjpwYXNz",
    "Bearer ",
])
def test_invalid_keys_are_401(server, header):
    r = server.request("GET", LINKS, headers={"Authorization": header})
    assert r.status == 401, r
    assert r.json()["error"]["code"] == "invalid_api_key"
    assert 'error="invalid_token"' in r.headers["www-authenticate"]


def test_right_id_wrong_secret_is_401(server):
    key = server.key
    forged = key[:-1] + ("A" if key[-1] != "A" else "B")
    r = server.request("GET", LINKS, key=forged)
    assert r.status == 401 and r.json()["error"]["code"] == "invalid_api_key"


def test_x_api_key_and_scheme_case(server):
    assert server.request("GET", LINKS, headers={"X-API-Key": server.key}).status == 200
    assert server.request("GET", LINKS,
                          headers={"Authorization": "bearer " + server.key}).status == 200


def test_only_the_hash_is_stored(server):
    rows = server.rows("SELECT key_id, hash FROM api_keys")
    assert len(rows) == 1
    key_id, h = rows[0]
    h = bytes.fromhex(h[2:])
    assert len(h) == 32 and server.key.encode() not in h
    assert server.key.split("_")[2] not in key_id
    import hashlib
    assert h == hashlib.sha256(server.key.encode()).digest()


def test_users_see_and_change_only_their_links(server):
    alice = server.request("POST", "/api/v1/keys",
                           json_body={"name": "alice", "role": "user"}).json()["key"]
    bob = server.request("POST", "/api/v1/keys",
                         json_body={"name": "bob", "role": "user"}).json()["key"]
    a = server.request("POST", LINKS, json_body={"url": "https://example.com/alice"}, key=alice)
    assert a.status == 201
    a = a.json()["code"]
    b = server.request("POST", LINKS, json_body={"url": "https://example.com/bob"}, key=bob)
    b = b.json()["code"]
    admin_link = server.create("https://example.com/admin")["code"]
    # each sees its own
    assert server.request("GET", f"{LINKS}/{a}", key=alice).status == 200
    assert server.request("GET", f"{LINKS}/{a}/stats", key=alice).status == 200
    # and not the others': 404, as if they did not exist
    for code in (b, admin_link):
        assert server.request("GET", f"{LINKS}/{code}", key=alice).status == 404
        assert server.request("GET", f"{LINKS}/{code}/stats", key=alice).status == 404
        r = server.request("PATCH", f"{LINKS}/{code}", key=alice,
                           json_body={"url": "https://evil.example/"})
        assert r.status == 404, r
        assert server.request("DELETE", f"{LINKS}/{code}", key=alice).status == 404
    # nothing changed
    assert server.request("GET", "/" + b).headers["location"] == "https://example.com/bob"
    # listing filters by owner; the admin sees all
    mine = [l["code"] for l in server.request("GET", LINKS, key=alice).json()["links"]]
    assert mine == [a]
    everyone = [l["code"] for l in server.request("GET", LINKS).json()["links"]]
    assert set(everyone) == {a, b, admin_link}
    # the owner changes and deletes its own; the admin can change anyone's
    r = server.request("PATCH", f"{LINKS}/{a}", key=alice,
                       json_body={"url": "https://example.com/alice2"})
    assert r.status == 200
    assert server.request("PATCH", f"{LINKS}/{b}",
                          json_body={"redirect": 308}).status == 200
    assert server.request("DELETE", f"{LINKS}/{a}", key=alice).status == 204
    assert server.request("GET", f"{LINKS}/{a}", key=alice).status == 410


def test_user_key_on_admin_routes_is_403(server):
    user = server.request("POST", "/api/v1/keys",
                          json_body={"name": "u", "role": "user"}).json()["key"]
    for method, path in [("GET", "/api/v1/keys"), ("POST", "/api/v1/keys"),
                         ("DELETE", "/api/v1/keys/abcdefghij")]:
        r = server.request(method, path, key=user,
                           json_body={"name": "x", "role": "admin"} if method == "POST" else None)
        assert r.status == 403, (method, path, r)
        assert r.json()["error"]["code"] == "forbidden"


def test_keys_api(server):
    r = server.request("POST", "/api/v1/keys", json_body={"name": "ci", "role": "user"})
    assert r.status == 201
    made = r.json()
    assert made["key"].startswith("shortd_") and made["role"] == "user"
    listed = server.request("GET", "/api/v1/keys").json()["keys"]
    assert [k["name"] for k in listed] == ["ci", "test"]
    assert all("key" not in k and "hash" not in k for k in listed)
    for body in [{"name": "x"}, {"name": "x", "role": "root"}, {"name": "", "role": "user"},
                 {"name": "x" * 65, "role": "user"}, {"name": "x", "role": "user", "extra": 1}]:
        assert server.request("POST", "/api/v1/keys", json_body=body).status == 400, body
    # revocation takes effect at the next request
    assert server.request("GET", LINKS, key=made["key"]).status == 200
    assert server.request("DELETE", f"/api/v1/keys/{made['id']}").status == 204
    r = server.request("GET", LINKS, key=made["key"])
    assert r.status == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert server.request("DELETE", f"/api/v1/keys/{made['id']}").status == 410
    assert server.request("DELETE", "/api/v1/keys/zzzzzzzzzz").status == 404
    assert server.request("DELETE", "/api/v1/keys/nonsense!").status == 404
    revoked = [k for k in server.request("GET", "/api/v1/keys").json()["keys"]
               if k["id"] == made["id"]]
    assert revoked[0]["revoked_at"] is not None


def test_cli_revocation_reaches_the_running_server(server):
    r = key_cli(server, "create", "--name", "ops", "--role", "user")
    assert r.returncode == 0, r.stderr
    key = r.stdout.strip()
    key_id = key.split("_")[1]
    assert server.request("GET", LINKS, key=key).status == 200
    listing = key_cli(server, "list")
    assert listing.returncode == 0 and key_id in listing.stdout and "ops" in listing.stdout
    assert key not in listing.stdout
    assert key_cli(server, "revoke", key_id).returncode == 0
    assert server.request("GET", LINKS, key=key).status == 401
    assert key_cli(server, "revoke", key_id).returncode == 1
    assert key_cli(server, "revoke", "nosuchkey0").returncode == 1
    bad = key_cli(server, "create", "--name", "x", "--role", "root")
    assert bad.returncode == 2 and "--role" in bad.stderr


def test_first_start_says_how_to_make_a_key(tmp_path):
    s = Server(tmp_path)
    s.key = "none yet"
    s.start()
    try:
        assert "shortd key create --name admin --role admin" in s.log()
    finally:
        s.stop()


def test_anonymous_creation_only_when_allowed(make_server):
    s = make_server("--allow-anonymous", "1")
    r = s.request("POST", LINKS, json_body={"url": "https://example.com/anon"}, key=False)
    assert r.status == 201, r
    code = r.json()["code"]
    # anonymous callers read nothing
    assert s.request("GET", f"{LINKS}/{code}", key=False).status == 401
    user = s.request("POST", "/api/v1/keys", json_body={"name": "u", "role": "user"}).json()["key"]
    assert s.request("GET", f"{LINKS}/{code}", key=user).status == 404
    assert s.request("GET", f"{LINKS}/{code}").status == 200


IDEM = "7d1f4c0e-6c36-4a55-9a57-1b5a4f0f9e01"


def test_idempotent_create_retries_across_a_restart(make_server):
    s = make_server()
    body = {"url": "https://example.com/idem"}
    first = s.request("POST", LINKS, json_body=body, headers={"Idempotency-Key": IDEM})
    assert first.status == 201
    again = s.request("POST", LINKS, json_body=body, headers={"Idempotency-Key": IDEM})
    assert again.status == 201 and again.json()["code"] == first.json()["code"]
    other = s.request("POST", LINKS, json_body={"url": "https://example.com/other"},
                      headers={"Idempotency-Key": IDEM})
    assert other.status == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    s.stop()
    s.start()
    after = s.request("POST", LINKS, json_body=body, headers={"Idempotency-Key": IDEM})
    assert after.status == 201 and after.json()["code"] == first.json()["code"]
    # a different key makes a new link; keys are per API key
    assert s.request("POST", LINKS, json_body=body,
                     headers={"Idempotency-Key": IDEM + "x"}).json()["code"] != \
        first.json()["code"]
    user = s.request("POST", "/api/v1/keys", json_body={"name": "u", "role": "user"}).json()["key"]
    mine = s.request("POST", LINKS, json_body=body, headers={"Idempotency-Key": IDEM}, key=user)
    assert mine.status == 201 and mine.json()["code"] != first.json()["code"]
    n = int(s.rows(f"SELECT count(*) FROM links WHERE idem_key = '{IDEM}'")[0][0])
    assert n == 2  # the admin's and the user's


def test_concurrent_retries_make_one_link(server):
    body = {"url": "https://example.com/race", "alias": "race-link"}

    def attempt(_):
        return server.request("POST", LINKS, json_body=body,
                              headers={"Idempotency-Key": "race-1"})

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(attempt, range(16)))
    assert all(r.status == 201 for r in results), [r for r in results if r.status != 201][:2]
    assert {r.json()["code"] for r in results} == {"race-link"}


@pytest.mark.parametrize("value", ["", "a b", "x" * 256, "caf\u00e9"])
def test_invalid_idempotency_keys(server, value):
    r = server.request("POST", LINKS, json_body={"url": "https://example.com/"},
                       headers={"Idempotency-Key": value.encode("utf-8").decode("latin-1")})
    assert r.status == 400, r
    assert r.json()["error"]["field"] == "Idempotency-Key"
