#!/usr/bin/env bash
# One-command set-up of the X-Decoder environment (CPU or CUDA machine, Python 3.11).
#
# The environment is built once into a cache outside the clone ($XDECODER_CACHE, default
# ~/.cache/xdecoder) and keyed by the pinned requirements, so a second run, or a fresh clone on the
# same machine, only links it as .venv and installs this repo into it in editable mode.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${XDECODER_CACHE:-$HOME/.cache/xdecoder}
PYTHON=${PYTHON:-python3}
TORCH_SPEC="torch==2.14.1 torchvision==0.29.1"
MMCV_VERSION=2.1.0

log() { printf '[setup_env] %s\n' "$*"; }

# Java runs pycocoevalcap's PTB tokenizer and METEOR (caption metrics).
if ! command -v java >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        log "installing a headless Java runtime for the caption metrics"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null
    else
        log "WARNING: no java found; caption metrics (METEOR, PTB tokenizer) need a Java runtime (e.g. apt-get install openjdk-17-jre-headless)"
    fi
fi

# The heavy part (torch, mmcv, the OpenMMLab stack) is keyed by its pins; test and lint tools are
# installed on every run (a no-op when present), so adding one does not rebuild everything.
key=$( (echo "$TORCH_SPEC mmcv==$MMCV_VERSION"; cat "$ROOT/requirements/runtime.txt") \
    | sha256sum | cut -c1-12)
VENV="$CACHE/venv-$key"
mkdir -p "$CACHE/wheels"

if [ ! -f "$VENV/.complete" ]; then
    start=$(date +%s)
    log "building environment in $VENV (first time on this machine; about 15 minutes on 2 cores)"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    PIP="$VENV/bin/python -m pip"
    $PIP install -q --upgrade pip wheel "setuptools<81"
    $PIP install -q $TORCH_SPEC
    cuda=$("$VENV/bin/python" -c 'import torch; print("cu" if torch.cuda.is_available() else "cpu")')
    tver=$("$VENV/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])')
    wheel_dir="$CACHE/wheels/mmcv-$MMCV_VERSION-torch$tver-$cuda"
    if ! ls "$wheel_dir"/mmcv-*.whl >/dev/null 2>&1; then
        # No mmcv 2.1 wheel exists for this torch on PyPI, so its sdist is compiled (about 8 minutes
        # on 2 cores). setup.py imports pkg_resources (setuptools<81) and needs the venv's torch
        # (no build isolation); torch>=2.14 headers need C++20, mmcv hard-codes C++17.
        log "compiling mmcv $MMCV_VERSION with ops ($cuda); the wheel is kept in $wheel_dir"
        src=$(mktemp -d)
        $PIP download -q --no-deps --no-binary :all: --no-build-isolation -d "$src" "mmcv==$MMCV_VERSION"
        tar -xzf "$src"/mmcv-*.tar.gz -C "$src"
        sed -i 's/-std=c++17/-std=c++20/g' "$src/mmcv-$MMCV_VERSION/setup.py"
        $PIP install -q ninja "opencv-python<5" addict yapf
        (cd "$src/mmcv-$MMCV_VERSION" && MMCV_WITH_OPS=1 MAX_JOBS=$(nproc) \
            $PIP wheel -q --no-build-isolation --no-deps -w "$wheel_dir" .)
        rm -rf "$src"
    fi
    $PIP install -q "$wheel_dir"/mmcv-*.whl "opencv-python<5"
    $PIP install -q -r "$ROOT/requirements/runtime.txt"
    # The only PyPI package with panopticapi.evaluation pins numpy<2 without needing it.
    $PIP install -q --no-deps panopticapi-lite==0.2.0
    touch "$VENV/.complete"
    log "environment built in $(( $(date +%s) - start )) s"
fi

"$VENV/bin/python" -m pip install -q -r "$ROOT/requirements/tests.txt"
ln -sfn "$VENV" "$ROOT/.venv"
# Editable install of this clone (seconds); pip's build chatter goes to a log unless it fails.
if ! "$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation -e "$ROOT" \
        >"$CACHE/editable-install.log" 2>&1; then
    cat "$CACHE/editable-install.log"
    exit 1
fi
"$VENV/bin/python" - <<'PY'
import mmcv, mmdet, mmseg, torch
from mmcv.ops import nms  # noqa: F401  (fails when mmcv was built without its compiled ops)
import projects.XDecoder.xdecoder  # noqa: F401
print(f'[setup_env] ready: torch {torch.__version__}, mmcv {mmcv.__version__}, '
      f'mmdet {mmdet.__version__}, mmseg {mmseg.__version__}, cuda={torch.cuda.is_available()}')
PY
log "activate with: source .venv/bin/activate"
