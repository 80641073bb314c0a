"""PostgreSQL's own faults (docs/operations.md, PostgreSQL): shortd killed
during creates loses no acknowledged link; a stopped primary makes creates
fail fast with 503 while cached redirects go on, and creates resume by
themselves when it is back; a promoted replica, named in a multi-host
--pg, takes the writes without a restart of shortd; a replica that lags
does not hide a new link; three shortd starting at once on an empty
database apply each migration once; a failed read is a 503 for its
request only. The tests that stop or promote servers run on a cluster of
their own."""
import http.client
import json
import os
import re
import subprocess
import threading
import time

import pytest

import pgcluster
from conftest import FAULT_BIN, ROOT, Server

pytestmark = pytest.mark.pg_only


def create(s, url, alias=None, timeout=10):
    """One create on a connection of its own: (status, body, seconds)."""
    body = {"url": url, **({"alias": alias} if alias else {})}
    t0 = time.monotonic()
    try:
        r = s.request("POST", "/api/v1/links", json_body=body, timeout=timeout)
        return r.status, r.body, time.monotonic() - t0
    except (OSError, http.client.HTTPException):
        return "closed", b"", time.monotonic() - t0


def links_in_pg(s):
    return dict(s.rows("SELECT code, url FROM links WHERE deleted_at IS NULL"))


def test_kill9_during_concurrent_creates_loses_nothing(tmp_path):
    s = Server(tmp_path, "--analytics", "0").start()
    acked, tried, stop = {}, {}, threading.Event()
    lock = threading.Lock()

    def worker(w):
        i = 0
        while not stop.is_set():
            alias, url = f"k9-{w}-{i}", f"https://example.com/k9/{w}/{i}"
            with lock:
                tried[alias] = url
            st, _, _ = create(s, url, alias)
            if st == 201:
                with lock:
                    acked[alias] = url
            i += 1

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(16)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    s.kill()
    stop.set()
    for t in threads:
        t.join()
    assert len(acked) > 50
    rows = links_in_pg(s)
    for alias, url in acked.items():
        assert rows.get(alias) == url, f"acknowledged link {alias} lost"
    for alias in rows:  # nothing half-written, nothing invented
        assert alias in tried and rows[alias] == tried[alias]
    s.start()
    for alias, url in list(acked.items())[:20]:
        r = s.request("GET", "/" + alias)
        assert r.status == 302 and r.headers["location"] == url
    print(f"\n{len(acked)} acknowledged, {len(rows) - len(acked)} stored but not acknowledged, 0 lost")
    s.stop()


@pytest.fixture(scope="module")
def own_cluster():
    c = pgcluster.Cluster().start()
    yield c
    c.stop()


def test_primary_stopped_then_back(tmp_path, own_cluster):
    c = own_cluster
    db = c.new_database()
    store = (["--pg", c.primary.uri(db), "--pg-replicas", c.replica.uri(db)], db)
    s = Server(tmp_path, "--pg-timeout-ms", "1000", store=store).start()
    try:
        before = {}
        for i in range(20):
            link = s.create(f"https://example.com/before/{i}", alias=f"before-{i}")
            before[link["code"]] = link["url"]
        c.primary.stop()
        # creates fail fast with 503, never hang
        for i in range(5):
            st, body, secs = create(s, f"https://example.com/down/{i}")
            assert st == 503 and json.loads(body)["error"]["code"] == "store_unavailable", body
            assert secs < 3, secs
        r = s.request("GET", "/readyz")
        assert r.status == 503 and f"127.0.0.1:{c.primary.port}" in r.json()["error"]["message"]
        # the links in the cache go on redirecting
        for code, url in before.items():
            r = s.request("GET", "/" + code)
            assert r.status == 302 and r.headers["location"] == url
        c.primary.start()
        deadline = time.monotonic() + 15
        while True:
            st, body, _ = create(s, "https://example.com/back")
            if st == 201:
                break
            assert time.monotonic() < deadline, f"creates did not resume: {st} {body}"
            time.sleep(0.2)
        assert s.request("GET", "/readyz").status == 200
        assert s.request("GET", "/" + json.loads(body)["code"]).status == 302
    finally:
        if not c.primary.running():
            c.primary.start()
        s.stop()


