// Shared by the PyTorch engine's tests: the Python with torch (probed once), and the rule that
// decides whether a test without it is skipped (a developer machine) or fails (CI=true, where
// .ci/run installs Debian's python3-torch).
import assert from 'node:assert/strict';
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

/** A configuration of `nproc` CPU processes for the same global batch; the CLI flags that pick the engine. */
export function torchFlags(nproc: number): string[] {
  const found = requireTorch();
  return ['--engine', 'torch', '--nproc', String(nproc), '--python', found.executable];
}
