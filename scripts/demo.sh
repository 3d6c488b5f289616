#!/usr/bin/env bash
# The demo system, started in the background: Redis (cache), PostgreSQL (database), the fault proxy on the
# API->PostgreSQL link (proxy) and the shop API with several workers (api). All on 127.0.0.1, all our own.
#
#   scripts/demo.sh start|stop|status|url                 the whole system (start waits until /health is "ok")
#   scripts/demo.sh start|stop|status COMPONENT           one of: api cache database proxy (start: idempotent,
#                                                         waits until that component is healthy)
#   scripts/demo.sh pid COMPONENT                         its main pid (exit 1 if not running)
#   scripts/demo.sh pids COMPONENT                        the main pid and its children (api: master + workers)
#   scripts/demo.sh pause|resume COMPONENT                SIGSTOP/SIGCONT the main pid and all its children
#   scripts/demo.sh url [COMPONENT]                       api http://..., cache redis://..., database
#                                                         postgresql://... (direct), proxy http://.../faults
#
# Environment (all optional):
#   PERFPIPE_DEMO_HOST                loopback address of the API     (default 127.0.0.1; others are refused)
#   PERFPIPE_DEMO_PORT                API port                        (default 8090)
#   PERFPIPE_DEMO_REDIS_PORT          Redis port                      (default 6390)
#   PERFPIPE_DEMO_PG_PORT             PostgreSQL port                 (default 5442)
#   PERFPIPE_DEMO_PROXY_PORT          fault proxy port (the API's database address)   (default 5443)
#   PERFPIPE_DEMO_PROXY_CONTROL_PORT  fault proxy control API         (default 8091)
#   PERFPIPE_DEMO_DATA_DIR            redis/, postgres/, secrets/     (default <repo>/data/demo)
#   PERFPIPE_DEMO_WORKERS             API worker processes            (default 2)
#   PERFPIPE_DEMO_ARGS                extra API arguments, e.g. "--latency-ms 5 --max-concurrency 200"
#   PERFPIPE_PG_BINDIR                PostgreSQL server binaries      (default: newest /usr/lib/postgresql/*/bin)
#   PERFPIPE_PYTHON                   interpreter                     (default <repo>/.venv/bin/python)
#   PERFPIPE_RUN_DIR                  pidfiles, the PostgreSQL socket (default <repo>/run)
#   PERFPIPE_LOG_DIR                  demo.log, demo-redis.log, demo-postgres.log, demo-proxy.log (default <repo>/log)
#
# As root, PostgreSQL runs as the `postgres` system user (it refuses root): that user must be able to reach
# PERFPIPE_DEMO_DATA_DIR and PERFPIPE_RUN_DIR (every parent directory searchable by others).
# The database password is generated on first start into $PERFPIPE_DEMO_DATA_DIR/secrets (mode 0600), never
# in the repo; the API gets it through PGPASSFILE.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

HOST="${PERFPIPE_DEMO_HOST:-127.0.0.1}"
PORT="${PERFPIPE_DEMO_PORT:-8090}"
REDIS_PORT="${PERFPIPE_DEMO_REDIS_PORT:-6390}"
PG_PORT="${PERFPIPE_DEMO_PG_PORT:-5442}"
PROXY_PORT="${PERFPIPE_DEMO_PROXY_PORT:-5443}"
CONTROL_PORT="${PERFPIPE_DEMO_PROXY_CONTROL_PORT:-8091}"
WORKERS="${PERFPIPE_DEMO_WORKERS:-2}"
for v in PORT REDIS_PORT PG_PORT PROXY_PORT CONTROL_PORT; do
    # shellcheck disable=SC2015
    [[ "${!v}" =~ ^[0-9]+$ ]] && ((${!v} > 0 && ${!v} < 65536)) || die "bad port $v=${!v}"
done
[[ "$WORKERS" =~ ^[0-9]+$ ]] && ((WORKERS >= 1 && WORKERS <= 64)) || die "bad PERFPIPE_DEMO_WORKERS: $WORKERS (1..64)"
is_loopback_host "$HOST" || die "PERFPIPE_DEMO_HOST=$HOST is not a loopback address: refused"
RUN_DIR="$(abspath "$RUN_DIR")"
LOG_DIR="$(abspath "$LOG_DIR")"
DATA_DIR="$(abspath "${PERFPIPE_DEMO_DATA_DIR:-$PERFPIPE_ROOT/data/demo}")"
case "$HOST" in
    ::1|\[::1\]) URL="http://[::1]:$PORT" ;;
    localhost)   URL="http://127.0.0.1:$PORT" ;;
    *)           URL="http://$HOST:$PORT" ;;
