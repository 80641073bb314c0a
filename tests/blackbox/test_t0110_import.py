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
        "https://example.com/g,past-one,2001-01-01T00:00:00Z\n"
        # a quote left open runs to the end of the file (a record may span lines)
        '"https://example.com/unclosed\nhttps://example.com/h\n')
    codes = tmp_path / "codes"
    r = run_import(tmp_path / "data", str(src), "--codes", str(codes))
    assert r.returncode == 3, r.stderr
    assert "imported 3 links, refused 5 lines" in r.stderr
    for line, why in [(5, "only http:// and https://"), (6, "alias is taken"), (7, "alias"),
                      (8, "expires_at"), (9, "quoted field")]:
        assert f"line {line}: refused:" in r.stderr and why in r.stderr, (line, r.stderr)
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
        assert "imported 2 links, refused 3 lines" in r.stderr
        assert "line 3: refused: bogus: unknown field" in r.stderr
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
    assert "imported 20000 links, refused 0 lines" in r.stderr
    assert len(set((tmp_path / "codes").read_text().split())) == 20000


def test_import_usage_errors(tmp_path):
    assert subprocess.run([BIN, "import"], capture_output=True).returncode == 2
    r = run_import(tmp_path / "d", str(tmp_path / "missing.csv"))
    assert r.returncode == 1 and "cannot open" in r.stderr
    r = run_import(tmp_path / "d", str(tmp_path / "x"), "--format", "xml")
    assert r.returncode == 2


def redirects(s, pairs):
    """Each code of pairs answers a redirect to its target."""
    for code, target in pairs:
        r = s.request("GET", "/" + code)
        assert r.status == 302 and r.headers["location"] == target, (code, r.status)


def test_exports_of_other_shorteners(tmp_path):
    """The CSV exports of YOURLS, Kutt, Shlink and bit.ly are recognised by
    their header; their codes are kept (YOURLS's one-character ones too),
    so their short links go on working on shortd."""
    files = {
        "yourls.csv": (
            "keyword,url,title,timestamp,ip,clicks\n"
            "1,https://example.org/y1,First,2019-03-01 10:00:00,10.0.0.1,12\n"
            'ab,https://example.org/y2,"Title, with a comma\nand a line break",2019-03-02 10:00:00,'
            "10.0.0.1,0\n"
            "api,https://example.org/reserved,,2019-03-03 10:00:00,10.0.0.1,0\n",
            "YOURLS", [("1", "https://example.org/y1"), ("ab", "https://example.org/y2")]),
        "kutt.csv": (
            "id,address,target,description,expire_in,visit_count,link\n"
            "2b8c,kutt-1,https://example.org/k1,,2031-01-01T00:00:00.000Z,3,https://kutt.it/kutt-1\n"
            "2b8d,kutt-2,https://example.org/k2,,,0,https://kutt.it/kutt-2\n",
            "Kutt", [("kutt-1", "https://example.org/k1"), ("kutt-2", "https://example.org/k2")]),
        "shlink.csv": (
            "createdAt,domain,shortCode,shortUrl,longUrl,title,tags,visits\n"
            "2023-01-01T00:00:00+00:00,,shl-1,https://s.test/shl-1,https://example.org/s1,,a|b,4\n",
            "Shlink", [("shl-1", "https://example.org/s1")]),
        "shlink-import.csv": (
            "Long URL,Short code,Title,Tags\n"
            "https://example.org/s2,shl-2,,\n",
            "Shlink", [("shl-2", "https://example.org/s2")]),
        "bitly.csv": (
            "created_at,title,link,custom_bitlinks,long_url,tags\n"
            "2022-05-01T00:00:00+0000,A,https://bit.ly/3xYzAbc,,https://example.org/b1,\n"
            "2022-05-01T00:00:00+0000,B,bit.ly/3QqWwEe,,https://example.org/b2?x=1,\n",
            "bit.ly", [("3xYzAbc", "https://example.org/b1"),
                       ("3QqWwEe", "https://example.org/b2?x=1")]),
    }
    data = tmp_path / "data"
    want = []
    for name, (text, source, pairs) in files.items():
        f = tmp_path / name
        f.write_text(text)
        r = run_import(data, str(f))
        assert f"reading a {source} export" in r.stderr, r.stderr
        if name == "yourls.csv":
            # line 5: the record of line 3 took two lines
            assert r.returncode == 3 and "line 5: refused: code: is a reserved word" in r.stderr
        else:
            assert r.returncode == 0, r.stderr
        want += pairs
    # a format named but not found in the header
    r = run_import(data, str(tmp_path / "yourls.csv"), "--format", "kutt")
    assert r.returncode == 2 and "not a header of a Kutt export" in r.stderr, r.stderr
    s = Server(tmp_path, data=str(data)).start()
    try:
        redirects(s, want)
        assert s.request("GET", "/api/v1/links/kutt-1").json()["expires_at"] == \
            "2031-01-01T00:00:00.000Z"
    finally:
        s.stop()


