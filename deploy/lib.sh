# shellcheck shell=bash
# Shared by deploy/deploy.sh and runner/vm/bake-image.sh (sourced, from the repository root):
# printing, DRY_RUN and the gcloud wrappers. Each script sets PROJECT_ID and DRY_RUN first.

log() { printf '\n==> %s\n' "$*" >&2; }
note() { printf '    %s\n' "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# run CMD...: print a command that changes something, then run it (DRY_RUN=1: only print it).
run() {
  printf '+ %s\n' "$(printf '%q ' "$@")" >&2
  if [[ $DRY_RUN == 1 ]]; then return 0; fi
  "$@"
}

# gc ARGS...: a changing gcloud command in this project, without prompts.
gc() { run gcloud --project="$PROJECT_ID" --quiet "$@"; }

# have ARGS...: a silent gcloud look-up; true when the resource exists. DRY_RUN=1: never.
have() {
  if [[ $DRY_RUN == 1 ]]; then return 1; fi
  gcloud --project="$PROJECT_ID" --quiet "$@" >/dev/null 2>&1
}

# value ARGS...: a gcloud look-up's output, empty when it fails or DRY_RUN=1.
value() {
  if [[ $DRY_RUN == 1 ]]; then return 0; fi
  gcloud --project="$PROJECT_ID" --quiet "$@" 2>/dev/null || true
}

# sha256 FILE... (- for stdin): sha256sum, or shasum on macOS.
sha256() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum "$@"; else shasum -a 256 "$@"; fi
}
