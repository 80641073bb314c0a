"""Crash loop: writers create links while the server is killed with
SIGKILL at random moments, over and over. Every link that got a 201 must be
there with its exact target; a link whose request failed or got no answer
may exist (the commit can beat the kill) but only whole; and SQLite's
integrity check must pass. SHORTD_CRASH_CYCLES sets the number of cycles
(50 in make test, 1000 in make soak)."""
import os
import random
import sqlite3
import threading
import time

import pytest

from conftest import Server


def writer(server, wid, stop, sent, acked):
    i = 0
    while not stop.is_set():
        alias = f"w{wid}-{os.getpid()}-{time.monotonic_ns()}-{i}"
        url = f"https://example.com/{alias}/target"
        i += 1
        sent[alias] = url
        try:
            r = server.request("POST", "/api/v1/links", json_body={"url": url, "alias": alias},
                               timeout=5)
        except OSError:
            return  # the server is gone; this request's fate is unknown
        if r.status == 201:
            acked[alias] = url
        elif r.status not in (503,):
            raise AssertionError(f"unexpected answer {r.status}: {r.body[:200]!r}")


@pytest.mark.sqlite_only
def test_crash_loop(tmp_path):
    cycles = int(os.environ.get("SHORTD_CRASH_CYCLES", "50"))
    rng = random.Random(2026)
    data = str(tmp_path / "data")
    sent, acked = {}, {}
    for _ in range(cycles):
        s = Server(tmp_path, "--geoip", "off", data=data).start()
        stop = threading.Event()
        threads = [threading.Thread(target=writer, args=(s, w, stop, sent, acked))
                   for w in range(6)]
        for t in threads:
            t.start()
        time.sleep(rng.uniform(0.05, 0.4))
        s.kill()
        stop.set()
        for t in threads:
            t.join()
    db = sqlite3.connect(os.path.join(data, "shortd.db"))
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = dict(db.execute("SELECT code, url FROM links").fetchall())
    db.close()
    lost = [a for a in acked if rows.get(a) != acked[a]]
    corrupt = [a for a in rows if a in sent and rows[a] != sent[a]]
    phantom = [a for a in rows if a in sent and a not in acked]
    strangers = [a for a in rows if a not in sent]
    print(f"\ncrash loop: {cycles} kill cycles, {len(sent)} creates sent, "
          f"{len(acked)} acknowledged, {len(lost)} lost, {len(corrupt)} corrupt, "
          f"{len(phantom)} phantom (committed, answer cut by the kill), {len(strangers)} unknown")
    assert len(acked) > cycles  # the loop did real work
    assert not lost and not corrupt and not strangers
    # and the service starts and serves them after the last crash
    s = Server(tmp_path, "--geoip", "off", data=data).start()
    try:
        for alias in list(acked)[-20:]:
            assert s.request("GET", "/" + alias).headers["location"] == acked[alias]
    finally:
        assert s.stop() == 0
