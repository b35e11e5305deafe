// Start Training with the PyTorch engine in a real VS Code: the engine step finds this machine's
// torch, 1 process on the CPU, the run shows `running`, loss points arrive, Stop stops it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TORCH_SKIP } from '../torch';
import { e2eSkip, lossPointsGrow, runWithStatus, startTraining, stopRun, withVSCode } from './harness';

const RUN = 'e2e-torch-run';

test(
  'Start Training → engine PyTorch → running, loss points arrive, Stop',
  { skip: e2eSkip() || TORCH_SKIP, timeout: 420_000 },
  async () => {
    await withVSCode({ name: 'torch-training' }, async (vs) => {
      await vs.openWorkbench();
      await startTraining(vs, { engine: 'pytorch', processes: /1 process/, steps: 100000, name: RUN });

      const dash = await vs.webviewWhenOpen(RUN, 180_000);
      const { first, later } = await lossPointsGrow(dash);
      assert.ok(later > first, `loss points arrive (${first} → ${later})`);
      await runWithStatus(vs, RUN, /running/);
      await vs.screenshot('torch-running');

      await stopRun(vs, RUN, 180_000);
      await vs.screenshot('torch-stopped');
    });
  },
);
