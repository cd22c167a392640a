#!/usr/bin/env bash
# Fan-out benchmark: one sender and RECEIVERS (1000) receivers in one chat room,
# against examples/broadcast (wscodec: one PreparedMessage per broadcast, its
# bytes shared by every connection) and benches/fanout/server_tungstenite.rs
# (the same chat written with tokio-tungstenite in its idiomatic style). The
# load generator is benches/fanout/load.rs (the crate's client); server and load
# generator are pinned to different cores with taskset. Each run starts a fresh
# server and reports messages and deliveries per second, both processes' CPU
# use, and the server's resident memory from /proc/PID/status: idle, with
# every member connected, after the run, and its peak. Deliveries per server
# CPU-second is the figure that holds on a machine where other work competes
# for the cores (the CPU columns then stay well under 100%).
#
#   bash benches/fanout/run.sh
#
# Environment: RECEIVERS (1000), SIZES ("64 4096": chat text bytes),
# MESSAGES_<size> (messages per run: 5000 of 64 bytes, 1000 of 4096, else
# 2000), WINDOW (64 messages in flight; below the servers' queue of 256),
# SERVER_CPU (0), LOAD_CPU (1), CARGO_CMD (cargo). Logs in target/fanout/.
# Two broadcast nodes through Redis, against one alone: benches/fanout/cluster.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
out=$root/target/fanout
mkdir -p "$out"

receivers=${RECEIVERS:-1000}
sizes=${SIZES:-64 4096}
window=${WINDOW:-64}
server_cpu=${SERVER_CPU:-0}
load_cpu=${LOAD_CPU:-1}
# One socket per member in each process, plus a few.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if (($(ulimit -n) < receivers + 64)); then
  echo "fanout: the file descriptor limit ($(ulimit -n)) is too low for $receivers receivers" >&2
  exit 1
fi

echo "== cargo build --release (broadcast, fanout_tungstenite, fanout_load)" >&2
${CARGO_CMD:-cargo} build --release --example broadcast --example fanout_tungstenite \
  --example fanout_load >&2
bin=$root/target/release/examples

server_pid=
stop_server() {
  [[ -n $server_pid ]] || return 0
  kill -INT "$server_pid" 2>/dev/null || true
  for _ in $(seq 50); do
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=
}
trap stop_server EXIT

# run LABEL SIZE COMMAND...: starts the server, runs the load, prints its result line.
run() {
  local label=$1 size=$2
  shift 2
  local log=$out/$label-$size.log
  taskset -c "$server_cpu" "$@" >"$log" 2>&1 &
  server_pid=$!
  local port=
  for _ in $(seq 100); do
    port=$(grep -o '127\.0\.0\.1:[0-9]*' "$log" | head -n 1 | cut -d: -f2 || true)
    [[ -n $port ]] && break
    sleep 0.1
  done
  [[ -n $port ]] || { cat "$log" >&2; echo "fanout: $label did not start" >&2; exit 1; }
  sleep 0.5 # let the idle server settle before its RSS is read
  local messages_var=MESSAGES_$size default=2000
  case $size in
    64) default=5000 ;;
    4096) default=1000 ;;
  esac
  taskset -c "$load_cpu" "$bin/fanout_load" --url "ws://127.0.0.1:$port/ws/bench" \
    --receivers "$receivers" --messages "${!messages_var:-$default}" \
    --size "$size" --window "$window" --server-pid "$server_pid" --label "$label" \
    --clk-tck "$(getconf CLK_TCK)" | tee -a "$out/results.txt" || {
    echo "fanout: the load generator failed against $label; its log:" >&2
    cat "$log" >&2
    exit 1
  }
  stop_server
}

: >"$out/results.txt"
for size in $sizes; do
  run wscodec "$size" "$bin/broadcast" 127.0.0.1:0 --max-connections $((receivers + 16)) --queue 256
  run tokio-tungstenite "$size" "$bin/fanout_tungstenite" 127.0.0.1:0
done

# The table: one row per result line.
awk '
  function field(name,   i, kv) {
    for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == name) return kv[2] }
  }
  function mib(kib) { return sprintf("%.1f", kib / 1024) }
  BEGIN {
    print "| server | text bytes | messages/s | deliveries/s | server CPU | deliveries per server CPU-second | load CPU | RSS idle (MiB) | RSS connected | RSS after | peak RSS |"
    print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  }
  $1 == "result" {
    cpu = field("server_cpu_pct")
    printf "| %s | %s | %d | %d | %s%% | %d | %s%% | %s | %s | %s | %s |\n",
      field("server"), field("size"), field("messages_per_s"), field("deliveries_per_s"),
      cpu, (cpu > 0 ? field("deliveries_per_s") * 100 / cpu : 0),
      field("load_cpu_pct"), mib(field("rss_idle_kib")),
      mib(field("rss_connected_kib")), mib(field("rss_after_kib")), mib(field("hwm_kib"))
  }
' "$out/results.txt"
echo "($receivers receivers, window $window, server on CPU $server_cpu, load on CPU $load_cpu; raw lines in $out/results.txt)"
