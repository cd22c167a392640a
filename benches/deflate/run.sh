#!/usr/bin/env bash
# Server memory per connection with permessage-deflate: for no compression and
# for every window size (8-15), with and without context takeover, a fresh
# echo server (examples/echo's loop, in benches/deflate/memory.rs) takes CONNS
# connections that each send MESSAGES JSON messages and read their echoes, then
# stay idle; the server's VmRSS growth divided by CONNS is printed as a table
# (benches/deflate/memory.rs says what each setting offers).
#
#   bash benches/deflate/run.sh
#   CONNS=2000 SETTINGS=off,browser,12,12n bash benches/deflate/run.sh
#
# Environment: CONNS (1000), MESSAGES (16, about 30 KB: enough to fill a
# 32 KiB window), SETTINGS (all), CARGO_CMD (cargo). Output in
# target/bench-deflate/. Memory does not depend on CPU load, so this needs no
# quiet machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=target/bench-deflate
mkdir -p "$out"
conns=${CONNS:-1000}
messages=${MESSAGES:-16}
settings=${SETTINGS:-off,off-idle,idle,browser,browser-15,8,9,10,11,12,13,14,15,8n,9n,10n,11n,12n,13n,14n,15n}
# One socket per connection in each process, plus a few.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if (($(ulimit -n) < conns + 64)); then
  echo "deflate memory: the file descriptor limit ($(ulimit -n)) is too low for $conns connections" >&2
  exit 1
fi

echo "== cargo build --release --features deflate --example deflate_memory" >&2
${CARGO_CMD:-cargo} build --release --features deflate --example deflate_memory >&2
# A copy, so that another build cannot swap the program under a run.
cp target/release/examples/deflate_memory "$out/deflate_memory"

"$out/deflate_memory" --conns "$conns" --messages "$messages" --settings "$settings" \
  | tee "$out/memory.txt"
