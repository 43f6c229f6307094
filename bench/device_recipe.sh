#!/usr/bin/env bash
# The whole dwm recipe on one GPU in one call: data, autoencoder, latents, DiT, dances scored,
# and the speed benches.
#
#   bash bench/device_recipe.sh prepare        # here first: .device/dwm and .device/wheels
#   OUT=DIR bash bench/device_recipe.sh        # on the GPU machine, from the repository root
#
# The GPU machine gets the repository without ../shared and reaches no package registry, so
# `prepare` (here) writes what it needs into the git-ignored .device/ (carry it; about 26 MiB):
# dwm/, the compact copy of ../shared/data/dwm (bench/pack_dwm.py), and wheels/, the runtime
# packages of requirements.txt that the device image lacks, for its Python 3.12 (its jax has
# CUDA; /work/.library/device/KINDS.md lists what it holds).
#
# Stages, each under a time cap (LIMIT_*, seconds; a DiT stopped by its cap saves, and is scored
# at the step it reached):
#   a. install .device/wheels (without them: launch/requirements-gpu.txt); SKIP_INSTALL=1 skips
#   b. segments of DWM_ROOT with configs/dwm.py (its camera), on the CPU while g runs
#   c. the onehot-kl autoencoder (hotdance_jax.vae.train), d. its latent cache (precompute)
#   e. the DiT (hotdance_jax.train) in WORK/quality/full; f. bench/quality.py --variants full on
#      that run: dances to the first DANCE_SECONDS of every test song (SEEDS each), scored
#   g. bench/train_step.py (dwm at DIT_BATCH, BENCH_CONFIG at BENCH_BATCH: s/step, MFU) and
#      bench/sample.py (BENCH_CONFIG: real-time factor)
# Every stage reads one config file, WORK/recipe_dwm.py (configs/dwm.py with the variables below),
# so that bench/quality.py restores the trained run with the settings it trained with.
# Writes OUT/recipe.log (every stage's output), OUT/build.log, OUT/tables.md (stage times, training
# figures, the quality table, the speed tables) and OUT/quality.json; WORK (default a new
# /tmp/hotdance_recipe.*) holds the rest.
#
# Estimate for one H200 with the defaults: about 6 min (the caps add up to 9). The figures of
# docs/speed_memory.md and docs/autoencoder.md: a dwm DiT step of 8 ms at batch 64 (3000 steps
# about 1 min with the loader), onehot-kl steps of 0.055-0.066 s at batch 32 for its 5-16 M
# networks (dwm's is 1 M: 1500 steps about 1.5 min with evaluations); each stage adds 20-60 s of
# start-up and compilation.
set -euo pipefail

VAE_STEPS=${VAE_STEPS:-1500}
VAE_BATCH=${VAE_BATCH:-32}
DIT_STEPS=${DIT_STEPS:-3000}
DIT_BATCH=${DIT_BATCH:-64}
WORKERS=${WORKERS:-8}                   # loader processes (config.latents.workers)
DANCE_SECONDS=${DANCE_SECONDS:-30}      # of each test song danced to (bench/quality.py --seconds)
SEEDS=${SEEDS:-2}                       # dances per song
BENCH_STEPS=${BENCH_STEPS:-20}          # timed steps of bench/train_step.py
BENCH_CONFIG=${BENCH_CONFIG:-configs/base.py}  # the paper's shapes; a CPU test: tiny_cpu
BENCH_BATCH=${BENCH_BATCH:-32}
SAMPLE_SECONDS=${SAMPLE_SECONDS:-30}    # of music that bench/sample.py dances to
SAMPLE_STEPS=${SAMPLE_STEPS:-30}        # its sampler steps
LIMIT_INSTALL=${LIMIT_INSTALL:-30}
LIMIT_BUILD=${LIMIT_BUILD:-150}
LIMIT_TRAIN_STEP=${LIMIT_TRAIN_STEP:-90}
LIMIT_SAMPLE=${LIMIT_SAMPLE:-60}
LIMIT_VAE=${LIMIT_VAE:-100}
LIMIT_LATENTS=${LIMIT_LATENTS:-45}
LIMIT_DIT=${LIMIT_DIT:-90}
LIMIT_QUALITY=${LIMIT_QUALITY:-130}
DWM_ROOT=${DWM_ROOT:-.device/dwm}

cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # several processes share the GPU (bench, workers)

prepare() {
  python3 bench/pack_dwm.py --root ../shared/data/dwm --out .device/dwm
  # The versions installed here of what requirements.txt needs beyond the device image.
  local missing="grain|array[-_]record|ml[-_]collections|librosa|audioread|soundfile|soxr|pooch"
  missing+="|platformdirs|decorator|cffi|pycparser|tensorboardx"
  # shellcheck disable=SC2046  # one argument per package
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
      --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .device/wheels \
      $(python3 -m pip freeze | grep -iE "^($missing)==")
  du -sh .device
}

