"""Rate limits (per IP, 404s per IP, creates per key and per anonymous IP),
trusted proxies, CORS and security headers."""
import subprocess
import time

import pytest

from conftest import BIN, Server

LINKS = "/api/v1/links"


def limited(make_server, *args):
    """A server whose limits are the given ones (the harness turns the per-IP
    limits off by default)."""
    return make_server(*args)


def metric(s, name):
    for line in s.request("GET", "/metrics").body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


def test_ip_limit_429_after_exactly_the_burst(make_server):
    s = limited(make_server, "--ip-rate", "1", "--ip-burst", "5")
    seen = []
    for _ in range(5):
        r = s.request("GET", LINKS)
        assert r.status == 200, r
        seen.append(int(r.headers["ratelimit-remaining"]))
        assert r.headers["ratelimit-limit"] == "5"
    assert seen == [4, 3, 2, 1, 0]
    r = s.request("GET", "/healthz")
    assert r.status == 429, r
    assert r.json()["error"] == {"code": "rate_limited", "limit": "ip",
                                 "message": "too many requests: retry in 1 s"}
    assert r.headers["retry-after"] == "1"
    assert r.headers["ratelimit-remaining"] == "0"
    # one interval later, exactly one more
    time.sleep(1.05)
    assert s.request("GET", "/healthz").status == 200
    assert s.request("GET", "/healthz").status == 429


def test_notfound_limit_stops_code_scans(make_server):
    s = limited(make_server, "--notfound-rate", "5")
    code = s.create("https://example.com/real", alias="real-one")["code"]
    assert s.request("GET", "/" + code).status == 302
    for i in range(5):
        assert s.request("GET", f"/guess{i}").status == 404
    # now every code answers 429, found or not: a scan learns nothing more
    r = s.request("GET", "/" + code)
    assert r.status == 429 and r.json()["error"]["limit"] == "notfound"
    assert int(r.headers["retry-after"]) >= 1
    assert s.request("GET", "/guess99").status == 429
    assert metric(s, 'shortd_rate_limited_total{limiter="notfound"}') == 2


def test_valid_redirects_repay_the_404_budget(make_server):
    """Each live redirect of a client in 404 debt repays a tenth of a 404:
    an address with much valid traffic can mistype more."""
    s = limited(make_server, "--notfound-rate", "5")
    code = s.create("https://example.com/real", alias="real-one")["code"]
    for i in range(4):
        assert s.request("GET", f"/guess{i}").status == 404
    # one 404 left; ten redirects repay one more
    for _ in range(10):
        assert s.request("GET", "/" + code).status == 302
    assert [s.request("GET", f"/again{i}").status for i in range(3)] == [404, 404, 429]
    # blocked now: a code the cache holds is refused too, and costs nothing;
    # unknown ones add to the debt
    assert s.request("GET", "/" + code).status == 429
    r = s.request("GET", "/more-guessing")
    assert r.status == 429 and int(r.headers["retry-after"]) >= 12


def test_create_limit_per_user_key_and_not_for_admins(make_server):
    s = limited(make_server, "--create-rate", "3", "--create-burst", "3")
    alice = s.request("POST", "/api/v1/keys", json_body={"name": "a", "role": "user"}).json()["key"]
    bob = s.request("POST", "/api/v1/keys", json_body={"name": "b", "role": "user"}).json()["key"]
    remaining = []
    for i in range(3):
        r = s.request("POST", LINKS, json_body={"url": f"https://example.com/{i}"}, key=alice)
        assert r.status == 201, r
        remaining.append(r.headers["ratelimit-remaining"])
    assert remaining == ["2", "1", "0"]
    r = s.request("POST", LINKS, json_body={"url": "https://example.com/x"}, key=alice)
    assert r.status == 429 and r.json()["error"]["limit"] == "create"
    assert r.headers["ratelimit-limit"] == "3"
    assert int(r.headers["retry-after"]) == 20  # one create per 20 s
    # nothing was created by the refused request
    mine = s.request("GET", LINKS, key=alice).json()["links"]
    assert len(mine) == 3
    # other keys have their own budget; admin keys have none
    assert s.request("POST", LINKS, json_body={"url": "https://example.com/b"},
                     key=bob).status == 201
    for i in range(10):
        assert s.create(f"https://example.com/admin/{i}")
    assert metric(s, 'shortd_rate_limited_total{limiter="create"}') == 1