def test_skip_existing_makes_a_second_run_a_no_op(tmp_path):
    """--skip-existing is keyed on the alias and target (lines with an
    alias) and on the owner and target (lines without): a second run of the
    same file imports nothing, and a line repeated in a file is imported
    once."""
    src = tmp_path / "links.csv"
    src.write_text("url,alias\n"
                   "https://example.com/1,keep-1\n"
                   "https://example.com/2\n"
                   "https://example.com/3\n"
                   "https://example.com/3\n"        # the same target again
                   "https://example.com/1\n")       # keep-1 has it already
    data = tmp_path / "data"
    codes = tmp_path / "codes"
    r = run_import(data, str(src), "--skip-existing", "--codes", str(codes))
    assert r.returncode == 0, r.stderr
    assert "imported 3 links, refused 0 lines, 2 already present" in r.stderr
    assert len(codes.read_text().split()) == 3
    r = run_import(data, str(src), "--skip-existing")
    assert r.returncode == 0, r.stderr
    assert "imported 0 links, refused 0 lines, 5 already present" in r.stderr
    # an alias that holds another target is a conflict, not "present"
    other = tmp_path / "other.csv"
    other.write_text("https://example.com/elsewhere,keep-1\nhttps://example.com/4\n")
    r = run_import(data, str(other), "--skip-existing")
    assert r.returncode == 3 and "line 1: refused: the alias is taken" in r.stderr, r.stderr
    assert "imported 1 link, refused 1 line, 0 already present" in r.stderr
    # without the option the same file makes new links
    r = run_import(data, str(src))
    assert "imported 4 links, refused 1 line," in r.stderr, r.stderr
    s = Server(tmp_path, data=str(data)).start()
    try:
        links, cursor = [], ""
        while True:
            page = s.request("GET", "/api/v1/links?limit=100" + cursor).json()
            links += page["links"]
            if not page.get("next_cursor"):
                break
            cursor = "&cursor=" + page["next_cursor"]
        assert len(links) == 4 + 4
    finally:
        s.stop()


def test_refused_lines_are_capped_then_summarised(tmp_path):
    src = tmp_path / "bad.csv"
    src.write_text("".join("ftp://example.com/%d\n" % i for i in range(40)) +
                   "".join("https://example.com/ok/%d,x\n" % i for i in range(15)) +
                   "https://example.com/fine\n")
    r = run_import(tmp_path / "data", str(src))
    assert r.returncode == 3
    shown = [line for line in r.stderr.splitlines() if line.startswith("line ")]
    assert len(shown) == 20 and shown[0].startswith("line 1: refused: url:")
    assert "(35 more refused lines not shown)" in r.stderr
    assert "        40  url: only http:// and https:// URLs can be shortened" in r.stderr
    assert "        15  alias: must be 3 to 64 characters long" in r.stderr
    assert "imported 1 link, refused 55 lines" in r.stderr
    assert "\r" not in r.stderr and "lines read" not in r.stderr  # no terminal, no progress


def test_progress_on_a_terminal(tmp_path):
    import os
    import pty
    src = tmp_path / "many.csv"
    src.write_text("".join(f"https://example.com/p/{i}\n" for i in range(5000)))
    master, slave = pty.openpty()
    p = subprocess.Popen([BIN, "import", str(src), "--init", *store_args(tmp_path / "data")],
                         stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the other end closed
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert p.wait(timeout=60) == 0, out
    text = out.decode()
    assert "\r1024 lines read, " in text and " lines/s, " in text and " left" in text, text
    assert text.endswith("imported 5000 links, refused 0 lines, in " + text.split(" in ")[-1])


def test_jsonl_found_by_content_and_csv_from_stdin(tmp_path):
    data = tmp_path / "data"
    src = tmp_path / "links.txt"  # no telling name: the first '{' says JSON lines
    src.write_text('{"url": "https://example.com/j1", "alias": "json-1"}\n')
    r = run_import(data, str(src))
    assert r.returncode == 0 and "imported 1 link," in r.stderr, r.stderr
    r = subprocess.run([BIN, "import", "-", *store_args(data)], input="https://example.com/in\n",
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "imported 1 link," in r.stderr, r.stderr
    # the file may follow switches and options
    r = subprocess.run([BIN, "import", "--skip-existing", *store_args(data), "--init", str(src)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "1 already present" in r.stderr, r.stderr
