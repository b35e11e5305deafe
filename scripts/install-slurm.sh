#!/usr/bin/env bash
# Installs what the Slurm tests need on a fresh Debian machine, idempotent: Debian's slurm-wlm
# (slurmctld, slurmd and the client commands) and munge (Slurm's authentication), and a munge key
# when there is none. Nothing is started here: scripts/slurm-test-cluster.sh starts a one-node
# cluster for a test and stops it again (no systemd in CI containers).
set -euo pipefail
. "$(dirname "$0")/lib/apt.sh"

log() { printf 'install-slurm: %s\n' "$*" >&2; }

apt_install_missing install-slurm slurm-wlm munge
if [ ! -s /etc/munge/munge.key ]; then
  log 'creating /etc/munge/munge.key'
  "${SUDO[@]}" sh -c 'mkdir -p /etc/munge && dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=128 2>/dev/null &&
    chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key'
fi
log "$(slurmctld -V)"