def test_anonymous_creates_have_a_stricter_per_ip_limit(make_server):
    s = limited(make_server, "--allow-anonymous", "1", "--anon-create-rate", "2",
                "--anon-create-burst", "2")
    for i in range(2):
        assert s.request("POST", LINKS, json_body={"url": f"https://example.com/{i}"},
                         key=False).status == 201
    r = s.request("POST", LINKS, json_body={"url": "https://example.com/3"}, key=False)
    assert r.status == 429 and r.json()["error"]["limit"] == "anon_create"


def test_forwarded_client_only_from_trusted_proxies(make_server):
    s = limited(make_server, "--notfound-rate", "2", "--trusted-proxies", "127.0.0.0/8, ::1")

    def miss(headers):
        return s.request("GET", "/nothing-here", headers=headers).status

    a = {"X-Forwarded-For": "198.51.100.7"}
    b = {"X-Forwarded-For": "198.51.100.8"}
    assert [miss(a), miss(a), miss(a)] == [404, 404, 429]
    assert miss(b) == 404
    # the rightmost untrusted address counts: a client cannot pick its own
    spoof = {"X-Forwarded-For": "203.0.113.1, 198.51.100.7"}
    assert miss(spoof) == 429
    # trusted hops on the right are skipped
    assert miss({"X-Forwarded-For": "198.51.100.7, 127.0.0.5"}) == 429
    # Forwarded (RFC 7239), IPv6 by /64
    f1 = {"Forwarded": 'for="[2001:db8::1]:4711";proto=https'}
    f2 = {"Forwarded": "for=192.0.2.60;by=203.0.113.43, for=\"[2001:db8::2]\""}
    assert [miss(f1), miss(f1), miss(f2)] == [404, 404, 429]


def test_forwarded_headers_ignored_without_trust(make_server):
    s = limited(make_server, "--notfound-rate", "2")
    for ip in ("198.51.100.7", "198.51.100.8"):
        s.request("GET", "/nothing-here", headers={"X-Forwarded-For": ip})
    r = s.request("GET", "/nothing-here", headers={"X-Forwarded-For": "198.51.100.9"})
    assert r.status == 429  # all three are 127.0.0.1


def test_limiter_memory_is_bounded(make_server):
    s = limited(make_server, "--notfound-rate", "1000", "--ratelimit-entries", "1024",
                "--trusted-proxies", "127.0.0.1")
    for i in range(3000):
        r = s.request("GET", "/nothing", headers={"X-Forwarded-For": f"10.{i >> 8}.{i & 255}.1"})
        assert r.status == 404
    held = metric(s, "shortd_rate_limit_clients")
    print(f"\n3000 clients with a debt, --ratelimit-entries 1024: {held:.0f} held")
    assert 0 < held <= 1024


