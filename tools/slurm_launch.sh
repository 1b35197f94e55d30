#!/usr/bin/env bash
# Usage: ./tools/slurm_launch.sh SCRIPT PARTITION JOB_NAME [script args]
# (used by slurm_test.sh, slurm_train.sh). Environment: GPUS (default 8), GPUS_PER_NODE (8),
# CPUS_PER_TASK (5), SRUN_ARGS.
set -x
SCRIPT=$1
PARTITION=$2
JOB_NAME=$3
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python}

PYTHONPATH="$ROOT:$PYTHONPATH" \
exec srun -p "${PARTITION}" \
    --job-name="${JOB_NAME}" \
    --gres=gpu:${GPUS_PER_NODE} \
    --ntasks=${GPUS} \
    --ntasks-per-node=${GPUS_PER_NODE} \
    --cpus-per-task=${CPUS_PER_TASK} \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS} \
    $PYTHON -u "$ROOT/tools/$SCRIPT" "${@:4}" --launcher slurm
