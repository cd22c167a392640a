#!/usr/bin/env bash
# Cross-node fan-out: examples/broadcast as two nodes sharing a room through
# one redis-server, against one node alone (no Redis) in the same run.
#
#   bash benches/fanout/cluster.sh
#
# Each run starts a fresh redis-server on a free loopback port (no RDB, no
# AOF: the figures are for throughput, not durability) and fresh nodes. The
# load generator (benches/fanout/load.rs) puts its receivers alternately on
# node A and node B and its sender on A, and reports deliveries/s, the nodes'
# CPU together and Redis's apart (utime+stime from /proc/PID/stat), and
# send-to-receipt latency per group (same node as the sender, other node).
# Nodes and Redis share CPU SERVER_CPU (0), the load runs on LOAD_CPU (1).
#
# Parts: throughput (1 sender, RECEIVERS receivers, window 64, SIZES "64 4096",
# MESSAGES_<size>), latency at light load (one 64-byte message every 10 ms,
# PACED_MESSAGES, 1000 receivers), and recovery (one message every 10 ms to
# RECOVERY_RECEIVERS receivers; 2 s in, `CLIENT KILL TYPE pubsub`, then in a
# second run SIGKILL of Redis and a restart on the same port): the longest
# silence any receiver on each node saw. PARTS ("throughput paced recovery")
# picks which run. Logs and raw lines in target/fanout-cluster/.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
out=$root/target/fanout-cluster
mkdir -p "$out"

receivers=${RECEIVERS:-1000}
sizes=${SIZES:-64 4096}
window=${WINDOW:-64}
server_cpu=${SERVER_CPU:-0}
load_cpu=${LOAD_CPU:-1}
paced_messages=${PACED_MESSAGES:-500}
recovery_receivers=${RECOVERY_RECEIVERS:-100}
parts=" ${PARTS:-throughput paced recovery} "
clk_tck=$(getconf CLK_TCK)
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
command -v redis-server >/dev/null || { echo "cluster: redis-server is not installed" >&2; exit 1; }

echo "== cargo build --release (broadcast, fanout_load)" >&2
${CARGO_CMD:-cargo} build --release --example broadcast --example fanout_load >&2
bin=$root/target/release/examples
# CARGO_TARGET_DIR elsewhere: take the binaries from there.
[[ -n ${CARGO_TARGET_DIR:-} ]] && bin=$CARGO_TARGET_DIR/release/examples

pids=()
stop_all() {
  for pid in "${pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
  sleep 0.3
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  pids=()
}
trap stop_all EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

redis_port= redis_pid=
start_redis() { # [PORT]
  redis_port=${1:-$(free_port)}
  taskset -c "$server_cpu" redis-server --port "$redis_port" --bind 127.0.0.1 --save "" \
    --appendonly no --daemonize no --protected-mode no --dir "$out" \
    >"$out/redis.log" 2>&1 &
  redis_pid=$!
  pids+=("$redis_pid")
  for _ in $(seq 100); do
    redis-cli -p "$redis_port" ping >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "cluster: redis-server did not start" >&2; cat "$out/redis.log" >&2; exit 1
}

node_port= node_pid=
start_node() { # LOG [ARGS...]
  local log=$1; shift
  taskset -c "$server_cpu" "$bin/broadcast" 127.0.0.1:0 --max-connections $((receivers + 16)) \
    --queue 256 "$@" >"$log" 2>&1 &
  node_pid=$!
  pids+=("$node_pid")
  node_port=
  for _ in $(seq 100); do
    node_port=$(grep -o '127\.0\.0\.1:[0-9]*' "$log" | head -n 1 | cut -d: -f2 || true)
    [[ -n $node_port ]] && break
    sleep 0.1
  done
  [[ -n $node_port ]] || { cat "$log" >&2; echo "cluster: a node did not start" >&2; exit 1; }
}

load() { # LABEL ARGS...
  local label=$1; shift
  taskset -c "$load_cpu" "$bin/fanout_load" --label "$label" --clk-tck "$clk_tck" "$@" \
    | tee -a "$out/results.txt" >&3
}

# single LABEL ARGS...: one node, no Redis.
single() {
  local label=$1; shift
  start_node "$out/$label.log"
  sleep 0.5
  load "$label" --url "ws://127.0.0.1:$node_port/ws/bench" --server-pid "$node_pid" "$@"
  stop_all
}