def test_failover_to_a_promoted_replica(tmp_path, own_cluster):
    c = own_cluster
    db = c.new_database()
    both = (f"postgresql://postgres@127.0.0.1:{c.primary.port},127.0.0.1:{c.replica.port}/{db}"
            "?target_session_attrs=read-write")
    store = (["--pg", both, "--pg-replicas", c.replica.uri(db)], db)
    s = Server(tmp_path, "--pg-timeout-ms", "1000", store=store).start()
    try:
        acked = {}
        for i in range(30):
            link = s.create(f"https://example.com/fo/{i}", alias=f"fo-{i}")
            acked[link["code"]] = link["url"]
        # the replica has replayed them all before the primary dies
        lsn = c.primary.sql("SELECT pg_current_wal_lsn()")
        deadline = time.monotonic() + 10
        while c.replica.sql(f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'") != "t":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        c.primary.kill()
        assert c.replica.sql("SELECT pg_promote()") == "t"
        deadline = time.monotonic() + 15
        while True:
            st, body, _ = create(s, "https://example.com/fo/after", alias="fo-after")
            if st == 201:
                break
            assert st == 503, (st, body)
            assert time.monotonic() < deadline, "creates did not resume on the new primary"
            time.sleep(0.2)
        acked["fo-after"] = "https://example.com/fo/after"
        rows = dict(l.split("|") for l in c.replica.sql(
            "SELECT code, url FROM links", db).splitlines())
        for code, url in acked.items():
            assert rows.get(code) == url, f"acknowledged link {code} lost"
        s.stop()
        s.start()  # and a fresh start finds the new primary too
        assert s.request("GET", "/fo-after").status == 302
    finally:
        s.stop()


def test_lagging_replica_falls_back_to_the_primary(tmp_path):
    s = Server(tmp_path).start()
    replica = s.cluster.replica
    try:
        replica.sql("SELECT pg_wal_replay_pause()")
        code = s.create("https://example.com/fresh")["code"]
        # another node (a second shortd) has never cached it: its miss reads
        # the replica, which has not replayed the create
        other = Server(tmp_path, data=s.data).start()
        try:
            assert replica.sql(f"SELECT count(*) FROM links WHERE code = '{code}'", s.db) == "0"
            r = other.request("GET", "/" + code)
            assert r.status == 302 and r.headers["location"] == "https://example.com/fresh"
            m = other.request("GET", "/metrics").body.decode()
            assert 'shortd_pg_replica_fallbacks_total{server="127.0.0.1:%d",role="replica"} 1' \
                % replica.port in m, m
        finally:
            other.stop()
    finally:
        replica.sql("SELECT pg_wal_replay_resume()")
        s.stop()


def test_three_nodes_start_at_once_on_an_empty_database(tmp_path):
    nodes = [Server(tmp_path / f"n{i}", "--node-id", str(i + 1),
                    data=str(tmp_path / "shared")) for i in range(3)]
    for i, n in enumerate(nodes):
        (tmp_path / f"n{i}").mkdir()
        n.workdir = str(tmp_path / f"n{i}")
        n.log_path = os.path.join(n.workdir, "shortd.log")
        n.key = "unused"  # the key is made after, against the migrated schema
    for n in nodes:
        n.start(wait=False)
    try:
        for n in nodes:
            n.wait_ready()
        schema = open(os.path.join(ROOT, "src", "store", "schema_pg.sql")).read()
        last = max(int(m) for m in re.findall(r"^-- migration (\d+)$", schema, re.M))
        versions = nodes[0].rows("SELECT version, count(*) FROM schema_migrations"
                                 " GROUP BY version ORDER BY version")
        assert versions == [(str(v), "1") for v in range(1, last + 1)], versions
        for v in range(1, last + 1):  # each applied by one node only
            applied = sum(f"applied PostgreSQL migration {v}\"" in n.log() for n in nodes)
            assert applied == 1, (v, [n.log() for n in nodes])
        key = nodes[0].make_key()
        for i, n in enumerate(nodes):
            n.key = key
            code = n.create(f"https://example.com/node/{i}")["code"]
            for m in nodes:  # and each node sees the others' links
                assert m.request("GET", "/" + code).status == 302
    finally:
        for n in nodes:
            n.stop()


@pytest.mark.skipif(not FAULT_BIN, reason="needs a fault build")
def test_a_failed_read_is_one_503(tmp_path):
    faults = tmp_path / "faults"
    faults.write_text("")
    s = Server(tmp_path, binary=FAULT_BIN, env={"SHORTD_FAULT_FILE": str(faults)}).start()
    try:
        code = s.create("https://example.com/rf")["code"]
        s.stop()
        s.start()  # its cache is empty
        tmp = tmp_path / "faults.tmp"
        tmp.write_text("read 1 once\n")
        os.replace(tmp, faults)
        assert s.request("GET", "/" + code).status == 503
        r = s.request("GET", "/" + code)
        assert r.status == 302 and r.headers["location"] == "https://example.com/rf"
    finally:
        s.stop()


def test_migrate_from_sqlite(tmp_path):
    # a SQLite shortd with links (one deleted), a user key and clicks
    sq = Server(tmp_path, "--flush-ms", "100", store=(["--data", str(tmp_path / "sq")], None)).start()
    user = sq.request("POST", "/api/v1/keys", json_body={"name": "u", "role": "user"}).json()
    for i in range(3):
        sq.request("POST", "/api/v1/links", json_body={"url": f"https://example.com/m{i}",
                                                       "alias": f"mig-{i}",
                                                       "forward_query": i == 1}, key=user["key"])
    assert sq.request("DELETE", "/api/v1/links/mig-2").status == 204
    for _ in range(4):
        sq.request("GET", "/mig-0", headers={"User-Agent": "Mozilla/5.0 Firefox/120.0"})
    sq.stop()  # the clicks are in a delta, not merged yet
    pg = Server(tmp_path / "pg", "--node-id", "7")
    (tmp_path / "pg").mkdir()
    pg.workdir = str(tmp_path / "pg")
    r = subprocess.run([pg.binary, "migrate", *pg.store_args(), "--node-id", "7",
                        "--from-sqlite", str(tmp_path / "sq")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "copied 3 links, 2 API keys" in r.stderr
    # a second copy into the same database is refused, and changes nothing
    r = subprocess.run([pg.binary, "migrate", *pg.store_args(), "--from-sqlite",
                        str(tmp_path / "sq")], capture_output=True, text=True)
    assert r.returncode == 1 and "empty" in r.stderr
    pg.key = sq.key  # the keys came along
    pg.start()
    try:
        assert pg.request("GET", "/mig-1?q=1").headers["location"] == "https://example.com/m1?q=1"
        assert pg.request("HEAD", "/mig-0?q=1").headers["location"] == "https://example.com/m0"
        assert pg.request("GET", "/mig-2").status == 410  # deleted, its code still taken
        r = pg.request("POST", "/api/v1/links", json_body={"url": "https://x.example/", "alias": "mig-2"})
        assert r.status == 409
        mine = pg.request("GET", "/api/v1/links", key=user["key"]).json()["links"]
        assert sorted(l["code"] for l in mine) == ["mig-0", "mig-1"]
        # node 7 read back the delta it was given: the four clicks count
        assert pg.request("GET", "/api/v1/links/mig-0").json()["clicks"] == 4
    finally:
        pg.stop()
