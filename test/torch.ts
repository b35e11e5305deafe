// Shared by the PyTorch engine's tests: the Python with torch (probed once), and the rule that
// decides whether a test without it is skipped (a developer machine) or fails (CI=true, where
// .ci/run installs Debian's python3-torch).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { findTorch, type TorchFound } from '../src/shared/node/python';

const probe = findTorch();
const IN_CI = process.env.CI === 'true';

/** The `skip` option of a torch test: a message without torch (false under CI, where the test then fails). */
export const TORCH_SKIP: string | false = 'found' in probe || IN_CI ? false : `no PyTorch here (${probe.reason})`;

/** The probed torch; fails the test when there is none (only reached under CI). */
export function requireTorch(): TorchFound {
  if ('reason' in probe) assert.fail(`CI=true needs PyTorch for the torch engine's tests: ${probe.reason}`);
  return probe.found;
}

/** The Python that has torch, for --python. */
export const torchPython = (): string => requireTorch().executable;

/** The CLI flags that train on the torch engine with `nproc` processes. */
export function torchFlags(nproc: number): string[] {
  return ['--engine', 'torch', '--nproc', String(nproc), '--python', torchPython()];
}

/** Pids of this user's processes whose command line mentions `text` (a run folder: the supervisor, torchrun, its ranks). */
export function processesMentioning(text: string, env?: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8');
      if (!cmdline.includes(text)) continue;
      if (env !== undefined && !readFileSync(`/proc/${name}/environ`, 'utf8').split('\0').includes(env)) continue;
      pids.push(Number(name));
    } catch {
      // gone meanwhile, or not ours
    }
  }
  return pids;
}
