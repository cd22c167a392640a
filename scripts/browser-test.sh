#!/usr/bin/env bash
# Real-browser test of the chat example (examples/broadcast): Debian's Chromium,
# driven by playwright-core, opens the page as two people in one room and one in
# another; a message sent in one page must show in the other page of its room,
# and only there. A second test stops a server under an open page and starts it
# again: the page must show the close (1001) and reconnect by itself.
# A third (deflate.test.mjs) opens a WebSocket from Chromium to examples/echo,
# built with --features deflate, through a byte-counting proxy: it must
# negotiate permessage-deflate, and large messages must be small on the wire
# both ways. A fourth (axum.test.mjs) chats in the page of examples/axum_chat,
# served by axum through wscodec::axum: messages go both ways, and the browser
# negotiated permessage-deflate with the extractor. A fifth (h2.test.mjs) runs
# broadcast over TLS with a self-signed certificate made here by openssl: the
# page comes over HTTP/2 and its WebSocket must be an extended CONNECT on the
# page's own connection (RFC 8441), chat both ways with permessage-deflate and
# close cleanly; against a server that does not advertise
# SETTINGS_ENABLE_CONNECT_PROTOCOL, Chromium must fall back to HTTP/1.1 and
# that check must fail. Screenshots, the certificate and the server's log
# land in target/browser/.
#
#   bash scripts/browser-test.sh
#
# Installs what is missing: chromium and chromium-driver (apt), playwright-core
# (npm ci in tests/browser; needs Node.js 20 or later); openssl must be there. Builds the examples in
# release mode, starts broadcast on a free loopback port, and always stops it; the
# server must then shut down cleanly (SIGINT: every connection closed with
# 1001). CARGO_CMD replaces `cargo` (e.g. CARGO_CMD="flock /tmp/lock cargo").
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$root/target/browser
mkdir -p "$out"

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
if ((${#missing[@]})); then
  echo "== apt-get install ${missing[*]}"
  sudo=
  [[ $(id -u) -eq 0 ]] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! node -e 'process.exit(Number(parseInt(process.versions.node, 10) < 20))' 2>/dev/null; then
  echo "browser-test: Node.js 20 or later is required (playwright-core)" >&2
  exit 1
fi

if [[ ! -d tests/browser/node_modules/playwright-core ||
  tests/browser/package-lock.json -nt tests/browser/node_modules/.package-lock.json ]]; then
  echo "== npm ci (tests/browser)"
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi

if ! command -v openssl >/dev/null 2>&1; then
  echo "browser-test: openssl is required (the HTTPS test's certificate)" >&2
  exit 1
fi

# One build for all: deflate makes broadcast and echo accept
# permessage-deflate, http2 gives broadcast HTTP/2 over TLS (ALPN h2) and
# WebSockets on it; axum_chat needs axum and deflate.
echo "== cargo build --release --features axum,deflate,http2 --example broadcast --example echo --example axum_chat"
${CARGO_CMD:-cargo} build --release --features axum,deflate,http2 --example broadcast --example echo --example axum_chat

# A fresh self-signed certificate for 127.0.0.1 (the browser contexts of
# h2.test.mjs ignore certificate errors).
echo "== openssl: a self-signed certificate for 127.0.0.1 in $out"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=127.0.0.1 -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
  -keyout "$out/tls-key.pem" -out "$out/tls-cert.pem" 2>/dev/null

log=$out/server.log
target/release/examples/broadcast 127.0.0.1:0 >"$log" 2>&1 &
server=$!
stop_server() {
  # SIGINT is Ctrl-C: the server closes every connection, then exits.
  kill -INT "$server" 2>/dev/null || return 0
  for _ in $(seq 50); do
    kill -0 "$server" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null
}
trap 'stop_server || true' EXIT

url=
for _ in $(seq 100); do
  url=$(grep -o 'http://127\.0\.0\.1:[0-9]*/' "$log" | head -n 1 || true)
  [[ -n $url ]] && break
  if ! kill -0 "$server" 2>/dev/null; then
    cat "$log" >&2
    echo "browser-test: the server did not start" >&2
    exit 1
  fi
  sleep 0.1
done
[[ -n $url ]] || { echo "browser-test: no URL from the server" >&2; exit 1; }

echo "== node --test tests/browser/chat.test.mjs (against $url) deflate.test.mjs axum.test.mjs h2.test.mjs"
(
  cd tests/browser
  BROADCAST_URL=$url BROADCAST_BIN=$root/target/release/examples/broadcast \
    ECHO_BIN=$root/target/release/examples/echo \
    AXUM_CHAT_BIN=$root/target/release/examples/axum_chat \
    H2_BROADCAST_BIN=$root/target/release/examples/broadcast \
    TLS_CERT=$out/tls-cert.pem TLS_KEY=$out/tls-key.pem \
    SCREENSHOT_DIR=$out CHROMIUM=$(command -v chromium) \
    timeout 240 node --test --test-reporter=spec chat.test.mjs deflate.test.mjs axum.test.mjs h2.test.mjs
)

echo "== the server shuts down cleanly on SIGINT"
trap - EXIT
status=0
stop_server || status=$?
if [[ $status -ne 0 ]]; then
  cat "$log" >&2
  echo "browser-test: the server exited with status $status after SIGINT" >&2
  exit 1
fi
echo "browser tests passed (chat, permessage-deflate, axum, HTTP/2); screenshots: $out/chat.png, $out/chat-alice.png, $out/axum-chat.png"
