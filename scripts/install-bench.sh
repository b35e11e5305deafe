#!/usr/bin/env bash
# What `npm run bench:train` needs for a fair PyTorch baseline: the same as the PyTorch engine's
# tests (Debian's torch and numpy, OpenBLAS's OpenMP build as the system BLAS); see install-torch.sh.
set -euo pipefail
exec bash "$(dirname "$0")/install-torch.sh"