# cluster LABEL ARGS...: Redis and nodes A and B.
start_cluster() {
  local label=$1
  start_redis
  start_node "$out/$label-a.log" --redis "redis://127.0.0.1:$redis_port/" --node-id a
  port_a=$node_port pid_a=$node_pid
  start_node "$out/$label-b.log" --redis "redis://127.0.0.1:$redis_port/" --node-id b
  port_b=$node_port pid_b=$node_pid
  sleep 0.5
}
cluster() {
  local label=$1; shift
  start_cluster "$label"
  load "$label" --url "ws://127.0.0.1:$port_a/ws/bench,ws://127.0.0.1:$port_b/ws/bench" \
    --server-pid "$pid_a,$pid_b" --redis-pid "$redis_pid" "$@"
  stop_all
}

: >"$out/results.txt"
exec 3>&1
messages_for() { local v=MESSAGES_$1 d=2000; case $1 in 64) d=5000 ;; 4096) d=1000 ;; esac; echo "${!v:-$d}"; }
[[ $parts == *" throughput "* ]] && for size in $sizes; do
  common=(--receivers "$receivers" --messages "$(messages_for "$size")" --size "$size" --window "$window")
  single single "${common[@]}"
  cluster cluster "${common[@]}"
done
paced=(--receivers "$receivers" --messages "$paced_messages" --size 64 --interval-ms 10)
if [[ $parts == *" paced "* ]]; then
  single single-paced "${paced[@]}"
  cluster cluster-paced "${paced[@]}"
fi

# recovery KIND: a paced run of 6 s; 2 s after the last receiver joined, the fault.
recovery() {
  local kind=$1
  start_cluster "recovery-$kind"
  load "recovery-$kind" --url "ws://127.0.0.1:$port_a/ws/bench,ws://127.0.0.1:$port_b/ws/bench" \
    --server-pid "$pid_a,$pid_b" --redis-pid "$redis_pid" --receivers "$recovery_receivers" \
    --messages 600 --size 64 --interval-ms 10 >/dev/null 2>"$out/recovery-$kind.err" &
  local load_pid=$!
  for _ in $(seq 300); do
    grep -q sending "$out/recovery-$kind.err" && break
    sleep 0.1
  done
  grep -q sending "$out/recovery-$kind.err" || {
    echo "cluster: recovery-$kind: the receivers did not all see the sender join in 30 s" >&2
    kill "$load_pid"; stop_all; return 0
  }
  sleep 2
  case $kind in
    client-kill) redis-cli -p "$redis_port" CLIENT KILL TYPE pubsub >&2 ;;
    restart)
      kill -KILL "$redis_pid"; wait "$redis_pid" 2>/dev/null || true
      start_redis "$redis_port" ;;
  esac
  wait "$load_pid" || cat "$out/recovery-$kind.err" >&2
  stop_all
}
if [[ $parts == *" recovery "* ]]; then
  recovery client-kill
  recovery restart
fi

awk -v tck="$clk_tck" '
  function field(name,   i, kv) {
    for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == name) return kv[2] }
    return "-"
  }
  $1 == "result" && field("window") != 0 { t[++n] = $0 }
  $1 == "result" && field("window") == 0 { p[++m] = $0 }
  END {
    print "| setup | text bytes | deliveries/s | nodes CPU | deliveries per node CPU-second | Redis CPU | load CPU | p50 same / other (ms) | p99 same / other | p99.9 same / other |"
    print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for (i = 1; i <= n; i++) {
      $0 = t[i]; cpu = field("server_cpu_pct")
      printf "| %s | %s | %d | %s%% | %.2f M | %s%% | %s%% | %s / %s | %s / %s | %s / %s |\n",
        field("server"), field("size"), field("deliveries_per_s"), cpu,
        (cpu > 0 ? field("deliveries_per_s") / cpu / 10000 : 0), field("redis_cpu_pct"),
        field("load_cpu_pct"), field("same_p50_ms"), field("other_p50_ms"),
        field("same_p99_ms"), field("other_p99_ms"), field("same_p999_ms"), field("other_p999_ms")
    }
    print ""
    print "| paced run | receivers | delivered / sent x receivers | p50 same / other (ms) | p99 same / other | p99.9 same / other | longest silence same / other (ms) |"
    print "|---|---:|---:|---:|---:|---:|---:|"
    for (i = 1; i <= m; i++) {
      $0 = p[i]
      printf "| %s | %s | %s / %d | %s / %s | %s / %s | %s / %s | %s / %s |\n",
        field("server"), field("receivers"), field("delivered"), field("messages") * field("receivers"),
        field("same_p50_ms"), field("other_p50_ms"), field("same_p99_ms"), field("other_p99_ms"),
        field("same_p999_ms"), field("other_p999_ms"), field("same_gap_ms"), field("other_gap_ms")
    }
  }
' "$out/results.txt"
echo "(window $window; nodes and Redis on CPU $server_cpu, load on CPU $load_cpu; raw lines in $out/results.txt)"