esac
CONTROL_URL="http://127.0.0.1:$CONTROL_PORT"
PG_DATA="$DATA_DIR/postgres"
PG_SOCKET_DIR="$RUN_DIR/demo-postgres"
# As root, PostgreSQL runs as `postgres`, which must reach its data and socket directories. A checkout inside a
# private directory (e.g. /root) is out of its reach: then both live in the postgres user's home instead, one
# directory per checkout (only for the defaults; explicitly set directories are used as given).
if [[ $EUID -eq 0 && -z "${PERFPIPE_DEMO_DATA_DIR:-}" ]] && id postgres >/dev/null 2>&1 \
    && ! setpriv --reuid=postgres --regid=postgres --init-groups --reset-env -- test -x "$PERFPIPE_ROOT" 2>/dev/null; then
    PG_HOME_DIR="$(getent passwd postgres | cut -d: -f6)/perfpipe-demo-$(printf %s "$PERFPIPE_ROOT" | cksum | cut -d' ' -f1)"
    PG_DATA="$PG_HOME_DIR/postgres"
    PG_SOCKET_DIR="$PG_HOME_DIR/run"
fi
SECRETS_DIR="$DATA_DIR/secrets"
PG_PASSFILE="$SECRETS_DIR/pgpass"
REDIS_DIR="$DATA_DIR/redis"
DB_NAME=demo
DB_USER=demo
START_TIMEOUT_S=30
COMPONENTS=(cache database proxy api)  # start order; stop goes the other way

pidfile_of() {
    case "$1" in
        api) echo "$RUN_DIR/demo.pid" ;;
        cache) echo "$RUN_DIR/demo-redis.pid" ;;
        database) echo "$RUN_DIR/demo-postgres.pid" ;;
        proxy) echo "$RUN_DIR/demo-proxy.pid" ;;
    esac
}
# What the pid in a pidfile must be running (guards against recycled pids).
needle_of() {
    case "$1" in
        api) echo "demo_target.py" ;;
        cache) echo "redis-server" ;;
        database) echo "postgres" ;;
        proxy) echo "faultproxy.py" ;;
    esac
}
logfile_of() {
    case "$1" in
        api) echo "$LOG_DIR/demo.log" ;;
        cache) echo "$LOG_DIR/demo-redis.log" ;;
        database) echo "$LOG_DIR/demo-postgres.log" ;;
        proxy) echo "$LOG_DIR/demo-proxy.log" ;;
    esac
}
check_component() {
    case "$1" in api|cache|database|proxy) ;; *) die "unknown component '$1' (api, cache, database, proxy)" ;; esac
}

pick_python() {
    if [[ -n "${PERFPIPE_PYTHON:-}" ]]; then echo "$PERFPIPE_PYTHON"
    elif [[ -x "$PERFPIPE_ROOT/.venv/bin/python" ]]; then echo "$PERFPIPE_ROOT/.venv/bin/python"
    else command -v python3 || die "no python3 found"
    fi
}

pg_bindir() {
    if [[ -n "${PERFPIPE_PG_BINDIR:-}" ]]; then echo "$PERFPIPE_PG_BINDIR"; return; fi
    local d
    d="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin 2>/dev/null | sort -V | tail -n1)"
    [[ -n "$d" && -x "$d/postgres" ]] || die "PostgreSQL server binaries not found (apt package postgresql; run make setup) or set PERFPIPE_PG_BINDIR"
    echo "$d"
}

# Run a command as the PostgreSQL owner: `postgres` when we are root (exec, no extra process), else ourselves.
as_pg() {
    if [[ $EUID -eq 0 ]]; then
        id postgres >/dev/null 2>&1 || die "no 'postgres' system user (apt package postgresql creates it)"
        setpriv --reuid=postgres --regid=postgres --init-groups --reset-env -- "$@"
    else
        "$@"
    fi
}

# spawn COMPONENT CMD...: start in the background (own session), record the pid.
spawn() {
    local c="$1" logfile pidfile
    shift
    logfile="$(logfile_of "$c")"
    pidfile="$(pidfile_of "$c")"
    printf '\n=== %s demo %s start ===\n' "$(date -u +%FT%TZ)" "$c" >>"$logfile"
    setsid nohup "$@" >>"$logfile" 2>&1 </dev/null &
    printf '%s\n' "$!" >"$pidfile"
}

