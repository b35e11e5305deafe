// Issue 3's end-to-end scenario in a real VS Code: start a tiny run from the command palette, see
// it running in the Runs view, watch the dashboard's loss chart gain points and a sample appear
// (read from inside the webview), stop it and see its status change; reload the window and see the
// dashboard come back. Screenshots are artifacts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { e2eSkip, eventually, withVSCode, type VSCodeSession } from './harness';

const RUN = 'e2e-run';

async function runRow(vs: VSCodeSession, status: RegExp) {
  return eventually(
    () => vs.treeItems('Steelscope', 'Runs', 0),
    (rows) => rows.some((r) => r.label === RUN && status.test(r.description ?? '')),
    120_000,
  );
}

test(
  'start training from the palette, follow it in the explorer and the dashboard, stop it',
  { skip: e2eSkip(), timeout: 420_000 },
  async () => {
    await withVSCode({ name: 'training' }, async (vs) => {
      await vs.openWorkbench();
      await vs.runCommand('Steelscope: Start Training…');
      await vs.pickItem(/This machine/);
      await vs.pickItem(/Bundled/);
      await vs.pickItem('tiny');
      await vs.pickItem(/Classical Chinese poetry/);
      await vs.typeInput('400', /steps/);
      await vs.typeInput(RUN, /run name/);

      // The dashboard opens on its own once the run has started.
      const dash = await eventually(
        async () => vs.frameOfWebview(RUN).catch(() => undefined),
        (f) => f !== undefined,
        120_000,
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
      await dash.locator('.sample-text').first().waitFor({ state: 'visible', timeout: 60_000 });
      const sample = await dash.locator('.sample-text').first().textContent();
      assert.ok(sample && sample.length > 0, 'a generated sample is shown');
      const later = await eventually(lossPoints, (n) => n > first, 120_000);
      assert.ok(later > first, `the loss chart gains points (${first} → ${later})`);
      await vs.screenshot('dashboard');

      const running = await runRow(vs, /running/);
      assert.ok(running.some((r) => r.label === RUN));
      await vs.screenshot('explorer-running');

      await vs.runCommand('Steelscope: Stop Run');
      await vs.pickItem(RUN);
      const stopped = await runRow(vs, /stopped/);
      assert.ok(stopped.some((r) => r.label === RUN && /stopped/.test(r.description ?? '')));
      await vs.screenshot('explorer-stopped');

      // A window reload brings the dashboard back with the same run (its WebviewPanelSerializer).
      const before = await lossPoints();
      await vs.reloadWindow();
      const restored = await eventually(
        async () => vs.frameOfWebview(RUN).catch(() => undefined),
        (f) => f !== undefined,
        120_000,
      );
      assert.ok(restored);
      const restoredPoints = async () =>
        Number(
          (await restored
            .locator('canvas[data-chart="loss"]')
            .getAttribute('data-points', { timeout: 5_000 })
            .catch(() => null)) ?? '0',
        );
      const after = await eventually(restoredPoints, (n) => n >= before, 60_000);
      assert.ok(after >= before, `the restored dashboard shows the run's points (${after} of ${before})`);
      await vs.screenshot('dashboard-restored');
    });
  },
);
