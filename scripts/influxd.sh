#!/usr/bin/env bash
# perfpipe's own InfluxDB 1.x (never the machine's influxdb service).
#
#   scripts/influxd.sh start|stop|status|url
#
# Environment (all optional):
#   PERFPIPE_INFLUXDB_URL       use an already running InfluxDB instead: `start` only checks its /ping,
#                               `stop` leaves it alone
#   PERFPIPE_INFLUXDB_PORT      HTTP port on 127.0.0.1                  (default 8086)
#   PERFPIPE_INFLUXDB_RPC_PORT  RPC (backup/restore) port on 127.0.0.1  (default 8088 when the HTTP port is
#                               8086, otherwise a free port picked at start)
#   PERFPIPE_INFLUXDB_DATA_DIR  meta/, data/, wal/ and the rendered influxdb.conf (default <repo>/data/influxdb)
#   PERFPIPE_INFLUXDB_DB        database created at start                (default k6)
#   PERFPIPE_INFLUXD_BIN        influxd binary                           (default /usr/bin/influxd)
#   PERFPIPE_RUN_DIR            pidfile influxd.pid                      (default <repo>/run)
#   PERFPIPE_LOG_DIR            log file influxd.log                     (default <repo>/log)
# A second instance (e.g. for tests) needs its own PERFPIPE_INFLUXDB_PORT, PERFPIPE_INFLUXDB_DATA_DIR and
# PERFPIPE_RUN_DIR (and usually PERFPIPE_LOG_DIR).
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PORT="${PERFPIPE_INFLUXDB_PORT:-8086}"
# shellcheck disable=SC2015
[[ "$PORT" =~ ^[0-9]+$ ]] && ((PORT > 0 && PORT < 65536)) || die "bad PERFPIPE_INFLUXDB_PORT: $PORT"
DATA_DIR="$(abspath "${PERFPIPE_INFLUXDB_DATA_DIR:-$PERFPIPE_ROOT/data/influxdb}")"
DB="${PERFPIPE_INFLUXDB_DB:-k6}"
INFLUXD="${PERFPIPE_INFLUXD_BIN:-/usr/bin/influxd}"
RUN_DIR="$(abspath "$RUN_DIR")"
LOG_DIR="$(abspath "$LOG_DIR")"
PIDFILE="$RUN_DIR/influxd.pid"
LOGFILE="$LOG_DIR/influxd.log"
CONF="$DATA_DIR/influxdb.conf"
TEMPLATE="$PERFPIPE_ROOT/config/influxdb.conf.template"
URL="http://127.0.0.1:$PORT"
START_TIMEOUT_S=20
# What the pid in our pidfile must be running (any data dir: the pidfile itself says which instance is ours).
NEEDLE="influxd"

render_conf() {
    local rpc_port="${PERFPIPE_INFLUXDB_RPC_PORT:-}"
    if [[ -z "$rpc_port" ]]; then
        if [[ "$PORT" == 8086 ]]; then rpc_port=8088; else rpc_port="$(free_port)"; fi
    fi
    [[ "$rpc_port" =~ ^[0-9]+$ ]] || die "bad RPC port: $rpc_port"
    [[ "$rpc_port" != "$PORT" ]] || die "RPC port and HTTP port are both $PORT"
    [[ -r "$TEMPLATE" ]] || die "missing $TEMPLATE"
    local text
    text="$(<"$TEMPLATE")"
    text="${text//@HTTP_BIND@/127.0.0.1:$PORT}"
    text="${text//@RPC_BIND@/127.0.0.1:$rpc_port}"
    text="${text//@DATA_DIR@/$DATA_DIR}"
    printf '%s\n' "$text" >"$CONF.tmp"
    mv -f "$CONF.tmp" "$CONF"
    log "config $CONF (http 127.0.0.1:$PORT, rpc 127.0.0.1:$rpc_port)"
}

create_db() {
    local url="$1" out
    out="$(lcurl -XPOST "$url/query" --data-urlencode "q=CREATE DATABASE \"$DB\"")" \
        || die "CREATE DATABASE $DB failed at $url"
    [[ "$out" != *'"error"'* ]] || die "CREATE DATABASE $DB failed: $out"
    log "database '$DB' ready"
}

