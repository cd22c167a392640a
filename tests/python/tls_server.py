"""The Python `websockets` server of tests/client.rs: TLS (optional),
redirects and refusals, as a third party answers them.

    python tls_server.py [--cert CHAIN.pem --key KEY.pem]

Listens on 127.0.0.1 on a free port (TLS with --cert/--key) and prints
"listening on PORT". Paths:

    /echo          echoes every message
    /headers       sends the request's headers as one JSON text message
                   ({"lower-case name": [values]}), then echoes
    /hop/N         N > 0: 302 to hop N-1, as an absolute path when N is even
                   and as a relative one ("N-1") when odd; /hop/0 is /headers
    /loop          302 to itself
    /to?url=URL    307 to URL (percent-decoded)
    /auth          401 with WWW-Authenticate and a JSON body
"""

import argparse
import asyncio
import json
import ssl
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed


def redirect(connection, status, location):
    response = connection.respond(status, f"moved to {location}\n")
    response.headers["Location"] = location
    return response


def process_request(connection, request):
    url = urlsplit(request.path)
    path = url.path
    if path.startswith("/hop/"):
        n = int(path[len("/hop/"):])
        if n > 0:
            target = f"/hop/{n - 1}" if n % 2 == 0 else f"{n - 1}"
            return redirect(connection, HTTPStatus.FOUND, target)
        return None
    if path == "/loop":
        return redirect(connection, HTTPStatus.FOUND, "/loop")
    if path == "/to":
        return redirect(connection, HTTPStatus.TEMPORARY_REDIRECT, parse_qs(url.query)["url"][0])
    if path == "/auth":
        body = json.dumps({"error": "token required", "code": 401})
        response = connection.respond(HTTPStatus.UNAUTHORIZED, body)
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = "application/json"
        response.headers["WWW-Authenticate"] = 'Bearer realm="wscodec-test"'
        return response
    if path in ("/echo", "/headers"):
        return None
    return connection.respond(HTTPStatus.NOT_FOUND, "no such path\n")


async def handler(ws):
    path = urlsplit(ws.request.path).path
    try:
        if path in ("/headers", "/hop/0"):
            seen = {}
            for name, value in ws.request.headers.raw_items():
                seen.setdefault(name.lower(), []).append(value)
            await ws.send(json.dumps(seen))
        async for message in ws:
            await ws.send(message)
    except ConnectionClosed:
        pass


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cert")
    parser.add_argument("--key")
    args = parser.parse_args()
    context = None
    if args.cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.cert, args.key)
        # What a browser's server would do: only HTTP/1.1 for a WebSocket.
        context.set_alpn_protocols(["http/1.1"])
    async with serve(
        handler, "127.0.0.1", 0, ssl=context, process_request=process_request, compression=None
    ) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"listening on {port}", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
