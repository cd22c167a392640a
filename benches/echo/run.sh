#!/usr/bin/env bash
# End-to-end echo benchmark: wscodec's examples/echo against echo servers
# written with tokio-tungstenite, fastwebsockets, tokio-websockets and yawc (each in
# its own idiom, each on a single-threaded runtime) and a raw TCP echo (the
# limit). Server on one core, load generator on the other; servers interleaved
# within each repetition; medians and ratios printed as a table, and beside it
# the server's CPU time per echoed message (utime + stime from /proc/PID/stat
# over the measured window): on a shared machine the robust figure, since a
# server starved of its core loses rate but not CPU per message. Then memory per
# idle connection: N connections after the handshake and one message each,
# server RSS growth divided by N. The load generator (load.rs) polls rather than
# sleeps, so its core shows 100% busy whatever the load; it does not wait on its
# own wake-ups, which set the single-connection rates when it did.
#
#   benches/echo/run.sh                  # full matrix, 3 repetitions, 10 000 idle connections
#   REPS=1 SECONDS_PER_RUN=1 benches/echo/run.sh
#   CELLS="16:1 16:100" SERVERS="echo echo_tungstenite" benches/echo/run.sh
#   IDLE=0 benches/echo/run.sh           # skip the memory measurement
#   BURST=0 ...                           # idle memory only, no burst
#   SERVERS="echo /tmp/echo_b" IDLE=0 REPS=10 CELLS=16:100 benches/echo/run.sh
#                                         # A/B of two builds (a path runs as given)
#   LOAD_FLAGS=--verify-all ...           # check every byte of large echoes too
set -euo pipefail
cd "$(dirname "$0")/../.."

REPS=${REPS:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-2}
IDLE=${IDLE:-10000}
# After the idle measurement: BURST_CONNS of the idle connections echo one
# BURST-byte message at once; how much of it does the server keep?
BURST=${BURST:-1048576}
BURST_CONNS=${BURST_CONNS:-100}
SERVERS=${SERVERS:-"echo echo_tungstenite echo_fastwebsockets echo_tokio_websockets echo_yawc echo_raw_tcp"}
# size:connections[:in-flight per connection[:text]]; "lat" marks the
# ping-pong cell (16 B, one connection, one message in flight).
CELLS=${CELLS:-"16:1 1024:1 16384:1:4 16384:1:4:text 1048576:1:2 16:100 1024:100 16384:100 1048576:100:2 lat"}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
CLK_TCK=$(getconf CLK_TCK)
OUT=${CARGO_TARGET_DIR:-target}/bench-echo
mkdir -p "$OUT"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# CARGO=/path/to/wrapper to build through a lock on a shared machine.
${CARGO:-cargo} build --release --examples >/dev/null
echo "conditions: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
BIN=${CARGO_TARGET_DIR:-target}/release/examples

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "server did not listen on $1" >&2
    return 1
}

