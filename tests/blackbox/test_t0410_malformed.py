"""Request smuggling and malformed requests over raw sockets. Each refusal
answers its documented status with Connection: close, and the valid
request pipelined behind it is never answered, since the framing is in
doubt. Requests the grammar allows are served. (docs/api.md lists the
statuses.)"""
import pytest

from conftest import parse_responses

H = b"Host: t\r\n"
POST = b"POST /api/v1/links HTTP/1.1\r\n" + H
FOLLOW = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"

REFUSED = [
    ("te then cl", POST + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400),
    ("cl then te", POST + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("te twice", POST + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    ("te chunked chunked", POST + b"Transfer-Encoding: chunked, chunked\r\n\r\n", 501),
    ("te xchunked", POST + b"Transfer-Encoding: xchunked\r\n\r\n", 501),
    ("te gzip chunked", POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n", 501),
    ("te identity", POST + b"Transfer-Encoding: identity\r\n\r\n", 501),
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
    ("http/1.2", b"GET / HTTP/1.2\r\n" + H + b"\r\n", 505),
    ("http/2.0", b"GET / HTTP/2.0\r\n" + H + b"\r\n", 505),
    ("version junk", b"GET / HTTP/1.1x\r\n" + H + b"\r\n", 400),
    ("no version", b"GET /\r\n" + H + b"\r\n", 400),
    ("asterisk with get", b"GET * HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("fragment in target", b"GET /a#b HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("relative target", b"GET healthz HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("non-ascii target", b"GET /caf\xc3\xa9 HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("long request line", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n" + H + b"\r\n", 431),
    ("long header", b"GET / HTTP/1.1\r\n" + H + b"X: " + b"b" * 9000 + b"\r\n\r\n", 431),
    ("too many headers", b"GET / HTTP/1.1\r\n" + H + b"".join(b"X%d: y\r\n" % i for i in range(70)) + b"\r\n", 431),
    ("no host", b"GET / HTTP/1.1\r\n\r\n", 400),
    ("two hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
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
    assert len(REFUSED) >= 40


ACCEPTED = [
    ("absolute-form", b"GET http://t/healthz HTTP/1.1\r\n" + H + b"\r\n", 200),
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
