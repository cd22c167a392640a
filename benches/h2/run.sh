#!/usr/bin/env bash
# WebSockets over HTTP/2 against HTTP/1.1 (issue #15, RFC 8441): echo
# throughput of N sockets multiplexed as extended CONNECT streams on ONE h2c
# connection, against N TCP connections upgraded with HTTP/1.1, and the
# server's memory per socket in each case.
#
# Server: benches/h2/server.rs (h2_echo, both transports, single-threaded,
# the echo loop of examples/echo, a counting allocator). Load generator:
# benches/h2/load.rs (h2_load, the crate's client on both transports, every
# echo checked). Each run starts a fresh server pinned to SERVER_CPU; the load
# runs pinned to LOAD_CPU. Modes are interleaved within each repetition, in
# an order that rotates; the tables give medians.
#
# Per cell (size x sockets): messages/s, and the server's and the load
# generator's CPU time per message (utime + stime from /proc/PID/stat over the
# measured window). CPU per message is the figure to trust when other work
# shares the cores: wall-clock rates then depend on what else runs.
#
# Memory: for each mode and N, a fresh server; heap (bytes allocated and not
# freed, from the counting allocator) and RSS read before the load connects
# and after N sockets have each echoed one MEM_SIZE message and gone idle;
# (after - before) / N. In h2 mode that includes the one h2 connection,
# amortised over N. Kernel socket memory is in neither figure.
#
#   benches/h2/run.sh
#   REPS=1 SECONDS_PER_RUN=1 SOCKETS="1 100" SIZES=16 benches/h2/run.sh
#   MEMORY=0 ...                 # throughput only;  THROUGHPUT=0: memory only
#   CARGO_CMD=/work/bin/xcargo ...
#
# Environment: REPS (3), SECONDS_PER_RUN (2), SOCKETS ("1 100 1000"), SIZES
# ("16 1024 16384"), MODES ("h1 h2"), INFLIGHT (per socket; default
# min(16, 2000 / N), at least 1: 16, 16, 2), STREAM_WINDOW (65535, h2's
# default), CONN_WINDOW (16 MiB; h2's default is 65535, which caps what all
# streams together have in flight at 64 KiB), MAX_FRAME (16384, h2's default
# SETTINGS_MAX_FRAME_SIZE: a 16 KiB message and its header take two DATA
# frames, and h2 writes every DATA frame over 256 bytes with its own writev),
# MEM_SIZES ("16 16384"),
# SERVER_CPU (0), LOAD_CPU (1), OUT (target/bench-h2/: results, memory, conditions).
set -euo pipefail
cd "$(dirname "$0")/../.."

REPS=${REPS:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-2}
SOCKETS=${SOCKETS:-"1 100 1000"}
SIZES=${SIZES:-"16 1024 16384"}
MODES=${MODES:-"h1 h2"}
STREAM_WINDOW=${STREAM_WINDOW:-65535}
CONN_WINDOW=${CONN_WINDOW:-16777216}
MAX_FRAME=${MAX_FRAME:-16384}
MEM_SIZES=${MEM_SIZES:-"16 16384"}
THROUGHPUT=${THROUGHPUT:-1}
MEMORY=${MEMORY:-1}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
OUT=${OUT:-${CARGO_TARGET_DIR:-target}/bench-h2}
mkdir -p "$OUT"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
CLK_TCK=$(getconf CLK_TCK)

echo "== cargo build --release --features http2 (h2_echo, h2_load)" >&2
${CARGO_CMD:-cargo} build --release --features http2 --example h2_echo --example h2_load >&2
BIN=${CARGO_TARGET_DIR:-target}/release/examples
WINDOWS=(--stream-window "$STREAM_WINDOW" --conn-window "$CONN_WINDOW" --max-frame "$MAX_FRAME")

{
    echo "date: $(date -u '+%F %T UTC')"
    echo "cpu: $(nproc) x $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
    echo "kernel: $(uname -r)"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "server on CPU $SERVER_CPU, load on CPU $LOAD_CPU; ${SECONDS_PER_RUN}s per run, $REPS repetitions"
    echo "h2 settings (both sides): stream window $STREAM_WINDOW, connection window $CONN_WINDOW, max frame $MAX_FRAME"
} > "$OUT/conditions.txt"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

PID=
start_server() { # -> PID H1 H2 LOG
    LOG=$OUT/server.log
    : > "$LOG"
    H1=$(free_port)
    H2=$(free_port)
    taskset -c "$SERVER_CPU" "$BIN/h2_echo" "127.0.0.1:$H1" "127.0.0.1:$H2" "${WINDOWS[@]}" > "$LOG" 2>&1 &
    PID=$!
    for _ in $(seq 100); do
        grep -q '^listening' "$LOG" && return 0
        sleep 0.05
    done
    echo "h2_echo did not start: $(cat "$LOG")" >&2
    return 1
}

stop_server() {
    [[ -n $PID ]] || return 0
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    PID=
}
trap stop_server EXIT

# The server's stats line after a SIGUSR1: "heap=B rss_kb=K sockets=S".
stats() {
    local before
    before=$(grep -c '^heap=' "$LOG" || true)
    kill -USR1 "$PID"
    for _ in $(seq 100); do
        (($(grep -c '^heap=' "$LOG" || true) > before)) && break
        sleep 0.02
    done
    grep '^heap=' "$LOG" | tail -1
}

port_of() { [[ $1 == h1 ]] && echo "$H1" || echo "$H2"; }

