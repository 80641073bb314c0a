"""QR codes of short links: GET /api/v1/links/{code}/qr, decoded back
with zbarimg (Debian zbar-tools), with their options, ETags and the
link's ownership rules."""
import re
import subprocess

import pytest


def decode(path):
    r = subprocess.run(["zbarimg", "-q", "--raw", str(path)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def png_size(body):
    assert body[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(body[16:20], "big"), int.from_bytes(body[20:24], "big")


def svg_to_pgm(svg, path, scale=4):
    """Draws the SVG's path (runs "Mx yhNv1h-Nz", as shortd writes them)
    into a PGM file zbarimg can read: the test checks the geometry, not
    only that the text looks like SVG."""
    n = int(re.search(r'viewBox="0 0 (\d+) (\d+)"', svg).group(1))
    grid = [[255] * n for _ in range(n)]
    d = re.search(r'<path fill="#000" d="([^"]*)"', svg).group(1)
    runs = re.findall(r"M(\d+) (\d+)h(\d+)v1h-(\d+)z", d)
    assert runs and "".join(f"M{x} {y}h{w}v1h-{w2}z" for x, y, w, w2 in runs) == d
    for x, y, w, _ in runs:
        for i in range(int(w)):
            grid[int(y)][int(x) + i] = 0
    with open(path, "wb") as f:
        f.write(b"P5 %d %d 255\n" % (n * scale, n * scale))
        for row in grid:
            line = bytes(v for v in row for _ in range(scale))
            f.write(line * scale)


def test_png_and_svg_decode_to_the_short_url(server, tmp_path):
    link = server.create("https://example.com/qr", alias="qr-me")
    r = server.request("GET", "/api/v1/links/qr-me/qr?format=png&size=300")
    assert r.status == 200 and r.headers["content-type"] == "image/png"
    w, h = png_size(r.body)
    assert w == h and 0 < w <= 300  # whole modules: never wider than asked
    (tmp_path / "a.png").write_bytes(r.body)
    assert decode(tmp_path / "a.png") == link["short_url"]
    for ecc in "LMQH":
        r = server.request("GET", f"/api/v1/links/qr-me/qr?format=png&ecc={ecc}&margin=0&size=64")
        assert r.status == 200
    r = server.request("GET", "/api/v1/links/qr-me/qr")  # SVG by default
    assert r.status == 200 and r.headers["content-type"] == "image/svg+xml"
    svg = r.body.decode()
    assert 'width="256"' in svg and "<script" not in svg
    assert "script-src" not in r.headers["content-security-policy"]
    svg_to_pgm(svg, tmp_path / "a.pgm")
    assert decode(tmp_path / "a.pgm") == link["short_url"]


def test_etag_and_not_modified(server):
    server.create("https://example.com/e", alias="qr-etag")
    r = server.request("GET", "/api/v1/links/qr-etag/qr?format=png")
    etag = r.headers["etag"]
    assert re.fullmatch(r'"[0-9a-f]{16}"', etag) and "max-age" in r.headers["cache-control"]
    for inm in (etag, "W/" + etag, '"other", ' + etag, "*"):
        r = server.request("GET", "/api/v1/links/qr-etag/qr?format=png",
                           headers={"If-None-Match": inm})
        assert r.status == 304 and r.body == b"" and r.headers["etag"] == etag, inm
    r = server.request("GET", "/api/v1/links/qr-etag/qr?format=png", headers={"If-None-Match": '"x"'})
    assert r.status == 200
    other = server.request("GET", "/api/v1/links/qr-etag/qr?format=png&ecc=H").headers["etag"]
    assert other != etag


@pytest.mark.parametrize("query,field", [
    ("format=gif", "format"), ("format=", "format"), ("size=63", "size"), ("size=1025", "size"),
    ("size=abc", "size"), ("size=", "size"), ("margin=17", "margin"), ("margin=-1", "margin"),
    ("ecc=X", "ecc"), ("ecc=MM", "ecc"),
])
def test_bad_options_name_the_field(server, query, field):
    server.create("https://example.com/b", alias="qr-bad")
    r = server.request("GET", "/api/v1/links/qr-bad/qr?" + query)
    assert r.status == 400, r
    err = r.json()["error"]
    assert err["code"] == "invalid_field" and err["field"] == field, err


def test_same_rules_as_the_link(server):
    server.create("https://example.com/o", alias="qr-admin")
    user = server.request("POST", "/api/v1/keys", json_body={"name": "u", "role": "user"}).json()
    assert server.request("GET", "/api/v1/links/qr-admin/qr", key=False).status == 401
    assert server.request("GET", "/api/v1/links/qr-admin/qr", key=user["key"]).status == 404
    assert server.request("GET", "/api/v1/links/nosuch/qr").status == 404
    r = server.request("GET", "/api/v1/links/qr-admin/qr?colour=red")
    assert r.status == 400 and "colour" in r.json()["error"]["message"]
    assert server.request("DELETE", "/api/v1/links/qr-admin").status == 204
    assert server.request("GET", "/api/v1/links/qr-admin/qr").status == 410
    r = server.request("POST", "/api/v1/links/qr-admin/qr")
    assert r.status == 405 and "GET" in r.headers["allow"]
