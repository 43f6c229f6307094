#!/usr/bin/env bash
# Train on a Cloud TPU slice from this machine, and keep it training through preemptions.
#
#   launch/train_tpu.sh --name NAME --zone ZONE --accelerator TYPE --config configs/FILE.py \
#       --workdir gs://BUCKET/RUN --latents gs://BUCKET/LATENTS [--spot] [--queued] [--slices N]
#       [--runtime-version V] [--project P] [--max-restarts 20] [--log-dir DIR] [--dry-run]
#       [-- --config.key=value ...]
#
# 1. The slice: reuses TPU VM (or, with --queued, queued resource) NAME when it is READY/ACTIVE;
#    creates it when absent; deletes and recreates it when preempted, suspended or failed.
#    TYPE is gcloud's accelerator type (v5p-64, v5litepod-16; v5e-N is read as v5litepod-N);
#    the runtime version defaults to the one for its generation. --slices N (with --queued)
#    asks for N slices NAME-0 .. NAME-(N-1) joined by the data-centre network, and trains data
#    parallel across them (--config.train.dcn_mesh=(N,1,1)).
# 2. The code: `git archive` of HEAD (uncommitted changes are not shipped) is copied to every
#    worker (tpu-vm scp --worker=all) and installed there in a Python 3.11 venv with the pinned
#    launch/requirements-tpu.txt (requirements.txt, jax[tpu] of the same version, the GCS
#    clients); gs:// latents are copied to each worker's disk (each process reads its share).
# 3. Training: python -m hotdance_jax.train --multihost on every worker (tpu-vm ssh
#    --worker=all), the run folder on GCS. The output streams here and goes to
#    LOG_DIR/attempt-K.log (default logs/NAME); each worker keeps its own log and copies it to
#    WORKDIR/logs/NODE-worker-W-attempt-K.log when it ends.
# 4. The watch loop: when training returns, the slice's state decides. Preempted (or gone):
#    back to 1, and the new attempt resumes from the last checkpoint in WORKDIR. Healthy and the
#    run finished: done. Healthy but stopped by SIGTERM (a maintenance event): rerun. Healthy and
#    failed: stop with its exit status. At most --max-restarts restarts.
#
# --dry-run prints every command instead of running it. A dry run cannot ask for the slice's
# state: it takes the states its queries would get from DRY_RUN_STATES (space-separated, e.g.
# "NONE PREEMPTED PREEMPTED"; default "NONE"), and READY (ACTIVE for --queued) after those.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

UV_VERSION=0.13.8
NAME="" ZONE="" ACCELERATOR="" RUNTIME="" PROJECT="" CONFIG="" WORKDIR="" LATENTS=""
SPOT=0 QUEUED=0 SLICES=1 MAX_RESTARTS=20 POLL=60 LOG_DIR=""
EXTRA=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --name) NAME=$2; shift 2 ;;
    --zone) ZONE=$2; shift 2 ;;
    --accelerator) ACCELERATOR=$2; shift 2 ;;
    --runtime-version) RUNTIME=$2; shift 2 ;;
    --project) PROJECT=$2; shift 2 ;;
    --config) CONFIG=$2; shift 2 ;;
    --workdir) WORKDIR=$2; shift 2 ;;
    --latents) LATENTS=$2; shift 2 ;;
    --spot) SPOT=1; shift ;;
    --queued) QUEUED=1; shift ;;
    --slices) SLICES=$2; shift 2 ;;
    --max-restarts) MAX_RESTARTS=$2; shift 2 ;;
    --poll) POLL=$2; shift 2 ;;
    --log-dir) LOG_DIR=$2; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    --help|-h) usage "$0"; exit 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) fail "unknown option $1 (see --help)" ;;
  esac
