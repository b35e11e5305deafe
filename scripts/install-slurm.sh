#!/usr/bin/env bash
# Installs what the Slurm tests need on a fresh Debian machine, idempotent: Debian's slurm-wlm
# (slurmctld, slurmd and the client commands) and munge (Slurm's authentication), and a munge key
# when there is none. Nothing is started here: scripts/slurm-test-cluster.sh starts a one-node
# cluster for a test and stops it again (no systemd in CI containers).
set -euo pipefail

log() { printf 'install-slurm: %s\n' "$*" >&2; }

wanted=(slurm-wlm munge)
missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
sudo=(); [ "$(id -u)" -eq 0 ] || sudo=(sudo -n)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if [ ! -s /etc/munge/munge.key ]; then
  log 'creating /etc/munge/munge.key'
  "${sudo[@]}" sh -c 'mkdir -p /etc/munge && dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=128 2>/dev/null &&
    chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key'
fi
log "$(slurmctld -V)"
