#!/usr/bin/env bash
# What `npm run bench:train` needs for a fair PyTorch baseline, on Debian/Ubuntu: Debian's torch and
# numpy, and OpenBLAS's OpenMP build selected as the system BLAS (libblas.so.3 / liblapack.so.3).
# A fresh python3-torch runs on the reference (netlib) BLAS, about 20× slower, and OpenBLAS's
# pthread build oversubscribes the cores next to torch's own OpenMP threads; the OpenMP build
# shares torch's thread pool. Idempotent: installs only what is missing, then selects the library.
set -euo pipefail

packages=(python3-torch python3-numpy libopenblas0-openmp)
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo -n)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-bench: installing ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

triplet=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo "$(uname -m)-linux-gnu")
for lib in libblas.so.3 liblapack.so.3; do
  target="/usr/lib/$triplet/openblas-openmp/$lib"
  current=$(update-alternatives --query "$lib-$triplet" | sed -n 's/^Value: //p')
  if [ "$current" != "$target" ]; then
    "${sudo[@]}" update-alternatives --set "$lib-$triplet" "$target"
  fi
  echo "install-bench: $lib -> $target"
done

# The bench runs Debian's python (a python3 earlier on PATH may lack torch).
/usr/bin/python3 -c 'import numpy, torch; print(f"install-bench: torch {torch.__version__}, numpy {numpy.__version__} for /usr/bin/python3")'
