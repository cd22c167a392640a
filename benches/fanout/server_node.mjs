// A peer of the fan-out benchmark (benches/fanout/run.sh): the chat of
// examples/broadcast, as much of it as benches/fanout/load.rs uses, written
// with Node's `ws` the way its README's broadcast example is: one
// WebSocketServer with `perMessageDeflate: true`, and `client.send(data)` for
// each member in a loop.
//
//   node benches/fanout/server_node.mjs [ADDRESS]     # default 127.0.0.1:9004
//
// Protocol as examples/broadcast (`/ws/ROOM?name=NAME`; welcome, join, leave
// and message events as the same JSON, with the welcome's `deflate` saying
// whether permessage-deflate was agreed). Text from a member goes to every
// member of its room, the sender included; binary is relayed as it is.
//
// `perMessageDeflate: true` takes ws's defaults, which is what a chat written
// from its README runs with: context takeover in both directions, windows of
// 2^15 unless the client asks for less, zlib level 6 (Z_DEFAULT_COMPRESSION)
// and memLevel 8, at most 10 zlib jobs at once per process. Its `threshold`
// (1024 bytes) leaves shorter messages uncompressed only where
// server_no_context_takeover was agreed; with takeover, as here, every
// message is compressed. Each `send` compresses the message for that one
// connection, with its own zlib stream: a broadcast to N members is N
// compressions, on libuv's thread pool.
//
// Unlike examples/broadcast and server_tungstenite.rs there is no bounded
// queue per member (ws buffers whatever is sent: a slow member grows
// `bufferedAmount`, it is not dropped) and the kernel send buffer is Node's
// default; the load generator keeps at most its window of messages in
// flight, so neither matters to what is measured.
//
// `ws` comes from tests/node/node_modules (scripts/install-test-deps.sh).
import { createRequire } from "node:module";

const require = createRequire(new URL("../../tests/node/package.json", import.meta.url));
const { WebSocketServer, WebSocket } = require("ws");

const [host, port] = (process.argv[2] ?? "127.0.0.1:9004").split(/:(?=\d+$)/);
const rooms = new Map(); // room name -> Map(ws -> member name)

function broadcast(members, data, isBinary = false) {
  for (const client of members.keys()) {
    if (client.readyState === WebSocket.OPEN) client.send(data, { binary: isBinary });
  }
}

function presence(type, name, members) {
  return JSON.stringify({ type, name, members, time: Date.now() });
}

const wss = new WebSocketServer({ host, port: Number(port), perMessageDeflate: true });

wss.on("connection", (ws, request) => {
  const url = new URL(request.url, "http://localhost");
  const room = url.pathname.startsWith("/ws/") ? url.pathname.slice(4) : "";
  if (!/^[A-Za-z0-9_-]{1,32}$/.test(room)) return ws.close(1008, "no such room");
  const name = (url.searchParams.get("name") || "anonymous").slice(0, 32);

  let members = rooms.get(room);
  if (!members) rooms.set(room, (members = new Map()));
  ws.send(
    JSON.stringify({
      type: "welcome",
      room,
      name,
      members: [...members.values(), name],
      time: Date.now(),
      deflate: ws.extensions.includes("permessage-deflate"),
    }),
  );
  broadcast(members, presence("join", name, members.size + 1));
  members.set(ws, name);

  ws.on("message", (data, isBinary) => {
    if (isBinary) return broadcast(members, data, true);
    const text = data.toString();
    broadcast(members, JSON.stringify({ type: "message", name, text, time: Date.now() }));
  });
  ws.on("error", () => {});
  ws.on("close", () => {
    members.delete(ws);
    if (members.size) broadcast(members, presence("leave", name, members.size));
    else rooms.delete(room);
  });
});

wss.on("listening", () => {
  const address = wss.address();
  console.log(`node ws chat listening on ws://${address.address}:${address.port}/ws/ROOM`);
});

// Shut down on SIGINT as the other servers do: run.sh stops each with it.
process.on("SIGINT", () => process.exit(0));
