#!/usr/bin/env python3
"""Writes the hand-made seeds of the raw-input targets (decode,
handshake_request, handshake_response) into corpus/TARGET/seed-*.

The structured targets (message, roundtrip, stream) take `arbitrary` input;
their seeds are inputs picked from short fuzzing runs, committed as they are.
Run from anywhere: python3 fuzz/make_seeds.py
"""
import base64
import hashlib
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = base64.b64encode(
    hashlib.sha1((KEY + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
).decode()


def frame(fin, op, payload, mask=None, rsv=0, length=None):
    n = len(payload) if length is None else length
    out = bytes([(fin << 7) | (rsv << 4) | op])
    m = 0x80 if mask else 0
    if n <= 125:
        out += bytes([m | n])
    elif n <= 0xFFFF:
        out += bytes([m | 126]) + struct.pack(">H", n)
    else:
        out += bytes([m | 127]) + struct.pack(">Q", n)
    if mask:
        out += mask
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return out + payload


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


K = b"\x37\xfa\x21\x3d"
# decode: flags, limit (LE), 4 chunk sizes, wire bytes.
def decode(name, wire, server=True, limit=None, chunks=(255, 255, 255, 255)):
    flags = (1 if server else 0) | (2 if limit is not None else 0)
    write("decode", name, bytes([flags]) + struct.pack("<H", limit or 0) + bytes(chunks) + wire)

decode("rfc-hello-masked", frame(1, 1, b"Hello", K))
decode("rfc-hello-unmasked", frame(1, 1, b"Hello"), server=False)
decode("fragments-and-ping", frame(0, 1, b"Hel", K) + frame(1, 9, b"p", K) + frame(1, 0, b"lo", K), chunks=(0, 2, 6, 254))
decode("len16", frame(1, 2, bytes(300), K), chunks=(1, 3, 7, 13))
decode("len64", frame(1, 2, bytes(70000)), server=False, chunks=(100, 200, 254, 255))
decode("over-limit", frame(1, 2, bytes(200), K), limit=100)
decode("declared-2^40", frame(1, 2, b"", K, length=1 << 40))
decode("close-and-pong", frame(1, 8, b"\x03\xe8bye", K) + frame(1, 10, b"", K), chunks=(0, 0, 0, 0))
decode("rsv-reserved-op", frame(1, 1, b"x", K, rsv=4) + frame(1, 3, b"", K))

# handshake_request: max_header_bytes (LE), max_headers, 4 chunk sizes,
# head length (LE), head, rest.
def request(name, head, limit=16 << 10, max_headers=64, chunks=(255, 255, 255, 255), rest=b""):
    write("handshake_request", name,
          struct.pack("<HB", min(limit, 0xFFFF), max_headers) + bytes(chunks)
          + struct.pack("<H", len(head)) + head + rest)

RFC = ("GET /chat?room=1 HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
       "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: " + KEY + "\r\n"
       "Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n"
       "Sec-WebSocket-Version: 13\r\n\r\n").encode()
request("rfc-example", RFC)
request("rfc-example-dribbled", RFC, chunks=(0, 0, 0, 0))
request("rfc-example-pick-protocol", RFC, rest=b"\x01\x01\x00")
request("bare-lf", RFC.replace(b"\r\n", b"\n"), chunks=(3, 5, 7, 11))
request("version-8", RFC.replace(b"Version: 13", b"Version: 8"))
request("post", RFC.replace(b"GET", b"POST"))
request("http-1.0", RFC.replace(b"HTTP/1.1", b"HTTP/1.0"))
request("too-many-headers", b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(80)) + b"\r\n")
request("too-large", b"GET / HTTP/1.1\r\nX: " + b"a" * 300 + b"\r\n\r\n", limit=256)
request("pipelined-frame", RFC + frame(1, 1, b"early", K))

# handshake_response: max_headers, cut (LE), length (LE), response, offered.
def response(name, head, cut=0xFFFF, max_headers=64, rest=b""):
    write("handshake_response", name,
          struct.pack("<BHH", max_headers, cut, len(head)) + head + rest)

OK = ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: " + ACCEPT + "\r\n\r\n").encode()
response("rfc-101", OK)
response("rfc-101-cut", OK, cut=20)
response("101-protocol-offered", OK.replace(b"\r\n\r\n", b"\r\nSec-WebSocket-Protocol: chat\r\n\r\n"),
         rest=b"\x01\x04chat\x00")
response("101-extension", OK.replace(b"\r\n\r\n", b"\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n"))
response("101-wrong-accept", OK.replace(ACCEPT.encode(), b"x" * len(ACCEPT)))
response("403", b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
response("bare-lf", OK.replace(b"\r\n", b"\n"), cut=7)
