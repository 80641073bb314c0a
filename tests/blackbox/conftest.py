"""Black-box test harness: starts the real shortd binary on a free loopback
port with a temporary data directory and talks to it over sockets.

Every test runs on each store backend (SHORTD_BACKENDS, default
"sqlite,pg"): on SQLite in its data directory, and on a real PostgreSQL 15
primary with a streaming replica (pgcluster.py), started once for the
session, with a database of its own per data directory (a server started
again on the same data directory finds the same database). A test about
SQLite's files is marked sqlite_only; one about PostgreSQL alone, pg_only."""
import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import time

import pytest

import pgcluster

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("SHORTD_BIN") or os.path.join(ROOT, "shortd")
# A build with fault injection compiled in (make FAULTS=1, or the sanitize
# build); the fault tests need it.
FAULT_BIN = os.environ.get("SHORTD_FAULT_BIN")
# Under ASan memory figures mean nothing (shadow memory, quarantine).
SANITIZED = os.environ.get("SHORTD_SANITIZED") == "1"
BACKENDS = [b for b in os.environ.get("SHORTD_BACKENDS", "sqlite,pg").split(",") if b]

# The backend of the test running now, and the session's PostgreSQL.
CURRENT = {"backend": "sqlite", "cluster": None}
# data directory -> its PostgreSQL database
DATABASES = {}


def pytest_configure(config):
    config.addinivalue_line("markers", "sqlite_only: about SQLite's files: runs on SQLite only")
    config.addinivalue_line("markers", "pg_only: about PostgreSQL: runs on PostgreSQL only")


def pytest_generate_tests(metafunc):
    if "backend" not in metafunc.fixturenames:
        return
    d = metafunc.definition
    # a test that starts no server (none without a directory to run it
    # in) has no backend to try
    starts = {"server", "make_server", "tmp_path"} & set(metafunc.fixturenames)
    want = ["sqlite"] if d.get_closest_marker("sqlite_only") or not starts else \
        ["pg"] if d.get_closest_marker("pg_only") else BACKENDS
    metafunc.parametrize("backend", [b for b in want if b in BACKENDS], indirect=True)


def store_args(data):
    """The options that name the store of data directory `data` for the
    test's backend: --data, and on PostgreSQL --pg and --pg-replicas of
    the database that stands for that directory."""
    data = str(data)
    if CURRENT["backend"] != "pg":
        return ["--data", data]
    c = CURRENT["cluster"]
    if data not in DATABASES:
        DATABASES[data] = c.new_database()
    db = DATABASES[data]
    return ["--data", data, "--pg", c.primary.uri(db), "--pg-replicas", c.replica.uri(db)]


@pytest.fixture(scope="session")
def pg_session():
    c = pgcluster.Cluster().start()
    yield c
    c.stop()


@pytest.fixture(autouse=True)
def backend(request):
    """The store of every Server the test starts."""
    name = getattr(request, "param", "sqlite")
    CURRENT["backend"] = name
    CURRENT["cluster"] = request.getfixturevalue("pg_session") if name == "pg" else None
    yield name
    CURRENT["backend"], CURRENT["cluster"] = "sqlite", None


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

    def __init__(self, workdir, *args, env=None, data=None, port=None, binary=None, store=None):
        self.binary = binary or BIN
        self.key = None  # an admin key, made before the first start
        self.workdir = str(workdir)
        self.data = data or os.path.join(self.workdir, "data")
        self.backend = CURRENT["backend"]
        self.cluster = CURRENT["cluster"]
        # store: explicit store options (a test's own PostgreSQL), with db
        self._store_args = store_args(self.data) if store is None else list(store[0])
        self.db = (DATABASES.get(self.data) if store is None else store[1]) \
            if self.backend == "pg" else None
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

    def store_args(self):
        """Where the store is: --data, and on PostgreSQL --pg and --pg-replicas."""
        return list(self._store_args)

    def sql(self, query):
        """A query on this server's PostgreSQL database (its primary)."""
        return self.cluster.primary.sql(query, self.db)

    def rows(self, query):
        """The rows of a query on the links database, either backend, as
        tuples of text (bytes as \\x hex, as PostgreSQL shows them)."""
        if self.backend == "pg":
            return [tuple(line.split("|")) for line in self.sql(query).splitlines() if line]
        db = sqlite3.connect(os.path.join(self.data, "shortd.db"))
        try:
            return [tuple("\\x" + v.hex() if isinstance(v, bytes) else str(v) for v in row)
                    for row in db.execute(query).fetchall()]
        finally:
            db.close()

    def command(self):
        return [self.binary, "--listen", f"127.0.0.1:{self.port}", *self.store_args(),
                "--threads", "2", *self.DEFAULT_ARGS, *self.args]

    def cli(self, *args, timeout=30):
        """A command of the CLI (shortd key ..., shortd import ...) on this
        server's store."""
        return subprocess.run([self.binary, *args, *self.store_args()], capture_output=True,
                              text=True, env=self.env, timeout=timeout)

    def make_key(self, role="admin", name="test"):
        """Creates an API key with the CLI; returns the key."""
        r = subprocess.run([self.binary, "key", "create", "--name", name, "--role", role,
                            "--init", *self.store_args()], capture_output=True, text=True,
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
