// The PyTorch side of bench/train.ts, made fair before it is measured: which python has torch,
// which BLAS it really loaded and with how many threads (bench/torch_env.py), every library's
// thread count pinned, and the reasons a figure is no baseline (a reference BLAS; more threads
// slower than one). `bash scripts/install-bench.sh` installs and selects what a fair run needs.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as v from 'valibot';
import type { TrainConfig } from '../src/shared/config';
import { REFERENCE_PY } from '../test/golden/make-fixtures';

const TORCH_ENV_PY = join(__dirname, 'torch_env.py');
/** Debian's python, where apt's python3-torch lives; a python3 earlier on PATH (pyenv) may lack torch. */
const DEBIAN_PYTHON = '/usr/bin/python3';
const INSTALL_HINT = 'run `bash scripts/install-bench.sh`';
/** PyTorch runs per row; its figure is the best of them (see benchTorch). */
export const TORCH_RUNS = 3;

/** `python3` on PATH where it imports torch, else Debian's /usr/bin/python3. */
export function torchPython(): string {
  const r = spawnSync('python3', ['-c', 'import torch'], { encoding: 'utf8', timeout: 60_000 });
  return !r.error && r.status === 0 ? 'python3' : DEBIAN_PYTHON;
}

/** Every thread pool PyTorch may use, pinned to `threads` (torch's own is set in the script). */
export function pinnedEnv(threads: number, waitPolicy?: 'PASSIVE'): NodeJS.ProcessEnv {
  const n = String(threads);
  const env: NodeJS.ProcessEnv = { ...process.env, OMP_NUM_THREADS: n, OPENBLAS_NUM_THREADS: n, MKL_NUM_THREADS: n };
  if (waitPolicy) env.OMP_WAIT_POLICY = waitPolicy;
  else delete env.OMP_WAIT_POLICY;
  return env;
}

/**
 * OpenMP's wait policy per run at `threads`. Under GOMP's default a thread spins at each barrier
 * before it sleeps: fastest on idle cores, but where other work holds a core the two threads
 * wait on each other for whole time slices (measured here: tiny at 2 threads 167 tok/s against
 * 2,173 at 1, load 15). PASSIVE sleeps at once. Multi-thread rows take the best of both, which
 * only makes the baseline stronger.
 */
function waitPolicies(threads: number): ('PASSIVE' | undefined)[] {
  return Array.from({ length: TORCH_RUNS }, (_, i) => (threads > 1 && i % 2 === 0 ? 'PASSIVE' : undefined));
}
/** A run slower than this gives no figure (a 2-thread run on busy cores can take many minutes). */
const RUN_TIMEOUT_MS = 150_000;

const TorchEnv = v.object({
  python: v.string(),
  torch: v.string(),
  blas_path: v.nullable(v.string()),
  blas_kind: v.string(),
  openblas: v.nullable(v.object({ config: v.string(), parallel: v.string(), threads: v.number() })),
  alternative: v.nullable(v.object({ name: v.string(), value: v.nullable(v.string()) })),
  torch_threads: v.number(),
  interop_threads: v.number(),
  aten_backend: v.nullable(v.string()),
  env: v.record(v.string(), v.nullable(v.string())),
});
export type TorchEnv = v.InferOutput<typeof TorchEnv>;

