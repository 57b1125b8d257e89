#!/usr/bin/env bash
# Kumo runner image: the install script. runner/vm/bake-image.sh starts a Debian 12 builder VM
# with this as its startup script; it installs Docker and the pinned GitHub Actions runner,
# then reports through a guest attribute (kumo/bake = ok | failed: …). bake-image.sh then stops
# the builder, makes an image of its disk (family kumo-runner) and deletes it. Runner VMs boot
# from that image, so no boot downloads the ~200 MB runner or installs Docker again.
#
# The builder's metadata gives the runner version (kumo-runner-version, the tag of
# runner/Dockerfile's base image). This script changes only the builder's disk.
set -Eeuo pipefail

METADATA_URL="http://metadata.google.internal/computeMetadata/v1"
RUNNER_HOME=/home/runner
MARKER=/etc/kumo-runner-image

log() { printf 'kumo-bake: %s\n' "$*"; }
metadata() { curl -fsS --retry 5 --retry-connrefused -H 'Metadata-Flavor: Google' "$METADATA_URL/$1"; }
report() {
  curl -fsS -X PUT --data "$1" -H 'Metadata-Flavor: Google' \
    "$METADATA_URL/instance/guest-attributes/kumo/bake" >/dev/null || log "could not report '$1'"
}
on_exit() {
  local rc=$?
  if [[ $rc != 0 ]]; then
    log "failed (exit $rc) at line ${failed_line:-?}"
    report "failed: exit $rc at line ${failed_line:-?}"
    # Nothing to keep running for; bake-image.sh deletes the builder.
    poweroff || true
  fi
}
failed_line=""
trap 'failed_line=$LINENO' ERR
trap on_exit EXIT

if [[ -f $MARKER ]]; then
  # The builder rebooted after a complete install: say so again.
  log "already installed: $(cat "$MARKER")"
  report ok
  exit 0
fi

RUNNER_VERSION="$(metadata instance/attributes/kumo-runner-version)"
[[ $RUNNER_VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || {
  log "kumo-runner-version '$RUNNER_VERSION' is not x.y.z"
  exit 1
}
ARCH="$(dpkg --print-architecture)"
case $ARCH in
amd64) RUNNER_ARCH=x64 ;;
arm64) RUNNER_ARCH=arm64 ;;
*)
  log "unsupported architecture $ARCH"
  exit 1
  ;;
esac
log "installing Docker and runner $RUNNER_VERSION ($RUNNER_ARCH)"

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# The tools runner/Dockerfile's image has (git, curl, jq, unzip, ca-certificates) plus what it
# adds (zstd for actions/cache, zip, xz-utils, openssh-client), and sudo for jobs.
apt-get install -y -q --no-install-recommends ca-certificates curl gnupg git jq unzip zip \
  xz-utils zstd openssh-client sudo

# Docker Engine from Docker's repository: buildx and compose v2, which workflows expect.
install -m 0755 -d /etc/apt/keyrings
curl -fsSL https://download.docker.com/linux/debian/gpg -o /etc/apt/keyrings/docker.asc
chmod a+r /etc/apt/keyrings/docker.asc
# shellcheck source=/dev/null
codename="$(. /etc/os-release && printf '%s' "$VERSION_CODENAME")"
printf 'deb [arch=%s signed-by=/etc/apt/keyrings/docker.asc] https://download.docker.com/linux/debian %s stable\n' \
  "$ARCH" "$codename" >/etc/apt/sources.list.d/docker.list
apt-get update -q
apt-get install -y -q docker-ce docker-ce-cli containerd.io docker-buildx-plugin docker-compose-plugin
# Google's VPC MTU is 1460 by default; Docker's bridges default to 1500, and oversized packets
# from containers then stall (TLS handshakes hang). Both the default bridge and the networks
# the runner creates for service containers get 1460.
install -m 0755 -d /etc/docker
cat >/etc/docker/daemon.json <<'JSON'
{
  "mtu": 1460,
  "default-network-opts": { "bridge": { "com.docker.network.driver.mtu": "1460" } }
}
JSON
systemctl enable docker.service containerd.service

# Nothing may hold the dpkg lock when a job runs `sudo apt-get install`: no unattended
# upgrades on a VM that lives for one job.
systemctl disable --now apt-daily.timer apt-daily-upgrade.timer || true
apt-get purge -y -q unattended-upgrades || true

# The runner user: as in GitHub's runner image (uid 1001 when free), passwordless sudo, docker.
if ! id runner >/dev/null 2>&1; then
  useradd --create-home --home-dir "$RUNNER_HOME" --shell /bin/bash --uid 1001 runner ||
    useradd --create-home --home-dir "$RUNNER_HOME" --shell /bin/bash runner
fi
usermod -aG docker runner
printf 'runner ALL=(ALL) NOPASSWD:ALL\n' >/etc/sudoers.d/runner
chmod 0440 /etc/sudoers.d/runner
visudo -cf /etc/sudoers.d/runner

# The runner, verified against the SHA-256 GitHub publishes for the release asset.
asset="actions-runner-linux-$RUNNER_ARCH-$RUNNER_VERSION.tar.gz"
release="$(curl -fsSL --retry 5 "https://api.github.com/repos/actions/runner/releases/tags/v$RUNNER_VERSION")"
sha="$(jq -r --arg a "$asset" '.assets[] | select(.name == $a) | .digest // empty' <<<"$release")"
sha="${sha#sha256:}"
if [[ ! $sha =~ ^[0-9a-f]{64}$ ]]; then
  # Older releases: the digests are in the release notes between markers.
  sha="$(jq -r '.body' <<<"$release" | grep -o "BEGIN SHA linux-$RUNNER_ARCH -->[0-9a-f]\{64\}" |
    grep -o '[0-9a-f]\{64\}' | head -n 1 || true)"
fi
[[ $sha =~ ^[0-9a-f]{64}$ ]] || {
  log "no published SHA-256 for $asset; refusing to install an unverified runner"
  exit 1
}
curl -fsSL --retry 5 -o "/tmp/$asset" \
  "https://github.com/actions/runner/releases/download/v$RUNNER_VERSION/$asset"
printf '%s  %s\n' "$sha" "/tmp/$asset" | sha256sum -c -
tar -xzf "/tmp/$asset" -C "$RUNNER_HOME"
rm -f "/tmp/$asset"
chown -R runner:runner "$RUNNER_HOME"
"$RUNNER_HOME/bin/installdependencies.sh"
[[ -x $RUNNER_HOME/run.sh ]]

# An image, not this builder: each VM made from it gets its own machine id, and the guest
# agent gives each instance new SSH host keys.
apt-get clean
rm -rf /var/lib/apt/lists/*
truncate -s 0 /etc/machine-id
journalctl --rotate >/dev/null 2>&1 || true
journalctl --vacuum-time=1s >/dev/null 2>&1 || true
printf 'runner %s, baked %s\n' "$RUNNER_VERSION" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$MARKER"
sync

log "done: runner $RUNNER_VERSION, $(docker --version)"
report ok
