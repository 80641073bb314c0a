"""Command line: --help, --version, options from flags, environment and
config file, and refusals with exit code 2."""
import os
import subprocess
import time

import pytest

from conftest import BIN, Server, free_port


def run(*args, env=None, timeout=10, cwd=None):
    e = dict(os.environ)
    e.pop("SHORTD_CONFIG", None)
    e.update(env or {})
    return subprocess.run([BIN, *args], capture_output=True, text=True, env=e, timeout=timeout,
                          cwd=cwd)


def test_help_lists_every_option_with_default():
    r = run("--help")
    assert r.returncode == 0
    for opt in ["--listen", "--data", "--threads", "--base-url", "--code-length", "--cache-mb",
                "--redirect-status", "--max-conns", "--header-timeout-s",
                "--keepalive-timeout-s", "--drain-s", "--config"]:
        assert opt in r.stdout
    assert "default '127.0.0.1:8080'" in r.stdout
    assert "default './data'" in r.stdout
    assert "SHORTD_LISTEN" in r.stdout


def test_every_command_has_help():
    """shortd --help lists the commands; CMD --help, CMD -h and help CMD
    print a command's usage (sub-commands of key too) on stdout with exit 0;
    an unknown command lists the valid ones, exit 2."""
    top = run("--help").stdout
    for cmd in ("serve", "key", "import", "migrate", "help"):
        assert f"\n  {cmd} " in top, cmd
    cases = {
        ("key",): ["shortd key create", "shortd key list", "shortd key revoke"],
        ("key", "create"): ["shortd key create --name NAME", "--init"],
        ("key", "list"): ["shortd key list"],
        ("key", "revoke"): ["shortd key revoke ID"],
        ("import",): ["shortd import FILE"],
        ("migrate",): ["shortd migrate --pg URL"],
        ("serve",): ["--listen", "SHORTD_LISTEN"],
    }
    for cmd, want in cases.items():
        for args in ([*cmd, "--help"], [*cmd, "-h"], ["help", *cmd]):
            r = run(*args)
            assert r.returncode == 0, (args, r.stderr)
            for w in want:
                assert w in r.stdout, (args, w, r.stdout)
            if cmd[:2] == ("key", "create"):
                assert "shortd key list" not in r.stdout
    for args in (["frob"], ["help", "frob"]):
        r = run(*args)
        assert r.returncode == 2 and "unknown command 'frob'" in r.stderr
        assert "import" in r.stderr and "migrate" in r.stderr


def test_man_page_is_the_option_table():
    man = run("--help-man").stdout
    assert man.startswith(".TH SHORTD 1 ")
    table = run("--help-markdown").stdout
    names = [line.split("`")[1] for line in table.splitlines()[2:]]
    assert len(names) > 40
    for name in names:
        assert "\\-\\-" + name[2:].replace("-", "\\-") in man, name
    # rendered without a single warning of groff's
    r = subprocess.run(["groff", "-man", "-Tutf8", "-wall"], input=man, capture_output=True,
                       text=True)
    assert r.returncode == 0 and "URL shortener" in r.stdout
    assert r.stderr == "", r.stderr


def test_version():
    r = run("--version")
    assert r.returncode == 0 and r.stdout.startswith("shortd ")


def test_unknown_option_refused():
    r = run("--no-such-option", "1")
    assert r.returncode == 2
    assert "unknown option '--no-such-option'" in r.stderr


def test_invalid_values_refused(tmp_path):
    """Each bad option is exit 2 with its message, and leaves no data
    directory behind (the default one would be ./data)."""
    cases = [
        (["--threads", "many"], "expected an integer"),
        (["--threads", "-1"], "expected an integer"),
        (["--code-length", "2"], "out of range"),
        (["--redirect-status", "303"], "301, 302, 307 or 308"),
        (["--listen", "nonsense"], "invalid listen address"),
        (["--listen", "127.0.0.1:70000"], "invalid listen address"),
        (["--base-url", "ftp://x.example"], "invalid base URL"),
        (["--log-level", "chatty"], "log-level"),
        (["--data"], "needs a value"),
        (["stray"], "unknown command 'stray'"),
        (["serve", "stray"], "unexpected argument"),
    ]
    for args, msg in cases:
        r = run(*args, cwd=tmp_path)
        assert r.returncode == 2, (args, r.stderr)
        assert msg in r.stderr, (args, r.stderr)
        assert not (tmp_path / "data").exists(), args


def test_environment_variables(tmp_path):
    r = run(env={"SHORTD_CODE_LENGTH": "x"})
    assert r.returncode == 2 and "environment" in r.stderr
    # unknown SHORTD_* variables are only warned about: Kubernetes sets
    # SHORTD_PORT=tcp://... for a Service named shortd
    r = run("--version", env={"SHORTD_PORT": "tcp://10.0.0.1:8080"})
    assert r.returncode == 0
    r = run("--listen", "bad", env={"SHORTD_PORT": "tcp://10.0.0.1:8080"})
    assert "ignoring unknown environment variable 'SHORTD_PORT'" in r.stderr


def test_env_and_config_file_apply(tmp_path, make_server):
    cfg = tmp_path / "shortd.conf"
    cfg.write_text("# test config\ncode-length = 12\nredirect-status = 307\n")
    s = make_server("--config", str(cfg), env={"SHORTD_BASE_URL": "https://sho.rt.example"})
    link = s.create("https://example.com/cfg")
    assert len(link["code"]) == 12
    assert link["redirect"] == 307
    assert link["short_url"] == "https://sho.rt.example/" + link["code"]


