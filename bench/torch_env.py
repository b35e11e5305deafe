"""What PyTorch runs with, for bench/train.ts: the BLAS library it actually loaded and its threads.

    python3 bench/torch_env.py      (run with the same environment as the bench's PyTorch runs)

Prints one JSON object. The library is read from /proc/self/maps after a matrix product, not
from the libblas.so.3 alternative alone: what is mapped is what runs.
"""
import ctypes
import json
import os
import subprocess
import sys
import sysconfig

import torch


def mapped(names):
    with open("/proc/self/maps", encoding="utf-8") as f:
        paths = {line.split()[-1] for line in f if "/" in line}
    return sorted(p for p in paths if any(n in os.path.basename(p) for n in names))


def openblas_info(path):
    """OpenBLAS's own build string, threading model and thread count, or None for another BLAS."""
    try:
        lib = ctypes.CDLL(path)
        get_config = lib.openblas_get_config
    except (OSError, AttributeError):
        return None
    get_config.restype = ctypes.c_char_p
    parallel = {0: "sequential", 1: "pthread", 2: "openmp"}.get(lib.openblas_get_parallel(), "unknown")
    return {"config": get_config().decode(), "parallel": parallel, "threads": lib.openblas_get_num_threads()}


def kind_of(path, openblas):
    if openblas is not None:
        return "openblas"
    real = os.path.realpath(path)
    for name in ("blis", "mkl", "atlas"):
        if name in real:
            return name
    # Debian's reference (netlib) BLAS lives in .../blas/libblas.so.3.
    return "reference" if "/blas/" in real else "unknown"


def alternative():
    name = "libblas.so.3-" + (sysconfig.get_config_var("MULTIARCH") or "x86_64-linux-gnu")
    try:
        out = subprocess.run(["update-alternatives", "--query", name], capture_output=True, text=True).stdout
    except OSError:
        return None
    value = [line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Value:")]
    return {"name": name, "value": value[0] if value else None}


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    torch.set_num_threads(threads)
    a = torch.randn(128, 128)
    (a @ a).sum().item()  # loads the BLAS
    blas = mapped(["libblas.so", "libopenblas", "libmkl", "libblis"])
    path = next((p for p in blas if "libblas.so" in p), blas[0] if blas else None)
    openblas = openblas_info(path) if path else None
    backend = [l.split(":", 1)[1].strip() for l in torch.__config__.parallel_info().splitlines() if l.startswith("ATen parallel backend")]
    print(json.dumps({
        "python": sys.executable,
        "torch": torch.__version__,
        "blas_path": os.path.realpath(path) if path else None,
        "blas_kind": kind_of(path, openblas) if path else "none",
        "openblas": openblas,
        "alternative": alternative(),
        "torch_threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "aten_backend": backend[0] if backend else None,
        "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")},
    }))


if __name__ == "__main__":
    main()
