// Issue 3's end-to-end scenario in a real VS Code: start a tiny run from the command palette, see
// it running in the Runs view, watch the dashboard's loss chart gain points and a sample appear
// (read from inside the webview), stop it and see its status change; reload the window and see the
// dashboard come back. Screenshots are artifacts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  e2eSkip,
  eventually,
  lossPoints,
  lossPointsGrow,
  runWithStatus,
  startTraining,
  stopRun,
  withVSCode,
} from './harness';

const RUN = 'e2e-run';

test(
  'start training from the palette, follow it in the explorer and the dashboard, stop it',
  { skip: e2eSkip(), timeout: 420_000 },
  async () => {
    await withVSCode({ name: 'training' }, async (vs) => {
      await vs.openWorkbench();
      // Steps enough that the run is still going when Stop comes, however fast this machine trains
      // compared with how fast the window answers (400 steps could end first: finished, not stopped).
      await startTraining(vs, { steps: 100_000, name: RUN });

      // The dashboard opens on its own once the run has started.
      const dash = await vs.webviewWhenOpen(RUN, 120_000);
      const { first, later } = await lossPointsGrow(dash);
      await dash.locator('.sample-text').first().waitFor({ state: 'visible', timeout: 60_000 });
      const sample = await dash.locator('.sample-text').first().textContent();
      assert.ok(sample && sample.length > 0, 'a generated sample is shown');
      assert.ok(later > first, `the loss chart gains points (${first} → ${later})`);
      await vs.screenshot('dashboard');

      const running = await runWithStatus(vs, RUN, /running/);
      assert.ok(running.some((r) => r.label === RUN));
      await vs.screenshot('explorer-running');

      const stopped = await stopRun(vs, RUN);
      assert.ok(stopped.some((r) => r.label === RUN && /stopped/.test(r.description)));
      await vs.screenshot('explorer-stopped');

      // A window reload brings the dashboard back with the same run (its WebviewPanelSerializer).
      const before = await lossPoints(dash);
      await vs.reloadWindow();
      const restored = await vs.webviewWhenOpen(RUN, 120_000);
      const after = await eventually(
        () => lossPoints(restored),
        (n) => n >= before,
        60_000,
      );
      assert.ok(after >= before, `the restored dashboard shows the run's points (${after} of ${before})`);
      await vs.screenshot('dashboard-restored');
    });
  },
);