def test_cors(make_server, tmp_path):
    off = make_server(data=str(tmp_path / "off"))  # one server per data directory
    r = off.request("GET", LINKS, headers={"Origin": "https://app.example"})
    assert r.status == 200 and "access-control-allow-origin" not in r.headers
    s = make_server("--cors-origins", "https://app.example, http://localhost:3000")
    pre = s.request("OPTIONS", LINKS, key=False, headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert pre.status == 204
    assert pre.headers["access-control-allow-origin"] == "https://app.example"
    assert "POST" in pre.headers["access-control-allow-methods"]
    assert "Authorization" in pre.headers["access-control-allow-headers"]
    assert "Idempotency-Key" in pre.headers["access-control-allow-headers"]
    assert pre.headers["vary"] == "Origin"
    r = s.request("GET", LINKS, headers={"Origin": "https://app.example"})
    assert r.headers["access-control-allow-origin"] == "https://app.example"
    assert "RateLimit-Remaining" in r.headers["access-control-expose-headers"]
    other = s.request("OPTIONS", LINKS, key=False, headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in other.headers
    r = s.request("GET", LINKS, headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers


def test_security_headers_on_json(server):
    for path in ("/api/v1/links", "/healthz", "/no-such-code"):
        r = server.request("GET", path)
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"


@pytest.mark.parametrize("args", [
    ["--trusted-proxies", "not-an-ip"],
    ["--trusted-proxies", "10.0.0.0/33"],
    ["--cors-origins", "ftp://x.example"],
    ["--cors-origins", "https://x.example/path"],
])
def test_bad_options_exit_2(tmp_path, args):
    r = subprocess.run([BIN, "--data", str(tmp_path / "d"), "--listen", "127.0.0.1:1", *args],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 2, r
    assert args[0] in r.stderr


def test_rate_limit_headers_on_api_answers_only(make_server):
    s = limited(make_server, "--ip-rate", "100", "--ip-burst", "100")
    code = s.create("https://example.com/h")["code"]
    assert "ratelimit-limit" in s.request("GET", LINKS).headers
    assert "ratelimit-limit" in s.request("GET", LINKS, key=False).headers  # even a 401
    assert "ratelimit-limit" not in s.request("GET", "/" + code).headers


def test_server_started_with_limits_keeps_working(tmp_path):
    # defaults as shipped: limits on, generous
    s = Server(tmp_path)
    s.DEFAULT_ARGS = []
    s.start()
    try:
        code = s.create("https://example.com/d")["code"]
        for _ in range(200):
            assert s.request("GET", "/" + code).status == 302
    finally:
        s.stop()


def get_from(port, source, path):
    """The status of GET path, sent from the address source (127.0.0.0/8
    all reaches the server)."""
    import socket
    with socket.socket() as sk:
        sk.settimeout(5)
        sk.bind((source, 0))
        sk.connect(("127.0.0.1", port))
        sk.sendall(b"GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % path.encode())
        head = b""
        while b"\r\n" not in head:
            chunk = sk.recv(4096)
            if not chunk:
                break
            head += chunk
        return int(head.split(b" ", 2)[1])


@pytest.mark.sqlite_only
def test_shared_address_served_while_a_scanner_is_blocked(make_server):
    """With the default 404 budget (30 a minute per address): 500 people
    behind one address, each following a link a minute and one in 20
    mistyping it, are all served for a minute and more, while a scanner
    asking for 1,000 unknown codes a minute from another address is blocked
    within its first minute and stays blocked while it scans."""
    import random
    import threading
    s = limited(make_server, "--notfound-rate", "30", "--ip-rate", "1000", "--ip-burst", "2000")
    codes = [s.create(f"https://example.com/{i}", alias=f"link-{i}")["code"] for i in range(50)]
    seconds = 65
    start = time.monotonic() + 0.5
    office, scanner = [], []

    def visitors():
        rng = random.Random(7)
        n = int(500 * seconds / 60)
        for i in range(n):
            at = start + i * 60 / 500
            time.sleep(max(0.0, at - time.monotonic()))
            typo = rng.random() < 1 / 20
            path = "/" + (f"lnk-{rng.randrange(50)}" if typo else rng.choice(codes))
            office.append((typo, get_from(s.port, "127.0.0.2", path)))

    def scan():
        rng = random.Random(11)
        n = int(1000 * seconds / 60)
        for i in range(n):
            at = start + i * 60 / 1000
            time.sleep(max(0.0, at - time.monotonic()))
            code = "".join(rng.choice("abcdefghijkmnopqrstuvwxyz23456789") for _ in range(7))
            scanner.append((time.monotonic() - start, get_from(s.port, "127.0.0.3", "/" + code)))

    threads = [threading.Thread(target=visitors), threading.Thread(target=scan)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    typos = [st for typo, st in office if typo]
    good = [st for typo, st in office if not typo]
    print(f"\noffice: {len(good)} links followed, {len(typos)} mistyped; scanner: {len(scanner)} "
          f"codes, the first 429 after {next(t for t, st in scanner if st == 429):.1f} s")
    assert len(good) > 500 and len(typos) >= 15
    assert set(good) == {302}, [st for st in good if st != 302][:5]
    assert set(typos) == {404}
    first = next(i for i, (t, st) in enumerate(scanner) if st == 429)
    assert scanner[first][0] < 60
    assert all(st == 429 for _, st in scanner[first:]), "the scanner got through again"
    assert all(st == 404 for _, st in scanner[:first])
    assert first <= 31