def test_flag_beats_env_beats_file(tmp_path, make_server):
    cfg = tmp_path / "shortd.conf"
    cfg.write_text("code-length = 9\n")
    s = make_server("--config", str(cfg), "--code-length", "11",
                    env={"SHORTD_CODE_LENGTH": "10"})
    assert len(s.create()["code"]) == 11
    s2 = make_server("--config", str(cfg), env={"SHORTD_CODE_LENGTH": "10"},
                     data=str(tmp_path / "data2"))  # one server per data directory
    assert len(s2.create()["code"]) == 10


def test_bad_config_file(tmp_path):
    cfg = tmp_path / "bad.conf"
    cfg.write_text("listen 127.0.0.1:1\n")
    r = run("--config", str(cfg))
    assert r.returncode == 2 and "line 1" in r.stderr
    cfg.write_text("colour = blue\n")
    r = run("--config", str(cfg))
    assert r.returncode == 2 and "unknown option 'colour'" in r.stderr
    r = run("--config", str(tmp_path / "missing.conf"))
    assert r.returncode == 2 and "unable to open" in r.stderr


def test_port_in_use_fails_cleanly(tmp_path, make_server):
    """A second shortd on a port another process serves is refused, with
    exit 2, before it opens anything: with SO_REUSEPORT it would share the
    port and answer half of the first one's requests from its own cache."""
    s = make_server()
    r = run("--listen", f"127.0.0.1:{s.port}", "--data", str(tmp_path / "d2"))
    assert r.returncode == 2, r.stderr
    assert f"another process already listens on 127.0.0.1:{s.port}" in r.stderr
    assert not (tmp_path / "d2").exists()
    import socket
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        p = blocker.getsockname()[1]
        r = run("--listen", f"127.0.0.1:{p}", "--data", str(tmp_path / "d3"))
        assert r.returncode == 2
        assert "another process already listens" in r.stderr
        # the metrics address too
        r = run("--listen", "127.0.0.1:1", "--metrics-listen", f"127.0.0.1:{p}",
                "--data", str(tmp_path / "d3"))
        assert r.returncode == 2 and "another process already listens" in r.stderr
    # the first one was never disturbed
    assert s.request("GET", "/healthz").status == 200


@pytest.mark.sqlite_only
def test_one_server_per_data_directory(tmp_path, make_server):
    """The data directory is locked while a server uses it: a second one
    is refused (exit 2, naming the first one's pid), the CLI works beside
    it, and the lock goes with the process, even after kill -9."""
    s = make_server()
    r = run("--listen", f"127.0.0.1:{free_port()}", "--data", s.data)
    assert r.returncode == 2, r.stderr
    assert f"another shortd (pid {s.proc.pid}) already serves the data directory" in r.stderr
    assert s.cli("key", "list").returncode == 0
    assert s.cli("key", "create", "--name", "beside", "--role", "user").returncode == 0
    s.kill()
    s2 = Server(tmp_path, data=s.data, port=None)
    s2.key = s.key
    s2.start()
    try:
        assert s2.request("GET", "/healthz").status == 200
    finally:
        s2.stop()


@pytest.mark.sqlite_only
def test_commands_refuse_a_data_directory_without_a_database(tmp_path):
    """`shortd key` and `shortd import` run in the wrong directory name the
    directory they looked at instead of making a new empty database there;
    --init creates one."""
    src = tmp_path / "links.csv"
    src.write_text("https://example.com/a\n")
    for args in (["key", "create", "--name", "a", "--role", "admin"], ["key", "list"],
                 ["key", "revoke", "abc"], ["import", str(src)]):
        r = subprocess.run([BIN, *args], capture_output=True, text=True, cwd=tmp_path, timeout=30)
        assert r.returncode == 2, (args, r.stderr)
        assert f"no database in '{tmp_path}/data'" in r.stderr, r.stderr
        assert "--init" in r.stderr
        assert not (tmp_path / "data").exists()
    r = subprocess.run([BIN, "key", "create", "--name", "a", "--role", "admin", "--init"],
                       capture_output=True, text=True, cwd=tmp_path, timeout=30)
    assert r.returncode == 0 and r.stdout.startswith("shortd_"), r.stderr
    r = subprocess.run([BIN, "import", str(src)], capture_output=True, text=True, cwd=tmp_path,
                       timeout=30)
    assert r.returncode == 0 and "imported 1 link," in r.stderr, r.stderr


def test_listen_by_name_and_bad_addresses(tmp_path):
    """--listen takes a name of this machine (localhost) as well as
    [::1]:PORT; an invalid address is refused with exit 2 before the data
    directory is touched."""
    import socket
    port = free_port()
    s = Server(tmp_path, port=port)
    s.args = ["--listen", f"localhost:{port}"]  # after the harness's own --listen
    s.start(wait=False)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("localhost", port), timeout=2) as c:
                    c.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
                    assert c.recv(100).startswith(b"HTTP/1.1 200 ")
                break
            except OSError:
                assert time.monotonic() < deadline and s.proc.poll() is None, s.log()
                time.sleep(0.1)
    finally:
        s.stop()
    for bad in ("127.0.0.1:0", ":8080", "[::1]8080", "127.0.0.1", "127.0.0.1:65536", "[::1:80"):
        r = run("--listen", bad, "--data", str(tmp_path / "never"))
        assert r.returncode == 2 and "invalid listen address" in r.stderr, (bad, r.stderr)
    assert not (tmp_path / "never").exists()


def test_unwritable_data_dir_fails_cleanly(tmp_path):
    f = tmp_path / "file"
    f.write_text("not a directory")
    r = run("--listen", "127.0.0.1:1", "--data", str(f / "sub"))
    assert r.returncode == 2
    assert "unable to create data directory" in r.stderr
