#!/usr/bin/env bash
# The third parties the tests run against, from Debian's packages and npm:
#   tinyproxy, squid     HTTP CONNECT proxies      (tests/proxy.rs)
#   microsocks, dante    SOCKS5 proxies            (tests/proxy.rs)
#   redis-server         broker of the multi-node chat (tests/broadcast_redis.rs)
#   ws (npm)             Node's WebSocket library  (tests/node/, tests/client.rs)
# Python's websockets comes from scripts/python-interop.sh, Chromium from
# scripts/browser-test.sh. Installs only what is missing; safe to run again.
#
#   bash scripts/install-test-deps.sh
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for pair in tinyproxy:tinyproxy squid:squid microsocks:microsocks danted:dante-server redis-server:redis-server; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if ((${#missing[@]})); then
  echo "== apt-get install ${missing[*]}"
  sudo=
  [[ $(id -u) -eq 0 ]] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Debian packages start their daemons where an init system runs them; the
# tests start their own on free loopback ports, so stop any that came up.
for daemon in tinyproxy squid danted redis-server; do
  pkill -x "$daemon" 2>/dev/null || true
done

if [[ ! -d tests/node/node_modules/ws ||
  tests/node/package-lock.json -nt tests/node/node_modules/.package-lock.json ]]; then
  echo "== npm ci (tests/node)"
  (cd tests/node && npm ci --no-audit --no-fund --loglevel=error)
fi
