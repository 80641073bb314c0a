"""Observability: /metrics is valid Prometheus text and moves as expected,
--metrics-listen, /healthz and /readyz (503 while draining), X-Request-Id,
the access log, and JSON log lines."""
import http.client
import json
import re
import signal
import socket
import time

from conftest import Server, free_port, parse_responses, read_all

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*"'
                    r'(,[a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*")*)\})? (-?[0-9.e+-]+|\+Inf|NaN)$')


def parse_prometheus(text):
    """Validates the text exposition format; returns {(name, labels): value}."""
    assert text.endswith("\n")
    samples, types, helped = {}, {}, set()
    for line in text.rstrip("\n").split("\n"):
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            assert name not in helped, f"second HELP for {name}"
            helped.add(name)
            continue
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ")
            assert typ in ("counter", "gauge", "histogram", "summary", "untyped")
            assert name not in types, f"second TYPE for {name}"
            types[name] = typ
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        name, labels, value = m.group(1), m.group(3) or "", m.group(5)
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in types or base in types, f"sample without TYPE: {line}"
        key = (name, labels)
        assert key not in samples, f"duplicate sample {key}"
        samples[key] = float(value)
    # histograms: cumulative buckets, +Inf equals _count
    for name, typ in types.items():
        if typ != "histogram":
            continue
        series = {}
        for (n, labels), v in samples.items():
            if n == name + "_bucket":
                le = re.search(r'(?:^|,)le="([^"]+)"', labels).group(1)
                rest = re.sub(r',?(?<![a-z_])le="[^"]+"', "", labels)
                series.setdefault(rest, []).append((float(le), v))
        for rest, buckets in series.items():
            buckets.sort()
            values = [v for _, v in buckets]
            assert values == sorted(values), f"{name}{{{rest}}} buckets not cumulative"
            assert buckets[-1][0] == float("inf")
            assert samples[(name + "_count", rest)] == values[-1]
    return samples


def metric(samples, name, labels=""):
    return samples.get((name, labels), 0.0)