/** What `python` runs PyTorch with at `threads`, or why it cannot run it. */
export function probeTorch(python: string, threads: number): { env: TorchEnv } | { error: string } {
  const r = spawnSync(python, [TORCH_ENV_PY, String(threads)], {
    env: pinnedEnv(threads),
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (r.error) return { error: `${python} not usable (${r.error.message}); ${INSTALL_HINT}` };
  if (r.status !== 0) {
    const missing = /No module named '(\w+)'/.exec(r.stderr);
    return {
      error: missing
        ? `${missing[1]} is not installed for ${python}; ${INSTALL_HINT}`
        : `torch_env.py failed: ${lastLine(r.stderr)}`,
    };
  }
  const parsed = v.safeParse(TorchEnv, JSON.parse(lastLine(r.stdout) || '{}'));
  return parsed.success
    ? { env: parsed.output }
    : { error: `torch_env.py printed an unexpected report: ${parsed.issues[0].message}` };
}

/** The BLAS line: library, its threading, and where it came from. */
export function describeBlas(env: TorchEnv): string {
  const library = env.openblas ? `${env.openblas.config} (${env.openblas.parallel} threading)` : env.blas_kind;
  const alternative = env.alternative ? `; ${env.alternative.name} → ${env.alternative.value ?? 'unset'}` : '';
  return `pytorch ${env.torch} (${env.python}): BLAS ${library} at ${env.blas_path ?? 'none loaded'}${alternative}`;
}

/** The thread settings PyTorch runs with at one thread count. */
export function describeThreads(env: TorchEnv): string {
  const vars = Object.entries(env.env)
    .map(([k, value]) => `${k}=${value ?? 'unset'}`)
    .join(' ');
  const blasThreads = env.openblas ? `, OpenBLAS ${env.openblas.threads}` : '';
  return `torch threads ${env.torch_threads} (interop ${env.interop_threads}, ${env.aten_backend ?? '?'} backend${blasThreads}), ${vars}`;
}

/** Why this environment gives no baseline at `threads`, or '' when it does. */
export function unfairReason(env: TorchEnv, threads: number): string {
  if (env.blas_kind === 'reference') {
    return `PyTorch loaded the reference (netlib) BLAS ${env.blas_path}, about 20× slower than OpenBLAS: no ratio against it; ${INSTALL_HINT}`;
  }
  if (env.blas_kind === 'none') return 'PyTorch loaded no BLAS library that this bench recognises';
  if (env.torch_threads !== threads || (env.openblas !== null && env.openblas.threads !== threads)) {
    return `threads not pinned to ${threads} (torch ${env.torch_threads}, OpenBLAS ${env.openblas?.threads ?? '-'})`;
  }
  if (env.openblas?.parallel === 'pthread' && threads > 1) {
    return `OpenBLAS's pthread build beside torch's OpenMP threads oversubscribes the cores; ${INSTALL_HINT}`;
  }
  return '';
}

/** Runs reference.py bench once: tokens/s, or null with the reason. */
function runTorchOnce(
  python: string,
  configPath: string,
  threads: number,
  steps: number,
  waitPolicy?: 'PASSIVE',
): { tokPerS: number | null; note: string } {
  const args = [REFERENCE_PY, 'bench', '--config', configPath, '--threads', String(threads), '--steps', String(steps)];
  const r = spawnSync(python, args, { env: pinnedEnv(threads, waitPolicy), encoding: 'utf8', timeout: RUN_TIMEOUT_MS });
  if (r.error) {
    const timedOut = (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT';
    return {
      tokPerS: null,
      note: timedOut ? `a run took over ${RUN_TIMEOUT_MS / 1000} s` : `${python} not usable (${r.error.message})`,
    };
  }
  if (r.status !== 0) return { tokPerS: null, note: `reference.py failed: ${lastLine(r.stderr)}` };
  const out = JSON.parse(lastLine(r.stdout) || '{}') as { tok_per_s?: number; threads?: number };
  if (out.threads !== threads)
    return { tokPerS: null, note: `reference.py ran ${out.threads} torch threads, not ${threads}` };
  return { tokPerS: out.tok_per_s ?? null, note: '' };
}

/**
 * PyTorch's tokens/s: the best of TORCH_RUNS runs (each a median after warm-up; see waitPolicies).
 * Busy cores elsewhere slow a run, never speed it up, so the best run is the fairest baseline and
 * never flatters steelscope. A run that fails or times out leaves the others' best.
 */
export function benchTorch(
  python: string,
  config: TrainConfig,
  threads: number,
  steps: number,
): { tokPerS: number | null; note: string; runs: string } {
  const dir = mkdtempSync(join(tmpdir(), 'steelscope-bench-'));
  try {
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
    let best: number | null = null;
    let note = '';
    const runs: string[] = [];
    for (const policy of waitPolicies(threads)) {
      const run = runTorchOnce(python, join(dir, 'config.json'), threads, steps, policy);
      if (run.tokPerS === null) note = run.note;
      else best = Math.max(best ?? 0, run.tokPerS);
      const figure = run.tokPerS === null ? run.note : `${Math.round(run.tokPerS)} tok/s`;
      runs.push(threads > 1 ? `${policy ?? 'default'} ${figure}` : figure);
    }
    return { tokPerS: best, note: best === null ? note : '', runs: runs.join(', ') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Why PyTorch's figure at `threads` is no baseline given its 1-thread figure: more threads slower
 * than one means its threads fought each other or other work for the cores.
 */
export function slowerThanOneThread(threads: number, tokPerS: number, oneThread: number | undefined): string {
  if (threads <= 1 || oneThread === undefined || tokPerS >= oneThread) return '';
  return `PyTorch at ${threads} threads (${Math.round(tokPerS)} tok/s) was slower than at 1 (${Math.round(oneThread)} tok/s): its threads were oversubscribed or the machine busy, so this is no baseline`;
}

function lastLine(text: string): string {
  return text.trim().split('\n').pop() ?? '';
}
