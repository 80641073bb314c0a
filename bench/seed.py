#!/usr/bin/python3
"""Seeds N links into a running shortd through its API (64 keep-alive
connections) and writes their codes, one per line, to OUT. The API key
comes from SHORTD_KEY.
usage: seed.py PORT N OUT"""
import asyncio
import json
import os
import sys

AUTH = b"Authorization: Bearer %s\r\n" % os.environ["SHORTD_KEY"].encode()


async def worker(port, jobs, codes):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    while True:
        try:
            i = jobs.pop()
        except IndexError:
            break
        body = json.dumps({"url": f"https://example.com/bench/{i}"}).encode()
        writer.write(b"POST /api/v1/links HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\n"
                     + AUTH + b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        head = await reader.readuntil(b"\r\n\r\n")
        n = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        data = await reader.readexactly(n)
        if not head.startswith(b"HTTP/1.1 201"):
            raise SystemExit(f"create failed: {head[:40]!r} {data[:200]!r}")
        codes.append(json.loads(data)["code"])
    writer.close()


async def main():
    port, n, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    jobs, codes = list(range(n)), []
    await asyncio.gather(*(worker(port, jobs, codes) for _ in range(64)))
    with open(out, "w") as f:
        f.write("\n".join(codes) + "\n")


asyncio.run(main())
