"""Live clicks as server-sent events: GET /api/v1/links/{code}/events.
Clicks reach a stream through the aggregator within a couple of seconds;
streams are bounded in all and per key, freed when the client leaves,
and ended cleanly when the server shuts down."""
import json
import signal
import socket
import time

from conftest import Server

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"


class Stream:
    def __init__(self, server, code, key=None, headers=None):
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        h = {"Host": "t", "Accept": "text/event-stream"}
        if key is not False:
            h["Authorization"] = "Bearer " + (key or server.key)
        h.update(headers or {})
        req = f"GET /api/v1/links/{code}/events HTTP/1.1\r\n" + \
            "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
        self.sock.sendall(req.encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            assert chunk, self.buf
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines[1:]}

    def body(self):
        """The rest of a non-stream answer."""
        n = int(self.headers.get("content-length", 0))
        while len(self.buf) < n:
            self.buf += self.sock.recv(4096)
        return json.loads(self.buf[:n])

    def event(self, timeout=5):
        """The next block ("event: x\\ndata: y" or a ":" comment): (name, data)."""
        deadline = time.monotonic() + timeout
        while b"\n\n" not in self.buf:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = self.sock.recv(4096)
            if not chunk:
                return None  # the server closed the stream
            self.buf += chunk
        block, self.buf = self.buf.split(b"\n\n", 1)
        name, data = None, None
        for line in block.decode().split("\n"):
            if line.startswith(":"):
                name = name or ":"
            elif line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
            elif line.startswith("retry: "):
                name = name or "retry"
        return name, data

    def next_named(self, name, timeout=5):
        deadline = time.monotonic() + timeout
        while True:
            ev = self.event(max(0.01, deadline - time.monotonic()))
            assert ev is not None, "stream closed"
            if ev[0] == name:
                return ev[1]

    def close(self):
        self.sock.close()


def open_streams(server):
    for line in server.request("GET", "/metrics").body.decode().splitlines():
        if line.startswith("shortd_sse_streams_open "):
            return int(line.split()[1])
    raise AssertionError("no shortd_sse_streams_open")


def test_clicks_arrive_live(make_server):
    s = make_server("--sse-heartbeat-s", "1")
    s.create("https://example.com/live", alias="live-1")
    st = Stream(s, "live-1")
    assert st.status == 200
    assert st.headers["content-type"].startswith("text/event-stream")
    assert "content-length" not in st.headers and st.headers["cache-control"] == "no-cache"
    assert st.next_named("ready") == {"code": "live-1"}
    t0 = time.monotonic()
    s.request("GET", "/live-1", headers={"User-Agent": FIREFOX}, key=False)
    assert st.next_named("click", timeout=2) == {"clicks": 1, "bots": 0}
    assert time.monotonic() - t0 < 2
    s.request("GET", "/live-1", headers={"User-Agent": "curl/8.0"}, key=False)  # a bot
    s.request("HEAD", "/live-1", headers={"User-Agent": FIREFOX}, key=False)    # no click
    s.request("GET", "/live-1", headers={"User-Agent": FIREFOX}, key=False)
    got = st.next_named("click", timeout=2)
    while got != {"clicks": 2, "bots": 1}:
        got = st.next_named("click", timeout=2)
    # nothing new: a heartbeat comment within a second or two
    assert st.next_named(":", timeout=3) is None
    st.close()


def test_who_may_watch(make_server):
    s = make_server()
    s.create("https://example.com/w", alias="live-admin")
    user = s.request("POST", "/api/v1/keys", json_body={"name": "u", "role": "user"}).json()
    st = Stream(s, "live-admin", key=False)
    assert st.status == 401
    st.close()
    st = Stream(s, "live-admin", key=user["key"])
    assert st.status == 404 and st.body()["error"]["code"] == "not_found"
    st.close()
    # a browser's session cookie will do (EventSource sends it)
    r = s.request("POST", "/api/v1/session", json_body={"key": s.key}, key=False,
                  headers={"X-Shortd-CSRF": "1"})
    token = r.headers["set-cookie"].split(";")[0].split("=", 1)[1]
    st = Stream(s, "live-admin", key=False, headers={"Cookie": "shortd_session=" + token})
    assert st.status == 200 and st.next_named("ready")
    st.close()
    assert s.request("DELETE", "/api/v1/links/live-admin").status == 204
    st = Stream(s, "live-admin")
    assert st.status == 410
    st.close()


def test_limits_and_release(make_server):
    s = make_server("--sse-per-key", "2", "--sse-max", "3")
    s.create("https://example.com/l", alias="live-lim")
    user = s.request("POST", "/api/v1/keys", json_body={"name": "u", "role": "user"}).json()
    s.request("POST", "/api/v1/links", json_body={"url": "https://example.com/u", "alias": "live-u"},
              key=user["key"])
    a, b = Stream(s, "live-lim"), Stream(s, "live-lim")
    assert a.status == b.status == 200
    c = Stream(s, "live-lim")
    assert c.status == 429 and c.body()["error"]["code"] == "too_many_streams"
    c.close()
    u1 = Stream(s, "live-u", key=user["key"])
    assert u1.status == 200
    u2 = Stream(s, "live-u", key=user["key"])
    assert u2.status == 503 and u2.body()["error"]["code"] == "too_many_streams"
    u2.close()
    assert open_streams(s) == 3
    # a client that leaves frees its place at once
    a.close()
    deadline = time.monotonic() + 5
    while open_streams(s) != 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    u2 = Stream(s, "live-u", key=user["key"])
    assert u2.status == 200
    for st in (b, u1, u2):
        st.close()


def test_shutdown_ends_streams(tmp_path):
    s = Server(tmp_path).start()
    s.create("https://example.com/end", alias="live-end")
    streams = [Stream(s, "live-end") for _ in range(3)]
    for st in streams:
        assert st.next_named("ready")
    t0 = time.monotonic()
    s.proc.send_signal(signal.SIGTERM)
    for st in streams:  # each stream ends: EOF, not a hang
        while st.event(timeout=10) is not None:
            pass
        st.close()
    assert s.proc.wait(timeout=20) == 0
    assert time.monotonic() - t0 < 15
    s.stop()
