#!/usr/bin/env bash
# Write .env for docker-compose from .env.example: your uid/gid, generated passwords and keys, every other
# value as in the example. Never overwrites an existing file.
#
#   bash docker/make-env.sh [OUTPUT]     (default: <repo>/.env; mode 0600)
#
# Environment: PERFPIPE_ADMIN_USER names the Airflow and Grafana admin (default: your login name).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/.env}"
[[ ! -e "$OUT" ]] || { echo "[make-env] $OUT exists: not overwriting it" >&2; exit 1; }
ADMIN="${PERFPIPE_ADMIN_USER:-$(id -un)}"
[[ "$ADMIN" =~ ^[A-Za-z0-9_.-]+$ ]] || { echo "[make-env] bad admin user name: $ADMIN" >&2; exit 1; }
[[ "$ADMIN" != admin ]] || ADMIN=perfpipe-admin  # no admin/admin-style defaults

secret() { python3 -c 'import secrets; print(secrets.token_urlsafe(24))'; }
fernet() { python3 -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())'; }

umask 077
while IFS= read -r line || [[ -n "$line" ]]; do
    if [[ "$line" =~ ^([A-Z0-9_]+)=(.*)$ && -z "${BASH_REMATCH[2]}" ]]; then
        key="${BASH_REMATCH[1]}"
        case "$key" in
            PERFPIPE_UID) value="$(id -u)" ;;
            PERFPIPE_GID) value="$(id -g)" ;;
            AIRFLOW_ADMIN_USER|GRAFANA_ADMIN_USER) value="$ADMIN" ;;
            INFLUXDB_ADMIN_USER) value=influx-admin ;;
            AIRFLOW_FERNET_KEY) value="$(fernet)" ;;
            *) value="$(secret)" ;;
        esac
        printf '%s=%s\n' "$key" "$value"
    else
        printf '%s\n' "$line"
    fi
done <"$ROOT/.env.example" >"$OUT"
echo "[make-env] wrote $OUT (logins: Airflow and Grafana '$ADMIN'; passwords inside, mode 0600)"
