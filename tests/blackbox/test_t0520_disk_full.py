"""Disk full: the data directory on a small tmpfs. Creates fail cleanly
with 507 and store nothing, redirects keep being served from the database,
/readyz says not ready, and once space is freed creates work again; no
acknowledged link is lost. Needs root (mount); skipped otherwise."""
import os
import sqlite3
import subprocess

import pytest

from conftest import Server


@pytest.fixture
def small_fs(tmp_path):
    mnt = tmp_path / "fs"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.sqlite_only
def test_disk_full_and_recovery(tmp_path, small_fs):
    data = small_fs / "data"
    ballast = small_fs / "ballast"
    # --cache-mb 0: every redirect below is a database read
    s = Server(tmp_path, "--cache-mb", "0", "--geoip", "off", data=str(data)).start()
    try:
        acked = {}
        status = None
        for i in range(2000):
            url = f"https://example.com/{i}/" + "x" * 4000
            r = s.request("POST", "/api/v1/links", json_body={"url": url, "alias": f"fill-{i}"})
            if r.status != 201:
                status = r
                break
            acked[f"fill-{i}"] = url
            if i == 20:
                # keep 1 MiB aside, to free later
                ballast.write_bytes(b"\0" * (1 << 20))
        assert status is not None, "the disk never filled"
        assert status.status == 507, status
        assert status.json()["error"]["code"] == "insufficient_storage"
        print(f"\ndisk full after {len(acked)} creates: {status.status}")
        assert len(acked) > 50
        # reads keep working, from the database
        for alias in list(acked)[:5] + list(acked)[-5:]:
            r = s.request("GET", "/" + alias)
            assert r.status == 302 and r.headers["location"] == acked[alias]
        assert s.request("GET", "/readyz").status == 503
        # another create still fails cleanly
        r = s.request("POST", "/api/v1/links",
                      json_body={"url": "https://example.com/again/" + "x" * 4000})
        assert r.status == 507
        # free space: creates work again, and the service is ready again
        ballast.unlink()
        r = s.request("POST", "/api/v1/links",
                      json_body={"url": "https://example.com/after", "alias": "after-full"})
        assert r.status == 201, r
        acked["after-full"] = "https://example.com/after"
        assert s.request("GET", "/readyz").status == 200
    finally:
        assert s.stop() == 0
    db = sqlite3.connect(os.path.join(str(data), "shortd.db"))
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = dict(db.execute("SELECT code, url FROM links").fetchall())
    db.close()
    assert all(rows.get(a) == u for a, u in acked.items())
    assert not [c for c in rows if c not in acked]  # a refused create left nothing
