#!/usr/bin/env bash
# Fan-out benchmark: one sender and RECEIVERS (1000) receivers in one chat room,
# against four servers of the same chat, interleaved in one run:
#   wscodec            examples/broadcast built without feature deflate: one
#                      PreparedMessage per broadcast, its frame bytes shared by
#                      every connection;
#   wscodec-deflate    the same built with --features deflate: permessage-deflate
#                      agreed with every receiver, each broadcast compressed once
#                      and the compressed frame shared;
#   node-ws-deflate    benches/fanout/server_node.mjs, Node's ws with
#                      perMessageDeflate: true (its defaults: context takeover,
#                      window 2^15, level 6), one compression per member;
#   tokio-tungstenite  benches/fanout/server_tungstenite.rs, no compression.
# Every connection of the load generator (benches/fanout/load.rs, the crate's
# client) offers permessage-deflate as a browser does; each server agrees or
# not, and the run fails unless wscodec-deflate and node-ws-deflate agreed with
# every receiver and the others with none. Server and load generator are pinned
# to different cores with taskset. Each run starts a fresh server and reports
# messages and deliveries per second, both processes' CPU use, the server's
# resident memory from /proc/PID/status (idle, with every member connected,
# after the run, and its peak), and the bytes the receivers read per delivery
# (frame headers included; compressed where agreed) against the JSON text's
# size. The table gives the median of REPS runs of each row. Deliveries per
# server CPU-second is the figure that holds on a machine where other work
# competes for the cores (the CPU columns then stay well under 100%); a load
# CPU near 100% means the load generator (which inflates every copy when
# deflate is agreed) set the pace, not the server; many preemptions per
# second mean other work on the machine took the cores from them.
#
#   bash benches/fanout/run.sh
#
# Environment: RECEIVERS (1000), SIZES ("64 4096": chat text bytes),
# MESSAGES_<size> (messages per run: 3000 of 64 bytes, 500 of 4096, else
# 1000; 300 and 50 for node-ws-deflate), MESSAGES_<server>_<size> for one
# server (dashes as underscores: MESSAGES_node_ws_deflate_4096), WINDOW (64 messages in flight; below the servers' queue of 256),
# REPS (3), SERVERS (the four above, in that order), SERVER_CPU (0), LOAD_CPU
# (1), CARGO_CMD (cargo), NODE (node). Without node or tests/node/node_modules/ws
# (scripts/install-test-deps.sh) the Node row is skipped with a notice, or
# fails the run when CI is set. Logs in target/fanout/.
# Two broadcast nodes through Redis, against one alone: benches/fanout/cluster.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
out=$root/target/fanout
mkdir -p "$out"

receivers=${RECEIVERS:-1000}
sizes=${SIZES:-64 4096}
window=${WINDOW:-64}
reps=${REPS:-3}
servers=${SERVERS:-wscodec wscodec-deflate node-ws-deflate tokio-tungstenite}
node=${NODE:-node}
server_cpu=${SERVER_CPU:-0}
load_cpu=${LOAD_CPU:-1}
# One socket per member in each process, plus a few.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if (($(ulimit -n) < receivers + 64)); then
  echo "fanout: the file descriptor limit ($(ulimit -n)) is too low for $receivers receivers" >&2
  exit 1
fi

target=${CARGO_TARGET_DIR:-$root/target}
bin=$out/bin
mkdir -p "$bin"
# Two builds of the example: cargo puts both at the same path, so the first is
# copied away before the second.
echo "== cargo build --release (broadcast without deflate)" >&2
${CARGO_CMD:-cargo} build --release --example broadcast >&2
cp "$target/release/examples/broadcast" "$bin/broadcast-plain"
echo "== cargo build --release --features deflate (broadcast, fanout_tungstenite, fanout_load)" >&2
${CARGO_CMD:-cargo} build --release --features deflate --example broadcast \
  --example fanout_tungstenite --example fanout_load >&2
for b in broadcast fanout_tungstenite fanout_load; do
  cp "$target/release/examples/$b" "$bin/$b"
done

if [[ " $servers " == *" node-ws-deflate "* ]] &&
  ! { command -v "$node" >/dev/null && [[ -d $root/tests/node/node_modules/ws ]]; }; then
  if [[ -n ${CI:-} ]]; then
    echo "fanout: node or tests/node/node_modules/ws is missing (bash scripts/install-test-deps.sh)" >&2
    exit 1
  fi
  echo "fanout: SKIP node-ws-deflate: node or tests/node/node_modules/ws is missing" \
    "(bash scripts/install-test-deps.sh)" >&2
  servers=${servers/node-ws-deflate/}
fi

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

