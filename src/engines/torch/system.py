"""system.jsonl (optional file of format 1; the format is declared in src/shared/system.ts): one record
at start and every 10 s with this process's CPU % and RSS, the host's memory, and per GPU what
nvidia-smi reports (util %, memory used/total, power, temperature) where it exists. A daemon thread on
rank 0: nothing here runs in the step loop, nvidia-smi has a time limit, and a failure leaves fields out
(or ends the thread), never the run. Linux /proc where it exists, resource.getrusage elsewhere."""
import os
import re
import resource
import subprocess
import threading
import time

INTERVAL_S = 10
NVIDIA_SMI_ARGS = ["--query-gpu=index,name,utilization.gpu,memory.used,memory.total,power.draw,temperature.gpu",
                   "--format=csv,noheader,nounits"]
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_MIB_TO_GB = 1024 * 1024 / 1e9


def interval_s(env=None):
    """STEELSCOPE_SYSTEM_INTERVAL_MS (for tests only) or the format's 10 s."""
    try:
        asked = float((env if env is not None else os.environ).get("STEELSCOPE_SYSTEM_INTERVAL_MS", ""))
    except ValueError:
        return INTERVAL_S
    return asked / 1000 if asked >= 100 else INTERVAL_S


def _number(cell):
    """A cell as a number; "[N/A]", "[Not Supported]" and anything else that is not one: None."""
    text = cell.strip()
    return None if not _NUMBER.match(text) else (int(text) if "." not in text else float(text))


def parse_nvidia_smi_csv(text):
    """The rows of nvidia-smi's --format=csv,noheader,nounits answer to NVIDIA_SMI_ARGS, as
    parseNvidiaSmiCsv in src/shared/system.ts reads them: the index from the front, five numbers from
    the end (nvidia-smi quotes nothing), the name in between; memory MiB → GB (1e9); no rows from
    anything else."""
    gpus = []
    for line in text.splitlines():
        cells = line.split(",")
        if len(cells) < 7:
            continue
        index = _number(cells[0])
        if not isinstance(index, int) or index < 0:
            continue
        util, used, total, power, temp = (_number(c) for c in cells[-5:])
        gpu = {"index": index, "name": ",".join(cells[1:-5]).strip()}
        for key, value in (("util_pct", util),
                           ("mem_used_gb", None if used is None else round(used * _MIB_TO_GB, 3)),
                           ("mem_total_gb", None if total is None else round(total * _MIB_TO_GB, 3)),
                           ("power_w", power), ("temp_c", temp)):
            if value is not None:
                gpu[key] = value
        gpus.append(gpu)
    return gpus


def gpu_fields(gpus):
    """The flat fields of system.jsonl: gpu<index>/<field>."""
    return {f"gpu{g['index']}/{key}": value for g in gpus for key, value in g.items() if key != "index"}


def query_gpus(timeout_s=5):
    """(fields, missing): nvidia-smi's rows; none when it fails or times out; missing when not installed."""
    try:
        done = subprocess.run(["nvidia-smi", *NVIDIA_SMI_ARGS], capture_output=True, text=True, timeout=timeout_s)
    except FileNotFoundError:
        return {}, True
    except (OSError, subprocess.SubprocessError):
        return {}, False
    return (gpu_fields(parse_nvidia_smi_csv(done.stdout)) if done.returncode == 0 else {}), False


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
        return (info["MemTotal"] - info["MemAvailable"]) * 1024 / 1e9, info["MemTotal"] * 1024 / 1e9
    except (OSError, KeyError, ValueError, IndexError):
        return None, None


def start_sampler(writer, current_step):
    """Starts the thread (the first record at once, measuring CPU since the process started); it ends
    with the process, or when a record cannot be written."""
    interval = interval_s()

    def loop():
        started = time.monotonic()
        age = _process_age_s()
        last_cpu, last_wall = (0.0, started - age) if age is not None else (time.process_time(), started)
        nvidia_smi = True
        while True:
            t = int(time.time() * 1000)
            cpu, wall = time.process_time(), time.monotonic()
            record = {"t": t, "step": current_step(),
                      "cpu_pct": round(100 * (cpu - last_cpu) / max(wall - last_wall, 1e-3), 1),
                      "rss_gb": round(_rss_gb(), 3)}
            last_cpu, last_wall = cpu, wall
            used, total = _host_memory_gb()
            if used is not None:
                record.update(host_mem_used_gb=round(used, 3), host_mem_total_gb=round(total, 3))
            if nvidia_smi:
                fields, missing = query_gpus()
                nvidia_smi = not missing
                record.update(fields)
            try:
                writer.append("system.jsonl", record)
            except OSError:
                return
            # The next multiple of the interval still ahead: a late record does not push the others back.
            now = time.monotonic()
            time.sleep(started + (int((now - started) / interval) + 1) * interval - now)

    threading.Thread(target=loop, name="steelscope-system", daemon=True).start()


def _process_age_s():
    """Seconds since this process started, from /proc where it exists; else None."""
    try:
        with open("/proc/self/stat", "r") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime", "r") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None
