// Open Run Folder… on the logs other trainers write, in a real VS Code (code-server): an event file
// appended live by an independent Python writer grows the loss chart, its text summaries show in
// the samples panel as text, and a folder of three lightning_logs/version_* runs shows three runs
// grouped under their folder in the Runs view.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { e2eSkip, eventually, lossPoints, withVSCode } from './harness';
import { PYTHON, WRITE_TFEVENTS, writeEvents, type TbEvent } from '../formats/fixtures';
import { scratch } from '../helpers';

const event = (step: number, delay = 0): TbEvent => ({
  wall_time: 1700000000 + step,
  step,
  delay,
  values: [
    { tag: 'loss', simple_value: 3 - step / 100 },
    ...(step % 10 === 0 ? [{ tag: 'generation', text: `春眠不觉晓 ${step}` }] : []),
  ],
});

test(
  'Open Run Folder…: an event file grows live, text as samples; three version_* runs grouped',
  { skip: e2eSkip(), timeout: 400_000 },
  async () => {
    const root = scratch('e2e-formats');
    const tb = join(root, 'tbrun');
    mkdirSync(tb, { recursive: true });
    const path = join(tb, 'events.out.tfevents.1700000000.e2e');
    writeEvents(
      path,
      Array.from({ length: 5 }, (_, i) => event(i)),
    );
    const multi = join(root, 'lightning');
    for (const v of [0, 1, 2]) {
      mkdirSync(join(multi, 'lightning_logs', `version_${v}`), { recursive: true });
      writeFileSync(
        join(multi, 'lightning_logs', `version_${v}`, 'metrics.csv'),
        `epoch,step,train_loss\n0,1,${v + 1}\n0,2,${v + 0.5}\n`,
      );
    }
    const writer = spawn(PYTHON, [WRITE_TFEVENTS, path]);
    try {
      await withVSCode({ name: 'formats' }, async (vs) => {
        await vs.openWorkbench();
        await vs.runCommand('Steelscope: Open Run Folder…');
        await vs.chooseFolder(tb, 'Observe this run');
        assert.match(await vs.notificationText(/run found/, 60_000), /1 run found: 1 × TensorBoard event files/);
        const dash = await vs.webviewWhenOpen('tbrun', 120_000);
        const first = await eventually(
          () => lossPoints(dash),
          (n) => n >= 5,
          60_000,
        );
        writer.stdin.end(JSON.stringify(Array.from({ length: 30 }, (_, i) => event(5 + i, 0.1))));
        const later = await eventually(
          () => lossPoints(dash),
          (n) => n >= 35,
          120_000,
        );
        assert.ok(later > first, `the loss chart grows live (${first} → ${later})`);
        // The samples panel shows the newest sample of each prompt (here the tag): the last text written.
        const texts = await eventually(
          async () => dash.locator('.sample-text').allTextContents(),
          (t) => t.some((s) => s.includes('春眠不觉晓 30')),
          60_000,
        );
        assert.ok(texts.length > 0, 'text summaries are samples, shown as text');
        await vs.screenshot('tfevents-live');

        await vs.runCommand('Steelscope: Open Run Folder…');
        await vs.chooseFolder(multi, 'Observe this run');
        assert.match(await vs.notificationText(/3 runs found/, 60_000), /3 × CSV metrics log/);
        const rows = await eventually(
          () => vs.treeItems('Steelscope', 'Runs', 5),
          (r) => r.filter((x) => /^version_\d$/.test(x.label)).length === 3,
          60_000,
        );
        const group = rows.find((r) => r.label === 'lightning_logs');
        assert.ok(group, `a lightning_logs group row: ${JSON.stringify(rows)}`);
        for (const v of rows.filter((x) => /^version_\d$/.test(x.label)))
          assert.equal(v.level, group.level + 1, 'each version under the group');
        await vs.screenshot('three-versions');
      });
    } finally {
      writer.kill();
    }
  },
);
