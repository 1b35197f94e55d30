#!/usr/bin/env bash
# Usage: ./tools/dist_launch.sh SCRIPT NPROC [script args]   (used by dist_test.sh, dist_train.sh)
# Starts NPROC processes of tools/SCRIPT with torchrun. Without CUDA they are CPU processes that
# communicate over gloo (tools/*.py switch the backend).
SCRIPT=$1
NPROC=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python}

PYTHONPATH="$ROOT:$PYTHONPATH" \
OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} \
exec $PYTHON -m torch.distributed.run \
    --nnodes=$NNODES \
    --node_rank=$NODE_RANK \
    --master_addr=$MASTER_ADDR \
    --nproc_per_node=$NPROC \
    --master_port=$PORT \
    "$ROOT/tools/$SCRIPT" \
    "${@:3}" \
    --launcher pytorch