start_server() { # name, or a path to a binary -> sets PID PORT
    PORT=$(free_port)
    local bin=$BIN/$1
    [[ $1 == */* ]] && bin=$1
    taskset -c "$SERVER_CPU" "$bin" "127.0.0.1:$PORT" >/dev/null 2>&1 &
    PID=$!
    wait_port "$PORT"
}

stop_server() { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }
trap 'stop_server' EXIT

raw_flag() { [[ $1 == echo_raw_tcp ]] && echo --raw || true; }

results=$OUT/results.txt
: > "$results"
for rep in $(seq "$REPS"); do
    for cell in $CELLS; do
        kind=
        if [[ $cell == lat ]]; then size=16 conns=1 inflight=1
        else IFS=: read -r size conns inflight kind <<< "$cell"; inflight=${inflight:-16}
        fi
        text_flag=; [[ $kind == text ]] && text_flag=--text
        # Rotate the order each repetition so no server always runs first.
        order=($SERVERS)
        shift_by=$(( (rep - 1) % ${#order[@]} ))
        order=("${order[@]:$shift_by}" "${order[@]:0:$shift_by}")
        for server in "${order[@]}"; do
            start_server "$server"
            line=$(taskset -c "$LOAD_CPU" timeout 120 "$BIN/echo_load" "127.0.0.1:$PORT" \
                --size "$size" --conns "$conns" --inflight "$inflight" \
                --seconds "$SECONDS_PER_RUN" --server-pid "$PID" --clk-tck "$CLK_TCK" \
                $text_flag $(raw_flag "$server") ${LOAD_FLAGS:-} || echo "rate=0 p50_us=0 p99_us=0 max_us=0 FAILED")
            stop_server
            echo "$cell $server $line rep=$rep" | tee -a "$results"
        done
    done
done

memory=$OUT/memory.txt
: > "$memory"
if (( IDLE > 0 )); then
    for server in $SERVERS; do
        start_server "$server"
        before=$(awk '/VmRSS/ {print $2}' "/proc/$PID/status")
        fifo=$OUT/idle.fifo; rm -f "$fifo"; mkfifo "$fifo"
        taskset -c "$LOAD_CPU" "$BIN/echo_load" "127.0.0.1:$PORT" --idle "$IDLE" --hold 3 \
            --burst "$BURST" --burst-conns "$BURST_CONNS" $(raw_flag "$server") > "$fifo" &
        load=$!
        exec 3< "$fifo"
        read -r _ <&3   # "ready": every connection has echoed one message
        sleep 1
        after=$(awk '/VmRSS/ {print $2}' "/proc/$PID/status")
        burst=$after
        if (( BURST > 0 )); then
            read -r _ <&3   # "burst": BURST_CONNS connections have echoed BURST bytes
            sleep 1
            burst=$(awk '/VmRSS/ {print $2}' "/proc/$PID/status")
        fi
        exec 3<&-
        kill "$load" 2>/dev/null || true; wait "$load" 2>/dev/null || true
        stop_server
        echo "$server $IDLE $before $after $burst" | tee -a "$memory"
    done
fi

echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at end"

python3 - "$results" "$memory" "$SERVERS" <<'PY'
import math, statistics, sys
from collections import defaultdict
results, memory, servers = sys.argv[1], sys.argv[2], sys.argv[3].split()
peers = [s for s in servers if s not in ("echo", "echo_raw_tcp")]
cells, rows = [], defaultdict(lambda: defaultdict(list))
# (rate, CPU per message) by cell, repetition and server, for the A/B pairs.
by_rep = defaultdict(lambda: defaultdict(dict))
for line in open(results):
    cell, server, *kv = line.split()
    if cell not in cells: cells.append(cell)
    f = dict(x.split("=") for x in kv if "=" in x)
    by_rep[cell][f.get("rep")][server] = (float(f["rate"]), float(f.get("server_us", 0)))
    fewest, most = (int(x) for x in f.get("per_conn", "0/0").split("/"))
    rows[cell][server].append((float(f["rate"]), int(f["p50_us"]), int(f["p99_us"]),
                               float(f.get("server_us", 0)), float(f.get("client_busy", 0)),
                               fewest / most if most else 0))
def med(xs, i): return statistics.median(x[i] for x in xs)
def label(c):
    if c == "lat": return "ping-pong: 16 B x 1, 1 in flight"
    parts = c.split(":"); size, conns = int(parts[0]), parts[1]
    s = f"{size // 1048576} MiB" if size >= 1048576 else f"{size // 1024} KiB" if size >= 1024 else f"{size} B"
    text = " text" if parts[3:] == ["text"] else ""
    flight = f", {parts[2]} in flight" if len(parts) > 2 else ""
    return f"{s}{text} x {conns}{flight}"
names = {"echo": "wscodec", "echo_tungstenite": "tungstenite", "echo_fastwebsockets": "fastwebsockets",
         "echo_tokio_websockets": "tokio-websockets", "echo_yawc": "yawc", "echo_raw_tcp": "raw TCP"}
print("\nmessages/s (median of repetitions); p50/p99 round trip in µs for wscodec")
print("| cell | " + " | ".join(names.get(s, s) for s in servers) + " | wscodec / best peer | wscodec / raw TCP | wscodec p50 / p99 µs | client busy, most |")
print("|---" * (len(servers) + 5) + "|")
for c in cells:
    r = rows[c]
    rate = {s: med(r[s], 0) for s in servers if r[s]}
    best = max((rate[s] for s in peers if s in rate), default=0)
    ours = rate.get("echo", 0)
    ratio = f"{ours / best:.2f}" if best else "-"
    raw = f"{ours / rate['echo_raw_tcp']:.2f}" if rate.get("echo_raw_tcp") else "-"
    lat = f"{med(r['echo'], 1):.0f} / {med(r['echo'], 2):.0f}" if r["echo"] else "-"
    busy = max((med(r[s], 4) for s in servers if r[s]), default=0)
    print(f"| {label(c)} | " + " | ".join(f"{rate.get(s, 0):,.0f}" for s in servers) + f" | {ratio} | {raw} | {lat} | {busy:.2f} |")
print("\nserver CPU µs per echoed message (median of repetitions; lower is better)")
print("| cell | " + " | ".join(names.get(s, s) for s in servers) + " | wscodec / best peer | wscodec / raw TCP |")
print("|---" * (len(servers) + 3) + "|")
for c in cells:
    r = rows[c]
    cpu = {s: med(r[s], 3) for s in servers if r[s] and med(r[s], 3) > 0}
    best = min((cpu[s] for s in peers if s in cpu), default=0)
    ours = cpu.get("echo", 0)
    ratio = f"{ours / best:.2f}" if best and ours else "-"
    raw = f"{ours / cpu['echo_raw_tcp']:.2f}" if ours and cpu.get("echo_raw_tcp") else "-"
    print(f"| {label(c)} | " + " | ".join(f"{cpu[s]:.2f}" if s in cpu else "-" for s in servers) + f" | {ratio} | {raw} |")
many = [c for c in cells if c != "lat" and int(c.split(":")[1]) > 1]
if many:
    # The load generator serves its connections in turn; a server that does
    # not can post more messages/s by serving a few connections while the
    # others wait, which shows here and in its p99.
    print("\nfairness: echoes on the least served connection / on the most served (median")
    print("of repetitions; 1.00 is even); p99 round trip in ms")
    print("| cell | " + " | ".join(names.get(s, s) for s in servers) + " |")
    print("|---" * (len(servers) + 1) + "|")
    for c in many:
        r = rows[c]
        print(f"| {label(c)} | " + " | ".join(
            f"{med(r[s], 5):.2f}, {med(r[s], 2) / 1000:.0f} ms" if r[s] else "-" for s in servers) + " |")
if len(servers) == 2:
    # An A/B of two builds: this VM's speed drifts between runs by more than
    # most changes move it, so pair the two within each repetition (their
    # order alternates) and count how often B beat A; under "no difference"
    # each pair is a coin toss (two-sided sign test).
    a, b = servers
    print(f"\nA/B per repetition: A = {a}, B = {b}; B better in k of n pairs, two-sided sign-test p")
    print("| cell | B/A msg/s, median | B faster | p | B/A CPU per message, median | B cheaper | p |")
    print("|---|---|---|---|---|---|---|")
    def sign_p(k, n):
        tail = sum(math.comb(n, i) for i in range(0, min(k, n - k) + 1)) / 2 ** n
        return min(1.0, 2 * tail)
    for c in cells:
        pairs = [(r[a], r[b]) for r in by_rep[c].values() if a in r and b in r and r[a][0] and r[b][0]]
        if not pairs: continue
        n = len(pairs)
        faster = sum(pb[0] > pa[0] for pa, pb in pairs)
        cheaper = sum(0 < pb[1] < pa[1] for pa, pb in pairs)
        rate_ratio = statistics.median(pb[0] / pa[0] for pa, pb in pairs)
        cpu = [pb[1] / pa[1] for pa, pb in pairs if pa[1]]
        cpu_ratio = f"{statistics.median(cpu):.3f}" if cpu else "-"
        print(f"| {label(c)} | {rate_ratio:.3f} | {faster}/{n} | {sign_p(faster, n):.3f} | {cpu_ratio} | {cheaper}/{n} | {sign_p(cheaper, n):.3f} |")
mem = [l.split() for l in open(memory) if l.strip()]
if mem:
    print("\nmemory per idle connection (server RSS growth / connections), and RSS kept")
    print("after a burst (some connections echo one large message at once, then idle)")
    print("| server | connections | RSS before KiB | RSS idle KiB | per connection | kept after burst |")
    print("|---|---|---|---|---|---|")
    for server, n, before, after, burst in mem:
        per = (int(after) - int(before)) * 1024 / int(n)
        kept = (int(burst) - int(after)) / 1024
        print(f"| {names.get(server, server)} | {n} | {before} | {after} | {per / 1000:.1f} KB | {kept:.1f} MiB |")
PY
