#!/usr/bin/env bash
# perfpipe metrics-path benchmark: the one command (see bench/README.md).
#   bash bench/run.sh [bench.py options]     e.g. bash bench/run.sh --quick
# Installs what it needs when missing: nginx and wrk from Debian (service starts denied during the install, and
# the machine's own nginx service stopped and disabled if one got started anyway), influxdb + .venv via
# scripts/setup.sh. Everything the bench starts listens on 127.0.0.1 only and is stopped at the end.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"
cd "$PERFPIPE_ROOT"

POLICY_RC=/usr/sbin/policy-rc.d
POLICY_MARK="# perfpipe bench/run.sh: temporary, deny service starts during apt-get install"

remove_policy_rc() {
    if [[ -f "$POLICY_RC" ]] && grep -qF "$POLICY_MARK" "$POLICY_RC"; then rm -f "$POLICY_RC"; fi
}

install_tools() {
    local missing=()
    command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
    command -v wrk >/dev/null 2>&1 || missing+=(wrk)
    ((${#missing[@]} == 0)) && return 0
    [[ $EUID -eq 0 ]] || die "need root to apt-get install ${missing[*]} (or install them first)"
    log "installing ${missing[*]} (Debian)"
    remove_policy_rc
    if [[ ! -e "$POLICY_RC" ]]; then
        printf '#!/bin/sh\n%s\nexit 101\n' "$POLICY_MARK" >"$POLICY_RC"
        chmod 755 "$POLICY_RC"
        trap remove_policy_rc EXIT
    fi
    DEBIAN_FRONTEND=noninteractive apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}"
    remove_policy_rc
    trap - EXIT
    # The bench runs its own nginx on a free loopback port; the machine's service (port 80, all interfaces) never.
    if [[ -s /run/nginx.pid ]] && kill -0 "$(cat /run/nginx.pid)" 2>/dev/null; then
        warn "the nginx package started the machine's nginx service: stopping it"
        /etc/init.d/nginx stop >/dev/null 2>&1 || kill -TERM "$(cat /run/nginx.pid)" || true
    fi
    if [[ -x /etc/init.d/nginx ]] && command -v update-rc.d >/dev/null; then update-rc.d nginx disable >/dev/null 2>&1 || true; fi
}

install_tools
[[ -x .venv/bin/python && -x /usr/bin/influxd ]] || bash scripts/setup.sh
export K6_NO_USAGE_REPORT=true
exec .venv/bin/python bench/bench.py "$@"
