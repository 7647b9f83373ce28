#!/usr/bin/env bash
# Starts the local services the stack and the tests need, unless one already answers.
#   scripts/services.sh redis      a Redis at $REDIS_URL (default redis://127.0.0.1:6379/0)
#   scripts/services.sh postgres   the Debian PostgreSQL cluster at 127.0.0.1:${PGPORT:-5432}
# With no argument it starts both. Only local addresses are started; a remote URL that does
# not answer is an error. A cluster this script starts gets the password `postgres` for the
# user postgres, which is what the tests' default TEST_POSTGRES_URL uses (Debian's default
# pg_hba.conf asks TCP clients for a password).
set -euo pipefail

start_redis() {
    local url=${REDIS_URL:-redis://127.0.0.1:6379/0}
    local hostport=${url#redis://}; hostport=${hostport#*@}; hostport=${hostport%%/*}
    local host=${hostport%%:*} port=${hostport##*:}
    [ "$port" = "$hostport" ] && port=6379
    if redis-cli -h "$host" -p "$port" ping >/dev/null 2>&1; then return; fi
    case "$host" in 127.0.0.1|localhost) ;; *) echo "services: no Redis answers at $url" >&2; exit 1 ;; esac
    echo "services: starting redis-server on port $port"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
        --logfile "${TMPDIR:-/tmp}/rlvr-redis-$port.log" >/dev/null
    for _ in $(seq 50); do redis-cli -h "$host" -p "$port" ping >/dev/null 2>&1 && return; sleep 0.1; done
    echo "services: redis-server did not answer on port $port" >&2; exit 1
}

start_postgres() {
    local port=${PGPORT:-5432}
    if pg_isready -q -h 127.0.0.1 -p "$port"; then return; fi
    local version
    version=$(ls /usr/lib/postgresql | sort -V | tail -1)
    if [ ! -d "/etc/postgresql/$version/main" ]; then
        echo "services: creating PostgreSQL $version cluster"
        pg_createcluster "$version" main --port "$port" >/dev/null
    fi
    echo "services: starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
    for _ in $(seq 100); do pg_isready -q -h 127.0.0.1 -p "$port" && break; sleep 0.1; done
    su postgres -c "psql -q -p $port -c \"ALTER USER postgres PASSWORD 'postgres'\""
}

for service in "${@:-redis postgres}"; do
    for s in $service; do "start_$s"; done
done
