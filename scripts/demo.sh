#!/usr/bin/env bash
# The demo target (demo/demo_target.py), started in the background.
#
#   scripts/demo.sh start|stop|status|url
#
# Environment (all optional):
#   PERFPIPE_DEMO_HOST   loopback address to bind        (default 127.0.0.1; anything else is refused)
#   PERFPIPE_DEMO_PORT   port                            (default 8090)
#   PERFPIPE_DEMO_ARGS   extra arguments, e.g. "--latency-ms 5 --error-rate 0.01 --max-concurrency 200"
#   PERFPIPE_PYTHON      interpreter                     (default <repo>/.venv/bin/python, else python3)
#   PERFPIPE_RUN_DIR     pidfile demo.pid                (default <repo>/run)
#   PERFPIPE_LOG_DIR     log file demo.log               (default <repo>/log)
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

HOST="${PERFPIPE_DEMO_HOST:-127.0.0.1}"
PORT="${PERFPIPE_DEMO_PORT:-8090}"
# shellcheck disable=SC2015
[[ "$PORT" =~ ^[0-9]+$ ]] && ((PORT > 0 && PORT < 65536)) || die "bad PERFPIPE_DEMO_PORT: $PORT"
is_loopback_host "$HOST" || die "PERFPIPE_DEMO_HOST=$HOST is not a loopback address: refused"
RUN_DIR="$(abspath "$RUN_DIR")"
LOG_DIR="$(abspath "$LOG_DIR")"
PIDFILE="$RUN_DIR/demo.pid"
LOGFILE="$LOG_DIR/demo.log"
TARGET="$PERFPIPE_ROOT/demo/demo_target.py"
case "$HOST" in
    ::1|\[::1\]) URL="http://[::1]:$PORT" ;;
    localhost)   URL="http://127.0.0.1:$PORT" ;;
    *)           URL="http://$HOST:$PORT" ;;
esac
NEEDLE="demo_target.py"  # what the pid in our pidfile must be running

pick_python() {
    if [[ -n "${PERFPIPE_PYTHON:-}" ]]; then echo "$PERFPIPE_PYTHON"
    elif [[ -x "$PERFPIPE_ROOT/.venv/bin/python" ]]; then echo "$PERFPIPE_ROOT/.venv/bin/python"
    else command -v python3 || die "no python3 found"
    fi
}

cmd_start() {
    local pid
    if pid="$(pid_alive "$PIDFILE" "$NEEDLE")"; then
        wait_http "$URL/health" 200 15 "$pid" || die "demo target (pid $pid) runs but $URL/health does not answer 200"
        log "demo target already running (pid $pid) on $URL"
        return 0
    fi
    rm -f "$PIDFILE"
    local code
    code="$(http_code "$URL/health")"
    [[ "$code" == 000 ]] || die "something else already answers on $URL (HTTP $code): not ours; stop it or set PERFPIPE_DEMO_PORT"
    mkdir -p "$RUN_DIR" "$LOG_DIR"
    local py
    py="$(pick_python)"
    # shellcheck disable=SC2086  # PERFPIPE_DEMO_ARGS is a list of words on purpose
    printf '\n=== %s demo start: %s %s ===\n' "$(date -u +%FT%TZ)" "$HOST:$PORT" "${PERFPIPE_DEMO_ARGS:-}" >>"$LOGFILE"
    # shellcheck disable=SC2086
    setsid nohup "$py" -u "$TARGET" --host "$HOST" --port "$PORT" ${PERFPIPE_DEMO_ARGS:-} >>"$LOGFILE" 2>&1 </dev/null &
    pid=$!
    printf '%s\n' "$pid" >"$PIDFILE"
    local rc=0
    wait_http "$URL/health" 200 15 "$pid" || rc=$?
    if ((rc != 0)); then
        if ((rc == 2)); then warn "demo target (pid $pid) exited during start-up"; else warn "no answer from $URL/health within 15 s"; fi
        tail -n 20 "$LOGFILE" >&2 || true
        kill -TERM "$pid" 2>/dev/null || true
        rm -f "$PIDFILE"
        die "demo target failed to start (log: $LOGFILE)"
    fi
    log "demo target started (pid $pid) on $URL, log $LOGFILE"
}

cmd_status() {
    local pid
    if pid="$(pid_alive "$PIDFILE" "$NEEDLE")"; then
        log "demo target running (pid $pid) on $URL, /health -> $(http_code "$URL/health")"
        return 0
    fi
    log "demo target not running"
    return 3
}

case "${1:-}" in
    start)  cmd_start ;;
    stop)   stop_pidfile "$PIDFILE" "$NEEDLE" "demo target" ;;
    status) cmd_status ;;
    url)    echo "$URL" ;;
    *)      echo "usage: $0 start|stop|status|url" >&2; exit 2 ;;
esac
