"""`shortd import`: links in bulk from CSV or JSON lines, under the API's
rules, while the server runs or not."""
import json
import subprocess

from conftest import BIN, Server, store_args


def run_import(data, *args):
    """An import that may create the database (--init)."""
    return subprocess.run([BIN, "import", *args, "--init", *store_args(data)],
                          capture_output=True, text=True, timeout=120)


def test_csv_import_reports_each_refused_line(tmp_path):
    src = tmp_path / "links.csv"
    src.write_text(
        "url,alias,expires_at\n"
        "https://example.com/a,alias-a,\n"
        "https://Example.com:443/b\n"
        '"https://example.com/c,d?x=1",with-comma,2031-01-01T00:00:00Z\n'
        "javascript:alert(1)\n"
        "https://example.com/e,alias-a\n"
        "https://example.com/f,healthz\n"
        '"https://example.com/unclosed\n'
        "https://example.com/g,past-one,2001-01-01T00:00:00Z\n")
    codes = tmp_path / "codes"
    r = run_import(tmp_path / "data", str(src), "--codes", str(codes))
    assert r.returncode == 3, r.stderr
    assert "imported 3 links, skipped 5 lines" in r.stderr
    for line, why in [(5, "only http:// and https://"), (6, "alias is taken"), (7, "alias"),
                      (8, "quoted field"), (9, "expires_at")]:
        assert f"line {line}: skipped:" in r.stderr and why in r.stderr, (line, r.stderr)
    got = codes.read_text().split()
    assert len(got) == 3 and "alias-a" in got and "with-comma" in got
    s = Server(tmp_path, data=str(tmp_path / "data")).start()
    try:
        assert s.request("GET", "/with-comma").headers["location"] == "https://example.com/c,d?x=1"
        random_code = [c for c in got if c not in ("alias-a", "with-comma")][0]
        assert s.request("GET", "/" + random_code).headers["location"] == "https://example.com/b"
        link = s.request("GET", "/api/v1/links/with-comma").json()
        assert link["expires_at"] == "2031-01-01T00:00:00.000Z"
    finally:
        s.stop()


def test_jsonl_import_into_a_running_server_with_an_owner(tmp_path):
    s = Server(tmp_path).start()
    try:
        user = s.request("POST", "/api/v1/keys", json_body={"name": "u", "role": "user"}).json()
        src = tmp_path / "links.jsonl"
        src.write_text("\n".join(json.dumps(x) for x in [
            {"url": "https://example.com/1", "alias": "imp-1", "redirect": 301},
            {"url": "https://example.com/2", "ttl_s": 3600},
            {"url": "https://example.com/3", "bogus": 1},
            {"alias": "no-url"},
        ]) + "\nnot json\n")
        r = run_import(s.data, str(src), "--owner", user["id"])
        assert r.returncode == 3, r.stderr
        assert "imported 2 links, skipped 3 lines" in r.stderr
        assert "line 3: skipped: bogus: unknown field" in r.stderr
        # the running server serves them at once, and they belong to the key
        assert s.request("GET", "/imp-1").status == 301
        mine = s.request("GET", "/api/v1/links", key=user["key"]).json()["links"]
        assert len(mine) == 2
        assert run_import(s.data, str(src), "--owner", "nosuchkey1").returncode == 1
    finally:
        s.stop()


def test_import_all_good_exits_0_and_scales(tmp_path):
    src = tmp_path / "many.csv"
    src.write_text("".join(f"https://example.com/many/{i}\n" for i in range(20000)))
    r = run_import(tmp_path / "data", str(src), "--codes", str(tmp_path / "codes"))
    assert r.returncode == 0, r.stderr
    assert "imported 20000 links, skipped 0 lines" in r.stderr
    assert len(set((tmp_path / "codes").read_text().split())) == 20000


def test_import_usage_errors(tmp_path):
    assert subprocess.run([BIN, "import"], capture_output=True).returncode == 2
    r = run_import(tmp_path / "d", str(tmp_path / "missing.csv"))
    assert r.returncode == 1 and "cannot open" in r.stderr
    r = run_import(tmp_path / "d", str(tmp_path / "x"), "--format", "xml")
    assert r.returncode == 2