cmd_start() {
    if [[ -n "${PERFPIPE_INFLUXDB_URL:-}" ]]; then
        local ext="${PERFPIPE_INFLUXDB_URL%/}" code
        code="$(http_code "$ext/ping")"
        [[ "$code" == 204 ]] || die "PERFPIPE_INFLUXDB_URL=$ext: /ping answered '$code', expected 204"
        log "using the InfluxDB at $ext (PERFPIPE_INFLUXDB_URL); not starting our own"
        return 0
    fi
    local pid
    if pid="$(pid_alive "$PIDFILE" "$NEEDLE")"; then
        wait_http "$URL/ping" 204 "$START_TIMEOUT_S" "$pid" || die "our influxd (pid $pid, $PIDFILE) runs but $URL/ping does not answer 204 (another instance in this PERFPIPE_RUN_DIR?)"
        log "influxd already running (pid $pid) on $URL"
        create_db "$URL"
        return 0
    fi
    rm -f "$PIDFILE"
    [[ -x "$INFLUXD" ]] || die "$INFLUXD not found: run scripts/setup.sh (installs Debian's influxdb)"
    local code
    code="$(http_code "$URL/ping")"
    [[ "$code" == 000 ]] || die "something else already answers on $URL (HTTP $code): not ours; stop it or set PERFPIPE_INFLUXDB_PORT / PERFPIPE_INFLUXDB_URL"

    mkdir -p "$DATA_DIR/meta" "$DATA_DIR/data" "$DATA_DIR/wal" "$RUN_DIR" "$LOG_DIR"
    render_conf
    printf '\n=== %s influxd start (%s) ===\n' "$(date -u +%FT%TZ)" "$CONF" >>"$LOGFILE"
    # setsid: own session, so a Ctrl-C in the calling terminal does not reach it. In a non-interactive
    # shell the child is no process-group leader, so setsid does not fork and $! is influxd itself.
    setsid nohup "$INFLUXD" -config "$CONF" >>"$LOGFILE" 2>&1 </dev/null &
    pid=$!
    printf '%s\n' "$pid" >"$PIDFILE"
    local rc=0
    wait_http "$URL/ping" 204 "$START_TIMEOUT_S" "$pid" || rc=$?
    if ((rc != 0)); then
        if ((rc == 2)); then warn "influxd (pid $pid) exited during start-up"; else warn "influxd did not answer $URL/ping within ${START_TIMEOUT_S}s"; fi
        tail -n 20 "$LOGFILE" >&2 || true
        kill -TERM "$pid" 2>/dev/null || true
        rm -f "$PIDFILE"
        die "influxd failed to start (log: $LOGFILE)"
    fi
    log "influxd started (pid $pid) on $URL, data $DATA_DIR, log $LOGFILE"
    create_db "$URL"
}

cmd_stop() {
    if [[ -n "${PERFPIPE_INFLUXDB_URL:-}" ]] && [[ ! -s "$PIDFILE" ]]; then
        log "PERFPIPE_INFLUXDB_URL is set: the InfluxDB at $PERFPIPE_INFLUXDB_URL is not ours, leaving it alone"
        return 0
    fi
    stop_pidfile "$PIDFILE" "$NEEDLE" influxd
}

cmd_status() {
    if [[ -n "${PERFPIPE_INFLUXDB_URL:-}" ]]; then
        local code
        code="$(http_code "${PERFPIPE_INFLUXDB_URL%/}/ping")"
        log "external InfluxDB ${PERFPIPE_INFLUXDB_URL%/}: /ping -> $code"
        [[ "$code" == 204 ]]
        return
    fi
    local pid
    if pid="$(pid_alive "$PIDFILE" "$NEEDLE")"; then
        log "influxd running (pid $pid) on $URL, /ping -> $(http_code "$URL/ping")"
        return 0
    fi
    log "influxd not running"
    return 3
}

case "${1:-}" in
    start)  cmd_start ;;
    stop)   cmd_stop ;;
    status) cmd_status ;;
    url)    if [[ -n "${PERFPIPE_INFLUXDB_URL:-}" ]]; then echo "${PERFPIPE_INFLUXDB_URL%/}"; else echo "$URL"; fi ;;
    *)      echo "usage: $0 start|stop|status|url" >&2; exit 2 ;;
esac
