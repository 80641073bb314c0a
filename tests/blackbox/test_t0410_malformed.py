"""Request smuggling and malformed requests over raw sockets. Each refusal
answers its documented status with Connection: close, and the valid
request pipelined behind it is never answered, since the framing is in
doubt. Requests the grammar allows are served. (docs/api.md lists the
statuses.)"""
import socket

import pytest

from conftest import parse_responses, read_all

H = b"Host: t\r\n"
POST = b"POST /api/v1/links HTTP/1.1\r\n" + H
FOLLOW = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"

REFUSED = [
    ("te then cl", POST + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400),
    ("cl then te", POST + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("te twice", POST + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    ("te chunked chunked", POST + b"Transfer-Encoding: chunked, chunked\r\n\r\n", 400),
    ("te xchunked", POST + b"Transfer-Encoding: xchunked\r\n\r\n", 400),
    ("te gzip chunked", POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n", 501),
    ("te identity", POST + b"Transfer-Encoding: identity\r\n\r\n", 400),
    ("te chunked not last", POST + b"Transfer-Encoding: chunked, gzip\r\n\r\n", 400),
    ("te empty", POST + b"Transfer-Encoding: \r\n\r\n", 400),
    ("te obs-fold value", POST + b"Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", 400),
    ("te obs-fold list", POST + b"Transfer-Encoding: chunked\r\n , gzip\r\n\r\n0\r\n\r\n", 400),
    ("te 501 then framing", POST + b"Transfer-Encoding: gzip, chunked\r\nContent-Length: 2\r\n\r\n{}", 400),
    ("te vertical tab", POST + b"Transfer-Encoding: chunked\x0b\r\n\r\n", 400),
    ("te in http/1.0", b"POST /api/v1/links HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    ("te space before colon", POST + b"Transfer-Encoding : chunked\r\n\r\n", 400),
    ("cl twice same", POST + b"Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}", 400),
    ("cl twice different", POST + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}", 400),
    ("cl plus sign", POST + b"Content-Length: +2\r\n\r\n{}", 400),
    ("cl minus", POST + b"Content-Length: -2\r\n\r\n{}", 400),
    ("cl inner space", POST + b"Content-Length: 1 1\r\n\r\n{}", 400),
    ("cl hex", POST + b"Content-Length: 0x2\r\n\r\n{}", 400),
    ("cl empty", POST + b"Content-Length:\r\n\r\n{}", 400),
    ("cl list", POST + b"Content-Length: 2,2\r\n\r\n{}", 400),
    ("cl huge", POST + b"Content-Length: 99999999999999999999999999\r\n\r\n", 413),
    ("cl over limit", POST + b"Content-Length: 65537\r\n\r\n", 413),
    ("chunk size overflow", POST + b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n", 400),
    ("chunk size 0x", POST + b"Transfer-Encoding: chunked\r\n\r\n0x2\r\n{}\r\n0\r\n\r\n", 400),
    ("chunk size negative", POST + b"Transfer-Encoding: chunked\r\n\r\n-2\r\n{}\r\n0\r\n\r\n", 400),
    ("chunk size space", POST + b"Transfer-Encoding: chunked\r\n\r\n2 \r\n{}\r\n0\r\n\r\n", 400),
    ("chunk data too long", POST + b"Transfer-Encoding: chunked\r\n\r\n1\r\n{}\r\n0\r\n\r\n", 400),
    ("chunk size bare lf", POST + b"Transfer-Encoding: chunked\r\n\r\n2\n{}\r\n0\r\n\r\n", 400),
    ("chunk over limit", POST + b"Transfer-Encoding: chunked\r\n\r\n10001\r\n", 413),
    ("obs-fold", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\r\n b\r\n\r\n", 400),
    ("bare lf request line", b"GET / HTTP/1.1\n" + H + b"\r\n", 400),
    ("bare lf header", b"GET / HTTP/1.1\r\nHost: t\n\r\n", 400),
    ("bare cr header", b"GET / HTTP/1.1\r\nHost: t\rX: y\r\n\r\n", 400),
    ("nul in value", b"GET / HTTP/1.1\r\n" + H + b"X: a\x00b\r\n\r\n", 400),
    ("nul in name", b"GET / HTTP/1.1\r\n" + H + b"X\x00Y: a\r\n\r\n", 400),
    ("del in value", b"GET / HTTP/1.1\r\n" + H + b"X: a\x7fb\r\n\r\n", 400),
    ("space in name", b"GET / HTTP/1.1\r\n" + H + b"X Y: a\r\n\r\n", 400),
    ("method not a token", b"GE(T / HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("unknown method", b"BREW / HTTP/1.1\r\n" + H + b"\r\n", 501),
    ("lowercase method", b"get / HTTP/1.1\r\n" + H + b"\r\n", 501),
    ("connect authority-form", b"CONNECT example.com:443 HTTP/1.1\r\n" + H + b"\r\n", 501),
    ("http/0.9", b"GET / HTTP/0.9\r\n" + H + b"\r\n", 505),
    ("http/1.10", b"GET / HTTP/1.10\r\n" + H + b"\r\n", 400),
    ("http/2.0", b"GET / HTTP/2.0\r\n" + H + b"\r\n", 505),
    ("version junk", b"GET / HTTP/1.1x\r\n" + H + b"\r\n", 400),
    ("no version", b"GET /\r\n" + H + b"\r\n", 400),
    ("asterisk with get", b"GET * HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("fragment in target", b"GET /a#b HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("relative target", b"GET healthz HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("non-ascii target", b"GET /caf\xc3\xa9 HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("long request target", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n" + H + b"\r\n", 414),
    ("long target unfinished", b"GET /" + b"a" * 9000, 414),
    ("long header", b"GET / HTTP/1.1\r\n" + H + b"X: " + b"b" * 9000 + b"\r\n\r\n", 431),
    ("too many headers", b"GET / HTTP/1.1\r\n" + H + b"".join(b"X%d: y\r\n" % i for i in range(70)) + b"\r\n", 431),
    ("no host", b"GET / HTTP/1.1\r\n\r\n", 400),
    ("two hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("host userinfo", b"GET / HTTP/1.1\r\nHost: user@h\r\n\r\n", 400),
    ("host with path", b"GET / HTTP/1.1\r\nHost: h/path\r\n\r\n", 400),
    ("host list", b"GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", 400),
    ("host with space", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    ("host bad port", b"GET / HTTP/1.1\r\nHost: h:80x\r\n\r\n", 400),
    ("host port too big", b"GET / HTTP/1.1\r\nHost: h:65536\r\n\r\n", 400),
    ("host ipv6 unclosed", b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400),
    ("host invalid in http/1.0", b"GET / HTTP/1.0\r\nHost: a b\r\n\r\n", 400),
    ("absolute-form userinfo", b"GET http://user@t/healthz HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("absolute-form bad port", b"GET http://t:x/healthz HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("expect other then framing", POST + b"Expect: 200-ok\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}", 400),
    ("expect other", POST + b"Expect: 200-ok\r\nContent-Length: 2\r\n\r\n{}", 417),
]


@pytest.mark.parametrize("name,raw,status", REFUSED, ids=[c[0] for c in REFUSED])
def test_refused_and_closed(server, name, raw, status):
    data = server.raw(raw + FOLLOW, timeout=3)
    resps = parse_responses(data)
    assert len(resps) == 1, (name, data[:300])
    assert resps[0][0] == status, (name, resps[0])
    assert resps[0][1]["connection"] == "close"
    assert resps[0][1]["content-type"] == "application/json"
    # and a fresh connection is served
    assert server.request("GET", "/healthz").status == 200


def test_table_is_large_enough():
    assert len(REFUSED) >= 70 and len(ACCEPTED) >= 13


def test_head_errors_carry_no_content(server):
    """RFC 9110 9.3.2: an answer to HEAD has no content, errors included;
    its Content-Length is that of the error a GET would get."""
    for raw, status in [
        (b"HEAD / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
        (b"HEAD / HTTP/1.1\r\nHost: t\r\nContent-Length: 70000\r\n\r\n", 413),
        (b"HEAD / HTTP/1.1\r\nHost: t\r\nExpect: 200-ok\r\n\r\n", 417),
        (b"HEAD /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414),
    ]:
        data = server.raw(raw, timeout=3)
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep and head.startswith(b"HTTP/1.1 %d " % status), data[:200]
        assert b"\r\nconnection: close" in head.lower()
        assert int(dict(l.lower().split(b": ", 1) for l in head.split(b"\r\n")[1:])[b"content-length"]) > 0
        assert rest == b"", (status, rest[:100])
    # the same refusal to GET carries its JSON body
    resps = parse_responses(server.raw(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", timeout=3))
    assert resps[0][0] == 400 and b"invalid Host header" in resps[0][2]


def test_http10_expect_gets_no_interim_answer(server):
    """RFC 9110 10.1.1: a server must not send 1xx to an HTTP/1.0 client;
    the expectation is ignored and the body read as sent."""
    body = b'{"url":"https://example.com/ten"}'
    req = server.auth(b"POST /api/v1/links HTTP/1.0\r\nHost: t\r\nContent-Type: application/json\r\n"
                      b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body))
    with socket.create_connection(("127.0.0.1", server.port), timeout=3) as s:
        s.sendall(req)
        s.settimeout(0.5)
        with pytest.raises(socket.timeout):
            s.recv(100)  # nothing: no 100 Continue
        s.settimeout(3)
        s.sendall(body)
        data = read_all(s, 3)
    assert data.startswith(b"HTTP/1.1 201 "), data[:100]
    assert b" 100 " not in data.split(b"\r\n", 1)[0]


ACCEPTED = [
    ("absolute-form", b"GET http://t/healthz HTTP/1.1\r\n" + H + b"\r\n", 200),
    ("absolute-form with port", b"GET http://t:8080/healthz HTTP/1.1\r\n" + H + b"\r\n", 200),
    ("http/1.2 as 1.1", b"GET /healthz HTTP/1.2\r\n" + H + b"\r\n", 200),
    ("host ipv6 and port", b"GET /healthz HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", 200),
    ("host empty", b"GET /healthz HTTP/1.1\r\nHost:\r\n\r\n", 200),
    ("chunk size leading zeros", POST + b"Content-Type: application/json\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0000000020\r\n{\"url\":\"https://example.com/ok\"}\r\n"
     b"0000\r\n\r\n", 201),
    ("asterisk options", b"OPTIONS * HTTP/1.1\r\n" + H + b"\r\n", 204),
    ("empty lines first", b"\r\n\r\nGET /healthz HTTP/1.1\r\n" + H + b"\r\n", 200),
    ("ows around values", b"GET /healthz HTTP/1.1\r\nHost:   t  \r\nX:\tv\t\r\n\r\n", 200),
    ("http/1.0 no host", b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 200),
    ("chunk extension and trailer", POST + b"Content-Type: application/json\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n20;name=\"v\"\r\n{\"url\":\"https://example.com/ok\"}\r\n"
     b"0\r\nTrailer-X: 1\r\n\r\n", 201),
    ("te with ows", POST + b"Content-Type: application/json\r\nTransfer-Encoding:  chunked \r\n\r\n"
     b"20\r\n{\"url\":\"https://example.com/ok\"}\r\n0\r\n\r\n", 201),
    ("cl with ows", POST + b"Content-Type: application/json\r\nContent-Length:  32 \r\n\r\n"
     b"{\"url\":\"https://example.com/ok\"}", 201),
]


@pytest.mark.parametrize("name,raw,status", ACCEPTED, ids=[c[0] for c in ACCEPTED])
def test_accepted(server, name, raw, status):
    resps = parse_responses(server.raw(server.auth(raw) + FOLLOW, timeout=2))
    assert resps[0][0] == status, (name, resps[0])
    # the follow-up on the same connection is served too
    assert len(resps) == 2 and resps[1][0] == 200, (name, resps)
