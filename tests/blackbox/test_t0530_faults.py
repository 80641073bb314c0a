"""Fault injection (a build with -DSHORTD_FAULTS; see src/core/fault.h).

The store's Nth write, fsync or COMMIT fails, N stepped 1, 2, 3, ..., once
(transient) and for ever (persistent, until the fault is cleared); and the
Nth allocation on the request path fails. Each affected request gets 503
(507 for an injected ENOSPC) with a clear error code, nothing acknowledged
is lost, nothing refused exists half-written, and the service recovers on
its own when the fault clears."""
import http.client
import os
import sqlite3
import time

import pytest

from conftest import FAULT_BIN, Server

pytestmark = pytest.mark.skipif(
    not FAULT_BIN, reason="needs a fault build: make FAULTS=1, then SHORTD_FAULT_BIN")


BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"}


class Faults:
    """The control file shortd reads again whenever it changes."""

    def __init__(self, path):
        self.path = str(path)

    def set(self, text):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, self.path)  # a new inode: always seen as a change

    def clear(self):
        self.set("")


def fault_server(tmp_path, *args, data=None):
    faults = Faults(tmp_path / "faults")
    faults.clear()
    s = Server(tmp_path, "--geoip", "off", *args, binary=FAULT_BIN, data=data,
               env={"SHORTD_FAULT_FILE": faults.path}).start()
    return s, faults


def verify_store(tmp_path, s, acked, refused):
    """Restarts s; every acknowledged link is there with its exact target;
    a refused one is absent or whole. Returns the number of phantoms."""
    s.stop()
    if s.backend == "sqlite":
        db = sqlite3.connect(os.path.join(s.data, "shortd.db"))
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        db.close()
    rows = dict(s.rows("SELECT code, url FROM links WHERE deleted_at IS NULL"))
    for code, url in acked.items():
        assert rows.get(code) == url, f"acknowledged link {code} lost"
    phantoms = 0
    for code, url in refused.items():
        if code in rows:
            assert rows[code] == url, f"refused link {code} stored half-written"
            phantoms += 1
    s.start()
    for code, url in list(acked.items())[:20]:
        r = s.request("GET", "/" + code)
        assert r.status in (301, 302, 307, 308) and r.headers["location"] == url
    return phantoms


@pytest.mark.parametrize("point", ["write", "sync", "commit"])
def test_transient_store_faults_stepped(tmp_path, point, backend):
    if backend == "pg" and point != "commit":
        pytest.skip("SQLite's own writes and syncs")
    s, faults = fault_server(tmp_path, "--analytics", "0")
    acked, refused, failures = {}, {}, 0
    try:
        for n in range(1, 9):
            faults.set(f"{point} {n} once")
            # every create makes at least one write, sync and commit, so
            # the Nth fails within N creates
            for i in range(n):
                code = f"{point}-{n}-{i}"
                url = f"https://example.com/{point}/{n}/{i}"
                r = s.request("POST", "/api/v1/links", json_body={"url": url, "alias": code})
                if r.status == 201:
                    acked[code] = url
                else:
                    assert r.status == 503, r
                    assert r.json()["error"]["code"] == "store_unavailable"
                    refused[code] = url
                    failures += 1
                    break
            else:
                raise AssertionError(f"{point} {n} once: no create failed")
            # a transient fault clears itself: the next create succeeds
            code = f"{point}-{n}-after"
            r = s.request("POST", "/api/v1/links",
                          json_body={"url": "https://example.com/after", "alias": code})
            assert r.status == 201, r
            acked[code] = "https://example.com/after"
            assert s.request("GET", "/readyz").status == 200
        faults.clear()
        assert failures == 8
        phantoms = verify_store(tmp_path, s, acked, refused)
        print(f"\n{point}: {len(acked)} acknowledged, {failures} refused with 503, "
              f"0 lost, {phantoms} phantom")
    finally:
        s.stop()


