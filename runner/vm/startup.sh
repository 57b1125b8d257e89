#!/usr/bin/env bash
# Kumo runner VM: startup script (the `startup-script` metadata item of the instance template
# that deploy/deploy.sh creates). Compute Engine's guest agent runs it as root once the VM has
# booted from the image baked by runner/vm/bake-image.sh.
#
# It runs the GitHub Actions runner ONCE, with the just-in-time (JIT) config that Kumo put in
# the instance's metadata item `kumo-jit-config`, then powers the VM off, whatever happens:
# the config is missing, the runner cannot start, the job fails, the script is killed.
# Kumo deletes the VM when its job completes; reconcile deletes TERMINATED Kumo VMs; the
# instance's max run duration deletes it in any case.
#
# The runner runs on the host, as user `runner`, next to the host's Docker daemon. So
# `services:`, `container:`, Docker container actions and `docker build` work: the runner's
# _work and externals directories are the same paths for the runner and for the containers it
# starts (a runner inside a container would need them mounted at identical host paths).
#
# The JIT config is never printed: it goes from the metadata server into the runner's
# environment (ACTIONS_RUNNER_INPUT_JITCONFIG), which the runner removes from its own
# environment and masks. Do not add `set -x` here.
set -uo pipefail

# Startup scripts get a minimal PATH; poweroff and runuser live in sbin. Appended, not
# prepended, so the test's PATH shims still come first.
PATH="$PATH:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Overridable for tests only (test/runner/vm.test.ts points them at a sandbox). On a VM the
# guest agent starts this script with its own environment, which no job can influence.
METADATA_URL="${KUMO_METADATA_URL:-http://metadata.google.internal/computeMetadata/v1}"
RUNNER_DIR="${KUMO_RUNNER_DIR:-/home/runner}"
RUNNER_USER="${KUMO_RUNNER_USER:-runner}"
JIT_KEY=kumo-jit-config

log() { printf 'kumo-runner: %s\n' "$*"; }

powered_off=0
# shellcheck disable=SC2317 # invoked by the EXIT trap
power_off() {
  local rc=$?
  if [[ $powered_off == 1 ]]; then return; fi
  powered_off=1
  log "exit status $rc: powering off"
  # A guest poweroff leaves the instance TERMINATED (its disk still bills until Kumo, its
  # reconcile pass or the max run duration deletes it). The VM's account has no role to
  # delete the instance itself, on purpose.
  poweroff || systemctl poweroff || shutdown -h now
}
trap power_off EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# 1. The JIT config. curl retries connection failures and 5xx; a missing key is a 404, which
#    is final: nothing will put the key there later.
jit=""
if ! jit="$(curl --silent --show-error --fail --max-time 10 --retry 5 --retry-connrefused \
  --retry-delay 1 -H 'Metadata-Flavor: Google' "$METADATA_URL/instance/attributes/$JIT_KEY")"; then
  log "no usable metadata item $JIT_KEY: this VM was not started by Kumo, or its metadata is gone"
  exit 1
fi
if [[ -z $jit ]]; then
  log "metadata item $JIT_KEY is empty"
  exit 1
fi
log "read the JIT config from the metadata server (${#jit} characters)"

# 2. Docker for services:, container: and docker build. It starts at boot; wait for it rather
#    than race it. A runner without Docker can still run plain jobs, so this is not fatal.
if systemctl start docker.service; then
  log "docker is running"
else
  log "warning: docker did not start; jobs that need containers will fail"
fi

# 3. The runner, once. Its exit code says little (run.sh exits 0 after any job and on a used
#    or invalid config); GitHub's API is where Kumo reads what happened.
if [[ ! -x $RUNNER_DIR/run.sh ]]; then
  log "no runner at $RUNNER_DIR/run.sh: the image is not a Kumo runner image"
  exit 1
fi
cd "$RUNNER_DIR" || exit 1
# RUNNER_MANUALLY_TRAP_SIG: run.sh passes the listener's exit code through and turns SIGTERM
# into a graceful stop. ACTIONS_RUNNER_RETURN_VERSION_DEPRECATED_EXIT_CODE: a runner too old
# for GitHub exits 7 instead of 0. ACTIONS_RUNNER_PRINT_LOG_TO_STDOUT empty: the diagnostic
# log stays in _diag/ instead of flooding the serial console.
export RUNNER_MANUALLY_TRAP_SIG=1 ACTIONS_RUNNER_RETURN_VERSION_DEPRECATED_EXIT_CODE=1 \
  ACTIONS_RUNNER_PRINT_LOG_TO_STDOUT=
export ACTIONS_RUNNER_INPUT_JITCONFIG="$jit"
unset jit
log "starting the runner as $RUNNER_USER"
# runuser keeps the environment (only HOME, SHELL, USER, LOGNAME change) and sets the user's
# groups, docker included; the runner refuses to run as root.
runuser -u "$RUNNER_USER" -- ./run.sh
rc=$?
unset ACTIONS_RUNNER_INPUT_JITCONFIG
case $rc in
0) log "the runner exited" ;;
7) log "the runner exited 7: its version is too old for GitHub; bake a new image (deploy/deploy.sh)" ;;
*) log "the runner exited $rc" ;;
esac
exit "$rc"
