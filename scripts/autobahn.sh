#!/usr/bin/env bash
# Autobahn|Testsuite (RFC 6455 conformance) runner for wscodec.
#
# Usage: scripts/autobahn.sh [--quick|--full] [--role server|client|both]
#                            [--cases 'PATTERN,...'] [--install-only]
#
#   --full          sections 1-11, i.e. every case but permessage-deflate (default)
#   --quick         sections 1-11 without 9.* (the slow performance/limits cases)
#   --cases LIST    exactly these comma-separated case patterns, e.g. '12.1.*,13.1.*'
#                   (overrides --quick/--full; nothing is excluded)
#   --role ROLE     server: wstest's fuzzing client tests our echo server
#                   client: our autobahn_client is tested by wstest's fuzzing server
#                   both (default)
#   --install-only  only install Autobahn|Testsuite into the cache and exit
#
# Environment:
#   AUTOBAHN_CACHE          install location (default ~/.cache/wscodec-autobahn)
#   AUTOBAHN_NO_BUILD=1     skip `cargo build`
#   AUTOBAHN_SERVER_CMD     server under test; gets 127.0.0.1:PORT as last argument
#                           (default target/release/examples/echo)
#   AUTOBAHN_CLIENT_CMD     client under test; gets ws://127.0.0.1:PORT and AGENT
#                           (default target/release/examples/autobahn_client)
#   AUTOBAHN_AGENT          agent name in the reports (default wscodec)
#   AUTOBAHN_RUN_TIMEOUT    seconds allowed for one role's test run
#                           (default 900; 3600 with --cases, for permessage-deflate)
#   AUTOBAHN_START_TIMEOUT  seconds a peer may take to start listening (default 60)
#   AUTOBAHN_FAIL_UNIMPLEMENTED=1  count UNIMPLEMENTED as a failure too (for runs of
#                           12.*/13.* once permessage-deflate is meant to be supported)
#   AUTOBAHN_DEBIAN_MIRROR  Debian mirror to fetch bullseye's Python 2.7 from
#                           (default: the mirrors in this machine's apt sources)
#   AUTOBAHN_SHARED_DIR     offline copy of the Python 2.7 .debs and pip wheel, used
#                           only when the mirror fails (default ../shared/autobahn)
#
# Results: HTML/JSON reports in target/autobahn/{server,client}, logs in
# target/autobahn/logs, summary in target/autobahn/summary.txt.
# Exit status: 0 only if every expected case has a result, none is FAILED or
# NON-STRICT, every behaviorClose is OK or INFORMATIONAL, and the peers behaved
# (no crash, no time-out, clean exit codes). 2 for usage errors.
#
# Why it looks like this: wstest runs only on CPython 2.7, which Debian 12 does not
# ship. The script extracts Debian 11's python2.7 packages into a private prefix
# (nothing is installed system-wide) and pip-installs a fully pinned dependency
# set (scripts/autobahn-requirements-py27.txt) into it, once; later runs reuse it.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
REQUIREMENTS=$SCRIPT_DIR/autobahn-requirements-py27.txt

if [[ -n ${AUTOBAHN_CACHE:-} ]]; then
    CACHE=$AUTOBAHN_CACHE
elif [[ -n ${HOME:-} ]]; then
    CACHE=$HOME/.cache/wscodec-autobahn
else
    CACHE=$ROOT/target/autobahn-cache # CI without HOME: still somewhere writable
fi
RT=$CACHE/runtime                 # everything installed lives here
PY27_PREFIX=$RT/py27              # Debian 11 python2.7 packages, extracted
PY27=$PY27_PREFIX/usr/bin/python2.7
USERBASE=$RT/site                 # pip --user target (a real site dir: .pth files work)
WSTEST=$RT/bin/wstest             # wrapper: env + loopback launcher
STAMP=$RT/.installed              # written last; its content says what was installed

# Bump when the install layout changes, so that old caches are rebuilt.
INSTALL_LAYOUT=1
BULLSEYE_DEBS=(python2.7 python2.7-minimal libpython2.7-minimal libpython2.7-stdlib
    libpython2.7 libpython2.7-dev python2.7-dev libssl1.1 libffi7)
# pip 20.3.4 is the last pip for Python 2.7; pin the wheel's hash too.
PIP_VERSION=20.3.4
PIP_WHEEL=pip-$PIP_VERSION-py2.py3-none-any.whl
PIP_WHEEL_SHA256=217ae5161a0e08c0fb873858806e3478c9775caffce5168b50ec885e358c199d
SHARED_DIR=${AUTOBAHN_SHARED_DIR:-$(dirname "$ROOT")/shared/autobahn}

