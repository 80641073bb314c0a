"""Click analytics end to end: exact counts for a known sequence (bots and
HEADs apart), breakdowns, the stats API, durability of counters across
SIGTERM and kill -9, and country lookup from a MaxMind DB."""
import os
import re
import sqlite3
import struct
import subprocess
import time

import pytest

from conftest import ROOT, Server

# --geoip auto tries these in turn (docs/operations.md, Click analytics)
GEOIP_PATHS = ["/var/lib/GeoIP/GeoLite2-Country.mmdb", "/usr/share/GeoIP/GeoLite2-Country.mmdb",
               "/usr/share/GeoIP/dbip-country-lite.mmdb", "/usr/share/GeoIP/GeoIP2-Country.mmdb",
               "/usr/share/GeoIP/GeoIP.dat"]
CHROME_WIN = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/120.0.0.0 Safari/537.36")
SAFARI_IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
                 "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1")
FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
SLACK = "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"


def click(server, code, ua=None, referer=None, method="GET"):
    h = {}
    if ua is not None:
        h["User-Agent"] = ua
    if referer is not None:
        h["Referer"] = referer
    r = server.request(method, "/" + code, headers=h)
    assert r.status == 302
    return r


def as_dict(items):
    return {i["value"]: i["clicks"] for i in items}


def stats(server, code, query=""):
    r = server.request("GET", f"/api/v1/links/{code}/stats{query}")
    assert r.status == 200, r
    return r.json()


def known_sequence(server, code):
    for _ in range(3):
        click(server, code, CHROME_WIN, "https://news.example.org/item?id=7")
    for _ in range(2):
        click(server, code, SAFARI_IPHONE)
    click(server, code, FIREFOX_LINUX, "https://Blog.Example.com/post")
    click(server, code, GOOGLEBOT)
    click(server, code, SLACK)
    for _ in range(4):
        click(server, code, CHROME_WIN, method="HEAD")  # HEAD is not a click
    assert server.request("GET", "/" + code + "-nope").status == 404  # nor is a miss


def check_known_counts(j):
    assert j["total"] == 6
    assert j["bots"] == 2
    assert as_dict(j["referrers"]) == {"news.example.org": 3, "direct": 2, "blog.example.com": 1}
    assert as_dict(j["devices"]) == {"desktop": 4, "mobile": 2, "bot": 2}
    assert as_dict(j["browsers"]) == {"chrome": 3, "safari": 2, "firefox": 1}
    assert as_dict(j["os"]) == {"windows": 3, "ios": 2, "linux": 1}
    assert as_dict(j["countries"]) == {"unknown": 6}
    assert sum(p["clicks"] for p in j["series"]) == 6
    assert sum(p["bots"] for p in j["series"]) == 2


@pytest.mark.sqlite_only
def test_exact_counts_seen_before_flush(make_server):
    # A long flush interval: nothing is committed, yet the user sees it all.
    s = make_server("--flush-ms", "60000", "--geoip", "off")
    code = s.create("https://example.com/counted")["code"]
    known_sequence(s, code)
    check_known_counts(stats(s, code))
    link = s.request("GET", "/api/v1/links/" + code).json()
    assert link["clicks"] == 6 and link["bot_clicks"] == 2
    db = sqlite3.connect(os.path.join(s.data, "clicks.db"))
    assert db.execute("SELECT count(*) FROM click_hours").fetchone()[0] == 0
    db.close()