inflight_for() {
    if [[ -n ${INFLIGHT:-} ]]; then echo "$INFLIGHT"; return; fi
    local k=$((2000 / $1))
    ((k > 16)) && k=16
    ((k < 1)) && k=1
    echo "$k"
}

results=$OUT/results.txt
memory=$OUT/memory.txt
if ((THROUGHPUT)); then
    : > "$results"
    for rep in $(seq "$REPS"); do
        for n in $SOCKETS; do
            for size in $SIZES; do
                order=($MODES)
                if (((rep + n + size) % 2)); then order=($(printf '%s\n' "${order[@]}" | tac)); fi
                for mode in "${order[@]}"; do
                    start_server
                    k=$(inflight_for "$n")
                    line=$(taskset -c "$LOAD_CPU" timeout 120 "$BIN/h2_load" "$mode" "127.0.0.1:$(port_of "$mode")" \
                        --sockets "$n" --size "$size" --inflight "$k" --seconds "$SECONDS_PER_RUN" \
                        --server-pid "$PID" --clk-tck "$CLK_TCK" "${WINDOWS[@]}" 2>>"$OUT/load.err" \
                        || echo "FAILED")
                    stop_server
                    echo "$mode $n $size $k $line" | tee -a "$results"
                done
            done
        done
    done
fi

if ((MEMORY)); then
    : > "$memory"
    for size in $MEM_SIZES; do
        for n in $SOCKETS; do
            for mode in $MODES; do
                start_server
                sleep 0.2
                before=$(stats)
                fifo=$OUT/idle.fifo
                rm -f "$fifo"
                mkfifo "$fifo"
                taskset -c "$LOAD_CPU" "$BIN/h2_load" "$mode" "127.0.0.1:$(port_of "$mode")" \
                    --sockets "$n" --size "$size" --idle --hold 30 "${WINDOWS[@]}" > "$fifo" 2>>"$OUT/load.err" &
                load=$!
                exec 3< "$fifo"
                if read -r -t 60 ready <&3 && [[ $ready == ready ]]; then
                    sleep 0.5
                    after=$(stats)
                else
                    after=FAILED
                fi
                exec 3<&-
                kill "$load" 2>/dev/null || true
                wait "$load" 2>/dev/null || true
                stop_server
                echo "$mode $n $size $before $after" | tee -a "$memory"
            done
        done
    done
fi

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/conditions.txt"
cat "$OUT/conditions.txt"
python3 - "$results" "$memory" "$THROUGHPUT" "$MEMORY" <<'PY'
import statistics, sys
from collections import defaultdict
results, memory, do_rate, do_mem = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4] == "1"

def size_label(b):
    b = int(b)
    return f"{b // 1024} KiB" if b >= 1024 else f"{b} B"

if do_rate:
    rows, failed = defaultdict(list), 0
    for line in open(results):
        mode, n, size, k, *kv = line.split()
        f = dict(x.split("=") for x in kv if "=" in x)
        if "rate" not in f:
            failed += 1
            continue
        rows[(int(n), int(size), k, mode)].append(f)
    med = lambda fs, key: statistics.median(float(f[key]) for f in fs)
    cells = sorted({(n, s, k) for (n, s, k, _) in rows})
    print("\nmessages/s and server CPU µs per message (medians); h2 = N streams on one connection, h1 = N connections")
    print("| size | sockets x in flight | h1 msg/s | h2 msg/s | h2 / h1 | server µs/msg h1 | server µs/msg h2 | load µs/msg h1 | load µs/msg h2 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n, s, k in sorted(cells, key=lambda c: (c[1], c[0])):
        h1, h2 = rows.get((n, s, k, "h1"), []), rows.get((n, s, k, "h2"), [])
        r1 = med(h1, "rate") if h1 else 0
        r2 = med(h2, "rate") if h2 else 0
        ratio = f"{r2 / r1:.2f}" if r1 and r2 else "-"
        cpu = lambda fs, key: f"{med(fs, key):.2f}" if fs else "-"
        print(f"| {size_label(s)} | {n} x {k} | {r1:,.0f} | {r2:,.0f} | {ratio} | {cpu(h1, 'server_us')} | {cpu(h2, 'server_us')} | {cpu(h1, 'load_us')} | {cpu(h2, 'load_us')} |")
    if failed:
        print(f"\n{failed} run(s) FAILED (see load.err)")

if do_mem:
    print("\nserver memory per idle socket: (after - before) / N, after each socket echoed one message")
    print("| mode | sockets | message | heap per socket | RSS per socket | heap before → after |")
    print("|---|---|---|---|---|---|")
    for line in open(memory):
        parts = line.split()
        mode, n, size = parts[:3]
        kv = [dict(x.split("=") for x in p.split()) for p in (" ".join(parts[3:6]), " ".join(parts[6:9]))] if "FAILED" not in line else None
        if not kv:
            print(f"| {mode} | {n} | {size_label(size)} | FAILED | | |")
            continue
        b, a = kv
        n_ = int(n)
        heap = (int(a["heap"]) - int(b["heap"])) / n_
        rss = (int(a["rss_kb"]) - int(b["rss_kb"])) * 1024 / n_
        open_ = "" if a["sockets"] == n else f" (server had {a['sockets']} sockets open!)"
        print(f"| {mode} | {n} | {size_label(size)} | {heap:,.0f} B | {rss:,.0f} B | {int(b['heap']):,} → {int(a['heap']):,}{open_} |")
PY
