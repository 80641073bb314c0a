"""The documentation is exercised: every example in docs/api.md runs against
a real server and must answer what the page shows; the options table in
docs/operations.md is the one the binary prints, and its backup commands
work; the README quick start is two commands and its create example works."""
import json
import os
import re
import sqlite3
import subprocess
import time

import pytest

from conftest import BIN, ROOT


def blocks(path):
    """(language, text) of each fenced block, in order."""
    text = open(os.path.join(ROOT, path)).read()
    return re.findall(r"^```(\w*)\n(.*?)^```", text, re.S | re.M)


def run_sh(cmd, server):
    """Runs an example against server: its address, its data directory and
    the binary under test; $SHORTD_KEY is its admin key. It runs in the
    server's scratch directory (an example may write a file)."""
    cmd = cmd.replace("127.0.0.1:8080", f"127.0.0.1:{server.port}")
    cmd = cmd.replace("--data ./data", " ".join(server.store_args())).replace("./shortd ", BIN + " ")
    env = dict(os.environ, SHORTD_KEY=server.key)
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=30, env=env,
                       cwd=server.workdir)
    assert r.returncode == 0, (cmd, r.stderr)
    return r.stdout


def matches(expected_line, actual_lines):
    if "..." not in expected_line:
        return expected_line in actual_lines
    parts = expected_line.split("...")
    for line in actual_lines:
        pos, ok = 0, True
        for p in parts:
            i = line.find(p, pos)
            if i < 0:
                ok = False
                break
            pos = i + len(p)
        if ok and line.startswith(parts[0]) and line.endswith(parts[-1]):
            return True
    return False


def test_api_examples_answer_as_documented(make_server):
    s = make_server("--base-url", "http://127.0.0.1:8080")
    bl = blocks("docs/api.md")
    ran = 0
    for (lang, text), nxt in zip(bl, bl[1:] + [("", "")]):
        if lang != "sh":
            continue
        assert nxt[0] == "http", f"example without a documented answer: {text}"
        out = run_sh(text, s)
        actual = [l.rstrip("\r") for l in out.split("\n")]
        expected = nxt[1].strip().split("\n")
        assert matches(expected[0], actual[:1]), (text, out)
        for line in expected[1:]:
            if line == "...":
                continue
            assert matches(line, actual), (text, line, out)
        ran += 1
    assert ran >= 13


def test_options_table_matches_binary():
    doc = open(os.path.join(ROOT, "docs/operations.md")).read()
    table = doc.split("<!-- options:begin -->\n")[1].split("<!-- options:end -->")[0]
    printed = subprocess.run([BIN, "--help-markdown"], capture_output=True, text=True).stdout
    assert table == printed


def test_readme_quick_start_is_two_commands():
    first = blocks("README.md")[0][1]
    cmds = [l.split("#")[0].strip() for l in first.strip().split("\n")]
    assert cmds == ["make run", "make test"]
    ci = open(os.path.join(ROOT, ".ci/run")).read()
    assert "make test" in ci


def test_readme_create_example(server):
    example = blocks("README.md")[1][1]
    create = example.split("\n# {")[0]
    out = run_sh(create, server)
    link = json.loads(out)
    assert link["url"] == "https://example.com/a/very/long/path?with=query"
    r = server.request("GET", "/" + link["code"])
    assert r.status == 302 and r.headers["location"] == link["url"]


@pytest.mark.sqlite_only
def test_backup_example(server, tmp_path):
    """The backup commands of docs/operations.md, run while shortd serves,
    give both databases: links in the one, click counters in the other."""
    example = next(b for lang, b in blocks("docs/operations.md") if ".backup" in b)
    code = server.create("https://example.com/backed-up")["code"]
    assert server.request("GET", "/" + code).status == 302
    # the click reaches clicks.db within a flush interval (1 s by default)
    deadline = time.monotonic() + 10
    while True:
        db = sqlite3.connect(os.path.join(server.data, "clicks.db"))
        n = db.execute("SELECT count(*) FROM click_deltas").fetchone()[0]
        db.close()
        if n:
            break
        assert time.monotonic() < deadline
        time.sleep(0.1)
    backup = tmp_path / "backup"
    backup.mkdir()
    cmd = example.replace("data/", server.data + "/").replace("backup/", f"{backup}/")
    subprocess.run(["bash", "-ec", cmd], check=True, timeout=30)
    links = sqlite3.connect(str(backup / "shortd.db"))
    assert links.execute("SELECT count(*) FROM links WHERE code = ?", (code,)).fetchone()[0] == 1
    clicks = sqlite3.connect(str(backup / "clicks.db"))
    assert clicks.execute("SELECT count(*) FROM click_deltas").fetchone()[0] >= 1