AGENT=${AUTOBAHN_AGENT:-wscodec}
INSTALL_STEP_TIMEOUT=600 # per download/install step
START_TIMEOUT=${AUTOBAHN_START_TIMEOUT:-60} # for a peer to start listening
STOP_GRACE=10            # for a peer to exit after SIGTERM

log() { printf '[autobahn %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# The header comment above, up to "Why it looks like this", is the usage text.
usage() { awk 'NR > 1 && /^# Why/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; }

# ---------------------------------------------------------------- arguments
MODE=full
ROLE=both
CASES=""
INSTALL_ONLY=0
while (($#)); do
    case $1 in
        --quick) MODE=quick ;;
        --full) MODE=full ;;
        --role)
            [[ $# -ge 2 ]] || { usage >&2; exit 2; }
            ROLE=$2; shift ;;
        --role=*) ROLE=${1#--role=} ;;
        --cases)
            [[ $# -ge 2 ]] || { usage >&2; exit 2; }
            CASES=$2; shift ;;
        --cases=*) CASES=${1#--cases=} ;;
        --install-only) INSTALL_ONLY=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
case $ROLE in
    server) ROLES=(server) ;;
    client) ROLES=(client) ;;
    both) ROLES=(server client) ;;
    *) echo "--role must be server, client or both" >&2; exit 2 ;;
esac
if [[ -n $CASES ]]; then
    MODE=cases
    RUN_TIMEOUT=${AUTOBAHN_RUN_TIMEOUT:-3600}
else
    RUN_TIMEOUT=${AUTOBAHN_RUN_TIMEOUT:-900}
fi