def wait_merged(db):
    """Waits until known_sequence()'s clicks are merged into the click
    tables and the deltas that held them are dropped."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        row = db.execute("SELECT sum(humans), sum(bots) FROM click_hours").fetchone()
        deltas = db.execute("SELECT count(*) FROM click_deltas").fetchone()[0]
        if row == (6, 2) and deltas == 0:
            break
        time.sleep(0.05)
    assert row == (6, 2) and deltas == 0  # merged into the tables, deltas dropped


@pytest.mark.sqlite_only
def test_counts_flushed_merged_and_unchanged(make_server):
    s = make_server("--flush-ms", "100", "--click-merge-s", "1", "--geoip", "off")
    code = s.create("https://example.com/flushed")["code"]
    known_sequence(s, code)
    db = sqlite3.connect(os.path.join(s.data, "clicks.db"))
    wait_merged(db)
    days = dict(((r[0], r[1]), r[2]) for r in db.execute(
        "SELECT referrer, device, sum(clicks) FROM click_days GROUP BY referrer, device"))
    assert days == {("news.example.org", "desktop"): 3, ("direct", "mobile"): 2,
                    ("blog.example.com", "desktop"): 1, ("-", "bot"): 2}
    db.close()
    check_known_counts(stats(s, code))
    m = s.request("GET", "/metrics").body.decode()
    assert "shortd_clicks_recorded_total 8" in m
    assert "shortd_clicks_flushed_total 8" in m
    assert "shortd_clicks_dropped_total 0" in m
    assert "shortd_click_merges_total 0" not in m


@pytest.mark.sqlite_only
def test_creates_do_not_wait_for_the_click_writer(make_server):
    """clicks.db has a writer of its own. While something else holds its
    write lock (here a sqlite3 connection; in production a long merge),
    creates still commit, and the clicks held back meanwhile are committed
    and merged once it lets go."""
    s = make_server("--flush-ms", "100", "--click-merge-s", "1", "--geoip", "off")
    code = s.create("https://example.com/held")["code"]
    db = sqlite3.connect(os.path.join(s.data, "clicks.db"), timeout=0, isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    try:
        known_sequence(s, code)
        time.sleep(0.3)  # a few flush intervals: the click writer waits for the lock
        for i in range(5):
            s.create(f"https://example.com/during/{i}")  # 201, or the test fails
        check_known_counts(stats(s, code))  # counted, in memory
    finally:
        db.execute("ROLLBACK")
    wait_merged(db)
    db.close()
    check_known_counts(stats(s, code))


@pytest.mark.sqlite_only
def test_unmerged_deltas_read_back_after_kill(tmp_path):
    s = Server(tmp_path, "--flush-ms", "100", "--click-merge-s", "3600", "--geoip", "off").start()
    code = s.create("https://example.com/replay")["code"]
    known_sequence(s, code)
    db = sqlite3.connect(os.path.join(s.data, "clicks.db"))
    deadline = time.monotonic() + 10
    while db.execute("SELECT count(*) FROM click_deltas").fetchone()[0] == 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.3)
    db.close()
    s.kill()  # never merged: only the deltas hold the counts
    s2 = Server(tmp_path, "--geoip", "off", data=s.data).start()
    try:
        check_known_counts(stats(s2, code))
        assert "read back" in s2.log()
    finally:
        s2.stop()


@pytest.mark.sqlite_only
def test_counters_read_back_are_merged_at_start(tmp_path):
    """A server stopped before its merge interval leaves its deltas; the
    next start merges what it read back at once (the interval here is an
    hour), so restarts more frequent than the interval do not pile up
    deltas for every later start to read back."""
    args = ("--flush-ms", "100", "--click-merge-s", "3600", "--geoip", "off")
    s = Server(tmp_path, *args).start()
    code = s.create("https://example.com/restarted")["code"]
    known_sequence(s, code)
    assert s.stop() == 0
    db = sqlite3.connect(os.path.join(s.data, "clicks.db"))
    assert db.execute("SELECT count(*) FROM click_deltas").fetchone()[0] > 0
    s2 = Server(tmp_path, *args, data=s.data).start()
    try:
        assert "read back" in s2.log()
        wait_merged(db)
        check_known_counts(stats(s2, code))  # merged once, not counted twice
    finally:
        assert s2.stop() == 0
    db.close()
    s3 = Server(tmp_path, *args, data=s.data).start()
    try:
        assert "read back" not in s3.log()
        check_known_counts(stats(s3, code))
    finally:
        assert s3.stop() == 0


@pytest.mark.sqlite_only
def test_corrupt_delta_is_skipped(tmp_path):
    s = Server(tmp_path, "--geoip", "off").start()
    code = s.create("https://example.com/corrupt")["code"]
    click(s, code, CHROME_WIN)
    assert s.stop() == 0
    db = sqlite3.connect(os.path.join(s.data, "clicks.db"))
    db.execute("INSERT INTO click_deltas (seq, data) VALUES (1000, x'0102030405')")
    db.commit()
    db.close()
    s2 = Server(tmp_path, "--geoip", "off", data=s.data).start()
    try:
        assert stats(s2, code)["total"] == 1
        assert "click delta 1000 is corrupt" in s2.log()
        click(s2, code, CHROME_WIN)
        assert stats(s2, code)["total"] == 2
    finally:
        assert s2.stop() == 0


def v1_delta(link_id, now_ms, humans, referrer):
    """A delta in format 1, as shortd wrote it before format 2: hour and
    day records of fixed-width integers with the five strings inline."""
    hour = struct.pack("<qiBQQ", link_id, now_ms // 3600000, 0, humans, 0)
    day = struct.pack("<qiBQQ", link_id, now_ms // 86400000, 1, humans, 0)
    for v in (referrer, "unknown", "desktop", "firefox", "linux"):
        day += bytes([len(v)]) + v.encode()
    return hour + day


@pytest.mark.sqlite_only
def test_deltas_of_both_formats_read_back(tmp_path):
    """A delta left by an older shortd (format 1) and one in format 2 are
    both read back after an upgrade; a format-2 delta that is cut short is
    skipped and said so, and nothing of it is counted."""
    s = Server(tmp_path, "--flush-ms", "50", "--click-merge-s", "3600", "--geoip", "off").start()
    code = s.create("https://example.com/formats")["code"]
    click(s, code, CHROME_WIN, "https://news.example.org/a")
    db = sqlite3.connect(os.path.join(s.data, "clicks.db"))
    deadline = time.monotonic() + 10
    while db.execute("SELECT count(*) FROM click_deltas").fetchone()[0] == 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    v2 = db.execute("SELECT data FROM click_deltas").fetchone()[0]
    assert v2[:8] == b"SCD2\0\0\0\xff"
    db.close()
    assert s.stop() == 0
    db = sqlite3.connect(os.path.join(s.data, "shortd.db"))
    link_id = db.execute("SELECT id FROM links WHERE code = ?", (code,)).fetchone()[0]
    db.close()
    db = sqlite3.connect(os.path.join(s.data, "clicks.db"))
    db.execute("INSERT INTO click_deltas (seq, data) VALUES (1000, ?)",
               (v1_delta(link_id, int(time.time() * 1000), 5, "old.example"),))
    db.execute("INSERT INTO click_deltas (seq, data) VALUES (1001, ?)", (v2[:-3],))
    db.commit()
    db.close()
    s2 = Server(tmp_path, "--geoip", "off", data=s.data).start()
    try:
        j = stats(s2, code)
        assert j["total"] == 6
        assert as_dict(j["referrers"]) == {"news.example.org": 1, "old.example": 5}
        assert as_dict(j["browsers"]) == {"chrome": 1, "firefox": 5}
        assert "click delta 1001 is corrupt" in s2.log()
        assert "click delta 1000" not in s2.log()
    finally:
        assert s2.stop() == 0


def test_sigterm_commits_every_click(tmp_path):
    s = Server(tmp_path, "--flush-ms", "60000", "--geoip", "off").start()
    code = s.create("https://example.com/graceful")["code"]
    for _ in range(25):
        click(s, code, CHROME_WIN)
    assert s.stop() == 0
    s2 = Server(tmp_path, "--geoip", "off", data=s.data).start()
    try:
        assert stats(s2, code)["total"] == 25
    finally:
        s2.stop()


def test_crash_loses_at_most_one_interval(tmp_path):
    s = Server(tmp_path, "--flush-ms", "200", "--geoip", "off").start()
    code = s.create("https://example.com/crash")["code"]
    for _ in range(30):
        click(s, code, CHROME_WIN)
    time.sleep(1.0)  # several intervals: these 30 are committed
    for _ in range(5):
        click(s, code, CHROME_WIN)  # within the last interval: may be lost
    s.kill()
    s2 = Server(tmp_path, "--geoip", "off", data=s.data).start()
    try:
        total = stats(s2, code)["total"]
        assert 30 <= total <= 35
    finally:
        s2.stop()


@pytest.mark.sqlite_only
def test_stats_across_hour_and_day_boundaries(tmp_path):
    s = Server(tmp_path, "--geoip", "off").start()
    link = s.create("https://example.com/history", alias="history")
    assert s.stop() == 0
    # Counters of an earlier time, written the way the aggregator writes them.
    db = sqlite3.connect(os.path.join(s.data, "shortd.db"))
    lid = db.execute("SELECT id FROM links WHERE code = 'history'").fetchone()[0]
    db.close()
    db = sqlite3.connect(os.path.join(s.data, "clicks.db"))
    h = 1767913200000 // 3600000  # the hour of 2026-01-08T23:00:00Z
    db.executemany("INSERT INTO click_hours VALUES (?, ?, ?, ?)",
                   [(lid, h - 1, 4, 1), (lid, h, 7, 0), (lid, h + 1, 2, 3)])
    day = h // 24
    db.executemany("INSERT INTO click_days VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   [(lid, day, "a.example", "unknown", "desktop", "chrome", "windows", 11),
                    (lid, day + 1, "a.example", "unknown", "mobile", "safari", "ios", 2),
                    (lid, day + 1, "b.example", "FR", "desktop", "chrome", "windows", 1),
                    (lid, day + 1, "-", "-", "bot", "-", "-", 3)])
    db.commit()
    db.close()
    s2 = Server(tmp_path, "--geoip", "off", data=s.data).start()
    try:
        j = stats(s2, "history", "?interval=hour&from=2026-01-08T22:00:00Z&to=2026-01-09T00:30:00Z")
        assert [(p["t"], p["clicks"], p["bots"]) for p in j["series"]] == [
            ("2026-01-08T22:00:00.000Z", 4, 1), ("2026-01-08T23:00:00.000Z", 7, 0),
            ("2026-01-09T00:00:00.000Z", 2, 3)]
        assert (j["total"], j["bots"]) == (13, 4)
        # only the hour after midnight
        j = stats(s2, "history", "?interval=hour&from=2026-01-09T00:00:00Z&to=2026-01-09T00:59:59Z")
        assert j["total"] == 2 and len(j["series"]) == 1
        # daily: the boundary splits the two days
        j = stats(s2, "history", "?interval=day&from=2026-01-07T12:00:00Z&to=2026-01-09T12:00:00Z")
        assert [(p["t"], p["clicks"]) for p in j["series"]] == [
            ("2026-01-07T00:00:00.000Z", 0), ("2026-01-08T00:00:00.000Z", 11),
            ("2026-01-09T00:00:00.000Z", 2)]
        assert as_dict(j["referrers"]) == {"a.example": 13, "b.example": 1}
        assert as_dict(j["devices"]) == {"desktop": 12, "mobile": 2, "bot": 3}
        assert as_dict(j["countries"]) == {"unknown": 13, "FR": 1}
        # percent-encoded times work too
        j = stats(s2, "history", "?interval=day&from=2026-01-09T00%3A00%3A00Z&to=2026-01-09T01%3A00%3A00Z")
        assert j["total"] == 2
    finally:
        s2.stop()
    assert link["code"] == "history"


def test_top_ten_and_other(make_server):
    s = make_server("--geoip", "off")
    code = s.create("https://example.com/popular")["code"]
    for i in range(12):
        for _ in range(12 - i):
            click(s, code, CHROME_WIN, f"https://site{i:02d}.example/")
    refs = stats(s, code)["referrers"]
    assert len(refs) == 11
    assert refs[0] == {"value": "site00.example", "clicks": 12}
    assert refs[9] == {"value": "site09.example", "clicks": 3}
    assert refs[10] == {"value": "other", "clicks": 2 + 1}


@pytest.mark.parametrize("query,field", [
    ("?interval=week", "interval"), ("?from=yesterday", "from"), ("?to=2026-13-01T00:00:00Z", "to"),
    ("?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", "from"),
    ("?interval=hour&from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", "from"),
])
def test_stats_bad_params(server, query, field):
    code = server.create()["code"]
    r = server.request("GET", f"/api/v1/links/{code}/stats{query}")
    assert r.status == 400 and r.json()["error"]["field"] == field


def test_stats_unknown_deleted_and_off(make_server, tmp_path):
    s = make_server("--geoip", "off")
    assert s.request("GET", "/api/v1/links/nope/stats").status == 404
    code = s.create()["code"]
    s.request("DELETE", "/api/v1/links/" + code)
    assert s.request("GET", f"/api/v1/links/{code}/stats").status == 410
    off = make_server("--analytics", "0", data=str(tmp_path / "off"))
    code = off.create()["code"]
    click(off, code, CHROME_WIN)
    r = off.request("GET", f"/api/v1/links/{code}/stats")
    assert r.status == 404 and r.json()["error"]["code"] == "analytics_off"
    assert "clicks" not in off.request("GET", "/api/v1/links/" + code).json()


@pytest.fixture(scope="module")
def test_mmdb(tmp_path_factory):
    out = tmp_path_factory.mktemp("geo") / "test-country.mmdb"
    subprocess.run(["perl", os.path.join(ROOT, "tests/data/make_test_mmdb.pl"), str(out)],
                   check=True)
    return str(out)


def test_countries_from_mmdb(make_server, test_mmdb):
    s = make_server("--geoip", test_mmdb)
    code = s.create()["code"]
    for _ in range(3):
        click(s, code, CHROME_WIN)  # from 127.0.0.1: NL in the test database
    click(s, code, GOOGLEBOT)       # bots are not in the breakdowns
    assert as_dict(stats(s, code)["countries"]) == {"NL": 3}
    assert "click countries from" in s.log()


def test_bad_geoip_file_refused(tmp_path):
    bad = tmp_path / "not.mmdb"
    bad.write_text("nope")
    from conftest import BIN
    r = subprocess.run([BIN, "--geoip", str(bad), "--data", str(tmp_path / "d")],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "unable to open GeoIP database" in r.stderr


def old_layout(data, rows):
    """Turns a data directory back into the layout of shortd before
    clicks.db: the click tables (made by shortd.db's own migration 2, as
    shipped) in shortd.db holding rows, and user_version 3."""
    schema = open(os.path.join(ROOT, "src", "store", "schema_sqlite.sql")).read()
    migration2 = schema.split("-- migration 2\n")[1].split("-- migration 3\n")[0]
    db = sqlite3.connect(os.path.join(data, "shortd.db"))
    db.executescript(migration2)
    for table, values in rows.items():
        db.execute(f"DELETE FROM {table}")
        for v in values:
            db.execute(f"INSERT INTO {table} VALUES ({', '.join('?' * len(v))})", v)
    # and without what migrations after 4 added
    db.execute("ALTER TABLE links DROP COLUMN forward_query")  # migration 5
    db.execute("DROP TABLE sessions")                          # migration 6
    db.execute("PRAGMA user_version = 3")
    db.commit()
    db.close()


def click_rows(data):
    db = sqlite3.connect(os.path.join(data, "clicks.db"))
    rows = {t: db.execute(f"SELECT * FROM {t}").fetchall()
            for t in ("click_hours", "click_days", "click_deltas", "click_flush")}
    db.close()
    return rows


def main_tables(data):
    db = sqlite3.connect(os.path.join(data, "shortd.db"))
    names = {r[0] for r in db.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
    version = db.execute("PRAGMA user_version").fetchone()[0]
    db.close()
    return names, version


def remove_clicks_db(data):
    for f in ("clicks.db", "clicks.db-wal", "clicks.db-shm"):
        if os.path.exists(os.path.join(data, f)):
            os.remove(os.path.join(data, f))


def restart(s):
    """s's data directory served again, with no `shortd key create` first:
    the server itself runs the migrations, and its log says so."""
    s2 = Server(s.workdir, "--geoip", "off", data=s.data)
    s2.key = s.key
    return s2.start()


def check_upgraded(s, code, rows, moved):
    """Serves s's data again: the link's counts are all there once, the log
    says whether counters were moved, and afterwards shortd.db has no click
    table left (migration 4) and clicks.db holds the hours of rows."""
    s2 = restart(s)
    try:
        assert ("from shortd.db to clicks.db" in s2.log()) == moved
        link = s2.request("GET", "/api/v1/links/" + code).json()
        assert (link["clicks"], link["bot_clicks"]) == (7, 1)
    finally:
        assert s2.stop() == 0
    names, version = main_tables(s.data)
    schema = open(os.path.join(ROOT, "src", "store", "schema_sqlite.sql")).read()
    last = max(int(m) for m in re.findall(r"^-- migration (\d+)$", schema, re.M))
    assert version == last and not any(n.startswith("click_") for n in names)
    assert sorted(click_rows(s.data)["click_hours"]) == sorted(rows["click_hours"])


@pytest.mark.sqlite_only
def test_counters_move_from_an_older_shortd_db(tmp_path):
    """An upgrade finds the counters in shortd.db, as shortd kept them
    before clicks.db: they move to clicks.db and nothing is lost. If shortd
    stops after the copy and before shortd.db drops its tables, the next
    start only drops them: nothing is counted twice."""
    s = Server(tmp_path, "--flush-ms", "50", "--click-merge-s", "1", "--geoip", "off").start()
    code = s.create("https://example.com/moved", alias="moved")["code"]
    for _ in range(3):
        click(s, code, CHROME_WIN)
    click(s, code, GOOGLEBOT)
    deadline = time.monotonic() + 10
    while click_rows(s.data)["click_hours"] == []:  # merged: rows in the tables
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert s.stop() == 0
    rows = click_rows(s.data)
    # an older counter of the same link, an hour before, in the old tables
    lid, hour = rows["click_hours"][0][0], rows["click_hours"][0][1]
    rows["click_hours"].append((lid, hour - 1, 4, 0))
    remove_clicks_db(s.data)
    old_layout(s.data, rows)
    check_upgraded(s, code, rows, moved=True)

    # stopped between the two steps: clicks.db has the counters, and
    # shortd.db still has its old tables with the same rows
    old_layout(s.data, rows)
    check_upgraded(s, code, rows, moved=False)


@pytest.mark.sqlite_only
def test_missing_clicks_db_is_said(tmp_path):
    """shortd.db without its clicks.db (a backup restored in part): the
    service starts, counts from zero, and says why in the log."""
    s = Server(tmp_path, "--geoip", "off").start()
    code = s.create("https://example.com/partial")["code"]
    click(s, code, CHROME_WIN)
    assert s.stop() == 0
    remove_clicks_db(s.data)
    s2 = restart(s)
    try:
        assert "clicks.db' was missing" in s2.log()
        assert stats(s2, code)["total"] == 0
        click(s2, code, CHROME_WIN)
        assert stats(s2, code)["total"] == 1
    finally:
        assert s2.stop() == 0


def test_countries_from_debian_geoip_database(make_server):
    """With --geoip auto (the default) and no .mmdb installed, Debian's
    geoip-database (legacy GeoIP.dat, and GeoIPv6.dat beside it, installed
    by scripts/deps.sh) gives countries for IPv4 and IPv6 clients; the
    addresses are the forwarded ones of a trusted proxy, looked up only."""
    used = next(p for p in GEOIP_PATHS if os.access(p, os.R_OK))
    s = make_server("--trusted-proxies", "127.0.0.1/32")
    assert f"click countries from '{used}'" in s.log()
    if not used.endswith("/GeoIP.dat"):
        pytest.skip(f"a MaxMind database ({used}) comes first on this machine")
    code = s.create()["code"]
    for ip in ("8.8.8.8", "8.8.4.4", "2001:4860:4860::8888", "193.0.6.139", "127.0.0.1"):
        r = s.request("GET", "/" + code, headers={"X-Forwarded-For": ip, "User-Agent": CHROME_WIN})
        assert r.status == 302
    got = as_dict(stats(s, code)["countries"])
    assert got == {"US": 3, "NL": 1, "unknown": 1}, got


def test_legacy_geoip_file_by_name(make_server, tmp_path):
    s = make_server("--geoip", "/usr/share/GeoIP/GeoIPv6.dat", "--trusted-proxies", "127.0.0.1/32")
    code = s.create()["code"]
    for ip in ("8.8.8.8", "2001:4860:4860::8888"):  # GeoIP.dat beside it answers IPv4
        s.request("GET", "/" + code, headers={"X-Forwarded-For": ip, "User-Agent": CHROME_WIN})
    assert as_dict(stats(s, code)["countries"]) == {"US": 2}
    bad = tmp_path / "bad.dat"
    bad.write_bytes(b"\0" * 100)
    from conftest import BIN
    r = subprocess.run([BIN, "--geoip", str(bad), "--data", str(tmp_path / "d")],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "not a legacy GeoIP country database" in r.stderr, r.stderr
