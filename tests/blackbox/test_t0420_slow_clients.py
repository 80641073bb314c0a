"""Slow and many clients: 1,000 slow connections (slow headers and slow
bodies) while normal clients keep being answered, and slow readers; the
header and send timeouts close the slow ones; connection floods beyond the
cap get 503 at once; memory stays bounded."""
import os
import resource
import select
import selectors
import socket
import threading
import time

from conftest import SANITIZED, Server

# this process holds 1,000 sockets too
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if _soft < 4096 <= _hard or (_soft < 4096 and _hard == resource.RLIM_INFINITY):
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, _hard))

REDIRECT = b"GET /slow-target HTTP/1.1\r\nHost: t\r\n\r\n"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def metric(s, name):
    for line in s.request("GET", "/metrics").body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


class NormalClient(threading.Thread):
    """Redirects on fresh connections until stopped; counts the answers."""

    def __init__(self, server):
        super().__init__(daemon=True)
        self.server = server
        self.ok = self.failed = 0
        self.errors = []
        self.stop_event = threading.Event()

    def run(self):
        while not self.stop_event.is_set():
            try:
                r = self.server.request("GET", "/slow-target", timeout=5)
                if r.status == 302:
                    self.ok += 1
                else:
                    self.failed += 1
                    self.errors.append(r.status)
            except OSError as e:
                self.failed += 1
                self.errors.append(repr(e))
            time.sleep(0.01)

    def finish(self):
        self.stop_event.set()
        self.join()


def connect_many(port, n, first=b"", rcvbuf=None):
    socks = []
    for _ in range(n):
        s = socket.socket()
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.connect(("127.0.0.1", port))
        if first:
            s.sendall(first)
        s.setblocking(False)
        socks.append(s)
    return socks


def drip_until_closed(groups, drip_every, deadline_s):
    """Sends each group's drip bytes every drip_every seconds and reads
    whatever comes back until every socket is closed by the server (or
    the deadline passes). Returns {socket: bytes received}."""
    sel = selectors.DefaultSelector()
    got = {}
    for socks, _ in groups:
        for s in socks:
            sel.register(s, selectors.EVENT_READ)
            got[s] = b""
    open_socks = set(got)
    end = time.monotonic() + deadline_s
    next_drip = time.monotonic()
    while open_socks and time.monotonic() < end:
        if time.monotonic() >= next_drip:
            for socks, drip in groups:
                if not drip:
                    continue
                for s in socks:
                    if s in open_socks:
                        try:
                            s.send(drip)
                        except OSError:
                            pass
            next_drip += drip_every
        for key, _ in sel.select(timeout=0.05):
            s = key.fileobj
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data:
                got[s] += data
            else:
                sel.unregister(s)
                open_socks.discard(s)
    sel.close()
    return got, open_socks


def test_1000_slow_headers_and_bodies(tmp_path):
    s = Server(tmp_path, "--header-timeout-s", "4", "--analytics", "0").start()
    try:
        s.create("https://example.com/target", alias="slow-target")
        rss0 = rss_kib(s.proc.pid)
        normal = NormalClient(s)
        normal.start()
        slow_heads = connect_many(s.port, 500, b"GET /slow-target HTTP/1.1\r\nHost: t\r\n")
        slow_bodies = connect_many(
            s.port, 500,
            b"POST /api/v1/links HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n{")
        # all of them held at once (the scrape is one more)
        deadline = time.monotonic() + 3
        while metric(s, "shortd_http_connections_open") < 1001 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert metric(s, "shortd_http_connections_open") >= 1001
        # while all 1,000 are held, normal requests are answered
        for _ in range(20):
            assert s.request("GET", "/slow-target").status == 302
        rss_peak = rss_kib(s.proc.pid)
        got, still_open = drip_until_closed(
            [(slow_heads, b"X-Slow: 1\r\n"), (slow_bodies, b" ")], 0.5, 30)
        normal.finish()
        assert not still_open, f"{len(still_open)} slow connections were never closed"
        for sock in slow_heads + slow_bodies:
            assert b" 408 " in got[sock].split(b"\r\n")[0], got[sock][:200]
            sock.close()
        print(f"\n1000 slow clients: normal requests ok {normal.ok + 20}, failed {normal.failed}; "
              f"RSS {rss0} KiB before, {rss_peak} KiB with 1000 slow connections")
        assert normal.failed == 0, normal.errors[:5]
        if not SANITIZED:
            assert rss_peak - rss0 < 64 * 1024
    finally:
        s.stop()


