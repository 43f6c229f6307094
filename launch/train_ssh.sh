#!/usr/bin/env bash
# Train on a plain list of GPU hosts over ssh: one process per GPU (or per host).
#
#   launch/train_ssh.sh --hosts HOST1,HOST2,... --config configs/pod_gpu_8xh100.py --workdir DIR
#       --latents DIR [--gpus-per-host 8 | --per-host] [--port 29500] [--repo-dir DIR]
#       [--python .venv/bin/python] [--log-dir logs/ssh] [--dry-run] [-- --config.key=value ...]
#
# Starts `python -m hotdance_jax.train` on every host through ssh (key-based login, no
# password prompt), in --repo-dir (default: this checkout's path, the same on every host) with
# --python (a venv with launch/requirements-gpu.txt installed). Each process gets explicit
# --coordinator_address=HOST1:PORT --num_processes=N --process_id=I: with --gpus-per-host G
# (default 8) host h runs G processes, process h * G + g on GPU g alone (CUDA_VISIBLE_DEVICES);
# with --per-host, one process per host on all its GPUs. --latents and --workdir (shared storage
# or gs://) must be reachable from every host. The output of process I goes to
# LOG_DIR/process-I.log here. The script waits for all processes and exits with the worst
# status; rerun the same command to resume from WORKDIR's last checkpoint.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

HOSTS="" CONFIG="" WORKDIR="" LATENTS="" GPUS=8 PER_HOST=0 PORT=29500 REPO_DIR=$(pwd)
PYTHON=.venv/bin/python LOG_DIR=logs/ssh EXTRA=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --hosts) HOSTS=$2; shift 2 ;;
    --config) CONFIG=$2; shift 2 ;;
    --workdir) WORKDIR=$2; shift 2 ;;
    --latents) LATENTS=$2; shift 2 ;;
    --gpus-per-host) GPUS=$2; shift 2 ;;
    --per-host) PER_HOST=1; shift ;;
    --port) PORT=$2; shift 2 ;;
    --repo-dir) REPO_DIR=$2; shift 2 ;;
    --python) PYTHON=$2; shift 2 ;;
    --log-dir) LOG_DIR=$2; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    --help|-h) usage "$0"; exit 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) fail "unknown option $1 (see --help)" ;;
  esac
done
need --hosts "$HOSTS"; need_training_args
[[ $GPUS =~ ^[1-9][0-9]*$ ]] || fail "--gpus-per-host must be a positive integer, not $GPUS"
IFS=, read -r -a HOST_LIST <<< "$HOSTS"
PER=$GPUS
[[ $PER_HOST == 0 ]] || PER=1
COUNT=$((${#HOST_LIST[@]} * PER))
COORDINATOR=${HOST_LIST[0]}:$PORT

[[ $DRY_RUN == 1 ]] || mkdir -p "$LOG_DIR"
pids=()
for h in "${!HOST_LIST[@]}"; do
  for ((g = 0; g < PER; g++)); do
    id=$((h * PER + g))
    gpu=()
    [[ $PER_HOST == 1 ]] || gpu=(CUDA_VISIBLE_DEVICES="$g")
    command="cd $(quoted "$REPO_DIR") && $(quoted "${gpu[@]}" "$PYTHON" -m hotdance_jax.train \
      --config="$CONFIG" --workdir="$WORKDIR" --latents="$LATENTS" \
      --coordinator_address="$COORDINATOR" --num_processes="$COUNT" --process_id="$id" \
      "${EXTRA[@]}")"
    echo "+ $(quoted ssh "${HOST_LIST[h]}" "$command") > $LOG_DIR/process-$id.log"
    if [[ $DRY_RUN == 0 ]]; then
      ssh "${HOST_LIST[h]}" "$command" > "$LOG_DIR/process-$id.log" 2>&1 &
      pids+=($!)
    fi
  done
done
status=0
for pid in "${pids[@]}"; do
  wait "$pid" || status=$?
done
exit "$status"
