"""What deploy/ and the Makefile ship to run shortd as a service: make
install and uninstall, the systemd unit (systemd-analyze verify), the Debian
package (built with Debian's tools, lintian-clean, installed into a scratch
root and purged from it), and the proxy examples for nginx and HAProxy, run
as shipped (ports and certificate paths replaced) with a throwaway
certificate on loopback in front of a real shortd: TLS, HTTP/2, redirects,
creates, the client's address, /metrics kept off the public port."""
import json
import os
import re
import signal
import socket
import subprocess
import time

import pytest

from conftest import ROOT, free_port

pytestmark = pytest.mark.sqlite_only  # nothing here depends on the store

# make install and make deb build from the tree, whatever binary the suite
# tests: once, in the plain run
packaging = pytest.mark.skipif(
    os.environ.get("SHORTD_SANITIZED") == "1" or os.environ.get("SHORTD_DELAYED") == "1",
    reason="packaging is checked in the plain run")


def make(*args, timeout=600):
    r = subprocess.run(["make", "-s", "--no-print-directory", *args], cwd=ROOT,
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


@packaging
def test_make_install_and_uninstall(tmp_path):
    prefix, etc = tmp_path / "usr/local", tmp_path / "etc"
    make("install", f"PREFIX={prefix}", f"SYSCONFDIR={etc}")
    unit = prefix / "lib/systemd/system/shortd.service"
    for f in ("bin/shortd", "share/man/man1/shortd.1.gz", "share/doc/shortd/api.md",
              "share/doc/shortd/nginx-site.conf", "share/doc/shortd/haproxy.cfg"):
        assert (prefix / f).exists(), f
    assert os.access(prefix / "bin/shortd", os.X_OK)
    assert (etc / "shortd/shortd.conf").read_text() == \
        open(os.path.join(ROOT, "deploy/shortd.conf.example")).read()
    text = unit.read_text()
    assert f"ExecStart={prefix}/bin/shortd --config {etc}/shortd/shortd.conf" in text
    for hardening in ("DynamicUser=yes", "StateDirectory=shortd", "ProtectSystem=strict",
                      "NoNewPrivileges=yes", "ReadWritePaths=", "ExecReload=/bin/kill -HUP"):
        assert hardening in text, hardening
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    # the installed binary reads the installed configuration
    r = subprocess.run([str(prefix / "bin/shortd"), "--config", str(etc / "shortd/shortd.conf"),
                        "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    # a changed configuration is the operator's: uninstall keeps it
    with open(etc / "shortd/shortd.conf", "a") as f:
        f.write("deny-private-targets = 1\n")
    r = make("uninstall", f"PREFIX={prefix}", f"SYSCONFDIR={etc}")
    assert "kept" in r.stdout
    assert not (prefix / "bin/shortd").exists() and not unit.exists()
    assert not (prefix / "share/doc/shortd").exists()
    assert (etc / "shortd/shortd.conf").exists()


@packaging
def test_debian_package(tmp_path):
    """make deb builds it with dpkg-buildflags, dpkg-shlibdeps,
    dpkg-gencontrol and dpkg-deb, and fails on any lintian error or
    warning; dpkg installs it into a scratch root and purges it, leaving
    nothing."""
    make("deb", timeout=900)
    # the tree stays clean: what dpkg-gencontrol writes goes to build/
    assert not os.path.exists(os.path.join(ROOT, "debian", "files"))
    version = subprocess.run(["dpkg-parsechangelog", "-S", "Version"], cwd=ROOT,
                             capture_output=True, text=True).stdout.strip()
    deb = os.path.join(ROOT, "build", f"shortd_{version}_amd64.deb")
    info = subprocess.run(["dpkg-deb", "-I", deb], capture_output=True, text=True).stdout
    assert "Depends: libc6" in info and "libpq5" in info and "libicu72" in info
    files = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True).stdout
    for f in ("./usr/bin/shortd", "./usr/share/man/man1/shortd.1.gz",
              "./lib/systemd/system/shortd.service", "./etc/shortd/shortd.conf",
              "./usr/share/doc/shortd/copyright", "./usr/share/doc/shortd/changelog.Debian.gz"):
        assert f in files, f
    lint = subprocess.run(["lintian", "--fail-on", "error,warning", deb], capture_output=True,
                          text=True, timeout=300)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    root = tmp_path / "root"
    (root / "var/lib/dpkg/info").mkdir(parents=True)
    (root / "var/lib/dpkg/updates").mkdir()
    (root / "var/lib/dpkg/status").write_text("")
    dpkg = ["dpkg", f"--root={root}", "--force-script-chrootless", "--force-not-root",
            "--log=/dev/null"]
    # the scratch root holds none of the libraries: their absence is expected
    r = subprocess.run(dpkg + ["--force-depends", "-i", deb], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert subprocess.run([str(root / "usr/bin/shortd"), "--version"], capture_output=True,
                          text=True).stdout.startswith("shortd ")
    assert (root / "etc/shortd/shortd.conf").exists()
    r = subprocess.run(dpkg + ["-P", "shortd"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    left = [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs
            if not d.startswith(str(root / "var/lib/dpkg"))]
    assert left == [], left


# ---- TLS proxies ---------------------------------------------------------------


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    key, crt = d / "privkey.pem", d / "fullchain.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=sho.rt.example", "-addext", "subjectAltName=DNS:sho.rt.example",
                    "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True)
    both = d / "haproxy.pem"
    both.write_text(crt.read_text() + key.read_text())
    return {"key": str(key), "crt": str(crt), "pem": str(both)}


def wait_port(port, proc, what):
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"{what} exited with {proc.returncode}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"{what} did not listen on {port}")


def curl(*args, source="127.0.0.1"):
    """(status, headers, body, HTTP version) of one curl through a proxy."""
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        head, body = os.path.join(d, "head"), os.path.join(d, "body")
        r = subprocess.run(["curl", "-sk", "--interface", source, "-D", head, "-o", body,
                            "-w", "%{http_version}", *args],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        lines = [x.rstrip("\r") for x in open(head).read().split("\n")]
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)}
        return status, headers, open(body).read(), r.stdout.strip()


def through_proxy(s, https, http, log):
    """The checks both proxies pass: s is shortd behind them."""
    resolve = [f"--resolve", f"sho.rt.example:{https}:127.0.0.1",
               "--resolve", f"sho.rt.example:{http}:127.0.0.1"]
    base = f"https://sho.rt.example:{https}"
    # a create over HTTP/2 and TLS: its short URL is the public https one
    st, h, body, version = curl(*resolve, "--http2", "-X", "POST", base + "/api/v1/links",
                                "-H", f"Authorization: Bearer {s.key}",
                                "-H", "Content-Type: application/json",
                                "-d", json.dumps({"url": "https://example.com/through"}))
    assert st == 201 and version == "2", (st, version, body)
    link = json.loads(body)
    assert link["short_url"] == "https://sho.rt.example/" + link["code"]
    # the redirect, from another client address
    st, h, _, _ = curl(*resolve, base + "/" + link["code"], source="127.0.0.7")
    assert st == 302 and h.get("location") == "https://example.com/through", (st, h)
    # the address shortd logged is the client's, as the proxy passed it on
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [json.loads(x) for x in open(log) if x.strip()]
        mine = [x for x in lines if x["path"] == "/" + link["code"]]
        if mine:
            break
        time.sleep(0.1)
    assert mine and mine[-1]["ip"] == "127.0.0.7", lines[-3:]
    # /metrics is not served through the public port
    st, _, _, _ = curl(*resolve, base + "/metrics")
    assert st == 404
    # plain HTTP is sent on to https
    st, h, _, _ = curl(*resolve, f"http://sho.rt.example:{http}/" + link["code"])
    assert st in (301, 308) and h.get("location", "").startswith("https://sho.rt.example"), (st, h)


@pytest.fixture
def proxied_shortd(make_server, tmp_path):
    log = tmp_path / "access.log"
    s = make_server("--trusted-proxies", "127.0.0.1", "--base-url", "https://sho.rt.example",
                    "--access-log", str(log))
    return s, str(log)


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_nginx_example(proxied_shortd, cert, tmp_path):
    s, log = proxied_shortd
    https, http = free_port(), free_port()
    site = open(os.path.join(ROOT, "deploy/nginx-site.conf")).read()
    site = re.sub(r"^\s*listen \[::\]:.*\n", "", site, flags=re.M)  # loopback only
    site = site.replace("listen 443 ssl http2;", f"listen 127.0.0.1:{https} ssl http2;")
    site = site.replace("listen 80;", f"listen 127.0.0.1:{http};")
    site = site.replace("server 127.0.0.1:8080;", f"server 127.0.0.1:{s.port};")
    site = site.replace("/etc/ssl/shortd/fullchain.pem", cert["crt"])
    site = site.replace("/etc/ssl/shortd/privkey.pem", cert["key"])
    assert f"127.0.0.1:{https}" in site and cert["crt"] in site and str(s.port) in site
    (tmp_path / "site.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(f"""daemon off;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log;
events {{ worker_connections 256; }}
http {{
	access_log off;
	client_body_temp_path {tmp_path}/body;
	proxy_temp_path {tmp_path}/proxy;
	fastcgi_temp_path {tmp_path}/fastcgi;
	uwsgi_temp_path {tmp_path}/uwsgi;
	scgi_temp_path {tmp_path}/scgi;
	include {tmp_path}/site.conf;
}}
""")
    proc = subprocess.Popen(["/usr/sbin/nginx", "-c", str(tmp_path / "nginx.conf"),
                             "-p", str(tmp_path)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_port(https, proc, "nginx")
        through_proxy(s, https, http, log)
    finally:
        stop(proc)


def test_haproxy_example(proxied_shortd, cert, tmp_path):
    s, log = proxied_shortd
    https, http = free_port(), free_port()
    cfg = open(os.path.join(ROOT, "deploy/haproxy.cfg")).read()
    cfg = cfg.replace("bind :80", f"bind 127.0.0.1:{http}")
    cfg = cfg.replace("bind :443 ssl crt /etc/ssl/shortd/haproxy.pem",
                      f"bind 127.0.0.1:{https} ssl crt {cert['pem']}")
    cfg = cfg.replace("server shortd1 127.0.0.1:8080", f"server shortd1 127.0.0.1:{s.port}")
    assert f"127.0.0.1:{https}" in cfg and cert["pem"] in cfg and str(s.port) in cfg
    (tmp_path / "haproxy.cfg").write_text(cfg)
    check = subprocess.run(["haproxy", "-c", "-f", str(tmp_path / "haproxy.cfg")],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    proc = subprocess.Popen(["haproxy", "-db", "-f", str(tmp_path / "haproxy.cfg")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(https, proc, "haproxy")
        # the health check (/readyz) has marked shortd up
        deadline = time.monotonic() + 10
        while curl("--resolve", f"sho.rt.example:{https}:127.0.0.1",
                   f"https://sho.rt.example:{https}/healthz")[0] != 200:
            assert time.monotonic() < deadline, "HAProxy never sent a request on"
            time.sleep(0.2)
        through_proxy(s, https, http, log)
    finally:
        stop(proc)


@packaging
def test_make_again_rebuilds_nothing_and_works_while_serving(tmp_path):
    """make after make has nothing to do; make while ./shortd serves
    relinks it without 'Text file busy' (the linker writes a new file), and
    the running server goes on serving."""
    make("all")
    assert subprocess.run(["make", "-q", "all"], cwd=ROOT).returncode == 0
    port = free_port()
    proc = subprocess.Popen([os.path.join(ROOT, "shortd"), "--listen", f"127.0.0.1:{port}",
                             "--data", str(tmp_path / "data"), "--geoip", "off"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.05)
        os.utime(os.path.join(ROOT, "src", "main.c"))  # as if edited
        assert subprocess.run(["make", "-q", "all"], cwd=ROOT).returncode == 1
        make("all")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert c.recv(100).startswith(b"HTTP/1.1 200 ")
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
