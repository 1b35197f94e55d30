#!/usr/bin/env bash
# Usage: ./tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args]
exec "$(dirname "$0")/slurm_launch.sh" train.py "$1" "$2" "$3" --work-dir="$4" "${@:5}"
