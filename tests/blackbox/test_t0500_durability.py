"""Durability and lifecycle: every acknowledged link survives kill -9;
SIGTERM drains in-flight requests and exits 0."""
import concurrent.futures
import json
import os
import re
import signal
import socket
import sqlite3
import threading
import time

import pytest

from conftest import ROOT, Server, parse_responses, read_all


def create_many(server, n, workers=16, prefix="crash"):
    """Creates n links concurrently; returns {code: url} of the 201s."""
    acked = {}
    lock = threading.Lock()

    def one(i):
        url = f"https://example.com/{prefix}/{i}"
        try:
            r = server.request("POST", "/api/v1/links", json_body={"url": url}, timeout=10)
        except OSError:
            return
        if r.status == 201:
            with lock:
                acked[r.json()["code"]] = url

    with concurrent.futures.ThreadPoolExecutor(workers) as ex:
        list(ex.map(one, range(n)))
    return acked


def test_kill9_right_after_201s_loses_nothing(tmp_path):
    s = Server(tmp_path).start()
    acked = create_many(s, 400)
    assert len(acked) == 400
    s.kill()  # SIGKILL at once: no drain, no checkpoint
    s2 = Server(tmp_path, data=s.data).start()
    try:
        for code, url in acked.items():
            r = s2.request("GET", "/" + code)
            assert r.status == 302 and r.headers["location"] == url, code
    finally:
        assert s2.stop() == 0


@pytest.mark.sqlite_only
def test_kill9_during_creates(tmp_path):
    """kill -9 while creates are in flight: every 201 survives, and the
    database is intact."""
    s = Server(tmp_path).start()
    acked = {}
    stop = threading.Event()

    def writer(k):
        i = 0
        while not stop.is_set():
            url = f"https://example.com/w{k}/{i}"
            i += 1
            try:
                r = s.request("POST", "/api/v1/links", json_body={"url": url}, timeout=5)
            except OSError:
                return
            if r.status == 201:
                acked[r.json()["code"]] = url

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    s.kill()
    stop.set()
    for t in threads:
        t.join()
    assert len(acked) > 50
    db = sqlite3.connect(os.path.join(s.data, "shortd.db"))
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = dict(db.execute("SELECT code, url FROM links").fetchall())
    db.close()
    for code, url in acked.items():
        assert rows.get(code) == url, code


def test_sigterm_drains_in_flight_and_exits_0(tmp_path):
    s = Server(tmp_path, "--drain-s", "5").start()
    code = s.create("https://example.com/drain")["code"]
    # A request whose body is still arriving when SIGTERM comes must be served.
    body = json.dumps({"url": "https://example.com/late"}).encode()
    c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
    c.sendall(s.auth(b"POST /api/v1/links HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body)) + body[:10])
    idle = socket.create_connection(("127.0.0.1", s.port), timeout=5)
    idle.sendall(f"GET /{code} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    time.sleep(0.2)
    assert idle.recv(4096).startswith(b"HTTP/1.1 302")
    s.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    # the idle keep-alive connection was closed, new connections are refused
    assert read_all(idle, 2) == b""
    try:
        socket.create_connection(("127.0.0.1", s.port), timeout=1).close()
        refused = False
    except OSError:
        refused = True
    assert refused
    c.sendall(body[10:])
    resps = parse_responses(read_all(c, 5))
    assert resps[0][0] == 201 and resps[0][1]["connection"] == "close"
    late = json.loads(resps[0][2])["code"]
    assert s.proc.wait(10) == 0
    assert "shut down cleanly" in s.log()
    s2 = Server(tmp_path, data=s.data).start()
    try:
        assert s2.request("GET", "/" + late).status == 302
    finally:
        s2.stop()


def test_drain_timeout_closes_stragglers(tmp_path):
    s = Server(tmp_path, "--drain-s", "1").start()
    c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
    c.sendall(b"POST /api/v1/links HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{")
    time.sleep(0.1)
    t0 = time.monotonic()
    s.proc.send_signal(signal.SIGTERM)
    assert s.proc.wait(10) == 0
    assert time.monotonic() - t0 < 5
    assert "drain time over" in s.log()
    c.close()


@pytest.mark.sqlite_only
def test_restart_keeps_schema_and_data(tmp_path):
    s = Server(tmp_path).start()
    s.create("https://example.com/keep", alias="keepme")
    assert s.stop() == 0
    s2 = Server(tmp_path, data=s.data).start()
    try:
        assert s2.request("GET", "/keepme").headers["location"] == "https://example.com/keep"
        assert "applied database migration" not in s2.log().split("listening")[-1]
    finally:
        s2.stop()
    db = sqlite3.connect(os.path.join(s.data, "shortd.db"))
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    schema = open(os.path.join(ROOT, "src/store/schema_sqlite.sql")).read()
    latest = max(int(n) for n in re.findall(r"^-- migration (\d+)$", schema, re.M))
    assert db.execute("PRAGMA user_version").fetchone()[0] == latest
    db.close()
