// Start Training with the PyTorch engine in a real VS Code: the engine step finds this machine's
// torch, 1 process on the CPU, the run shows `running`, loss points arrive, Stop stops it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TORCH_SKIP } from '../torch';
import { e2eSkip, eventually, withVSCode } from './harness';

const RUN = 'e2e-torch-run';

test(
  'Start Training → engine PyTorch → running, loss points arrive, Stop',
  { skip: e2eSkip() || TORCH_SKIP, timeout: 420_000 },
  async () => {
    await withVSCode({ name: 'torch-training' }, async (vs) => {
      await vs.openWorkbench();
      await vs.runCommand('Steelscope: Start Training…');
      await vs.pickItem(/This machine/);
      await vs.pickItem(/PyTorch/);
      await vs.pickItem(/1 process/);
      await vs.pickItem('tiny');
      await vs.pickItem(/Classical Chinese poetry/);
      await vs.typeInput('100000', /steps/);
      await vs.typeInput(RUN, /run name/);

      const dash = await eventually(
        async () => vs.frameOfWebview(RUN).catch(() => undefined),
        (f) => f !== undefined,
        180_000,
      );
      assert.ok(dash);
      const lossPoints = async () =>
        Number(
          (await dash
            .locator('canvas[data-chart="loss"]')
            .getAttribute('data-points', { timeout: 5_000 })
            .catch(() => null)) ?? '0',
        );
      const first = await eventually(lossPoints, (n) => n >= 2, 180_000);
      const later = await eventually(lossPoints, (n) => n > first, 120_000);
      assert.ok(later > first, `loss points arrive (${first} → ${later})`);
      const rows = () => vs.treeItems('Steelscope', 'Runs', 0);
      await eventually(
        rows,
        (r) => r.some((row) => row.label === RUN && /running/.test(row.description ?? '')),
        120_000,
      );
      await vs.screenshot('torch-running');

      await vs.runCommand('Steelscope: Stop Run');
      await vs.pickItem(RUN);
      await eventually(
        rows,
        (r) => r.some((row) => row.label === RUN && /stopped/.test(row.description ?? '')),
        180_000,
      );
      await vs.screenshot('torch-stopped');
    });
  },
);
