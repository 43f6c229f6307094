#!/usr/bin/env bash
# Train on GPU nodes of a SLURM cluster: one process per GPU, requeued after a preemption.
#
#   launch/train_gpu_slurm.sh --config configs/pod_gpu_8xh100.py --workdir DIR --latents DIR
#       [--nodes 1] [--gpus-per-node 8] [--time 24:00:00] [--partition P] [--account A]
#       [--python .venv/bin/python] [--log-dir logs/slurm] [--dry-run] [-- --config.key=value ...]
#
# Writes a batch script and submits it with sbatch (--dry-run prints the script and the sbatch
# command instead). The job runs `srun` with one task per GPU; each task is one
# `python -m hotdance_jax.train` process that finds the others from SLURM's environment
# (SLURM_NTASKS, SLURM_PROCID, SLURM_LOCALID, the first node of SLURM_STEP_NODELIST as the
# coordinator: hotdance_jax.parallel.initialize_distributed) and uses GPU SLURM_LOCALID of its
# node, so every task must see all of its node's GPUs (no per-task GPU binding). Run it from
# the repository root on a login node; the repository, --python (a venv with
# launch/requirements-gpu.txt installed), --latents and --workdir (local shared storage or
# gs://) must be reachable from every node. Task T's output goes to LOG_DIR/JOB-attemptR-T.log
# (R: SLURM_RESTART_COUNT, 0 before any requeue).
#
# Preemption and the time limit: SLURM sends SIGTERM 120 s before the limit (--signal), every
# process saves a checkpoint and exits 0, and the job requeues itself (scontrol requeue) when
# task 0 logged "preempted: saved step"; the requeued job resumes from WORKDIR's last
# checkpoint. A preemption by the scheduler requeues the job the same way (--requeue).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

CONFIG="" WORKDIR="" LATENTS="" NODES=1 GPUS=8 TIME=24:00:00 PARTITION="" ACCOUNT=""
PYTHON=.venv/bin/python LOG_DIR=logs/slurm EXTRA=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --config) CONFIG=$2; shift 2 ;;
    --workdir) WORKDIR=$2; shift 2 ;;
    --latents) LATENTS=$2; shift 2 ;;
    --nodes) NODES=$2; shift 2 ;;
    --gpus-per-node) GPUS=$2; shift 2 ;;
    --time) TIME=$2; shift 2 ;;
    --partition) PARTITION=$2; shift 2 ;;
    --account) ACCOUNT=$2; shift 2 ;;
    --python) PYTHON=$2; shift 2 ;;
    --log-dir) LOG_DIR=$2; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    --help|-h) usage "$0"; exit 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) fail "unknown option $1 (see --help)" ;;
  esac
done
need_training_args
for n in "$NODES" "$GPUS"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || fail "--nodes and --gpus-per-node must be positive integers"
done

REPO=$(pwd)
train=("$PYTHON" -m hotdance_jax.train --config="$CONFIG" --workdir="$WORKDIR"
       --latents="$LATENTS" "${EXTRA[@]}")
script="#!/bin/bash
#SBATCH --job-name=hotdance
#SBATCH --nodes=$NODES
#SBATCH --ntasks-per-node=$GPUS
#SBATCH --gpus-per-node=$GPUS
#SBATCH --time=$TIME
#SBATCH --signal=TERM@120
#SBATCH --requeue
#SBATCH --output=$LOG_DIR/%j-batch.log
${PARTITION:+#SBATCH --partition=$PARTITION
}${ACCOUNT:+#SBATCH --account=$ACCOUNT
}cd $(quoted "$REPO")
attempt=\${SLURM_RESTART_COUNT:-0}
srun --kill-on-bad-exit=1 --output=$LOG_DIR/%j-attempt\$attempt-%t.log $(quoted "${train[@]}")
status=\$?
if grep -qs 'preempted: saved step' $LOG_DIR/\$SLURM_JOB_ID-attempt\$attempt-0.log; then
  scontrol requeue \$SLURM_JOB_ID
fi
exit \$status"

if [[ $DRY_RUN == 1 ]]; then
  echo "# batch script ($LOG_DIR/hotdance.sbatch):"
  echo "$script"
else
  mkdir -p "$LOG_DIR"
  printf '%s\n' "$script" > "$LOG_DIR/hotdance.sbatch"
fi
run sbatch "$LOG_DIR/hotdance.sbatch"
