#!/usr/bin/env bash
# Usage: ./tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [test.py args]
exec "$(dirname "$0")/slurm_launch.sh" test.py "$@"