# wait_for COMPONENT PID CHECK...: poll CHECK until it succeeds; fail when PID dies or time runs out.
wait_for() {
    local c="$1" pid="$2" deadline=$((SECONDS + START_TIMEOUT_S)) i
    shift 2
    for ((i = 0; i < START_TIMEOUT_S * 10 && SECONDS <= deadline; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        if ! kill -0 "$pid" 2>/dev/null; then
            warn "$c (pid $pid) exited during start-up"
            tail -n 20 "$(logfile_of "$c")" >&2 || true
            rm -f "$(pidfile_of "$c")"
            return 1
        fi
        sleep 0.1
    done
    warn "$c (pid $pid) not healthy within $START_TIMEOUT_S s"
    tail -n 20 "$(logfile_of "$c")" >&2 || true
    return 1
}

# ---- health checks ---------------------------------------------------------------------------------------
cache_healthy() { [[ "$(timeout 2 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]; }
database_healthy() { timeout 3 "$(pg_bindir)/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -d postgres -t 2; }
proxy_healthy() { [[ "$(http_code "$CONTROL_URL/faults")" == 200 ]]; }
api_healthy() { [[ "$(http_code "$URL/health")" == 200 ]]; }
# The whole system: the API reports cache and database reachable (which also means the data is seeded).
system_ok() { lcurl --max-time 3 "$URL/health" 2>/dev/null | grep -q '"status":"ok"'; }

# ---- cache: redis-server ---------------------------------------------------------------------------------
start_cache() {
    command -v redis-server >/dev/null || die "redis-server not found (apt package redis-server; run make setup)"
    mkdir -p "$REDIS_DIR"
    # Our own config: loopback only, protected mode, no persistence (a cache), no background saves.
    cat >"$REDIS_DIR/redis.conf" <<EOF
bind 127.0.0.1
port $REDIS_PORT
protected-mode yes
daemonize no
save ""
appendonly no
dir $REDIS_DIR
dbfilename dump.rdb
maxmemory 256mb
maxmemory-policy allkeys-lru
loglevel notice
logfile ""
EOF
    spawn cache redis-server "$REDIS_DIR/redis.conf"
}

# ---- database: PostgreSQL --------------------------------------------------------------------------------
pg_password() {
    mkdir -p "$SECRETS_DIR"
    chmod 700 "$SECRETS_DIR"
    if [[ ! -s "$SECRETS_DIR/pg-password" ]]; then
        (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$SECRETS_DIR/pg-password")
    fi
    # Any of our ports (direct or through the proxy) for user demo: the API reads this via PGPASSFILE.
    (umask 077 && printf '127.0.0.1:*:%s:%s:%s\n' "$DB_NAME" "$DB_USER" "$(cat "$SECRETS_DIR/pg-password")" >"$PG_PASSFILE")
    cat "$SECRETS_DIR/pg-password"
}

init_database() {
    local bindir="$1"
    mkdir -p "$PG_DATA"
    if [[ $EUID -eq 0 ]]; then chown postgres:postgres "$PG_DATA"; fi
    chmod 700 "$PG_DATA"
    as_pg test -w "$PG_DATA" \
        || die "the postgres user cannot reach $PG_DATA: make its parent directories searchable (chmod o+x) or set PERFPIPE_DEMO_DATA_DIR elsewhere"
    [[ -s "$PG_DATA/PG_VERSION" ]] && return 0
    log "initdb $PG_DATA (first start)"
    # Local socket: trust (the socket directory is private to the postgres user); TCP: password (scram).
    as_pg "$bindir/initdb" -D "$PG_DATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
        -E UTF8 --locale=C.UTF-8 >>"$(logfile_of database)" 2>&1 || die "initdb failed (log: $(logfile_of database))"
    # Settings for a throw-away demo database: no durability waits (fsync off), loopback only.
    cat >>"$PG_DATA/postgresql.conf" <<'EOF'
# perfpipe demo system
listen_addresses = '127.0.0.1'
max_connections = 200
shared_buffers = 64MB
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
EOF
}

start_database() {
    local bindir
    bindir="$(pg_bindir)"
    init_database "$bindir"
    mkdir -p "$PG_SOCKET_DIR"
    if [[ $EUID -eq 0 ]]; then chown postgres:postgres "$PG_SOCKET_DIR"; fi
    chmod 700 "$PG_SOCKET_DIR"
    as_pg test -w "$PG_SOCKET_DIR" \
        || die "the postgres user cannot reach $PG_SOCKET_DIR: make its parent directories searchable (chmod o+x) or set PERFPIPE_RUN_DIR elsewhere"
    # A stale postmaster.pid from a killed server would stop the start: remove it when its pid is gone.
    if [[ -s "$PG_DATA/postmaster.pid" ]]; then
        local old
        old="$(head -n1 "$PG_DATA/postmaster.pid" | tr -dc '0-9')"
        if [[ -z "$old" ]] || ! kill -0 "$old" 2>/dev/null; then rm -f "$PG_DATA/postmaster.pid"; fi
    fi
    local as_owner=()
    if [[ $EUID -eq 0 ]]; then as_owner=(setpriv --reuid=postgres --regid=postgres --init-groups --reset-env --); fi
    spawn database "${as_owner[@]}" "$bindir/postgres" -D "$PG_DATA" -p "$PG_PORT" -c listen_addresses=127.0.0.1 \
        -c unix_socket_directories="$PG_SOCKET_DIR"
}

# Role and database for the API (idempotent), over the private unix socket.
provision_database() {
    local bindir password sql
    bindir="$(pg_bindir)"
    password="$(pg_password)"
    sql="DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$DB_USER') THEN CREATE ROLE $DB_USER LOGIN; END IF;
  ALTER ROLE $DB_USER PASSWORD '$password';
END \$\$;"
    as_pg "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCKET_DIR" -p "$PG_PORT" -U postgres -d postgres \
        -c "$sql" >/dev/null || die "creating role $DB_USER failed"
    if [[ -z "$(as_pg "$bindir/psql" -X -qAt -h "$PG_SOCKET_DIR" -p "$PG_PORT" -U postgres -d postgres \
                -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" ]]; then
        as_pg "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCKET_DIR" -p "$PG_PORT" -U postgres -d postgres \
            -c "CREATE DATABASE $DB_NAME OWNER $DB_USER" >/dev/null || die "creating database $DB_NAME failed"
    fi
}

# ---- proxy and api ---------------------------------------------------------------------------------------
start_proxy() {
    spawn proxy "$(pick_python)" -u "$PERFPIPE_ROOT/demo/faultproxy.py" --listen "127.0.0.1:$PROXY_PORT" \
        --upstream "127.0.0.1:$PG_PORT" --control "127.0.0.1:$CONTROL_PORT"
}

start_api() {
    local code
    code="$(http_code "$URL/health")"
    [[ "$code" == 000 ]] || die "something else already answers on $URL (HTTP $code): not ours; stop it or set PERFPIPE_DEMO_PORT"
    pg_password >/dev/null  # the pgpass file the API reads
    # shellcheck disable=SC2086  # PERFPIPE_DEMO_ARGS is a list of words on purpose
    PGPASSFILE="$PG_PASSFILE" spawn api "$(pick_python)" -u "$PERFPIPE_ROOT/demo/demo_target.py" \
        --host "$HOST" --port "$PORT" --workers "$WORKERS" \
        --redis-url "redis://127.0.0.1:$REDIS_PORT/0" \
        --database-url "postgresql://$DB_USER@127.0.0.1:$PROXY_PORT/$DB_NAME" ${PERFPIPE_DEMO_ARGS:-}
}

# ---- verbs -----------------------------------------------------------------------------------------------
running_pid() { pid_alive "$(pidfile_of "$1")" "$(needle_of "$1")"; }

start_component() {
    local c="$1" pid
    mkdir -p "$RUN_DIR" "$LOG_DIR" "$DATA_DIR"
    if pid="$(running_pid "$c")"; then
        wait_for "$c" "$pid" "${c}_healthy" || die "$c (pid $pid) runs but is not healthy"
        [[ "$c" == database ]] && provision_database
        log "$c already running (pid $pid)"
        return 0
    fi
    rm -f "$(pidfile_of "$c")"
    "start_$c"
    pid="$(tr -dc '0-9' <"$(pidfile_of "$c")")"
    if ! wait_for "$c" "$pid" "${c}_healthy"; then
        stop_component "$c" >/dev/null 2>&1 || true
        die "$c failed to start (log: $(logfile_of "$c"))"
    fi
    [[ "$c" == database ]] && provision_database
    log "$c started (pid $pid), log $(logfile_of "$c")"
}

# True while PID runs; a zombie (exited, not yet reaped by whoever inherited it) counts as gone.
alive() {
    local state
    kill -0 "$1" 2>/dev/null || return 1
    state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)"
    [[ -n "$state" && "$state" != Z ]]
}

stop_component() {
    local c="$1" pidfile needle pid i sig=TERM
    pidfile="$(pidfile_of "$c")"
    needle="$(needle_of "$c")"
    if ! pid="$(pid_alive "$pidfile" "$needle")"; then
        rm -f "$pidfile"
        log "demo $c not running"
        return 0
    fi
    # PostgreSQL: SIGINT is its "fast" shutdown (SIGTERM would wait for every client to disconnect).
    [[ "$c" == database ]] && sig=INT
    cmd_signal_all "$c" CONT >/dev/null 2>&1 || true  # a paused (chaos) process cannot shut down
    kill "-$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
        alive "$pid" || break
        sleep 0.05
    done
    if alive "$pid"; then
        warn "demo $c (pid $pid) still running after SIG$sig: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            alive "$pid" || break
            sleep 0.1
        done
    fi
    alive "$pid" && die "demo $c (pid $pid) is still alive"
    rm -f "$pidfile"
    log "demo $c stopped (pid $pid)"
}

status_component() {
    local c="$1" pid
    if pid="$(running_pid "$c")"; then
        if "${c}_healthy" >/dev/null 2>&1; then log "$c running (pid $pid), healthy"; else log "$c running (pid $pid), NOT healthy"; fi
        return 0
    fi
    log "$c not running"
    return 3
}

cmd_start_all() {
    local t0=$SECONDS c pid
    for c in "${COMPONENTS[@]}"; do start_component "$c"; done
    # Ready means ready for load: the API reaches cache and database (so the data is seeded).
    pid="$(running_pid api)" || die "api not running"
    wait_for api "$pid" system_ok || die "the API did not report cache and database ok within $START_TIMEOUT_S s: $(lcurl "$URL/health" 2>&1 || true)"
    log "demo system up in $((SECONDS - t0)) s: $URL (cache redis://127.0.0.1:$REDIS_PORT, database 127.0.0.1:$PG_PORT via proxy 127.0.0.1:$PROXY_PORT, fault control $CONTROL_URL/faults)"
}

cmd_stop_all() {
    local rc=0 i
    for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
        stop_component "${COMPONENTS[i]}" || rc=1
    done
    return "$rc"
}

cmd_status_all() {
    local c rc=0
    for c in "${COMPONENTS[@]}"; do status_component "$c" || rc=3; done
    if ((rc == 0)); then log "api /health: $(lcurl "$URL/health" 2>&1 || true)"; fi
    return "$rc"
}

cmd_url() {
    case "${1:-api}" in
        api) echo "$URL" ;;
        cache) echo "redis://127.0.0.1:$REDIS_PORT/0" ;;
        database) echo "postgresql://$DB_USER@127.0.0.1:$PG_PORT/$DB_NAME" ;;
        proxy) echo "$CONTROL_URL/faults" ;;
        *) check_component "$1" ;;
    esac
}

cmd_pids() {
    local pid
    pid="$(running_pid "$1")" || exit 1
    echo "$pid"
    cat /proc/"$pid"/task/*/children 2>/dev/null | tr ' ' '\n' | grep -v '^$' || true
}

# pause/resume COMPONENT: SIGSTOP/SIGCONT its main pid and every child. PostgreSQL backends each run in their
# own session, so signalling the postmaster (or its process group) alone would leave open connections served.
cmd_signal_all() {
    local c="$1" sig="$2" pid child
    pid="$(running_pid "$c")" || die "$c not running"
    kill "-$sig" "$pid"  # the parent first: a paused postmaster forks no new backends meanwhile
    for child in $(cmd_pids "$c" | tail -n +2); do kill "-$sig" "$child" 2>/dev/null || true; done
    log "$c: SIG$sig sent to pid $pid and its children"
}

verb="${1:-}"
component="${2:-}"
[[ -z "$component" ]] || check_component "$component"
case "$verb" in
    start)  if [[ -n "$component" ]]; then start_component "$component"; else cmd_start_all; fi ;;
    stop)   if [[ -n "$component" ]]; then stop_component "$component"; else cmd_stop_all; fi ;;
    status) if [[ -n "$component" ]]; then status_component "$component"; else cmd_status_all; fi ;;
    url)    cmd_url "${component:-api}" ;;
    pid)    [[ -n "$component" ]] || die "usage: $0 pid api|cache|database|proxy"
            running_pid "$component" || exit 1 ;;
    pids)   [[ -n "$component" ]] || die "usage: $0 pids api|cache|database|proxy"
            cmd_pids "$component" ;;
    pause|resume)
            [[ -n "$component" ]] || die "usage: $0 $verb api|cache|database|proxy"
            if [[ "$verb" == pause ]]; then cmd_signal_all "$component" STOP; else cmd_signal_all "$component" CONT; fi ;;
    *)      echo "usage: $0 start|stop|status [api|cache|database|proxy] | url [COMPONENT] | pid|pids|pause|resume COMPONENT" >&2; exit 2 ;;
esac
