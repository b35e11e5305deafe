#!/usr/bin/env bash
# Installs what the PyTorch engine's tests need on a fresh Debian machine, idempotent (a second
# run does nothing): Debian's python3-torch (1.13) and python3-numpy, python3-protobuf and python3-crcmod
# (test/formats/write_tfevents.py writes the event-file fixtures), and OpenBLAS (OpenMP build)
# selected as libblas: with Debian's reference BLAS a CPU step of `small` takes minutes, not seconds
# (/work/shared/notes/gpu-clusters-formats.md).
set -euo pipefail

log() { printf 'install-torch: %s\n' "$*" >&2; }

wanted=(python3-torch python3-numpy libopenblas0-openmp python3-protobuf python3-crcmod)
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
arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
openblas="/usr/lib/$arch/openblas-openmp/libblas.so.3"
if [ -e "$openblas" ] && [ "$(readlink -f "/etc/alternatives/libblas.so.3-$arch" 2>/dev/null)" != "$openblas" ]; then
  log "selecting $openblas as libblas.so.3"
  "${sudo[@]}" update-alternatives --set "libblas.so.3-$arch" "$openblas"
fi
/usr/bin/python3 -c 'import torch; print("install-torch: torch", torch.__version__)' >&2