# ---------------------------------------------------------------- cleanup
# Background peers are started under `timeout`, which puts itself and its child in
# a new process group whose id is its pid: signalling -PID reaches the whole peer.
BG_PIDS=()
TMP_DIRS=()
stop_peer() { # PID: TERM the peer's group, KILL it if it lingers, reap it
    local pid=$1 i
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < STOP_GRACE * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "process $pid still running ${STOP_GRACE}s after SIGTERM; sending SIGKILL"
    fi
    kill -KILL -- "-$pid" 2>/dev/null || true # also any children left in its group
    wait "$pid" 2>/dev/null || true
    forget_pid "$pid"
}
forget_pid() { # PID: no longer ours to clean up
    local -a rest=()
    local p
    for p in "${BG_PIDS[@]}"; do [[ $p == "$1" ]] || rest+=("$p"); done
    BG_PIDS=("${rest[@]}")
}
# Run a bounded command to completion, output to LOG, returning its status (124 on
# time-out). It runs in the background and is waited for, because bash defers traps
# while a foreground command runs: this way INT/TERM clean up at once.
run_bounded() { # LIMIT_SECONDS LOG CMD...
    local limit=$1 logfile=$2 pid rc=0
    shift 2
    timeout -k 10 "$limit" "$@" </dev/null >"$logfile" 2>&1 &
    pid=$!
    BG_PIDS+=("$pid")
    wait "$pid" || rc=$?
    forget_pid "$pid"
    return "$rc"
}
cleanup() {
    local pid d
    for pid in "${BG_PIDS[@]}"; do stop_peer "$pid"; done
    for d in "${TMP_DIRS[@]}"; do rm -rf "$d"; done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- install
# Generated files that are (re)written on every run, atomically: cheap, and it keeps
# them in step with this script without forcing a reinstall.
write_file() { # PATH MODE <content on stdin>
    local tmp
    tmp=$(mktemp "$1.XXXXXX")
    cat >"$tmp"
    chmod "$2" "$tmp"
    mv -f "$tmp" "$1"
}

write_launchers() {
    mkdir -p "$RT/bin"
    # The Python 2 side: wstest with every listening socket forced onto 127.0.0.1
    # (wstest's fuzzingserver and its web UI listen on all interfaces otherwise),
    # plus --list-cases SPEC, which resolves a spec's case patterns exactly as wstest
    # does, so the summary can tell which results are missing.
    write_file "$RT/wstest_loopback.py" 644 <<'PY'
# Generated by scripts/autobahn.sh; do not edit.
import json
import sys

LOOPBACK = "127.0.0.1"


def list_cases(spec_path):
    from autobahntestsuite.case import (Cases, CaseSetname, CaseBasename,
                                        CaseCategories, CaseSubCategories)
    from autobahntestsuite.caseset import CaseSet
    with open(spec_path) as f:
        spec = json.load(f)
    case_set = CaseSet(CaseSetname, CaseBasename, Cases, CaseCategories,
                       CaseSubCategories)
    json.dump(case_set.parseSpecCases(spec), sys.stdout)


def main():
    if sys.argv[1:2] == ["--list-cases"]:
        return list_cases(sys.argv[2])
    from autobahntestsuite import wstest  # installs wstest's chosen reactor
    from twisted.internet import reactor
    listen_tcp, listen_ssl = reactor.listenTCP, reactor.listenSSL

    def listenTCP(port, factory, backlog=50, interface=""):
        return listen_tcp(port, factory, backlog=backlog, interface=LOOPBACK)

    def listenSSL(port, factory, contextFactory, backlog=50, interface=""):
        return listen_ssl(port, factory, contextFactory, backlog=backlog,
                          interface=LOOPBACK)

    reactor.listenTCP, reactor.listenSSL = listenTCP, listenSSL
    sys.argv[0] = "wstest"
    wstest.run()


if __name__ == "__main__":
    main()
PY
    # The shell side: the private interpreter needs its own home and libraries
    # (libssl1.1, libffi7, libpython2.7 from Debian 11); set them only for it, and
    # drop settings meant for the machine's Python 3 that would confuse Python 2.
    local multiarch
    multiarch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
    write_file "$WSTEST" 755 <<SH
#!/bin/sh
# Generated by scripts/autobahn.sh; do not edit. Runs wstest on the private Python 2.7.
unset PYTHONPATH PYTHONNOUSERSITE PYTHONSTARTUP PYTHONSAFEPATH
export PYTHONHOME='$PY27_PREFIX/usr'
export PYTHONUSERBASE='$USERBASE'
export LD_LIBRARY_PATH='$PY27_PREFIX/usr/lib/$multiarch:$PY27_PREFIX/lib/$multiarch'
exec '$PY27' '$RT/wstest_loopback.py' "\$@"
SH
}

install_stamp() { # what an install is: changes to any of these mean reinstall
    printf 'layout=%s arch=%s pip=%s requirements=%s\n' "$INSTALL_LAYOUT" \
        "$(dpkg --print-architecture)" "$PIP_VERSION" \
        "$(sha256sum <"$REQUIREMENTS" | cut -d' ' -f1)"
}

# The mirrors this machine's apt already uses for its own Debian release; bullseye
# lives beside bookworm on them. Reads one-line and deb822 sources.
system_debian_mirrors() {
    python3 - <<'PY'
import glob, re
codename = ""
for line in open("/etc/os-release"):
    if line.startswith("VERSION_CODENAME="):
        codename = line.split("=", 1)[1].strip().strip('"')
uris = []
def add(uri):
    if uri not in uris:
        uris.append(uri)
for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        line = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
        if len(line) >= 4 and line[0] == "deb" and line[2] == codename and "main" in line[3:]:
            add(line[1])
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    try:
        text = open(path).read()
    except OSError:
        continue
    for stanza in re.split(r"\n\s*\n", text):
        fields = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.split()
        if (fields.get("enabled", ["yes"])[0].lower() != "no"
                and "deb" in fields.get("types", [])
                and codename in fields.get("suites", [])
                and "main" in fields.get("components", [])):
            for uri in fields.get("uris", []):
                add(uri)
print("\n".join(uris))
PY
}

# Download the Debian 11 python2.7 packages with a private apt configuration: its
# own sources list, index lists and cache, so the system's apt state is untouched.
fetch_debs_apt() { # DEST_DIR
    local dest=$1 apt_dir=$1/../apt mirror keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    local -a mirrors
    [[ -r $keyring ]] || { log "no $keyring (package debian-archive-keyring)"; return 1; }
    if [[ -n ${AUTOBAHN_DEBIAN_MIRROR:-} ]]; then
        mirrors=("$AUTOBAHN_DEBIAN_MIRROR")
    else
        mapfile -t mirrors < <(system_debian_mirrors)
    fi
    ((${#mirrors[@]})) || { log "no Debian mirror found in the apt sources"; return 1; }
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/parts"
    for mirror in "${mirrors[@]}"; do
        echo "deb [signed-by=$keyring] $mirror bullseye main"
    done >"$apt_dir/sources.list"
    local -a opts=(
        -o "Dir::Etc::SourceList=$apt_dir/sources.list"
        -o "Dir::Etc::SourceParts=$apt_dir/parts"
        -o "Dir::Etc::Preferences=/dev/null"
        -o "Dir::Etc::PreferencesParts=$apt_dir/parts"
        -o "Dir::State::Lists=$apt_dir/lists"
        -o "Dir::State::status=/dev/null"
        -o "Dir::Cache=$apt_dir/cache"
        -o "Debug::NoLocking=1"            # private dirs: no need for the system lock
        -o "APT::Sandbox::User=root"       # _apt cannot write into a root-only cache
        -o "Acquire::Languages=none"       # only the Packages index is needed
        -o "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false"
        -o "Acquire::Check-Valid-Until=false" # bullseye is end-of-life; signatures still checked
    )
    log "fetching Debian 11 python2.7 packages from: ${mirrors[*]}"
    # update may report errors for one of several mirrors; the download decides.
    timeout "$INSTALL_STEP_TIMEOUT" apt-get -q "${opts[@]}" update >>"$INSTALL_LOG" 2>&1 || true
    (cd "$dest" && timeout "$INSTALL_STEP_TIMEOUT" apt-get -q "${opts[@]}" download "${BULLSEYE_DEBS[@]}") \
        >>"$INSTALL_LOG" 2>&1 || return 1
    local pkg
    for pkg in "${BULLSEYE_DEBS[@]}"; do
        compgen -G "$dest/${pkg}_*.deb" >/dev/null || return 1
    done
}

# Fallback for when the mirror no longer serves bullseye: the offline copy, accepted
# only if it matches its SHA256SUMS.
fetch_debs_shared() { # DEST_DIR
    local dest=$1 pkg
    [[ -f $SHARED_DIR/SHA256SUMS ]] || return 1
    log "falling back to the offline copy in $SHARED_DIR"
    (cd "$SHARED_DIR" && grep ' debs/' SHA256SUMS | sha256sum --quiet -c -) >>"$INSTALL_LOG" 2>&1 || {
        log "offline copy fails its SHA256SUMS"; return 1; }
    for pkg in "${BULLSEYE_DEBS[@]}"; do
        compgen -G "$SHARED_DIR/debs/${pkg}_*.deb" >/dev/null || return 1
    done
    cp "$SHARED_DIR"/debs/*.deb "$dest/"
}

fetch_pip_wheel() { # DEST_DIR
    local dest=$1
    if timeout "$INSTALL_STEP_TIMEOUT" python3 -m pip download --disable-pip-version-check -q \
        --no-deps --only-binary=:all: -d "$dest" "pip==$PIP_VERSION" >>"$INSTALL_LOG" 2>&1 &&
        [[ -f $dest/$PIP_WHEEL ]]; then
        :
    elif [[ -f $SHARED_DIR/$PIP_WHEEL ]]; then
        log "PyPI download of pip failed; using $SHARED_DIR/$PIP_WHEEL"
        cp "$SHARED_DIR/$PIP_WHEEL" "$dest/"
    else
        return 1
    fi
    echo "$PIP_WHEEL_SHA256  $dest/$PIP_WHEEL" | sha256sum --quiet -c - >>"$INSTALL_LOG" 2>&1
}

py27_env() { # run a command in the private Python 2.7's environment
    local multiarch
    multiarch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
    env -u PYTHONPATH -u PYTHONNOUSERSITE -u PIP_USER -u PIP_TARGET -u PIP_PREFIX \
        -u PIP_REQUIRE_VIRTUALENV -u PIP_FIND_LINKS \
        PYTHONHOME="$PY27_PREFIX/usr" PYTHONUSERBASE="$USERBASE" \
        LD_LIBRARY_PATH="$PY27_PREFIX/usr/lib/$multiarch:$PY27_PREFIX/lib/$multiarch" \
        "$@"
}

wstest_works() {
    [[ -x $WSTEST ]] && timeout 60 "$WSTEST" --autobahnversion >/dev/null 2>&1 &&
        py27_env timeout 60 "$PY27" -c 'import wsaccel' >/dev/null 2>&1
}

install_autobahn() {
    local need
    for need in apt-get dpkg-deb gcc python3 sha256sum timeout flock; do
        command -v "$need" >/dev/null || die "'$need' is required"
    done
    [[ -f $REQUIREMENTS ]] || die "missing $REQUIREMENTS"
    mkdir -p "$CACHE"
    # One installer at a time per cache (two CI jobs, or two terminals).
    exec 9>"$CACHE/.lock"
    timeout 900 flock 9 || die "could not lock $CACHE/.lock"

    local want
    want=$(install_stamp)
    if [[ -f $STAMP && $(cat "$STAMP") == "$want" ]]; then
        write_launchers
        if wstest_works; then
            log "Autobahn|Testsuite already installed in $RT ($("$WSTEST" --autobahnversion 2>/dev/null | paste -sd ' '))"
            exec 9>&-
            return
        fi
        log "existing install in $RT is broken; reinstalling"
    fi

    local started=$SECONDS work
    log "installing Autobahn|Testsuite into $RT"
    rm -rf "$RT"
    mkdir -p "$RT"
    INSTALL_LOG=$CACHE/install.log
    : >"$INSTALL_LOG"
    work=$(mktemp -d "$CACHE/tmp.XXXXXX")
    TMP_DIRS+=("$work")
    mkdir -p "$work/debs" "$work/pip"

    if ! fetch_debs_apt "$work/debs"; then
        log "apt download from the Debian mirror failed (see $INSTALL_LOG)"
        rm -f "$work"/debs/*.deb
        fetch_debs_shared "$work/debs" ||
            die "cannot get Debian 11 python2.7 packages (mirror failed, no valid offline copy); see $INSTALL_LOG"
    fi
    local deb
    for deb in "$work"/debs/*.deb; do
        dpkg-deb -x "$deb" "$PY27_PREFIX"
    done
    [[ -x $PY27 ]] || die "python2.7 missing after extracting the packages"

    fetch_pip_wheel "$work/pip" || die "cannot get a verified $PIP_WHEEL; see $INSTALL_LOG"

    # Debian's patched distutils looks for Python.h in /usr/include/python2.7, which
    # does not exist here; point the compiler at the private prefix (for wsaccel).
    local -a pip_env=(CFLAGS="-I$PY27_PREFIX/usr/include/python2.7 -I$PY27_PREFIX/usr/include")
    local -a pip_opts=(--user --disable-pip-version-check --no-warn-script-location
        --progress-bar off --cache-dir "$CACHE/pip-cache")
    log "installing pip $PIP_VERSION and the pinned packages (log: $INSTALL_LOG)"
    # pip run from its wheel cannot build PEP 517 packages (its helper script is
    # inside the zip), so first install pip itself, then the build tools that the
    # no-isolation build of wsaccel needs, then everything else.
    py27_env timeout "$INSTALL_STEP_TIMEOUT" "$PY27" "$work/pip/$PIP_WHEEL/pip" install \
        "${pip_opts[@]}" --no-index "$work/pip/$PIP_WHEEL" >>"$INSTALL_LOG" 2>&1 ||
        die "pip bootstrap failed; see $INSTALL_LOG"
    local -a build_tools
    mapfile -t build_tools < <(grep -E '^(setuptools|wheel)==' "$REQUIREMENTS")
    py27_env timeout "$INSTALL_STEP_TIMEOUT" "$PY27" -m pip install "${pip_opts[@]}" \
        "${build_tools[@]}" >>"$INSTALL_LOG" 2>&1 ||
        die "installing ${build_tools[*]} failed; see $INSTALL_LOG"
    py27_env "${pip_env[@]}" timeout "$INSTALL_STEP_TIMEOUT" "$PY27" -m pip install "${pip_opts[@]}" \
        --no-build-isolation -r "$REQUIREMENTS" >>"$INSTALL_LOG" 2>&1 || {
        tail -n 30 "$INSTALL_LOG" >&2
        die "pip install -r $REQUIREMENTS failed; see $INSTALL_LOG"
    }

    write_launchers
    wstest_works || die "wstest (or its wsaccel accelerator) does not run after install"
    install_stamp >"$STAMP"
    rm -rf "$work"
    log "installed in $((SECONDS - started)) s: $("$WSTEST" --autobahnversion | paste -sd ' ')"
    exec 9>&-
}

# ---------------------------------------------------------------- running
free_port() { # an unused TCP port on 127.0.0.1 (the kernel picks it)
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

wait_listening() { # PORT PID NAME: until 127.0.0.1:PORT accepts, while PID lives
    local port=$1 pid=$2 name=$3 deadline=$((SECONDS + START_TIMEOUT))
    while ((SECONDS < deadline)); do
        kill -0 "$pid" 2>/dev/null || { log "$name exited before listening"; return 1; }
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    log "$name did not listen on 127.0.0.1:$port within ${START_TIMEOUT}s"
    return 1
}

show_tail() { # FILE: the end of a log, for CI output
    [[ -s $1 ]] || return 0
    log "last lines of $1:"
    tail -n 20 "$1" | sed 's/^/    /' >&2
}

write_spec() { # ROLE PORT OUTDIR SPEC_FILE
    ROLE_=$1 PORT_=$2 OUTDIR_=$3 AGENT_=$AGENT MODE_=$MODE CASES_=$CASES python3 - >"$4" <<'PY'
import json, os
role, port = os.environ["ROLE_"], os.environ["PORT_"]
mode = os.environ["MODE_"]
if mode == "cases":
    cases = [c.strip() for c in os.environ["CASES_"].split(",") if c.strip()]
    exclude = []
elif mode == "quick":
    cases, exclude = ["*"], ["9.*", "12.*", "13.*"]
else:
    cases, exclude = ["*"], ["12.*", "13.*"]
url = "ws://127.0.0.1:%s" % port
spec = {"outdir": os.environ["OUTDIR_"], "cases": cases,
        "exclude-cases": exclude, "exclude-agent-cases": {}}
if role == "server":  # wstest is the fuzzing client; our server is the testee
    spec["servers"] = [{"agent": os.environ["AGENT_"], "url": url}]
else:                 # wstest is the fuzzing server
    spec["url"] = url
print(json.dumps(spec, indent=2))
PY
}

# Each role writes $OUT/<role>.expected.json (case ids wstest was asked to run) and
# $OUT/<role>.problems (one harness problem per line: crash, time-out, exit code),
# which the summary combines with the role's index.json.
prepare_role() { # ROLE PORT -> sets ROLE_OUT, SPEC, PROBLEMS
    local role=$1 port=$2
    ROLE_OUT=$OUT/$role
    SPEC=$OUT/$role.spec.json
    PROBLEMS=$OUT/$role.problems
    rm -rf "$ROLE_OUT" "$PROBLEMS" "$OUT/$role.expected.json"
    mkdir -p "$ROLE_OUT" "$LOGS"
    : >"$PROBLEMS"
    write_spec "$role" "$port" "$ROLE_OUT" "$SPEC"
    "$WSTEST" --list-cases "$SPEC" >"$OUT/$role.expected.json" ||
        die "could not resolve the case list of $SPEC"
    local n
    n=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$OUT/$role.expected.json")
    ((n > 0)) || die "no Autobahn case matches: ${CASES:-$MODE}"
    log "$role: $n cases, peer on 127.0.0.1:$port, timeout ${RUN_TIMEOUT}s"
}

problem() { # ROLE-PROBLEMS-FILE MESSAGE
    log "$2"
    echo "$2" >>"$1"
}

run_server_role() {
    local port pid rc=0 started=$SECONDS
    port=$(free_port)
    prepare_role server "$port"
    local cmd=${AUTOBAHN_SERVER_CMD:-$TARGET_DIR/release/examples/echo}
    # bash -c 'exec CMD "$@"' lets the command string carry its own arguments and
    # quoting; timeout bounds the server's life even if this script is killed.
    timeout -k 5 $((RUN_TIMEOUT + START_TIMEOUT + 60)) \
        bash -c "exec $cmd \"\$@\"" server-under-test "127.0.0.1:$port" \
        </dev/null >"$LOGS/server-peer.log" 2>&1 &
    pid=$!
    BG_PIDS+=("$pid")
    if ! wait_listening "$port" "$pid" "server under test ($cmd)"; then
        problem "$PROBLEMS" "server under test did not start"
        show_tail "$LOGS/server-peer.log"
        stop_peer "$pid"
        return 0
    fi
    log "server: running wstest -m fuzzingclient (log: $LOGS/server-wstest.log)"
    run_bounded "$RUN_TIMEOUT" "$LOGS/server-wstest.log" \
        "$WSTEST" -m fuzzingclient -s "$SPEC" || rc=$?
    if ((rc == 124)); then
        problem "$PROBLEMS" "wstest fuzzingclient timed out after ${RUN_TIMEOUT}s"
    elif ((rc != 0)); then
        problem "$PROBLEMS" "wstest fuzzingclient exited with status $rc"
        show_tail "$LOGS/server-wstest.log"
    fi
    # A server that is gone before we stop it has crashed (or quit) mid-run.
    if ! kill -0 "$pid" 2>/dev/null; then
        rc=0
        wait "$pid" || rc=$?
        problem "$PROBLEMS" "server under test exited during the run (status $rc)"
        show_tail "$LOGS/server-peer.log"
    fi
    stop_peer "$pid"
    log "server: done in $((SECONDS - started)) s"
}

run_client_role() {
    local port pid rc=0 started=$SECONDS
    port=$(free_port)
    prepare_role client "$port"
    # -u 0: no embedded web UI (it would listen on port 8080).
    timeout -k 5 $((2 * RUN_TIMEOUT + START_TIMEOUT + 60)) \
        "$WSTEST" -m fuzzingserver -s "$SPEC" -u 0 \
        </dev/null >"$LOGS/client-wstest.log" 2>&1 &
    pid=$!
    BG_PIDS+=("$pid")
    if ! wait_listening "$port" "$pid" "wstest fuzzingserver"; then
        problem "$PROBLEMS" "wstest fuzzingserver did not start"
        show_tail "$LOGS/client-wstest.log"
        stop_peer "$pid"
        return 0
    fi
    local cmd=${AUTOBAHN_CLIENT_CMD:-$TARGET_DIR/release/examples/autobahn_client}
    log "client: running $cmd (log: $LOGS/client-peer.log)"
    run_bounded "$RUN_TIMEOUT" "$LOGS/client-peer.log" \
        bash -c "exec $cmd \"\$@\"" client-under-test "ws://127.0.0.1:$port" "$AGENT" || rc=$?
    if ((rc == 124)); then
        problem "$PROBLEMS" "client under test timed out after ${RUN_TIMEOUT}s"
    elif ((rc != 0)); then
        problem "$PROBLEMS" "client under test exited with status $rc"
        show_tail "$LOGS/client-peer.log"
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
        rc=0
        wait "$pid" || rc=$?
        problem "$PROBLEMS" "wstest fuzzingserver exited during the run (status $rc)"
        show_tail "$LOGS/client-wstest.log"
    fi
    stop_peer "$pid"
    log "client: done in $((SECONDS - started)) s"
}

# Summarise index.json (agent -> case -> {behavior, behaviorClose, ...}) of each role
# that ran; exit status 1 if any role fails the bar described at the top.
summarise() { # ROLE...
    FAIL_UNIMPLEMENTED=${AUTOBAHN_FAIL_UNIMPLEMENTED:-0} python3 - "$OUT" "$AGENT" "$@" <<'PY'
import json, os, sys

out_dir, agent, roles = sys.argv[1], sys.argv[2], sys.argv[3:]
BEHAVIORS = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]
BAD_BEHAVIORS = {"NON-STRICT", "FAILED"}
if os.environ.get("FAIL_UNIMPLEMENTED") == "1":
    BAD_BEHAVIORS.add("UNIMPLEMENTED")
GOOD_CLOSE = {"OK", "INFORMATIONAL"}

def case_key(case_id):
    return tuple(int(p) if p.isdigit() else p for p in case_id.split("."))

lines, failed_roles = [], []
for role in roles:
    expected = json.load(open(os.path.join(out_dir, role + ".expected.json")))
    problems = [p for p in open(os.path.join(out_dir, role + ".problems")).read().splitlines() if p]
    index_path = os.path.join(out_dir, role, "index.json")
    results = {}
    if not os.path.exists(index_path):
        problems.append("no report: %s was not written" % index_path)
    else:
        index = json.load(open(index_path))
        if agent in index:
            results = index[agent]
        else:
            problems.append("no results for agent %r in %s (agents: %s)"
                            % (agent, index_path, ", ".join(sorted(index)) or "none"))
    missing = [c for c in expected if c not in results]
    cases = [c for c in expected if c in results]

    counts = dict.fromkeys(BEHAVIORS, 0)
    close_counts = {"OK": 0, "INFORMATIONAL": 0}
    sections, notable = {}, []
    for c in cases:
        r = results[c]
        b, bc = r.get("behavior", "?"), r.get("behaviorClose", "?")
        counts[b] = counts.get(b, 0) + 1
        close_counts[bc] = close_counts.get(bc, 0) + 1
        s = sections.setdefault(c.split(".")[0], dict(cases=0, missing=0, close_bad=0,
                                                      **dict.fromkeys(BEHAVIORS, 0)))
        s["cases"] += 1
        s[b] = s.get(b, 0) + 1
        if bc not in GOOD_CLOSE:
            s["close_bad"] += 1
        if b != "OK" or bc not in GOOD_CLOSE:
            notable.append((c, b, bc, r.get("remoteCloseCode")))
    for c in missing:
        sections.setdefault(c.split(".")[0], dict(cases=0, missing=0, close_bad=0,
                                                  **dict.fromkeys(BEHAVIORS, 0)))["missing"] += 1

    unknown = sorted(b for b in counts if b not in BEHAVIORS and counts[b])
    bad = sum(counts[b] for b in BAD_BEHAVIORS | set(unknown))
    bad_close = sum(n for bc, n in close_counts.items() if bc not in GOOD_CLOSE)
    ok = not (bad or bad_close or missing or problems)
    if not ok:
        failed_roles.append(role)

    behav = ", ".join("%d %s" % (counts[b], b) for b in BEHAVIORS + unknown)
    close = ", ".join("%d %s" % (n, bc) for bc, n in
                      sorted(close_counts.items(), key=lambda kv: (kv[0] not in GOOD_CLOSE, kv[0] != "OK", kv[0]))
                      if n or bc in GOOD_CLOSE)
    line = "%s: %d cases: %s; close: %s" % (role, len(cases), behav, close)
    if missing:
        line += "; %d of %d expected cases MISSING" % (len(missing), len(expected))
    lines.append(line)
    lines.append("")
    header = ["section", "cases", "OK", "NON-STRICT", "INFO", "UNIMPL", "FAILED", "close!OK", "missing"]
    lines.append("  " + "  ".join("%-8s" % h if i == 0 else "%10s" % h for i, h in enumerate(header)))
    for sec in sorted(sections, key=case_key):
        s = sections[sec]
        row = [sec, s["cases"], s["OK"], s["NON-STRICT"], s["INFORMATIONAL"], s["UNIMPLEMENTED"],
               s["FAILED"], s["close_bad"], s["missing"]]
        lines.append("  " + "  ".join("%-8s" % v if i == 0 else "%10s" % v for i, v in enumerate(row)))
    lines.append("")
    if notable:
        lines.append("  cases not plainly OK (behavior / behaviorClose / remote close code):")
        for c, b, bc, code in sorted(notable, key=lambda n: case_key(n[0])):
            lines.append("    %-10s %-14s %-14s %s" % (c, b, bc, code))
    if missing:
        shown = sorted(missing, key=case_key)
        lines.append("  missing results (%d): %s%s" % (len(shown), " ".join(shown[:40]),
                                                      " ..." if len(shown) > 40 else ""))
    for p in problems:
        lines.append("  problem: " + p)
    if os.path.exists(os.path.join(out_dir, role, "index.html")):
        lines.append("  reports: %s" % os.path.join(out_dir, role, "index.html"))
    lines.append("%s: %s" % (role, "PASS" if ok else "FAIL"))
    lines.append("")

lines.append("autobahn: %s" % ("FAIL (%s)" % ", ".join(failed_roles) if failed_roles else "PASS"))
text = "\n".join(lines) + "\n"
with open(os.path.join(out_dir, "summary.txt"), "w") as f:
    f.write(text)
sys.stdout.write(text)
sys.exit(1 if failed_roles else 0)
PY
}

# ---------------------------------------------------------------- main
install_autobahn
if ((INSTALL_ONLY)); then
    log "wstest: $WSTEST"
    exit 0
fi

cd "$ROOT"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
[[ $TARGET_DIR == /* ]] || TARGET_DIR=$ROOT/$TARGET_DIR
OUT=$TARGET_DIR/autobahn
LOGS=$OUT/logs
mkdir -p "$OUT" "$LOGS"
rm -f "$OUT/summary.txt"

# Build only the examples whose command was not overridden.
examples=()
for role in "${ROLES[@]}"; do
    if [[ $role == server && -z ${AUTOBAHN_SERVER_CMD:-} ]]; then examples+=(--example echo); fi
    if [[ $role == client && -z ${AUTOBAHN_CLIENT_CMD:-} ]]; then examples+=(--example autobahn_client); fi
done
if [[ ${AUTOBAHN_NO_BUILD:-0} != 1 ]] && ((${#examples[@]})); then
    # With permessage-deflate compiled in: the examples negotiate it only when
    # the suite offers it (sections 12 and 13), so 1-11 run as without it.
    log "cargo build --release --features deflate ${examples[*]}"
    timeout 3600 "${CARGO:-cargo}" build --release --features deflate "${examples[@]}" || die "cargo build failed"
fi

for role in "${ROLES[@]}"; do
    "run_${role}_role"
done
log "summary (also in $OUT/summary.txt):"
summarise "${ROLES[@]}"
