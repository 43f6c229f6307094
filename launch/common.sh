# shellcheck shell=bash
# Helpers shared by the launch scripts (sourced, not run).

DRY_RUN=0

# fail MESSAGE: one line on stderr, exit 1.
fail() {
  echo "error: $*" >&2
  exit 1
}

# quoted ARG...: the arguments as one shell-readable line (quotes only where needed).
quoted() {
  local out="" arg
  for arg in "$@"; do
    if [[ -z $arg || $arg =~ [^A-Za-z0-9_./:=,@%+-] ]]; then
      arg="'${arg//\'/\'\\\'\'}'"
    fi
    out+="$arg "
  done
  echo "${out% }"
}

# run COMMAND...: prints "+ COMMAND" and runs it, unless --dry-run.
run() {
  echo "+ $(quoted "$@")"
  if [[ $DRY_RUN == 0 ]]; then
    "$@"
  fi
}

# need NAME VALUE: fails unless VALUE is set (NAME is the option that sets it).
need() {
  [[ -n $2 ]] || fail "$1 is required (see --help)"
}

# need_training_args: fails unless CONFIG (an existing file), WORKDIR and LATENTS are set, as
# every launcher's --config, --workdir and --latents set them.
need_training_args() {
  need --config "$CONFIG"; need --workdir "$WORKDIR"; need --latents "$LATENTS"
  [[ -f $CONFIG ]] || fail "--config $CONFIG: no such file (run from the repository root)"
}

# usage FILE: prints FILE's leading comment block (its help), without the '#'.
usage() {
  sed -n '2,/^[^#]/{/^#/!q;s/^# \{0,1\}//;p}' "$1"
}
