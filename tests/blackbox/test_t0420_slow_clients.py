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


def connect_many(port, n, first=b"", rcvbuf=None, source="127.0.0.1", mss=None):
    socks = []
    for _ in range(n):
        s = socket.socket()
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if mss:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, mss)
        s.bind((source, 0))
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
    # 1,000 clients on one address here: over the per-address cap
    s = Server(tmp_path, "--header-timeout-s", "4", "--analytics", "0",
               "--max-conns-per-ip", "2000").start()
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
    most 16 KiB of answers (and one more answer) in shortd, and
    --send-timeout-s closes it."""
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


def metric_labeled(s, name, labels):
    want = f"{name}{{{labels}}} "
    for line in s.request("GET", "/metrics").body.decode().splitlines():
        if line.startswith(want):
            return float(line.split()[-1])
    raise AssertionError(f"no metric {want}")


def test_one_address_cannot_take_every_connection(tmp_path):
    """One address opening 12,000 connections (more than --max-conns, the
    default 10,000) holds at most --max-conns-per-ip (default 1,000) of
    them: the rest are answered 503 at once, and other clients are served
    all along."""
    s = Server(tmp_path, "--analytics", "0").start()
    try:
        s.create("https://example.com/target", alias="slow-target")
        normal = NormalClient(s)
        normal.start()
        held, refused, opened = [], 0, 0
        sel = selectors.DefaultSelector()
        while opened < 12000:
            for _ in range(200):
                sk = socket.socket()
                sk.bind(("127.0.0.2", 0))
                sk.connect(("127.0.0.1", s.port))
                sk.setblocking(False)
                sel.register(sk, selectors.EVENT_READ)
                held.append(sk)
                opened += 1
            # the refused ones have their 503 (and the server's close):
            # read and closed, as an attacker that wants more would
            time.sleep(0.02)
            for key, _ in sel.select(timeout=0.05):
                sk = key.fileobj
                try:
                    data = sk.recv(4096)
                except OSError:
                    data = b""
                assert data.startswith(b"HTTP/1.1 503 ") and b"from your address" in data, data[:200]
                sel.unregister(sk)
                held.remove(sk)
                sk.close()
                refused += 1
        # the last refusals may still be on their way
        deadline = time.monotonic() + 5
        while len(held) > 1000 and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=0.2):
                sel.unregister(key.fileobj)
                held.remove(key.fileobj)
                key.fileobj.close()
                refused += 1
        assert len(held) == 1000, len(held)
        assert refused == 11000
        # ... and another address is still served, on fresh connections
        for _ in range(20):
            assert s.request("GET", "/slow-target").status == 302
        normal.finish()
        assert normal.failed == 0 and normal.ok > 0, normal.errors[:5]
        assert metric_labeled(s, "shortd_http_connections_refused_total",
                              'limit="per_address"') == 11000
        assert metric_labeled(s, "shortd_http_connections_refused_total", 'limit="total"') == 0
        assert metric(s, "shortd_http_client_addresses") >= 1
        for sk in held:
            sel.unregister(sk)
            sk.close()
        # the count goes down as they close: the address may connect again
        deadline = time.monotonic() + 10
        while metric(s, "shortd_http_connections_open") > 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        again = connect_many(s.port, 10, REDIRECT, source="127.0.0.2")
        for sk in again:
            sk.setblocking(True)
            sk.settimeout(5)
            assert sk.recv(4096).startswith(b"HTTP/1.1 302 ")
            sk.close()
        print(f"\n12,000 connections from one address: {len(held)} held, {refused} refused; "
              f"{normal.ok} requests from another address served meanwhile")
    finally:
        s.stop()


def test_trusted_proxies_have_no_per_address_cap(tmp_path):
    s = Server(tmp_path, "--analytics", "0", "--max-conns-per-ip", "5",
               "--trusted-proxies", "127.0.0.3").start()
    try:
        s.create("https://example.com/target", alias="slow-target")
        proxy = connect_many(s.port, 20, REDIRECT, source="127.0.0.3")
        client = connect_many(s.port, 6, REDIRECT, source="127.0.0.2")
        answers = {}
        for sk in proxy + client:
            sk.setblocking(True)
            sk.settimeout(5)
            answers[sk] = sk.recv(4096)
        assert all(answers[sk].startswith(b"HTTP/1.1 302 ") for sk in proxy)
        # five of the six (the workers accept in parallel: which one is
        # refused is the kernel's choice)
        refused = [sk for sk in client if not answers[sk].startswith(b"HTTP/1.1 302 ")]
        assert len(refused) == 1, [answers[sk][:40] for sk in client]
        answer = answers[refused[0]]
        assert answer.startswith(b"HTTP/1.1 503 ") and b"from your address" in answer, answer
        assert b"Retry-After: 1" in answer
        # one closes: room for one more
        client.remove(refused[0])
        refused[0].close()
        client[0].close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            sk = connect_many(s.port, 1, REDIRECT, source="127.0.0.2")[0]
            sk.setblocking(True)
            sk.settimeout(5)
            answer = sk.recv(4096)
            sk.close()
            if answer.startswith(b"HTTP/1.1 302 "):
                break
            time.sleep(0.05)
        assert answer.startswith(b"HTTP/1.1 302 "), answer
        for sk in proxy + client[1:]:
            sk.close()
    finally:
        s.stop()


def stalled_readers(s, n):
    """n clients that pipeline 1,000 redirects each (250 KB of answers) with
    a 4 KiB receive buffer and never read; returns them once shortd has
    stopped producing answers for them (its unsent bytes stay put). Their
    segments are of an Internet path's size (MSS 536): on loopback's 64 KiB
    ones the kernel grows a socket's send buffer to 4 MiB and takes all."""
    s.create("https://example.com/target", alias="slow-target")
    readers = connect_many(s.port, n, REDIRECT * 1000, rcvbuf=4096, mss=536)
    last, still = -1, 0
    deadline = time.monotonic() + 60
    while still < 3 and time.monotonic() < deadline:
        time.sleep(0.5)
        now = metric(s, "shortd_http_unsent_bytes")
        still = still + 1 if now == last else 0
        last = now
    return readers, last


