#!/usr/bin/env bash
# Makes .venv-trl: TRL (Hugging Face's trainer library) with the project's runtime and dev
# dependencies, beside (never inside) .venv. Only bench/learn_code_trl.py and
# bench/step_time_vs_trl.py use it, to compare TRL's GRPOTrainer with rlvr/trainer.py; TRL is
# never a dependency of the project itself, so it stays out of .venv and pyproject.toml.
#
#   scripts/trl_venv.sh                         # Python: .venv's own base interpreter
#   TRL_PYTHON=python3.12 scripts/trl_venv.sh   # another 3.12
#
# bootstrap.sh does its work when sourced, so its interpreter search is not reused; .venv's
# base interpreter is the one bootstrap.sh found. torch is PyPI's (CUDA) wheel, which also runs
# on CPU. The project is put on the venv's path with a .pth file, not installed, so its source is
# read from this checkout. Idempotent: a second run with an unchanged pin, pyproject.toml and
# script does nothing but print the versions.
set -euo pipefail
cd "$(dirname "$0")/.."

trl_pin="trl==1.16.0"
venv=.venv-trl

if [ ! -x "$venv/bin/python" ]; then
    if [ -n "${TRL_PYTHON:-}" ]; then
        python=$TRL_PYTHON
    elif [ -x .venv/bin/python ]; then
        python=$(.venv/bin/python -c 'import sys; print(sys._base_executable)')
    else
        echo "trl_venv: no .venv (run make setup) and no TRL_PYTHON" >&2
        exit 1
    fi
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade pip
fi

stamp="$venv/.installed-$( (echo "$trl_pin"; cat pyproject.toml "$0" scripts/project_deps.py) | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    # pyproject's runtime and dev dependencies, an extra of the project itself (dev's
    # rlvr-service[mlflow]) expanded by its own list, since the project is not installed here.
    mapfile -t deps < <("$venv/bin/python" scripts/project_deps.py)
    "$venv/bin/python" -m pip install -q "$trl_pin" "${deps[@]}"
    site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    pwd > "$site/rlvr-checkout.pth"
    rm -f "$venv"/.installed-*
    touch "$stamp"
fi
"$venv/bin/python" -c 'import torch, transformers, trl; print("trl", trl.__version__, "torch", torch.__version__, "transformers", transformers.__version__)'
