"""Requests that wait for a store read (app/request.h): the answers of a
pipelined batch stay in request order while an early request waits, a
client that leaves while its request waits costs nothing (and frees it
exactly once: the sanitized run checks), concurrent misses of one code on
both workers make one read and are all answered by it, and a failed read
answers 503 to every request that waited for it.

With the DELAYED_READS build (make blackbox-delayed, and the
sanitized-and-delayed run of make sanitize) every read waits on the loop,
as it would on a network store; with the release build these tests run
too and reads answer at once. The single-flight tests need reads that
wait, and run on the delayed build only."""
import os
import re
import socket
import threading

import pytest

from conftest import FAULT_BIN, Server, parse_responses, read_all

DELAYED = os.environ.get("SHORTD_DELAYED") == "1"
needs_delay = pytest.mark.skipif(not DELAYED, reason="reads answer at once in this build")


def scrape(s):
    r = s.request("GET", "/metrics")
    out = {}
    for line in r.body.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def test_pipelined_answers_keep_request_order(make_server):
    s = make_server()
    link = s.create("https://example.com/pipelined")
    key = s.key.encode()
    reqs = []
    # unknown codes and API reads wait for the store; /healthz and a
    # cached link could be answered at once
    plan = [(b"GET /nosuch-a", 404), (b"GET /healthz", 200),
            (b"GET /" + link["code"].encode(), 302), (b"GET /nosuch-b", 404),
            (b"GET /api/v1/links/" + link["code"].encode(), 200), (b"GET /healthz", 200),
            (b"GET /api/v1/links/nosuch-c", 404), (b"GET /nosuch-d", 404)]
    for i, (line, _) in enumerate(plan):
        reqs.append(line + b" HTTP/1.1\r\nHost: t\r\nX-Request-Id: req-%d\r\n"
                    b"Authorization: Bearer " % i + key + b"\r\n\r\n")
    for _ in range(3):
        got = parse_responses(s.raw(b"".join(reqs), timeout=2))
        assert [st for st, _, _ in got] == [want for _, want in plan]
        assert [h["x-request-id"] for _, h, _ in got] == [f"req-{i}" for i in range(len(plan))]


def test_client_gone_while_its_request_waits(make_server):
    s = make_server()
    link = s.create("https://example.com/gone")
    key = s.key.encode()
    for i in range(200):
        with socket.create_connection(("127.0.0.1", s.port)) as c:
            waits = [b"GET /gone-%d HTTP/1.1\r\nHost: t\r\n\r\n" % i,
                     b"GET /api/v1/links/%s HTTP/1.1\r\nHost: t\r\n"
                     b"Authorization: Bearer %s\r\n\r\n" % (link["code"].encode(), key),
                     b"POST /api/v1/links HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                     b"Authorization: Bearer %s\r\nContent-Length: 35\r\n\r\n"
                     b'{"url":"https://example.com/g%04d"}' % (key, i % 10000)]
            # one waiting request, or one with more behind it, then gone
            c.sendall(waits[i % 3] * (1 + i % 2))
            if i % 4 == 0:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    assert s.request("GET", "/healthz").status == 200
    assert s.request("GET", "/" + link["code"]).status == 302
    assert s.stop() == 0  # and, sanitized, no report


def code_loads(s):
    return scrape(s).get("shortd_cache_loads_total", 0)


@pytest.mark.sqlite_only
@needs_delay
def test_concurrent_misses_share_one_read(tmp_path):
    # a slow store: every read takes 300 ms
    s = Server(tmp_path, env={"SHORTD_READ_DELAY_US": "300000"}).start()
    try:
        s.create("https://example.com/hot", alias="hot-new")
        # the create cached it: drop it by restarting (the cache is memory)
        s.stop()
        s.start()
        loads = code_loads(s)
        results = []

        def fetch():
            with socket.create_connection(("127.0.0.1", s.port), timeout=10) as c:
                c.sendall(b"GET /hot-new HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                results.append(read_all(c, 10))

        threads = [threading.Thread(target=fetch) for _ in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for body in results:
            st, h, _ = parse_responses(body)[0]
            assert st == 302 and h["location"] == "https://example.com/hot"
        m = scrape(s)
        # one read for all 24 (the others were cache hits once it was in, or
        # waited for it): no worker blocked meanwhile, both served
        assert code_loads(s) - loads == 1, m
        assert m["shortd_cache_waits_total"] >= 1, m
    finally:
        s.stop()


@pytest.mark.sqlite_only
@needs_delay
def test_failed_read_fails_every_waiter(tmp_path):
    faults = tmp_path / "faults"
    faults.write_text("")
    s = Server(tmp_path, "--negative-ttl-s", "0", binary=FAULT_BIN,
               env={"SHORTD_READ_DELAY_US": "300000", "SHORTD_FAULT_FILE": str(faults)}).start()
    try:
        s.create("https://example.com/down", alias="down-1")
        s.stop()
        s.start()
        loads = code_loads(s)
        # the scrape's reads are done; the next read fails
        tmp = tmp_path / "faults.tmp"
        tmp.write_text("read 1 once\n")
        os.replace(tmp, faults)
        results = []

        def fetch():
            with socket.create_connection(("127.0.0.1", s.port), timeout=10) as c:
                c.sendall(b"GET /down-1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                results.append(read_all(c, 10))

        threads = [threading.Thread(target=fetch) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        statuses = [parse_responses(b)[0][0] for b in results]
        assert statuses == [503] * 12, statuses
        assert code_loads(s) - loads == 1
        # nothing was cached: the next request reads again, and succeeds
        r = s.request("GET", "/down-1")
        assert r.status == 302 and r.headers["location"] == "https://example.com/down"
    finally:
        s.stop()
