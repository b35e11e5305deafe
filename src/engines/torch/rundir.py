"""Writes the run directory, format 1 (src/shared/run.ts), as src/core/train/rundir.ts does:
run.json replaced atomically, JSONL files appended one whole line per write. Rank 0 only."""
import datetime
import json
import math
import os
import time


def iso_now():
    """The instant as JavaScript's Date.toISOString writes it."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def now_ms():
    return int(time.time() * 1000)


def write_file_atomic(path, data):
    """Temp file, fsync, rename: readers see the old or the new file, never a mix."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def encode_metric(value):
    """JSON has no NaN or Infinity: run.ts encodeMetric writes them as strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


def read_run_info(run_dir):
    path = os.path.join(run_dir, "run.json")
    try:
        with open(path, "r", encoding="utf-8") as f:
            info = json.load(f)
    except (OSError, ValueError) as err:
        raise ValueError(f"{path} is missing or not valid JSON ({err}). Is {run_dir} a steelscope run directory?")
    if not isinstance(info, dict) or info.get("format") != "steelscope.run/1":
        raise ValueError(f"{path} is not a steelscope.run/1 file.")
    return info


OPTIONAL_FIELDS = ("slurm_job_id",)


class RunWriter:
    def __init__(self, run_dir, info):
        self.dir = run_dir
        self.info = info

    def update(self, **patch):
        self.info.update(patch)
        # Optional fields patched to None are left out (run.json's schema has no null for them).
        for key in OPTIONAL_FIELDS:
            if key in self.info and self.info[key] is None:
                del self.info[key]
        write_file_atomic(os.path.join(self.dir, "run.json"), json.dumps(self.info, indent=2) + "\n")

    def metric(self, record):
        line = {"step": record["step"], "t": now_ms()}
        for key, value in record.items():
            if key != "step":
                line[key] = encode_metric(value)
        self.append("metrics.jsonl", line)

    def evals(self, records):
        """evals.jsonl records (src/shared/eval.ts EvalRecord), non-finite numbers as run.ts writes them."""
        for record in records:
            self.append("evals.jsonl", {key: encode_metric(value) for key, value in record.items()})

    def sample(self, record):
        self.append("samples.jsonl", {**record, "t": now_ms()})

    def event(self, step, kind, level, message, **detail):
        record = {**detail, "step": step, "t": now_ms(), "kind": kind, "level": level, "message": message}
        self.append("events.jsonl", record)

    def append(self, name, record):
        # One write(2) of a whole line (O_APPEND), so a reader never sees half a record for long.
        line = (json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n").encode()
        fd = os.open(os.path.join(self.dir, name), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
