#!/usr/bin/env bash
# GPU check of the PyTorch engine: trains `small` and `base-100m` (~98M parameters) for a few
# hundred steps on 1 GPU and on all GPUs, each with the same per-GPU batch, and prints tokens/s,
# MFU, peak memory (rank 0) and the final loss. Needs NVIDIA GPUs, a python3 with torch and a
# built checkout (npm ci && npm run build); no network (the default corpus is in dist/corpus).
#
#   bash scripts/gpu-check.sh [--steps N] [--python PATH] [--keep] [--dry-run]
#
# --dry-run: the same runs on this CPU (1 and 2 processes, 3 steps, short sequences): checks the
# script's own logic where there is no GPU. --keep: leave the run folders (printed) in place.
set -euo pipefail

steps=300
python="${STEELSCOPE_PYTHON:-python3}"
keep=0
dry=0
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) steps="${2:?--steps needs a number}"; shift 2 ;;
    --python) python="${2:?--python needs a path}"; shift 2 ;;
    --keep) keep=1; shift ;;
    --dry-run) dry=1; shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "gpu-check: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$steps" in ''|*[!0-9]*) echo "gpu-check: --steps must be a whole number, got '$steps'" >&2; exit 2 ;; esac

root="$(cd "$(dirname "$0")/.." && pwd)"
cli="$root/dist/cli.js"
[ -f "$cli" ] || { echo "gpu-check: $cli is missing: run 'npm ci && npm run build' in $root first." >&2; exit 1; }
command -v node >/dev/null || { echo "gpu-check: node is not on PATH (Node 20+ is needed)." >&2; exit 1; }
command -v "$python" >/dev/null || { echo "gpu-check: '$python' not found; name a python3 with torch with --python." >&2; exit 1; }

# What torch sees: version, CUDA, GPU count and names (one line of JSON).
probe="$("$python" -c '
import json, torch
cuda = torch.cuda.is_available()
n = torch.cuda.device_count() if cuda else 0
print(json.dumps({"torch": torch.__version__, "cuda": torch.version.cuda if cuda else None, "n": n,
                  "names": [torch.cuda.get_device_name(i) for i in range(n)]}))
' 2>&1)" || { echo "gpu-check: $python cannot import torch: ${probe##*$'\n'}" >&2; exit 1; }
gpus="$(node -e 'console.log(JSON.parse(process.argv[1]).n)' "$probe")"
echo "gpu-check: $(node -e 'const p = JSON.parse(process.argv[1]);
  console.log(`PyTorch ${p.torch} · CUDA ${p.cuda ?? "none"} · ${p.n} GPU(s)${p.n ? ": " + p.names.join(", ") : ""}`)' "$probe")"

presets=(small base-100m)
extra=()
if [ "$dry" = 1 ]; then
  counts=(1 2)
  steps=3
  extra=(--set seq_len=64 --set eval_every=0 --set sample_every=0)
  echo "gpu-check: dry run on the CPU (1 and 2 processes, $steps steps, seq_len 64)"
elif [ "$gpus" -lt 1 ]; then
  echo "gpu-check: no NVIDIA GPU visible to torch (torch.cuda.is_available() is false); check nvidia-smi," >&2
  echo "  the driver, CUDA_VISIBLE_DEVICES and that this torch is a CUDA build. Nothing was run." >&2
  exit 1
elif [ "$gpus" -eq 1 ]; then
  counts=(1)
else
  counts=(1 "$gpus")
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/steelscope-gpu-check.XXXXXX")"
[ "$keep" = 1 ] || trap 'rm -rf "$work"' EXIT

# Per-GPU batch of each preset; a run on N processes trains N times that batch (weak scaling).
per_batch() { case "$1" in small) echo 8 ;; *) echo 16 ;; esac; }

# One summary line from metrics.jsonl: median tokens/s and MFU over the second half of the train
# records (after warm-up and compilation), the peak memory, and the last loss.
summarize() {
  node -e '
const lines = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean);
const train = lines.map((l) => { try { return JSON.parse(l); } catch { return null; } })
  .filter((r) => r && (r.kind ?? "train") === "train" && typeof r.loss === "number");
if (train.length === 0) { console.log("no train records"); process.exit(0); }
const late = train.slice(Math.floor(train.length / 2));
const median = (xs) => { const s = xs.filter(Number.isFinite).sort((a, b) => a - b); return s.length ? s[Math.floor(s.length / 2)] : NaN; };
const tok = median(late.map((r) => r.tok_per_s));
const mfu = median(late.map((r) => r.mfu ?? NaN));
const mem = Math.max(...train.map((r) => r.gpu_mem_gb ?? NaN).filter(Number.isFinite), -Infinity);
const last = train[train.length - 1];
const f = (x, d) => (Number.isFinite(x) ? x.toFixed(d) : "n/a");
console.log([`${Math.round(tok).toLocaleString("en-US")} tok/s`, `MFU ${Number.isFinite(mfu) ? (mfu * 100).toFixed(1) + "%" : "n/a"}`,
  `peak mem ${Number.isFinite(mem) ? mem.toFixed(2) + " GB" : "n/a"}`, `loss ${f(last.loss, 4)} at step ${last.step}`].join(" | "));
' "$1"
}

status=0
results=()
for preset in "${presets[@]}"; do
  for n in "${counts[@]}"; do
    batch=$(( $(per_batch "$preset") * n ))
    dir="$work/$preset-$n"
    echo "gpu-check: $preset on $n process(es), batch $batch, $steps steps → $dir"
    if node "$cli" train --engine torch --nproc "$n" --python "$python" --preset "$preset" --data default \
      --run-dir "$dir" --steps "$steps" --set "batch_size=$batch" --set "checkpoint_every=$steps" \
      ${extra[@]+"${extra[@]}"} >"$work/$preset-$n.log" 2>&1; then
      line="$(summarize "$dir/metrics.jsonl")"
    else
      line="FAILED (exit $?): $(tail -n 3 "$work/$preset-$n.log" | tr '\n' ' ')"
      status=1
    fi
    results+=("$(printf '%-10s %2s proc  %s' "$preset" "$n" "$line")")
    echo "  ${results[-1]}"
  done
done

echo
echo "gpu-check summary ($steps steps; tokens/s counts all processes; memory is rank 0's peak allocated):"
printf '  %s\n' "${results[@]}"
[ "$keep" = 1 ] && echo "gpu-check: run folders and logs kept in $work"
exit "$status"
