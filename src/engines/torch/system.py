"""system.jsonl (optional file of format 1): every 10 s this process's CPU % and RSS, the host's
memory, and on CUDA the allocated GPU memory. A daemon thread on rank 0; Linux /proc where it
exists, resource.getrusage elsewhere."""
import os
import resource
import threading
import time

import torch

INTERVAL_S = 10


def _rss_gb():
    try:
        with open("/proc/self/statm", "r") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e9
    except OSError:  # macOS: the peak (bytes there), the best it offers without psutil
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e9


def _host_memory_gb():
    try:
        with open("/proc/meminfo", "r") as f:
            info = {line.split(":")[0]: int(line.split()[1]) for line in f}
        return (info["MemTotal"] - info["MemAvailable"]) / 1e6, info["MemTotal"] / 1e6
    except (OSError, KeyError, ValueError):
        return None, None


def start_sampler(writer, current_step, device):
    """Starts the thread; it stops with the process."""
    def loop():
        last_cpu, last_wall = time.process_time(), time.monotonic()
        while True:
            time.sleep(INTERVAL_S)
            cpu, wall = time.process_time(), time.monotonic()
            record = {"step": current_step(), "cpu_percent": round(100 * (cpu - last_cpu) / (wall - last_wall), 1),
                      "rss_gb": round(_rss_gb(), 3)}
            last_cpu, last_wall = cpu, wall
            used, total = _host_memory_gb()
            if used is not None:
                record.update(host_mem_used_gb=round(used, 3), host_mem_total_gb=round(total, 3))
            if device.type == "cuda":
                record["gpu_mem_gb"] = round(torch.cuda.memory_allocated(device) / 1e9, 3)
            try:
                writer.append("system.jsonl", {"t": int(time.time() * 1000), **record})
            except OSError:
                return

    threading.Thread(target=loop, name="steelscope-system", daemon=True).start()
