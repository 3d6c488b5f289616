# shellcheck shell=bash
# Shared helpers for scripts/*.sh. Source it; do not run it.
#
# Environment (all optional):
#   PERFPIPE_RUN_DIR   pidfiles            (default: <repo>/run)
#   PERFPIPE_LOG_DIR   log files           (default: <repo>/log)

PERFPIPE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC2034  # used by the scripts that source this file
RUN_DIR="${PERFPIPE_RUN_DIR:-$PERFPIPE_ROOT/run}"
# shellcheck disable=SC2034
LOG_DIR="${PERFPIPE_LOG_DIR:-$PERFPIPE_ROOT/log}"

log()  { printf '[%s] %s\n' "$(basename "$0" .sh)" "$*"; }
warn() { printf '[%s] WARNING: %s\n' "$(basename "$0" .sh)" "$*" >&2; }
die()  { printf '[%s] ERROR: %s\n' "$(basename "$0" .sh)" "$*" >&2; exit 1; }

# Absolute path of $1 (which need not exist yet), relative paths taken from the caller's cwd.
abspath() {
    case "$1" in
        /*) printf '%s\n' "$1" ;;
        *)  printf '%s/%s\n' "$(pwd)" "$1" ;;
    esac
}

# curl for OUR loopback services only: never through a proxy, always bounded in time.
lcurl() { curl --noproxy '*' --silent --show-error --max-time 5 "$@"; }

# HTTP status code of a GET (000 when nothing answers).
http_code() { curl --noproxy '*' --silent --output /dev/null --max-time 2 --write-out '%{http_code}' "$1" 2>/dev/null || true; }

# pid_alive PIDFILE NEEDLE -> prints the pid and returns 0 when the pidfile names a live process
# whose command line contains NEEDLE (guards against a recycled pid).
pid_alive() {
    local pidfile="$1" needle="$2" pid
    [[ -s "$pidfile" ]] || return 1
    pid="$(tr -dc '0-9' <"$pidfile")"
    [[ -n "$pid" ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    [[ -r "/proc/$pid/cmdline" ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$needle" || return 1
    printf '%s\n' "$pid"
}

# stop_pidfile PIDFILE NEEDLE NAME: TERM the pid in PIDFILE (only if it is ours), wait up to 15 s, then KILL.
stop_pidfile() {
    local pidfile="$1" needle="$2" name="$3" pid i
    if ! pid="$(pid_alive "$pidfile" "$needle")"; then
        rm -f "$pidfile"
        log "$name not running"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        warn "$name (pid $pid) ignored SIGTERM for 15 s: sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
    kill -0 "$pid" 2>/dev/null && die "$name (pid $pid) is still alive"
    rm -f "$pidfile"
    log "$name stopped (pid $pid)"
}

# wait_http URL EXPECTED_CODE SECONDS [PID]: poll until URL answers EXPECTED_CODE; fail early if PID dies.
wait_http() {
    local url="$1" want="$2" secs="$3" pid="${4:-}" i code deadline=$((SECONDS + $3))
    for ((i = 0; i < secs * 4 && SECONDS < deadline; i++)); do
        code="$(http_code "$url")"
        [[ "$code" == "$want" ]] && return 0
        if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
            return 2
        fi
        sleep 0.25
    done
    return 1
}

# A free TCP port on 127.0.0.1 (asked of the kernel).
free_port() {
    python3 - <<'EOF'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
EOF
}

# is_loopback_host HOST: 127.0.0.0/8, ::1 or localhost.
is_loopback_host() {
    case "$1" in
        localhost|::1|\[::1\]) return 0 ;;
        127.*) [[ "$1" =~ ^127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] ;;
        *) return 1 ;;
    esac
}