def test_1000_slow_readers_hold_bounded_memory(tmp_path):
    """Each connection holds at most 16 KiB of answers plus one: 1,000
    clients that do not read hold well under the 76 KiB each they held
    with 64 KiB (RSS 31 -> 108 MB)."""
    s = Server(tmp_path, "--analytics", "0", "--max-conns-per-ip", "2000").start()
    try:
        rss0 = rss_kib(s.proc.pid)
        readers, unsent = stalled_readers(s, 1000)
        rss_peak = rss_kib(s.proc.pid)
        assert s.request("GET", "/healthz").status == 200
        per_conn = (rss_peak - rss0) / 1000
        print(f"\n1,000 slow readers: {unsent / 1000 / 1024:.1f} KiB unsent each; "
              f"RSS {rss0} -> {rss_peak} KiB ({per_conn:.1f} KiB a connection)")
        assert 0 < unsent <= 1000 * (16 + 16) * 1024
        if not SANITIZED:
            assert per_conn < 32
        for sk in readers:
            sk.close()
    finally:
        s.stop()


def test_unsent_answers_bounded_in_total(tmp_path):
    """With --max-unsent-mb 1, 1,000 clients that do not read hold at most
    1 MiB of answers in all: those that would go over it are disconnected
    (counted), and everyone else is served."""
    s = Server(tmp_path, "--analytics", "0", "--max-conns-per-ip", "2000",
               "--max-unsent-mb", "1").start()
    try:
        rss0 = rss_kib(s.proc.pid)
        readers, unsent = stalled_readers(s, 1000)
        rss_peak = rss_kib(s.proc.pid)
        closed = metric(s, "shortd_http_slow_readers_closed_total")
        assert 0 < unsent <= 1 << 20
        assert closed > 0
        assert s.request("GET", "/healthz").status == 200
        print(f"\n1,000 slow readers, 1 MiB in all: {unsent / 1048576:.2f} MiB unsent, "
              f"{closed:.0f} disconnected; RSS {rss0} -> {rss_peak} KiB")
        if not SANITIZED:
            assert rss_peak - rss0 < 24 * 1024
        for sk in readers:
            sk.close()
    finally:
        s.stop()