def scrape(s, port=None):
    """Parsed /metrics of server s, or of the listener on port."""
    conn = http.client.HTTPConnection("127.0.0.1", port or s.port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        r = conn.getresponse()
        body = r.read()
    finally:
        conn.close()
    assert r.status == 200
    assert r.getheader("Content-Type").startswith("text/plain; version=0.0.4")
    return parse_prometheus(body.decode())


def test_metrics_valid_and_moving(make_server):
    s = make_server("--geoip", "off")
    code = s.create()["code"]
    before = scrape(s)
    for _ in range(7):
        assert s.request("GET", "/" + code).status == 302
    for _ in range(2):
        assert s.request("GET", "/unknown-code").status == 404
    s.raw(b"GET / HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n")
    after = scrape(s)
    red = 'route="redirect",status="302"'
    assert metric(after, "shortd_http_requests_total", red) - \
        metric(before, "shortd_http_requests_total", red) == 7
    assert metric(after, "shortd_http_requests_total", 'route="redirect",status="404"') == 2
    assert metric(after, "shortd_http_request_duration_seconds_count", 'route="redirect"') >= 9
    assert metric(after, "shortd_cache_hits_total") - metric(before, "shortd_cache_hits_total") >= 6
    assert metric(after, "shortd_cache_misses_total") >= 1
    assert metric(after, "shortd_clicks_recorded_total") == 7
    assert metric(after, "shortd_http_protocol_errors_total", 'status="400"') == 1
    assert metric(after, "shortd_store_commit_batch_size_count") >= 1
    assert metric(after, "shortd_store_commits_total") >= 1
    assert metric(after, "shortd_http_connections_open") >= 1
    assert metric(after, "shortd_build_info", 'version="0.1.0"') == 1
    assert metric(after, "shortd_store_writable") == 1
    assert metric(after, "shortd_draining") == 0


def test_metrics_listen_separate(make_server):
    mport = free_port()
    s = make_server("--metrics-listen", f"127.0.0.1:{mport}")
    deadline = time.monotonic() + 5
    while True:
        try:
            socket.create_connection(("127.0.0.1", mport), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    samples = scrape(s, mport)
    assert ("shortd_build_info", 'version="0.1.0"') in samples
    # not on the public listener any more
    assert s.request("GET", "/metrics").status == 404
    assert s.stop() == 0


def test_health_and_readiness_during_drain(tmp_path):
    s = Server(tmp_path, "--drain-s", "5").start()
    assert s.request("GET", "/healthz").json() == {"status": "ok"}
    assert s.request("GET", "/readyz").json() == {"status": "ready"}
    c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
    c.sendall(b"GET /readyz HTTP/1.1\r\nHost: t\r\n")  # in flight across SIGTERM
    time.sleep(0.1)
    s.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    c.sendall(b"\r\n")
    resp = parse_responses(read_all(c, 5))[0]
    assert resp[0] == 503
    assert json.loads(resp[2])["error"]["code"] == "not_ready"
    assert s.proc.wait(10) == 0


def test_request_ids(server, tmp_path):
    ids = set()
    for path in ["/healthz", "/nope", "/api/v1/links"]:
        r = server.request("GET", path)
        rid = r.headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{16}", rid)
        ids.add(rid)
    assert len(ids) == 3
    r = server.request("GET", "/healthz", headers={"X-Request-Id": "trace-123.abc:7"})
    assert r.headers["x-request-id"] == "trace-123.abc:7"
    for bad in ["has space", "x" * 65, "semi;colon", "quote\"d"]:
        r = server.request("GET", "/healthz", headers={"X-Request-Id": bad})
        assert re.fullmatch(r"[0-9a-f]{16}", r.headers["x-request-id"]), bad
    # errors from the HTTP layer carry one too
    data = server.raw(b"GET / HTTP/1.1\r\nHost: t\r\nX: a\r\n folded\r\n\r\n")
    assert re.search(rb"X-Request-Id: [0-9a-f]{16}\r\n", data)


def test_access_log(make_server, tmp_path):
    path = tmp_path / "access.log"
    s = make_server("--access-log", str(path))
    code = s.create("https://example.com/logged")["code"]
    s.request("GET", "/" + code, headers={"User-Agent": 'UA with "quotes"', "Referer": "https://r.example/",
                                          "X-Request-Id": "req-42"})
    s.raw(b"BREW /pot HTTP/1.1\r\nHost: t\r\n\r\n")
    assert s.stop() == 0
    lines = [json.loads(l) for l in path.read_text().splitlines()]
    assert len(lines) == 3
    # each worker has its own buffer: lines of different workers may be
    # written in any order
    by_status = {l["status"]: l for l in lines}
    create, redirect, brew = by_status[201], by_status[302], by_status[501]
    assert create["method"] == "POST" and create["status"] == 201 and create["path"] == "/api/v1/links"
    assert redirect == {**redirect, "request_id": "req-42", "method": "GET", "path": "/" + code,
                        "status": 302, "ua": 'UA with "quotes"', "referer": "https://r.example/",
                        "ip": "127.0.0.1", "bytes": 0}
    assert isinstance(redirect["duration_us"], int)
    assert brew["status"] == 501 and brew["method"] == "-"


def test_no_access_log_by_default(server, tmp_path):
    server.request("GET", "/healthz")
    assert not any(p.name.endswith(".log") and "access" in p.name for p in tmp_path.iterdir())


def test_logs_are_json_lines(tmp_path):
    s = Server(tmp_path, "--log-level", "debug").start()
    s.request("GET", "/healthz")
    assert s.stop() == 0
    lines = [l for l in s.log().splitlines() if l.strip()]
    assert lines
    for line in lines:
        j = json.loads(line)
        assert j["level"] in ("error", "warn", "info", "debug")
        assert "ts" in j and "msg" in j
