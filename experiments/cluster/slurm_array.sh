#!/bin/bash
# The evaluate-all matrix as a SLURM job array: each array task runs one shard (`--shard auto`
# reads SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT), and every task writes the same OUT on a
# filesystem all nodes share. Cells and generators are locked one by one, so tasks never run the
# same one twice; a task that needs a generator another task is training runs its other cells
# meanwhile. A resubmitted (or requeued) task resumes: finished cells are never rerun.
#
#   OUT=/shared/runs/quick DATA=/shared/data/kermany128 sbatch experiments/cluster/slurm_array.sh
#   # then, once: python -m keras_cxr report --results /shared/runs/quick
#   # (or chain it: sbatch --dependency=afterok:<array job id> --wrap "python -m keras_cxr report --results $OUT")
#
# Extra arguments go to evaluate-all, e.g. `sbatch experiments/cluster/slurm_array.sh --seeds 0 1 2 3 4`.
#SBATCH --job-name=keras-cxr-matrix
#SBATCH --array=0-7
#SBATCH --cpus-per-task=8
#SBATCH --mem=32G
#SBATCH --time=08:00:00
#SBATCH --output=keras-cxr-matrix-%A_%a.out
#SBATCH --requeue
# On GPU nodes add:  #SBATCH --gres=gpu:1
set -euo pipefail

PYTHON=${PYTHON:-python}
PRESET=${PRESET:-quick}
OUT=${OUT:?set OUT to a folder on the filesystem every node shares}
DATA=${DATA:-}  # empty: the bundled sample
# Op threads: the task's CPUs, so that tasks packed on one node do not oversubscribe it.
export KERAS_CXR_THREADS=${KERAS_CXR_THREADS:-${SLURM_CPUS_PER_TASK:-}}

exec "$PYTHON" -m keras_cxr evaluate-all --preset "$PRESET" ${DATA:+--data "$DATA"} --out "$OUT" \
    --shard auto --quiet "$@"