def test_slow_readers_are_cut_off(tmp_path):
    """Clients that pipeline many requests and never read: each holds at
    most 64 KiB of answers in shortd, and --send-timeout-s closes it."""
    s = Server(tmp_path, "--send-timeout-s", "2", "--analytics", "0").start()
    try:
        s.create("https://example.com/target", alias="slow-target")
        rss0 = rss_kib(s.proc.pid)
        # /metrics answers are ~10 KiB: a few hundred fill the kernel's
        # buffers, and then our writes block
        readers = connect_many(s.port, 10, b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n" * 1000,
                               rcvbuf=4096)
        for _ in range(20):
            assert s.request("GET", "/slow-target").status == 302
        rss_peak = rss_kib(s.proc.pid)
        # the count includes the connection asking for it, and may include
        # the one that asked before if the server has not yet read its
        # close: judge the count that ended the wait, not a fresh one
        deadline = time.monotonic() + 60
        open_now = metric(s, "shortd_http_connections_open")
        while open_now > 1 and time.monotonic() < deadline:
            time.sleep(0.2)
            open_now = metric(s, "shortd_http_connections_open")
        assert open_now <= 1, f"{open_now - 1:.0f} slow readers still open after 60 s"
        for sock in readers:
            sock.close()
        print(f"\n10 slow readers: RSS {rss0} KiB before, {rss_peak} KiB while they stalled")
        if not SANITIZED:
            assert rss_peak - rss0 < 32 * 1024
    finally:
        s.stop()


def test_connection_flood_beyond_the_cap(tmp_path):
    s = Server(tmp_path, "--max-conns", "200", "--analytics", "0").start()
    try:
        s.create("https://example.com/target", alias="slow-target")
        rss0 = rss_kib(s.proc.pid)
        flood = connect_many(s.port, 1000)
        got, still_open = drip_until_closed([(flood, b"")], 1, 3)
        refused = [sk for sk in flood if sk not in still_open]
        # the connections over the cap were answered 503 and closed at once
        assert len(refused) >= 790, len(refused)
        for sk in refused:
            assert got[sk].startswith(b"HTTP/1.1 503 "), got[sk][:100]
            assert b"too_many_connections" in got[sk]
        rss_peak = rss_kib(s.proc.pid)
        # the held ones still work
        held = list(still_open)
        for sk in held[:50]:
            sk.setblocking(True)
            sk.settimeout(5)
            sk.sendall(REDIRECT)
            assert sk.recv(4096).startswith(b"HTTP/1.1 302 ")
        for sk in flood:
            sk.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if s.request("GET", "/slow-target").status == 302:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        assert s.request("GET", "/slow-target").status == 302
        print(f"\nflood of 1000 over a cap of 200: {len(refused)} answered 503 and closed; "
              f"RSS {rss0} KiB before, {rss_peak} KiB during")
        if not SANITIZED:
            assert rss_peak - rss0 < 32 * 1024
    finally:
        s.stop()


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_out_of_descriptors_connections_wait(tmp_path):
    """With its descriptors used up, shortd stops accepting until one is
    free (instead of spinning on accept's EMFILE): the connections over
    the limit wait in the kernel's queue and are all answered later."""
    s = Server(tmp_path, "--analytics", "0").start()
    try:
        s.create("https://example.com/target", alias="slow-target")
        resource.prlimit(s.proc.pid, resource.RLIMIT_NOFILE, (128, 128))
        socks = []
        for _ in range(200):
            sk = socket.create_connection(("127.0.0.1", s.port), timeout=10)
            sk.sendall(REDIRECT)
            socks.append(sk)
        deadline = time.monotonic() + 10
        while "Too many open files" not in s.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        # ... without spinning (a busy loop would take a whole core), and
        # with one warning per worker (each has its own listener), not one
        # for each retry: a second passes four sweeps
        assert "accept: Too many open files; accepting again" in s.log()
        cpu0, t0 = cpu_seconds(s.proc.pid), time.monotonic()
        time.sleep(1)
        busy = (cpu_seconds(s.proc.pid) - cpu0) / (time.monotonic() - t0)
        assert busy < 0.5, f"{busy:.2f} of a core while out of descriptors"
        for worker in (0, 1):  # the tests' servers run two
            assert s.log().count(f"worker {worker}: accept: Too many open files; "
                                 "accepting again") <= 1
        # as answered connections close, the waiting ones are accepted:
        # every one of them is answered
        waiting, deadline = list(socks), time.monotonic() + 20
        while waiting and time.monotonic() < deadline:
            ready = [sk for sk in waiting if select.select([sk], [], [], 0)[0]]
            for sk in ready:
                assert sk.recv(4096).startswith(b"HTTP/1.1 302 ")
                sk.close()
                waiting.remove(sk)
            time.sleep(0.05)
        assert not waiting, f"{len(waiting)} of 200 connections not answered"
        assert s.request("GET", "/slow-target").status == 302
    finally:
        s.stop()