# run LABEL SIZE REP COMMAND...: starts the server, runs the load, prints its
# result line, and checks that deflate was agreed where it should be.
run() {
  local label=$1 size=$2 rep=$3
  shift 3
  local log=$out/$label-$size-$rep.log
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
  local messages_var=MESSAGES_$size server_var=MESSAGES_${label//-/_}_$size default=1000
  case $label-$size in
    # Node compresses every copy: about 14 k deliveries/s at 64 bytes and 3 k
    # at 4 KiB to 1000 members, so fewer messages keep its runs near 20 s.
    node-ws-deflate-64) default=300 ;;
    node-ws-deflate-4096) default=50 ;;
    *-64) default=3000 ;;
    *-4096) default=500 ;;
  esac
  [[ -n ${!server_var:-} ]] && messages_var=$server_var
  local line
  line=$(taskset -c "$load_cpu" "$bin/fanout_load" --url "ws://127.0.0.1:$port/ws/bench" \
    --receivers "$receivers" --messages "${!messages_var:-$default}" \
    --size "$size" --window "$window" --server-pid "$server_pid" --label "$label" \
    --clk-tck "$(getconf CLK_TCK)" --deflate on) || {
    echo "fanout: the load generator failed against $label; its log:" >&2
    cat "$log" >&2
    exit 1
  }
  echo "$line" | tee -a "$out/results.txt"
  local want=0
  [[ $label == *-deflate ]] && want=$receivers
  [[ $line == *" deflate_agreed=$want "* ]] || {
    echo "fanout: $label should have agreed on deflate with $want receivers: $line" >&2
    exit 1
  }
  stop_server
}

: >"$out/results.txt"
for rep in $(seq "$reps"); do
  for size in $sizes; do
    for server in $servers; do
      case $server in
        wscodec) run "$server" "$size" "$rep" "$bin/broadcast-plain" 127.0.0.1:0 \
          --max-connections $((receivers + 16)) --queue 256 ;;
        wscodec-deflate) run "$server" "$size" "$rep" "$bin/broadcast" 127.0.0.1:0 \
          --max-connections $((receivers + 16)) --queue 256 ;;
        node-ws-deflate) run "$server" "$size" "$rep" "$node" \
          "$root/benches/fanout/server_node.mjs" 127.0.0.1:0 ;;
        tokio-tungstenite) run "$server" "$size" "$rep" "$bin/fanout_tungstenite" 127.0.0.1:0 ;;
        *) echo "fanout: unknown server $server" >&2; exit 1 ;;
      esac
    done
  done
done

# The table: per server and size, the median of each column over the runs.
awk -v order="$servers" -v sizes="$sizes" '
  function field(name,   i, kv) {
    for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == name) return kv[2] }
  }
  function median(key,   n, i, j, v, t) {
    n = count[key]
    for (i = 1; i <= n; i++) v[i] = vals[key, i] + 0
    for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j - 1] > v[j]; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
  }
  function keep(row, name, value,   key) {
    key = row SUBSEP name
    vals[key, ++count[key]] = value
  }
  function mib(kib) { return sprintf("%.1f", kib / 1024) }
  $1 == "result" {
    row = field("server") SUBSEP field("size")
    runs[row]++
    cpu = field("server_cpu_pct")
    keep(row, "dps", field("deliveries_per_s"))
    keep(row, "cpu", cpu)
    keep(row, "per_cpu", cpu > 0 ? field("deliveries_per_s") * 100 / cpu : 0)
    keep(row, "us", field("deliveries_per_s") > 0 ? cpu * 1e4 / field("deliveries_per_s") : 0)
    keep(row, "load", field("load_cpu_pct"))
    keep(row, "wire", field("wire_bytes_per_delivery"))
    keep(row, "json", field("json_bytes_per_delivery"))
    keep(row, "idle", field("rss_idle_kib"))
    keep(row, "connected", field("rss_connected_kib"))
    keep(row, "hwm", field("hwm_kib"))
    keep(row, "spre", field("server_preempted_per_s"))
    keep(row, "lpre", field("load_preempted_per_s"))
    agreed[row] = field("deflate_agreed")
  }
  END {
    print "| server | text bytes | deflate agreed | deliveries/s | server CPU | deliveries per server CPU-second | server µs per delivery | load CPU | wire bytes per delivery | JSON bytes per delivery | RSS idle (MiB) | RSS connected | peak RSS | preempted/s server, load | runs |"
    print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    ns = split(sizes, size_list, " ")
    no = split(order, server_list, " ")
    for (a = 1; a <= ns; a++) for (b = 1; b <= no; b++) {
      row = server_list[b] SUBSEP size_list[a]
      if (!(row in runs)) continue
      printf "| %s | %s | %s | %d | %d%% | %d | %.2f | %d%% | %.1f | %.1f | %s | %s | %s | %d, %d | %d |\n",
        server_list[b], size_list[a], agreed[row], median(row SUBSEP "dps"),
        median(row SUBSEP "cpu"), median(row SUBSEP "per_cpu"), median(row SUBSEP "us"),
        median(row SUBSEP "load"), median(row SUBSEP "wire"), median(row SUBSEP "json"),
        mib(median(row SUBSEP "idle")), mib(median(row SUBSEP "connected")),
        mib(median(row SUBSEP "hwm")), median(row SUBSEP "spre"), median(row SUBSEP "lpre"),
        runs[row]
    }
  }
' "$out/results.txt"
echo "(median of $reps runs; $receivers receivers, window $window, server on CPU $server_cpu," \
  "load on CPU $load_cpu; raw lines in $out/results.txt)"
