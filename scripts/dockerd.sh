#!/usr/bin/env bash
# A private Docker engine for the docker runtime's tests and for trying `runtime: docker` without touching the
# machine's own Docker: its own data-root, exec-root, socket and pidfile, no iptables, no bridge (containers
# use --network host), so it changes nothing outside PERFPIPE_DOCKER_DIR.
#
#   scripts/dockerd.sh start|stop|status|host
#   scripts/dockerd.sh import-k6 [TAG]   build a k6 image from the venv's static k6 binary with `docker import`
#                                        (no registry needed; same entrypoint and user as grafana/k6)
#
# Environment (all optional):
#   PERFPIPE_DOCKER_DIR    data-root, exec-root, socket, pidfile, log   (default <repo>/run/docker)
#   PERFPIPE_DOCKERD_BIN   dockerd binary                               (default: dockerd on PATH)
#   PERFPIPE_K6_BIN        k6 binary for import-k6                      (default <repo>/.venv/bin/k6)
# Needs root and the docker.io package (`apt-get install docker.io`; its systemd service is not used).
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

DIR="$(abspath "${PERFPIPE_DOCKER_DIR:-$PERFPIPE_ROOT/run/docker}")"
SOCK="$DIR/docker.sock"
PIDFILE="$DIR/dockerd.pid"
LOGFILE="$DIR/dockerd.log"
HOST="unix://$SOCK"
START_TIMEOUT_S=30
# The pidfile's process must be a dockerd serving OUR socket (guards against a recycled pid).
NEEDLE="$SOCK"
DEFAULT_K6_TAG="grafana/k6:1.1.0"
# grafana/k6 runs k6 as this user; the stand-in does the same so the operator's user override is exercised.
K6_IMAGE_UID=12345

docker_cli() { DOCKER_HOST="$HOST" docker "$@"; }

engine_answers() { docker_cli version --format '{{.Server.Version}}' >/dev/null 2>&1; }

cmd_start() {
    local pid
    if pid="$(pid_alive "$PIDFILE" "$NEEDLE")"; then
        log "dockerd already running (pid $pid) on $HOST"
        return 0
    fi
    local bin="${PERFPIPE_DOCKERD_BIN:-$(command -v dockerd || true)}"
    [[ -n "$bin" && -x "$bin" ]] || die "dockerd not found: apt-get install docker.io"
    command -v docker >/dev/null || die "docker CLI not found: apt-get install docker.io"
    ((EUID == 0)) || die "dockerd needs root"
    (( ${#SOCK} < 100 )) || die "socket path too long for a unix socket: $SOCK (set PERFPIPE_DOCKER_DIR)"
    mkdir -p "$DIR/data" "$DIR/exec"
    rm -f "$PIDFILE" "$SOCK"
    printf '\n=== %s dockerd start ===\n' "$(date -u +%FT%TZ)" >>"$LOGFILE"
    # No iptables and no docker0 bridge: the engine leaves the host's network configuration alone.
    setsid nohup "$bin" --iptables=false --ip6tables=false --bridge=none --ip-forward=false --ip-masq=false \
        --data-root "$DIR/data" --exec-root "$DIR/exec" -H "$HOST" --pidfile "$PIDFILE.engine" \
        --log-level warn >>"$LOGFILE" 2>&1 </dev/null &
    pid=$!
    printf '%s\n' "$pid" >"$PIDFILE"
    local i
    for ((i = 0; i < START_TIMEOUT_S * 4; i++)); do
        engine_answers && break
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$LOGFILE" >&2 || true
            rm -f "$PIDFILE"
            die "dockerd exited during start-up (log: $LOGFILE)"
        fi
        sleep 0.25
    done
    if ! engine_answers; then
        tail -n 20 "$LOGFILE" >&2 || true
        cmd_stop || true
        die "dockerd did not answer on $HOST within ${START_TIMEOUT_S}s (log: $LOGFILE)"
    fi
    log "dockerd started (pid $pid) on $HOST, data $DIR/data, log $LOGFILE"
}

cmd_stop() {
    # Containers first (they would keep containerd-shim processes), then the engine and its containerd.
    if pid_alive "$PIDFILE" "$NEEDLE" >/dev/null && engine_answers; then
        local ids
        ids="$(docker_cli ps -aq || true)"
        if [[ -n "$ids" ]]; then
            # shellcheck disable=SC2086
            docker_cli rm -f $ids >/dev/null 2>&1 || true
            log "removed leftover containers: $(echo $ids)"
        fi
    fi
    stop_pidfile "$PIDFILE" "$NEEDLE" dockerd
    rm -f "$PIDFILE.engine"
    # dockerd stops the containerd it started; make sure, by its config path under OUR exec-root.
    local pid
    for pid in $(pgrep -f -- "$DIR/exec/containerd" || true); do
        warn "containerd (pid $pid) outlived dockerd: stopping it"
        kill -TERM "$pid" 2>/dev/null || true
    done
    # dockerd leaves its default network namespace mounted under exec-root; unmount whatever is ours.
    local mnt
    for mnt in $(awk -v d="$DIR/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r); do
        umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || warn "could not unmount $mnt"
    done
}

cmd_status() {
    local pid
    if pid="$(pid_alive "$PIDFILE" "$NEEDLE")" && engine_answers; then
        log "dockerd running (pid $pid) on $HOST, $(docker_cli ps -q | wc -l) containers running"
        return 0
    fi
    log "dockerd not running"
    return 3
}

cmd_import_k6() {
    local tag="${1:-$DEFAULT_K6_TAG}" k6="${PERFPIPE_K6_BIN:-$PERFPIPE_ROOT/.venv/bin/k6}"
    [[ -x "$k6" ]] || die "k6 binary $k6 not found: run make setup"
    # Only a statically linked k6 runs in an image that holds nothing else.
    local linkage
    linkage="$(ldd "$k6" 2>&1 || true)"
    [[ "$linkage" == *"not a dynamic executable"* ]] || die "$k6 is not a static binary"
    engine_answers || die "no engine on $HOST: scripts/dockerd.sh start"
    local root
    root="$(mktemp -d)"
    trap 'rm -rf "$root"' RETURN
    mkdir -p "$root/usr/bin" "$root/etc" "$root/home/k6" "$root/tmp"
    cp "$k6" "$root/usr/bin/k6"
    chmod 1777 "$root/tmp"
    printf 'root:x:0:0:root:/root:/sbin/nologin\nk6:x:%s:%s:k6:/home/k6:/sbin/nologin\n' \
        "$K6_IMAGE_UID" "$K6_IMAGE_UID" >"$root/etc/passwd"
    printf 'root:x:0:\nk6:x:%s:\n' "$K6_IMAGE_UID" >"$root/etc/group"
    chown "$K6_IMAGE_UID:$K6_IMAGE_UID" "$root/home/k6"
    tar -C "$root" -c . | docker_cli import \
        --change 'ENTRYPOINT ["k6"]' --change "USER $K6_IMAGE_UID" --change 'WORKDIR /home/k6' \
        --change 'ENV K6_NO_USAGE_REPORT=true' - "$tag" >/dev/null
    log "image $tag built from $k6 ($("$k6" version | head -n 1))"
}

case "${1:-}" in
    start)     cmd_start ;;
    stop)      cmd_stop ;;
    status)    cmd_status ;;
    host)      echo "$HOST" ;;
    import-k6) cmd_import_k6 "${2:-}" ;;
    *)         echo "usage: $0 start|stop|status|host|import-k6 [TAG]" >&2; exit 2 ;;
esac
