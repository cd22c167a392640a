// Node's `ws` over `https`, the peer of tests/client.rs:
//
//   node https_echo.mjs CHAIN.pem KEY.pem
//
// Listens on 127.0.0.1 on a free port, prints "listening on PORT", and echoes
// every message (text as text, binary as binary) on any path.
import { readFileSync } from "node:fs";
import { createServer } from "node:https";
import { WebSocketServer } from "ws";

const [cert, key] = process.argv.slice(2);
const server = createServer({
  cert: readFileSync(cert),
  key: readFileSync(key),
  ALPNProtocols: ["http/1.1"],
});
const wss = new WebSocketServer({ server });
wss.on("connection", (ws, request) => {
  ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on("error", () => {});
  // What the test checks the TLS session by: ALPN and the name it sent.
  const tls = request.socket;
  console.log(`connection alpn=${tls.alpnProtocol} servername=${tls.servername}`);
});
server.listen(0, "127.0.0.1", () => {
  console.log(`listening on ${server.address().port}`);
});
