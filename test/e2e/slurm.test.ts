// Issue 16's end-to-end scenario: the one-node test cluster (test/slurm.ts) behind the test sshd is
// added as an SSH host and shows at once (no run needed) as a Slurm login node with its partitions
// (description, and a Partitions row that opens onto the debug partition); Start Training → that host → partition
// `debug` submits a job, which the Runs view shows pending (its node drained, so the state is seen
// whatever the machine's speed) with Slurm's reason, then running once the node is back; loss
// points arrive on the dashboard; Stop → stopped, and the job is CANCELLED. Resume offers the job
// last submitted there in one row; Enter resubmits it (pending), Stop cancels it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { slurmSkipReason, TestSlurm } from '../slurm';
import { sshdSkipReason, TestSshd } from '../sshd';
import {
  addSshHost,
  e2eSkip,
  eventually,
  lossPointsGrow,
  removeSshdRuns,
  runWithStatus,
  slurmPrompts,
  sshHome,
  startTraining,
  stopRun,
  withVSCode,
} from './harness';

const HOST = 'e2e-cluster';
/** Unique per test process: the host's runs folder is the login user's real ~/.steelscope/runs. */
const RUN = `slurm-run-${process.pid}`;

test(
  'a Slurm login node: Start Training → partition debug → pending, then running, losses arrive, Stop → stopped',
  { skip: e2eSkip() || sshdSkipReason() || slurmSkipReason(), timeout: 480_000 },
  async () => {
    const slurm = await TestSlurm.start();
    const sshd = await TestSshd.start({ extraConfig: slurm.sshdConfig });
    const node = slurm.run('sinfo', ['-h', '-o', '%n']).trim();
    try {
      await withVSCode({ name: 'slurm', env: { HOME: sshHome(sshd, HOST) } }, async (vs) => {
        await vs.openWorkbench();
        await addSshHost(vs, HOST);
        // Listed before it has a run: Slurm and its partition in its description, a Partitions row under it.
        await eventually(
          () => vs.treeItems('Steelscope', 'Runs', 0),
          (rows) =>
            rows.some((r) => r.label === HOST && /^Slurm · debug\*/.test(r.description)) &&
            rows.some((r) => r.label === 'Partitions' && /^\d of 1 node idle$/.test(r.description)),
          60_000,
        );
        await vs.page.locator('.part.sidebar .monaco-list-row', { hasText: 'Partitions' }).first().click();
        await eventually(
          () => vs.treeItems('Steelscope', 'Runs', 0),
          (rows) =>
            rows.some((r) => r.label === 'debug' && /^default · 1 node \(\d idle\) · CPU only/.test(r.description)),
          30_000,
        );
        await vs.screenshot('partitions');

        slurm.run('scontrol', ['update', `nodename=${node}`, 'state=drain', 'reason=steelscope-e2e']);
        await startTraining(vs, {
          target: new RegExp(HOST),
          steps: 100_000,
          name: RUN,
          prompts: slurmPrompts({ partition: 'debug', nodes: 1, timeLimit: '10' }),
        });
        const pending = await runWithStatus(vs, RUN, /^pending/, 120_000);
        const host = pending.find((row) => row.label === HOST);
        assert.match(host?.description ?? '', /^Slurm · debug\*/, 'the host is labelled a Slurm login node');
        await vs.screenshot('pending');

        slurm.run('scontrol', ['update', `nodename=${node}`, 'state=resume']);
        await runWithStatus(vs, RUN, /^running/, 180_000);
        const dash = await vs.webviewWhenOpen(RUN, 120_000);
        const { first, later } = await lossPointsGrow(dash);
        assert.ok(later > first, `records arrive from the job (${first} → ${later})`);
        await vs.screenshot('running');

        await stopRun(vs, RUN, 180_000);
        const job = await eventually(
          async () => slurm.run('squeue', ['-h', '-t', 'all', '-o', '%j|%T']),
          (out) => out.split('\n').some((line) => line.startsWith(`${RUN}-`) && line.endsWith('|CANCELLED')),
          120_000,
        );
        assert.ok(job);
        await vs.screenshot('stopped');

        // Resume offers the job last submitted on this host in one row: Enter (the keyboard alone)
        // resubmits it. The node drained again keeps the new job pending, which Stop then cancels.
        slurm.run('scontrol', ['update', `nodename=${node}`, 'state=drain', 'reason=steelscope-e2e']);
        await vs.runCommand('Steelscope: Resume Run');
        await vs.pickItem(RUN);
        await vs.answerPrompts([{ title: /: train until step$/, answer: { type: '100000' } }]);
        await eventually(
          () => vs.promptTitle(),
          (title) => title.endsWith(`: Slurm job on ${HOST}`),
        );
        const offered = await vs.quickItems();
        // The page may keep an earlier pick's rows (hidden) after this one's: ours are looked for among them.
        assert.match(offered[0] ?? '', /Resume with: debug, 1 node, CPU, 10 min$/, `offered: ${offered.join(' | ')}`);
        assert.ok(
          offered.some((row) => row.endsWith('Change…')),
          `Change… offered: ${offered.join(' | ')}`,
        );
        await vs.page.keyboard.press('Enter');
        await runWithStatus(vs, RUN, /^pending/, 120_000);
        await vs.screenshot('resumed');
        await stopRun(vs, RUN, 120_000);
      });
    } finally {
      try {
        slurm.run('scontrol', ['update', `nodename=${node}`, 'state=resume']);
      } catch {
        // already back (the test resumed it)
      }
      slurm.stop();
      await sshd.stop();
      removeSshdRuns(RUN);
    }
  },
);
