"""A real PostgreSQL 15 primary and one streaming replica on loopback, for
the tests (Debian's postgresql-15): initdb into a short temporary directory,
free ports, fsync on, the replica made with pg_basebackup -R; run as the
unprivileged `postgres` user (PostgreSQL refuses root) with setpriv, which
execs in place, so that the pids are the postmasters'; stopped by pid.

Each test gets a database of its own (new_database), made on the primary
and waited for on the replica."""
import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

BIN = "/usr/lib/postgresql/15/bin"
USER = "postgres"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_postgres(cmd):
    if os.geteuid() != 0:
        return cmd
    return ["setpriv", "--reuid", USER, "--regid", USER, "--init-groups", *cmd]


def run(cmd, **kw):
    r = subprocess.run(as_postgres(cmd), capture_output=True, text=True, timeout=120, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stdout}{r.stderr}")
    return r.stdout


class Postgres:
    """One postmaster: its data directory, port and pid. prefix: a command
    it runs under (taskset, for the benchmark)."""

    def __init__(self, root, name, port, prefix=()):
        self.root, self.name, self.port = root, name, port
        self.dir = os.path.join(root, name)
        self.log = os.path.join(root, name + ".log")
        self.proc = None
        self.prefix = list(prefix)

    def start(self, timeout=30):
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(self.prefix + as_postgres([f"{BIN}/postgres", "-D", self.dir]),
                                     stdout=logf, stderr=logf)
        logf.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres {self.name} exited: {self.tail()}")
            r = subprocess.run([f"{BIN}/pg_isready", "-h", "127.0.0.1", "-p", str(self.port),
                                "-t", "1"], capture_output=True)
            if r.returncode == 0:
                return self
            time.sleep(0.05)
        raise RuntimeError(f"postgres {self.name} did not start: {self.tail()}")

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGINT, timeout=30):
        """SIGINT: PostgreSQL's fast shutdown."""
        if not self.running():
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self):
        """kill -9 of the postmaster (its children follow it), and the
        shared memory it leaves (CLUSTER-NOTES.md)."""
        if not self.running():
            return
        self.proc.kill()
        self.proc.wait()
        time.sleep(0.3)
        subprocess.run(["pkill", "-9", "-f", f"postgres: .*{self.name}"], capture_output=True)

    def tail(self):
        try:
            with open(self.log, "rb") as f:
                return f.read()[-3000:].decode(errors="replace")
        except OSError:
            return ""

    def uri(self, db="postgres"):
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{db}"

    def sql(self, query, db="postgres"):
        """Runs query with psql; returns its unaligned output."""
        return subprocess.run([f"{BIN}/psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                               "-d", self.uri(db), "-c", query], capture_output=True, text=True,
                              timeout=60, check=True).stdout.strip()


class Cluster:
    """A primary and its replica."""

    _dbs = itertools.count(1)

    def __init__(self, prefix=()):
        self.root = tempfile.mkdtemp(prefix="pg", dir="/tmp")  # short: socket paths
        os.chmod(self.root, 0o755)
        if os.geteuid() == 0:
            shutil.chown(self.root, USER, USER)
        self.primary = Postgres(self.root, "primary", free_port(), prefix)
        self.replica = Postgres(self.root, "replica", free_port(), prefix)

    def start(self):
        p = self.primary
        run([f"{BIN}/initdb", "-D", p.dir, "-U", USER, "--auth=trust", "-N", "-E", "UTF8",
             "--locale=C", "--no-instructions"])
        with open(os.path.join(p.dir, "postgresql.conf"), "a") as f:
            f.write(f"""
listen_addresses = '127.0.0.1'
port = {p.port}
unix_socket_directories = '{self.root}'
fsync = on
wal_level = replica
max_wal_senders = 10
hot_standby = on
wal_retrieve_retry_interval = 200ms
dynamic_shared_memory_type = mmap
max_connections = 500
shared_buffers = 64MB
""")
        with open(os.path.join(p.dir, "pg_hba.conf"), "a") as f:
            f.write("host all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\n")
        p.start()
        self.make_replica(self.replica)
        return self

    def make_replica(self, r):
        """r (a stopped Postgres) becomes a streaming replica of the primary."""
        if os.path.exists(r.dir):
            run(["rm", "-rf", r.dir])
        run([f"{BIN}/pg_basebackup", "-h", "127.0.0.1", "-p", str(self.primary.port), "-U", USER,
             "-D", r.dir, "-R", "-c", "fast", "-X", "stream"])
        with open(os.path.join(r.dir, "postgresql.conf"), "a") as f:
            f.write(f"\nport = {r.port}\n")
        r.start()

    def new_database(self):
        """A fresh database on both servers; its name."""
        name = f"t{os.getpid()}_{next(self._dbs)}"
        self.primary.sql(f"CREATE DATABASE {name}")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if self.replica.sql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'") == "1":
                    return name
            except subprocess.CalledProcessError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"database {name} did not reach the replica")

    def stop(self):
        for s in (self.replica, self.primary):
            s.stop()
        shutil.rmtree(self.root, ignore_errors=True)
