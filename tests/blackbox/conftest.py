"""Black-box test harness: starts the real shortd binary on a free loopback
port with a temporary data directory and talks to it over sockets."""
import http.client
import json
import os
import signal
import socket
import subprocess
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("SHORTD_BIN") or os.path.join(ROOT, "shortd")
# A build with fault injection compiled in (make FAULTS=1, or the sanitize
# build); the fault tests need it.
FAULT_BIN = os.environ.get("SHORTD_FAULT_BIN")
# Under ASan memory figures mean nothing (shadow memory, quarantine).
SANITIZED = os.environ.get("SHORTD_SANITIZED") == "1"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-case name -> value
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<Response {self.status} {self.body[:200]!r}>"


class Server:
    """One shortd process. args are extra command-line options."""

    def __init__(self, workdir, *args, env=None, data=None, port=None, binary=None):
        self.binary = binary or BIN
        self.key = None  # an admin key, made before the first start
        self.workdir = str(workdir)
        self.data = data or os.path.join(self.workdir, "data")
        self.port = port or free_port()
        self.args = list(args)
        self.env = dict(os.environ)
        self.env.pop("SHORTD_CONFIG", None)
        self.env.update(env or {})
        self.proc = None
        self.log_path = os.path.join(self.workdir, f"shortd-{self.port}.log")
        self.base = f"http://127.0.0.1:{self.port}"

    # Every test client is 127.0.0.1: the per-IP limits are off unless a
    # test sets them (test_t0810_rate_limits.py does).
    DEFAULT_ARGS = ["--ip-rate", "0", "--notfound-rate", "0"]

    def command(self):
        return [self.binary, "--listen", f"127.0.0.1:{self.port}", "--data", self.data,
                "--threads", "2", *self.DEFAULT_ARGS, *self.args]

    def make_key(self, role="admin", name="test"):
        """Creates an API key with the CLI; returns the key."""
        r = subprocess.run([self.binary, "key", "create", "--name", name, "--role", role,
                            "--data", self.data], capture_output=True, text=True,
                           env=self.env, timeout=30)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    def start(self, wait=True):
        if self.key is None:
            self.key = self.make_key()
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command(), stdout=self.logf, stderr=self.logf,
                                     env=self.env)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"shortd exited with {self.proc.returncode}: {self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("shortd did not start: " + self.log())

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.proc is None or self.proc.poll() is not None:
            self.check_sanitizers()
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("shortd did not stop in time: " + self.log())
        finally:
            self.logf.close()
        self.check_sanitizers()
        return rc

    SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")

    def check_sanitizers(self):
        """Under `make sanitize` a report in the log fails the test."""
        log = self.log()
        for mark in self.SANITIZER_MARKS:
            assert mark not in log, f"sanitizer report in {self.log_path}:\n{log[-4000:]}"


    def kill(self):
        self.proc.kill()
        self.proc.wait()
        self.logf.close()
        self.check_sanitizers()

    def request(self, method, path, body=None, headers=None, json_body=None, timeout=10,
                key=True):
        """key: True sends the admin key, a string sends that key, False none."""
        h = dict(headers or {})
        if key and path.startswith("/api/") and not any(
                k.lower() in ("authorization", "x-api-key") for k in h):
            h["Authorization"] = "Bearer " + (self.key if key is True else key)
        if json_body is not None:
            body = json.dumps(json_body).encode()
            h.setdefault("Content-Type", "application/json")
        if isinstance(body, str):
            body = body.encode()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            data = r.read()
            return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
        finally:
            conn.close()

    def create(self, url="https://example.com/", **fields):
        fields["url"] = url
        r = self.request("POST", "/api/v1/links", json_body=fields)
        assert r.status == 201, r
        return r.json()

    def auth(self, data):
        """data with the admin key added after every "Host: t" line."""
        return data.replace(b"\r\nHost: t\r\n",
                            b"\r\nHost: t\r\nAuthorization: Bearer %s\r\n" % self.key.encode())

    def raw(self, data, timeout=3, shut=False):
        """Sends raw bytes; returns everything read until the server closes
        or nothing arrives for `timeout` seconds."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall(data)
            if shut:
                s.shutdown(socket.SHUT_WR)
            return read_all(s, timeout)


def read_all(s, timeout):
    s.settimeout(timeout)
    out = b""
    while True:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            break
        if not chunk:
            break
        out += chunk
    return out


def parse_responses(data):
    """Splits a byte stream into (status, headers, body) tuples."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            raise AssertionError(f"incomplete response: {data[:200]!r}")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            headers[k.strip().lower().decode()] = v.strip().decode()
        if status == 100:
            data = rest
            continue
        n = int(headers.get("content-length", "0"))
        out.append((status, headers, rest[:n]))
        data = rest[n:]
    return out


@pytest.fixture
def make_server(tmp_path):
    servers = []

    def make(*args, **kw):
        s = Server(tmp_path, *args, **kw)
        servers.append(s)
        return s.start()

    yield make
    for s in servers:
        if s.proc and s.proc.poll() is None:
            s.stop()


@pytest.fixture
def server(make_server):
    return make_server()
