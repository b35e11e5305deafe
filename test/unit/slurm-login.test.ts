// A Slurm login node as the editor shows it: the user's accounts from sacctmgr, partitions (the
// default first) in the host's tooltip with every value escaped, and which launcher a start, a
// liveness check or a Stop goes to (Slurm for a job, the host's own CLI otherwise).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseAssociations, partitionsDefaultFirst, describePartition } from '../../src/host/slurm/loginNode';
import { parseSinfo } from '../../src/host/slurm/cluster';
import { hostTooltipMarkdown } from '../../src/host/views/runTooltip';
import { LoginNodeLauncher } from '../../src/host/slurm/hostLauncher';
import type { Launcher, LaunchRequest } from '../../src/host/runs/runControl';
import type { ObservedRun } from '../../src/shared/run';

test('sacctmgr associations: accounts merged, their QoS listed once, blank lines skipped', () => {
  const text = 'proj-a|normal,high\nproj-a|normal\nproj-b|\n\n';
  assert.deepEqual(parseAssociations(text), [
    { account: 'proj-a', qos: ['high', 'normal'] },
    { account: 'proj-b', qos: [] },
  ]);
  assert.deepEqual(parseAssociations(''), []);
});

test('partitions: the default one first; each described by nodes, GPUs and limit', () => {
  const partitions = parseSinfo('cpu|up|1-00:00:00|4|(null)\ngpu*|up|infinite|2|gpu:a100:8\nold|down|30:00|1|(null)\n');
  const ordered = partitionsDefaultFirst(partitions);
  assert.deepEqual(
    ordered.map((p) => p.name),
    ['gpu', 'cpu', 'old'],
  );
  assert.equal(describePartition(ordered[0]!), '2 nodes · 8 GPUs/node · no time limit');
  assert.equal(describePartition(ordered[2]!), '1 node · CPU only · limit 30:00 · down');
});

test("the host's tooltip names it a Slurm login node and escapes what the cluster says", () => {
  const partitions = parseSinfo('debug*|up|infinite|1|(null)\n[x](http://e)|up|1:00|1|(null)\n');
  const md = hostTooltipMarkdown('login_1', { partitions, accounts: [{ account: 'a*b', qos: [] }] });
  assert.match(md, /^\*\*login\\_1\*\* — Slurm login node/);
  assert.match(md, /\*\*debug\*\* \(default\): 1 node · CPU only · no time limit/);
  assert.ok(!md.includes('](http'), 'a partition name is no link');
  assert.match(md, /accounts: a\\\*b/);
});

test('a start asking for a Slurm job is submitted; a run naming a job is watched and stopped through Slurm', async () => {
  const calls: string[] = [];
  const fake = (name: string): Launcher => ({
    launch: async () => (calls.push(`${name}.launch`), { pid: 1, running: async () => true, exitNote: async () => '' }),
    isAlive: async () => (calls.push(`${name}.isAlive`), true),
    terminate: async () => void calls.push(`${name}.terminate`),
  });
  const launcher = new LoginNodeLauncher(fake('host'), fake('slurm'));
  const request: LaunchRequest = { args: ['train'], cwd: '/r', log: '/r/l', runDir: '/r/a', continueArgs: [] };
  await launcher.launch(request);
  await launcher.launch({ ...request, slurm: { partition: 'debug', nodes: 1, gpusPerNode: 0, timeLimit: '' } });
  const run = { pid: 5, status: 'running' } as ObservedRun;
  await launcher.isAlive(run);
  await launcher.terminate({ ...run, slurm_job_id: '12' }, '/r/a');
  assert.deepEqual(calls, ['host.launch', 'slurm.launch', 'host.isAlive', 'slurm.terminate']);
});