# stage NAME CAP COMMAND...: COMMAND under a CAP-second cap, its stdout also in WORK/NAME.out.
stage() {
  local name=$1 cap=$2 start=$SECONDS status=0
  shift 2
  echo "== $name (cap $cap s): $*"
  timeout -k 20 "$cap" "$@" | tee "$WORK/$name.out" || status=$?
  echo "| $name | $((SECONDS - start)) | $cap | $status |" >>"$WORK/times.md"
  echo "== $name: $((SECONDS - start)) s, exit $status"
  return "$status"
}

# tables: OUT/tables.md from what the stages have written, and OUT/quality.json.
tables() {
  {
    echo "# bench/device_recipe.sh, $(date -u '+%F %H:%M') UTC"
    echo
    echo "| stage | s | cap s | exit |"
    echo "|---|---|---|---|"
    cat "$WORK/times.md"
    echo
    grep -h "segments from" "$OUT/build.log" || true
    grep -h "final eval" "$WORK/vae.out" || true
    grep -h "val_loss" "$WORK/dit.out" | tail -1 || true
    echo
    awk -v c="$CONFIG, " 'index($0, c) == 1 {p = 1} p' "$WORK/quality.out" || true
    echo
    cat "$WORK/train_step.out" "$WORK/sample.out" || true
  } >"$OUT/tables.md" 2>/dev/null
  cp "$WORK/quality/quality.json" "$OUT/" 2>/dev/null || true
}

write_config() {
  cat >"$CONFIG" <<EOF
"""configs/dwm.py at the scale of bench/device_recipe.sh."""

from hotdance_jax.config_utils import sibling_config


def get_config():
    config = sibling_config("$PWD/configs/dwm.py", "dwm")
    config.vae.train.batch_size = $VAE_BATCH
    config.vae.train.steps = $VAE_STEPS
    config.latents.workers = $WORKERS
    config.train.batch_size = $DIT_BATCH
    config.train.steps = $DIT_STEPS
    return config
EOF
}

recipe() {
  trap tables EXIT
  : >"$WORK/times.md"
  if [[ -z ${SKIP_INSTALL:-} ]]; then
    if [[ -d .device/wheels ]]; then
      stage install "$LIMIT_INSTALL" python3 -m pip install -q --no-index --no-deps --no-compile \
          --target "$WORK/site" .device/wheels/*.whl
      export PYTHONPATH=$PYTHONPATH:$WORK/site
    else
      stage install "$LIMIT_INSTALL" python3 -m pip install -q -r launch/requirements-gpu.txt
    fi
    python3 -c "import jax; assert jax.default_backend() == 'gpu', jax.devices()"
  fi
  python3 -c "import jax; print('jax', jax.__version__, jax.devices())"
  write_config

  JAX_PLATFORMS=cpu stage build "$LIMIT_BUILD" python3 -m data_pipeline.build --source dwm \
      --root "$DWM_ROOT" --segments "$SEGMENTS" --config "$CONFIG" >"$OUT/build.log" 2>&1 &
  local build=$!
  stage train_step "$LIMIT_TRAIN_STEP" python3 bench/train_step.py --configs configs/dwm.py \
      "$BENCH_CONFIG" --batch-sizes "$DIT_BATCH" "$BENCH_BATCH" --steps "$BENCH_STEPS"
  stage sample "$LIMIT_SAMPLE" python3 bench/sample.py --configs "$BENCH_CONFIG" \
      --seconds "$SAMPLE_SECONDS" --steps "$SAMPLE_STEPS"
  wait "$build"
  tail -n 2 "$OUT/build.log"

  stage vae "$LIMIT_VAE" python3 -m hotdance_jax.vae.train --config "$CONFIG" \
      --segments "$SEGMENTS" --workdir "$WORK/vae"
  stage latents "$LIMIT_LATENTS" python3 -m data_pipeline.precompute --segments "$SEGMENTS" \
      --vae onehot-kl --vae-weights "$WORK/vae/onehot_kl.msgpack" --latents "$LATENTS" \
      --config "$CONFIG"
  stage dit "$LIMIT_DIT" python3 -m hotdance_jax.train --config "$CONFIG" \
      --latents "$LATENTS" --workdir "$RUN" \
      || [[ $? == 124 ]]  # stopped by its cap: it saved the step it reached
  local reached
  reached=$(find "$RUN/checkpoints" -maxdepth 1 -regex '.*/[0-9]+' -printf '%f\n' | sort -n \
      | tail -1)
  stage quality "$LIMIT_QUALITY" python3 bench/quality.py --config "$CONFIG" \
      --segments "$SEGMENTS" --latents "$LATENTS" --workdir "$WORK/quality" --variants full \
      --steps "$reached" --seeds "$SEEDS" --seconds "$DANCE_SECONDS"
}

if [[ ${1:-} == prepare ]]; then
  prepare
  exit
fi
: "${OUT:?set OUT to the output folder}"
WORK=${WORK:-$(mktemp -d /tmp/hotdance_recipe.XXXX)}
SEGMENTS=$WORK/segments
LATENTS=$WORK/latents
CONFIG=$WORK/recipe_dwm.py
RUN=$WORK/quality/full
mkdir -p "$OUT" "$WORK"
recipe 2>&1 | tee "$OUT/recipe.log"
