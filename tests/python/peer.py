"""The Python `websockets` peer of tests/python_interop.rs, with its defaults
(permessage-deflate on, as `websockets` enables it unless told otherwise).

    python peer.py server PORT   echo server on 127.0.0.1:PORT (0: any free port);
                                 prints "listening on 127.0.0.1:PORT", then one
                                 "server: offer=... answer=... extensions=[...]"
                                 line per connection
    python peer.py client URL    sends the messages below, checks every echo and
                                 that permessage-deflate was negotiated; prints
                                 "client: ok ..." and exits 0, or exits 1

WSCODEC_PEER_COMPRESSION=none turns compression off in either mode: the Rust
test must then fail, which is how its byte-count assertions are checked.
"""

import asyncio
import json
import os
import random
import sys

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

COMPRESSION = None if os.environ.get("WSCODEC_PEER_COMPRESSION") == "none" else "deflate"


def json_like(count):
    """About 65 KiB of repetitive JSON for count=1100."""
    return json.dumps(
        [{"id": i, "user": f"user{i % 7}", "text": "hello from the chat room"} for i in range(count)],
        separators=(",", ":"),
    )


def messages():
    big = json_like(1100)
    noise = random.Random(6455).randbytes(1024)  # incompressible
    # Sent twice: the second copy can refer back 5000 bytes into the first, and
    # does when the window is 32 KiB, which wscodec's decompressor must follow.
    block = random.Random(7692).randbytes(5000)
    chat = json.dumps({"room": "lobby", "name": "alice", "text": "the same words again " * 20})
    return [
        "hello",
        big,
        big.encode(),  # the same, as a binary message
        "ça va? — " * 500,
        noise,
        block,
        block,
        big,  # again, with the compressor's state kept from the messages before
        # The Rust server echoes a "[broadcast]" message as a PreparedMessage,
        # compressed on its own, and the others with its compressor's context:
        # the chat line's second echo may point back to its first only if the
        # server forgot that context after the broadcast came between them.
        chat,
        "[broadcast] " + "".join(
            random.Random(8441).choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(600)
        ),
        chat,
    ]


def extensions_of(connection):
    return ", ".join(type(e).__name__ + "(" + e.name + ")" for e in connection.protocol.extensions)


async def run_server(port):
    async def echo(ws):
        header = ws.request.headers.get("Sec-WebSocket-Extensions")
        response = ws.response.headers.get("Sec-WebSocket-Extensions")
        print(f"server: offer={header!r} answer={response!r} extensions=[{extensions_of(ws)}]", flush=True)
        try:
            async for message in ws:
                await ws.send(message)
        except ConnectionClosed as closed:
            print(f"server: connection failed: {closed}", flush=True)

    async with serve(echo, "127.0.0.1", port, compression=COMPRESSION) as server:
        bound = server.sockets[0].getsockname()
        print(f"listening on {bound[0]}:{bound[1]}", flush=True)
        await server.serve_forever()


async def run_client(url):
    async with connect(url, compression=COMPRESSION) as ws:
        answer = ws.response.headers.get("Sec-WebSocket-Extensions")
        names = [e.name for e in ws.protocol.extensions]
        if names != ["permessage-deflate"]:
            raise SystemExit(f"client: negotiated extensions {names} (answer {answer!r}), want permessage-deflate")
        sent = 0
        for message in messages():
            await ws.send(message)
            echo = await ws.recv()
            if echo != message:
                raise SystemExit(f"client: echo of a {type(message).__name__} of {len(message)} differs: {echo[:80]!r}")
            sent += len(message.encode() if isinstance(message, str) else message)
        await ws.close()
    if ws.close_code != 1000:
        raise SystemExit(f"client: closed with {ws.close_code}, want 1000")
    print(f"client: ok, {len(messages())} messages ({sent} bytes) echoed; answer={answer!r} extensions=[{extensions_of(ws)}]")


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("server", "client"):
        raise SystemExit(__doc__)
    if sys.argv[1] == "server":
        asyncio.run(run_server(int(sys.argv[2])))
    else:
        asyncio.run(run_client(sys.argv[2]))


if __name__ == "__main__":
    main()