@pytest.mark.parametrize("rule,status,code", [
    ("write 1 always", 503, "store_unavailable"),
    ("sync 1 always", 503, "store_unavailable"),
    ("commit 1 always", 503, "store_unavailable"),
    ("write 1 always enospc", 507, "insufficient_storage"),
])
def test_persistent_store_fault_and_recovery(tmp_path, rule, status, code, backend):
    if backend == "pg" and not rule.startswith("commit"):
        pytest.skip("SQLite's own writes and syncs")
    s, faults = fault_server(tmp_path, "--flush-ms", "100")
    try:
        before = {}
        for i in range(20):
            url = f"https://example.com/before/{i}"
            before[s.create(url, alias=f"before-{i}")["code"]] = url
        faults.set(rule)
        refused = {}
        for i in range(10):
            url = f"https://example.com/during/{i}"
            r = s.request("POST", "/api/v1/links", json_body={"url": url, "alias": f"during-{i}"})
            assert r.status == status, r
            assert r.json()["error"]["code"] == code
            refused[f"during-{i}"] = url
        assert s.request("GET", "/readyz").status == 503
        # reads go on: redirects and API reads of existing links
        for c, url in before.items():
            r = s.request("GET", "/" + c, headers=BROWSER)
            assert r.status == 302 and r.headers["location"] == url
        assert s.request("GET", "/api/v1/links/before-3").status == 200
        faults.clear()
        r = s.request("POST", "/api/v1/links",
                      json_body={"url": "https://example.com/after", "alias": "after"})
        assert r.status == 201, r
        before["after"] = "https://example.com/after"
        assert s.request("GET", "/readyz").status == 200
        # the clicks made while the store failed were kept and flushed later
        s.request("GET", "/before-0", headers=BROWSER)
        stats = s.request("GET", "/api/v1/links/before-0/stats").json()
        assert stats["total"] == 2, stats
        phantoms = verify_store(tmp_path, s, before, refused)
        stats = s.request("GET", "/api/v1/links/before-0/stats").json()
        assert stats["total"] == 2, stats
        print(f"\n{rule}: {len(refused)} refused with {status}, 0 lost, {phantoms} phantom")
    finally:
        s.stop()


def attempt_create(s, i, escaped=False):
    """One create on a fresh connection: its status, or 'closed'. With
    escaped, the URL is written with escaped slashes, so that jansson parses
    the body rather than the reader of flat bodies."""
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
    body = b'{"url":"https:\\/\\/example.com/oom/%d"}' if escaped else b'{"url":"https://example.com/oom/%d"}'
    try:
        conn.request("POST", "/api/v1/links", body=body % i,
                     headers={"Content-Type": "application/json",
                              "Authorization": "Bearer " + s.key})
        r = conn.getresponse()
        body = r.read()
        return r.status, body
    except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
        return "closed", b""
    finally:
        conn.close()


def test_allocation_failures_on_the_request_path(tmp_path):
    # the code map's builder allocates on a thread of its own (not on the
    # request path) soon after the start, and would take a fault meant for
    # a create
    s, faults = fault_server(tmp_path, "--code-map", "0")
    try:
        # the start-up probe's connection, accepted late, would take the
        # first fault: wait until it is gone (only the asking one is open)
        for _ in range(200):
            m = s.request("GET", "/metrics").body.decode()
            if "\nshortd_http_connections_open 1\n" in m:
                break
            time.sleep(0.01)
        outcomes = {False: {}, True: {}}
        for escaped in (False, True):
            for n in range(1, 41):
                faults.set(f"alloc {n} once")
                status, body = attempt_create(s, n + 1000 * escaped, escaped)
                outcomes[escaped][status] = outcomes[escaped].get(status, 0) + 1
                assert status in (201, 503, "closed"), (n, status, body)
                if status == 503:
                    assert b'"out_of_memory"' in body, body
                # the failure touched one request only (a fault that did not
                # fire within this create is cleared first)
                faults.clear()
                assert s.request("GET", "/healthz").status == 200
        faults.set("alloc 1 always")
        assert attempt_create(s, 100)[0] in (503, "closed")
        faults.clear()
        assert attempt_create(s, 101)[0] == 201
        print(f"\nallocation failure at steps 1..40: flat body {outcomes[False]},"
              f" escaped body {outcomes[True]}")
        # jansson's parse does not fail (util.c, json_parse), so both bodies
        # fail at the same four steps: the connection (503, or closed when
        # the refusal's reset overtakes it), its input buffer (closed), the
        # answer's body and its Location (503); a waiting request's state
        # lives in its connection's memory (app/request.h), so there is no
        # allocation for the write itself
        for body in outcomes.values():
            assert body.get(503, 0) >= 2 and body.get(201, 0) >= 1
            assert body.get(503, 0) + body.get("closed", 0) >= 4
        assert s.proc.poll() is None
    finally:
        assert s.stop() == 0
