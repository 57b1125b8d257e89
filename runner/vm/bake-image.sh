#!/usr/bin/env bash
# Bakes Kumo's runner VM image: Debian 12 with Docker and the GitHub Actions runner of
# runner/Dockerfile's base image preinstalled (runner/vm/install.sh), in image family
# kumo-runner. deploy/deploy.sh runs it when KUMO_VM_RUNNERS=true; it can run alone too:
#
#   PROJECT_ID=my-project runner/vm/bake-image.sh
#   DRY_RUN=1 PROJECT_ID=my-project runner/vm/bake-image.sh   # only print the commands
#
# Idempotent: the image is named after the runner version and a hash of install.sh, and
# nothing is done when that image exists. Otherwise:
#   1. a builder VM from debian-12 runs install.sh as its startup script;
#   2. install.sh reports through the guest attribute kumo/bake (ok | failed: …);
#   3. the builder is stopped, its disk becomes the image (family VM_IMAGE_FAMILY);
#   4. the builder is deleted (also when something fails, unless KEEP_BUILDER=1).
# The instance template names the family, not the image: new VMs boot from the newest image of
# the family, so a new runner version needs no new template.
# Written for bash 3.2 too (macOS), like deploy.sh.
set -euo pipefail

cd "$(dirname "$0")/../.."

PROJECT_ID="${PROJECT_ID:-}"
REGION="${REGION:-us-central1}"
VM_REGION="${VM_REGION:-$REGION}"
VM_BAKE_ZONE="${VM_BAKE_ZONE:-$VM_REGION-b}"
VM_IMAGE_FAMILY="${VM_IMAGE_FAMILY:-kumo-runner}"
VM_NETWORK="${VM_NETWORK:-default}"
VM_SUBNET="${VM_SUBNET:-$VM_NETWORK}"
VM_EXTERNAL_IP="${VM_EXTERNAL_IP:-true}"
VM_NETWORK_TAG="${VM_NETWORK_TAG:-kumo-runner}"
BAKE_MACHINE_TYPE="${BAKE_MACHINE_TYPE:-e2-standard-2}"
BAKE_TIMEOUT_SECONDS="${BAKE_TIMEOUT_SECONDS:-1800}"
BAKE_POLL_SECONDS="${BAKE_POLL_SECONDS:-15}"
KEEP_BUILDER="${KEEP_BUILDER:-0}"
DRY_RUN="${DRY_RUN:-0}"
INSTALL_SCRIPT=runner/vm/install.sh

# shellcheck source=deploy/lib.sh
. deploy/lib.sh

[[ -n $PROJECT_ID ]] || die "PROJECT_ID is required"
[[ -f $INSTALL_SCRIPT ]] || die "$INSTALL_SCRIPT is missing"
# The same runner as the Cloud Run image: the exact tag of runner/Dockerfile's FROM line.
if [[ -z ${RUNNER_VERSION:-} ]]; then
  RUNNER_VERSION="$(sed -n 's|^FROM ghcr\.io/actions/actions-runner:\([0-9][0-9.]*\).*|\1|p' runner/Dockerfile | head -n 1)"
fi
[[ $RUNNER_VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] ||
  die "cannot read the runner version from runner/Dockerfile (got '$RUNNER_VERSION')"

script_hash="$(sha256 "$INSTALL_SCRIPT" | cut -c1-8)"
version_dashed="$(printf '%s' "$RUNNER_VERSION" | tr . -)"
IMAGE="$VM_IMAGE_FAMILY-$version_dashed-$script_hash"
BUILDER="kumo-bake-$version_dashed-$script_hash"

log "Runner VM image $IMAGE (family $VM_IMAGE_FAMILY, runner $RUNNER_VERSION)"
if have compute images describe "$IMAGE"; then
  note "image exists: nothing to bake"
  exit 0
fi

builder_created=0
cleanup() {
  local rc=$?
  if [[ $builder_created == 1 && $rc != 0 ]]; then
    if [[ $KEEP_BUILDER == 1 ]]; then
      note "KEEP_BUILDER=1: builder $BUILDER kept in $VM_BAKE_ZONE; delete it when done"
    else
      note "deleting the builder after the failure"
      gc compute instances delete "$BUILDER" --zone="$VM_BAKE_ZONE" || true
    fi
  fi
}
trap cleanup EXIT

# A builder left by an interrupted run: start over.
if have compute instances describe "$BUILDER" --zone="$VM_BAKE_ZONE"; then
  note "a builder from an earlier run exists: deleting it"
  gc compute instances delete "$BUILDER" --zone="$VM_BAKE_ZONE"
fi

# No service account: the install needs no Google API. The same network tag as the runners, so
# their deny-all-ingress firewall rule covers the builder too. A 2 h limit stops (not deletes)
# a builder nobody cleans up, keeping its disk for a look.
address_flag=()
if [[ $VM_EXTERNAL_IP != true ]]; then address_flag=(--no-address); fi
gc compute instances create "$BUILDER" --zone="$VM_BAKE_ZONE" \
  --machine-type="$BAKE_MACHINE_TYPE" --image-family=debian-12 --image-project=debian-cloud \
  --boot-disk-size=20GB --boot-disk-type=pd-balanced \
  --network="$VM_NETWORK" --subnet="$VM_SUBNET" ${address_flag[@]+"${address_flag[@]}"} \
  --tags="$VM_NETWORK_TAG" --no-service-account --no-scopes \
  --metadata="enable-guest-attributes=TRUE,block-project-ssh-keys=TRUE,kumo-runner-version=$RUNNER_VERSION" \
  --metadata-from-file=startup-script="$INSTALL_SCRIPT" \
  --max-run-duration=2h --instance-termination-action=STOP
builder_created=1

if [[ $DRY_RUN != 1 ]]; then
  note "waiting for the install (a few minutes; at most ${BAKE_TIMEOUT_SECONDS}s)"
  waited=0
  while :; do
    state="$(value compute instances get-guest-attributes "$BUILDER" --zone="$VM_BAKE_ZONE" \
      --query-path=kumo/bake --format='value(value)')"
    case $state in
    ok) break ;;
    failed*)
      note "install.sh: $state"
      note "its log: gcloud compute instances get-serial-port-output $BUILDER --zone=$VM_BAKE_ZONE --project=$PROJECT_ID"
      value compute instances get-serial-port-output "$BUILDER" --zone="$VM_BAKE_ZONE" |
        grep 'kumo-bake' | tail -n 20 >&2 || true
      die "the image install failed"
      ;;
    esac
    if ((waited >= BAKE_TIMEOUT_SECONDS)); then die "the install did not finish within ${BAKE_TIMEOUT_SECONDS}s"; fi
    sleep "$BAKE_POLL_SECONDS"
    waited=$((waited + BAKE_POLL_SECONDS))
  done
  note "install finished"
fi

# A stopped VM's disk is consistent; the image is made from it, then the builder goes.
gc compute instances stop "$BUILDER" --zone="$VM_BAKE_ZONE"
gc compute images create "$IMAGE" --source-disk="$BUILDER" --source-disk-zone="$VM_BAKE_ZONE" \
  --family="$VM_IMAGE_FAMILY" --labels="kumo-runner-version=$version_dashed" \
  --description="Kumo runner VM: Debian 12, Docker, GitHub Actions runner $RUNNER_VERSION (install.sh $script_hash)"
gc compute instances delete "$BUILDER" --zone="$VM_BAKE_ZONE"
builder_created=0
note "image $IMAGE is the newest of family $VM_IMAGE_FAMILY"