done
need --name "$NAME"; need --zone "$ZONE"; need --accelerator "$ACCELERATOR"
need_training_args
[[ $WORKDIR == gs://* ]] || fail "--workdir must be a gs:// URI (every worker writes there), not $WORKDIR"
[[ $SLICES =~ ^[1-9][0-9]*$ ]] || fail "--slices must be a positive integer, not $SLICES"
[[ $SLICES == 1 || $QUEUED == 1 ]] || fail "--slices $SLICES needs --queued (multi-slice is a queued resource)"
ACCELERATOR=${ACCELERATOR/#v5e-/v5litepod-}
if [[ -z $RUNTIME ]]; then
  case $ACCELERATOR in
    v5p-*) RUNTIME=v2-alpha-tpuv5 ;;
    v5litepod-*) RUNTIME=v2-alpha-tpuv5-lite ;;
    v6e-*) RUNTIME=v2-alpha-tpuv6e ;;
    v4-*) RUNTIME=tpu-ubuntu2204-base ;;
    *) fail "no default runtime version for $ACCELERATOR: pass --runtime-version" ;;
  esac
fi
LOG_DIR=${LOG_DIR:-logs/$NAME}
WHERE=(--zone="$ZONE")
[[ -z $PROJECT ]] || WHERE+=(--project="$PROJECT")
if [[ $QUEUED == 1 ]]; then HEALTHY=ACTIVE; else HEALTHY=READY; fi
read -r -a DRY_STATES <<< "${DRY_RUN_STATES:-NONE}"
NODES=("$NAME")
if [[ $SLICES -gt 1 ]]; then
  NODES=()
  for ((i = 0; i < SLICES; i++)); do NODES+=("$NAME-$i"); done
  EXTRA=(--config.train.dcn_mesh="($SLICES,1,1)" "${EXTRA[@]}")
fi
SHA=$(git rev-parse --short HEAD)
TARBALL=${TMPDIR:-/tmp}/hotdance-$SHA.tar.gz
[[ -z $(git status --porcelain --untracked-files=no) ]] \
  || echo "note: uncommitted changes are not shipped; the workers get commit $SHA" >&2

# query_state: STATE <- the slice's state (NONE when it does not exist).
query_state() {
  local what=(compute tpus tpu-vm) field=state
  [[ $QUEUED == 0 ]] || what=(compute tpus queued-resources) field=state.state
  echo "+ $(quoted gcloud "${what[@]}" describe "$NAME" "${WHERE[@]}" --format="value($field)")"
  if [[ $DRY_RUN == 1 ]]; then
    STATE=${DRY_STATES[0]:-$HEALTHY}
    DRY_STATES=("${DRY_STATES[@]:1}")
  else
    STATE=$(gcloud "${what[@]}" describe "$NAME" "${WHERE[@]}" --format="value($field)" \
            2>/dev/null) || STATE=NONE
  fi
  echo "# slice $NAME: ${STATE:=NONE}"
}

create_slice() {
  local spot=()
  [[ $SPOT == 0 ]] || spot=(--spot)
  if [[ $QUEUED == 0 ]]; then
    run gcloud compute tpus tpu-vm create "$NAME" "${WHERE[@]}" --accelerator-type="$ACCELERATOR" \
      --version="$RUNTIME" "${spot[@]}"
    return
  fi
  local nodes=(--node-id="$NAME")
  [[ $SLICES == 1 ]] || nodes=(--node-count="$SLICES" --node-prefix="$NAME")
  run gcloud compute tpus queued-resources create "$NAME" "${WHERE[@]}" \
    --accelerator-type="$ACCELERATOR" --runtime-version="$RUNTIME" "${nodes[@]}" "${spot[@]}"
}

delete_slice() {
  if [[ $QUEUED == 0 ]]; then
    run gcloud compute tpus tpu-vm delete "$NAME" "${WHERE[@]}" --quiet
  else
    run gcloud compute tpus queued-resources delete "$NAME" "${WHERE[@]}" --force --quiet
  fi
}

# ensure_slice: the slice exists and is healthy when it returns.
ensure_slice() {
  query_state
  case $STATE in
    READY|ACTIVE) echo "# reusing $NAME" ;;
    NONE) create_slice ;;
    WAITING_FOR_RESOURCES|PROVISIONING|CREATING|ACCEPTED) ;;
    *) delete_slice; create_slice ;;
  esac
  while [[ $QUEUED == 1 && $STATE != ACTIVE ]]; do
    run sleep "$POLL"
    query_state
    [[ $STATE != FAILED ]] || fail "queued resource $NAME FAILED (gcloud compute tpus queued-resources describe $NAME)"
  done
}

