#!/usr/bin/env bash
# Installs what the PyTorch engine's tests and `npm run bench:train` need on a fresh Debian machine,
# idempotent (a second run does nothing): Debian's python3-torch (1.13) and python3-numpy,
# python3-protobuf and python3-crcmod (test/formats/write_tfevents.py writes the event-file
# fixtures), and OpenBLAS's OpenMP build selected as libblas.so.3 and liblapack.so.3: with Debian's
# reference BLAS a CPU step of `small` takes minutes, not seconds, and OpenBLAS's pthread build
# oversubscribes the cores next to torch's own OpenMP threads
# (/work/shared/notes/gpu-clusters-formats.md, tfjs-on-this-machine.md).
set -euo pipefail
. "$(dirname "$0")/lib/apt.sh"

apt_install_missing install-torch python3-torch python3-numpy libopenblas0-openmp python3-protobuf python3-crcmod
arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo "$(uname -m)-linux-gnu")
for lib in libblas.so.3 liblapack.so.3; do
  openblas="/usr/lib/$arch/openblas-openmp/$lib"
  if [ -e "$openblas" ] && [ "$(readlink -f "/etc/alternatives/$lib-$arch" 2>/dev/null)" != "$openblas" ]; then
    printf 'install-torch: selecting %s as %s\n' "$openblas" "$lib" >&2
    "${SUDO[@]}" update-alternatives --set "$lib-$arch" "$openblas"
  fi
done
# The engine's tests and the bench run Debian's python (a python3 earlier on PATH may lack torch).
/usr/bin/python3 -c 'import numpy, torch; print(f"install-torch: torch {torch.__version__}, numpy {numpy.__version__} for /usr/bin/python3")' >&2
