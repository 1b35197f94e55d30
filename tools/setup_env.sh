#!/usr/bin/env bash
# One-command set-up of the X-Decoder environment (CPU or CUDA machine, Python 3.11).
#
# The heavy part (torch, mmcv compiled from source) is built once into a cache outside the clone
# ($XDECODER_CACHE, default ~/.cache/xdecoder), keyed by those pins; the pinned requirements are
# installed on every run (a no-op when present), so a second run, or a fresh clone on the same
# machine, only checks them, links the environment as .venv and installs this repo in editable mode.
#
# mmcv's compiled ops are built for the CPU by default, also on a GPU machine: X-Decoder runs no
# compiled mmcv op (tests/test_tooling.py checks every task's forward and loss), and building the
# CUDA ops needs an nvcc matching torch's CUDA, which most GPU machines with pip's torch lack.
# XDECODER_MMCV_CUDA=1 builds them too (for other OpenMMLab models in the same environment).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${XDECODER_CACHE:-$HOME/.cache/xdecoder}
PYTHON=${PYTHON:-python3}
TORCH_SPEC="torch==2.14.1 torchvision==0.29.1"
MMCV_VERSION=2.1.0
if [ "${XDECODER_MMCV_CUDA:-0}" = 1 ]; then OPS=cuda; else OPS=cpu; fi

log() { printf '[setup_env] %s\n' "$*"; }

# System packages: Java runs pycocoevalcap's PTB tokenizer and METEOR (caption metrics); Chromium
# and its driver let the tests drive the web demo in a real (headless) browser.
apt_missing=()
command -v java >/dev/null 2>&1 || apt_missing+=(openjdk-17-jre-headless)
command -v chromedriver >/dev/null 2>&1 || apt_missing+=(chromium chromium-driver)
if [ ${#apt_missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        log "installing ${apt_missing[*]} (caption metrics, web demo test)"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_missing[@]}" >/dev/null
    else
        log "WARNING: missing ${apt_missing[*]}: caption metrics (METEOR, PTB tokenizer) need Java, the web demo's browser test needs Chromium (it is skipped without); e.g. apt-get install ${apt_missing[*]}"
    fi
fi

key=$(echo "$TORCH_SPEC mmcv==$MMCV_VERSION ops=$OPS" | sha256sum | cut -c1-12)
VENV="$CACHE/venv-$key"
PIP="$VENV/bin/python -m pip"
mkdir -p "$CACHE/wheels"

if [ ! -f "$VENV/.complete" ]; then
    start=$(date +%s)
    log "building environment in $VENV (first time on this machine; about 15 minutes on 2 cores)"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    $PIP install -q --upgrade pip wheel "setuptools<81"
    $PIP install -q $TORCH_SPEC
    tver=$("$VENV/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])')
    wheel_dir="$CACHE/wheels/mmcv-$MMCV_VERSION-torch$tver-$OPS"
    if ! ls "$wheel_dir"/mmcv-*.whl >/dev/null 2>&1; then
        # No mmcv 2.1 wheel exists for this torch on PyPI, so its sdist is compiled (about 8 minutes
        # on 2 cores). setup.py imports pkg_resources (setuptools<81) and needs the venv's torch
        # (no build isolation); torch>=2.14 headers need C++20, mmcv hard-codes C++17. mmcv adds
        # the CUDA ops whenever torch sees a GPU, so the CPU build hides the GPUs from it.
        log "compiling mmcv $MMCV_VERSION with ops ($OPS); the wheel is kept in $wheel_dir"
        src=$(mktemp -d)
        $PIP download -q --no-deps --no-binary :all: --no-build-isolation -d "$src" "mmcv==$MMCV_VERSION"
        tar -xzf "$src"/mmcv-*.tar.gz -C "$src"
        sed -i 's/-std=c++17/-std=c++20/g' "$src/mmcv-$MMCV_VERSION/setup.py"
        $PIP install -q ninja "opencv-python<5" addict yapf
        if [ "$OPS" = cuda ]; then gpu_env=(FORCE_CUDA=1); else gpu_env=(CUDA_VISIBLE_DEVICES= FORCE_CUDA=0); fi
        (cd "$src/mmcv-$MMCV_VERSION" && env "${gpu_env[@]}" MMCV_WITH_OPS=1 MAX_JOBS=$(nproc) \
            $PIP wheel -q --no-build-isolation --no-deps -w "$wheel_dir" .)
        rm -rf "$src"
    fi
    $PIP install -q "$wheel_dir"/mmcv-*.whl "opencv-python<5"
    # The only PyPI package with panopticapi.evaluation pins numpy<2 without needing it.
    $PIP install -q --no-deps panopticapi-lite==0.2.0
    touch "$VENV/.complete"
    log "environment built in $(( $(date +%s) - start )) s"
fi

$PIP install -q -r "$ROOT/requirements/runtime.txt" -r "$ROOT/requirements/demo.txt" \
    -r "$ROOT/requirements/tests.txt"
ln -sfn "$VENV" "$ROOT/.venv"
# Editable install of this clone (seconds); pip's build chatter goes to a log unless it fails.
if ! $PIP install -q --no-deps --no-build-isolation -e "$ROOT" \
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