# on_workers COMMAND: runs COMMAND on every worker of every slice.
on_workers() {
  local node
  for node in "${NODES[@]}"; do
    run gcloud compute tpus tpu-vm ssh "$node" "${WHERE[@]}" --worker=all --command="$1"
  done
}

ship_and_install() {
  run git archive --format=tar.gz --output="$TARBALL" HEAD
  local node setup
  for node in "${NODES[@]}"; do
    run gcloud compute tpus tpu-vm scp "$TARBALL" "$node:hotdance-$SHA.tar.gz" "${WHERE[@]}" --worker=all
  done
  setup="set -e; rm -rf ~/hotdance; mkdir -p ~/hotdance; tar -xzf ~/hotdance-$SHA.tar.gz -C ~/hotdance"
  setup+="; python3 -m pip install --user --quiet uv==$UV_VERSION"
  setup+="; ~/.local/bin/uv venv --quiet --allow-existing --python 3.11 ~/hotdance-venv"
  setup+="; ~/.local/bin/uv pip install --quiet --python ~/hotdance-venv/bin/python"
  setup+=" -r ~/hotdance/launch/requirements-tpu.txt -e ~/hotdance"
  if [[ $LATENTS == gs://* ]]; then
    setup+="; gcloud storage rsync --recursive $(quoted "$LATENTS") ~/hotdance-latents"
  fi
  on_workers "$setup"
}

# train ATTEMPT: runs training on all workers of all slices; returns the worst exit status.
train() {
  local attempt=$1 latents log node pids=() status=0 pid command copy
  latents=$(quoted "$LATENTS")
  [[ $LATENTS != gs://* ]] || latents="\$HOME/hotdance-latents"
  log="\$HOME/hotdance-logs/attempt-$attempt.log"
  command="set -o pipefail; cd ~/hotdance; mkdir -p ~/hotdance-logs"
  command+="; W=\$(curl -s -H Metadata-Flavor:Google http://metadata.google.internal/computeMetadata/v1/instance/attributes/agent-worker-number)"
  command+="; ~/hotdance-venv/bin/python -m hotdance_jax.train --config=$(quoted "$CONFIG")"
  command+=" --workdir=$(quoted "$WORKDIR") --multihost --latents=$latents"
  [[ ${#EXTRA[@]} == 0 ]] || command+=" $(quoted "${EXTRA[@]}")"
  command+=" 2>&1 | tee $log; s=\$?"
  [[ $DRY_RUN == 1 ]] || mkdir -p "$LOG_DIR"
  for node in "${NODES[@]}"; do
    copy="; gcloud storage cp $log $(quoted "$WORKDIR/logs/$node")-worker-\$W-attempt-$attempt.log; exit \$s"
    if [[ $DRY_RUN == 1 ]]; then
      run gcloud compute tpus tpu-vm ssh "$node" "${WHERE[@]}" --worker=all --command="$command$copy"
    else
      run gcloud compute tpus tpu-vm ssh "$node" "${WHERE[@]}" --worker=all \
        --command="$command$copy" 2>&1 | tee -a "$LOG_DIR/attempt-$attempt.log" &
      pids+=($!)
    fi
  done
  for pid in "${pids[@]}"; do
    wait "$pid" || status=$?
  done
  return "$status"
}

restarts=0
attempt=1
while true; do
  ensure_slice
  ship_and_install
  status=0
  train "$attempt" || status=$?
  query_state
  if [[ $STATE != READY && $STATE != ACTIVE ]]; then
    why="the slice is $STATE"
  elif [[ $status != 0 ]]; then
    fail "training failed (exit $status) on a healthy slice; see $LOG_DIR/attempt-$attempt.log"
  elif grep -qs "preempted: saved step" "$LOG_DIR/attempt-$attempt.log"; then
    why="training was stopped by SIGTERM"
  else
    echo "# training finished: $WORKDIR"
    exit 0
  fi
  restarts=$((restarts + 1))
  [[ $restarts -le $MAX_RESTARTS ]] || fail "$why; gave up after $MAX_RESTARTS restarts"
  echo "# $why: restart $restarts of $MAX_RESTARTS, resuming from the last checkpoint in $WORKDIR"
  attempt=$((attempt + 1))
done
