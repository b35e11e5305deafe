// The Runs view's hosts as a user sees them (src/host/views/hostRows.ts): a configured SSH host is
// listed before it has a run, with a row saying so; a Slurm login node says so with its partitions
// in its description ("Slurm · debug*, gpu"), and lists them (state, idle of total nodes, GPUs,
// time limit) under a collapsed Partitions row, from sinfo's own output.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSinfo } from '../../src/host/slurm/cluster';
import {
  hostDescription,
  listedHosts,
  noRunsRow,
  partitionRow,
  partitionsRow,
  type HostState,
} from '../../src/host/views/hostRows';

const LOCAL: HostState = { id: 'local', label: 'This machine', state: 'connected' };
// `sinfo -h -o SINFO_FORMAT` of a cluster whose default is debug; gpu spans two node kinds.
const SINFO =
  'gpu|up|1-00:00:00|4|gpu:a100:8(S:0-1)|3/1/0/4\n' +
  'debug*|up|30:00|2|(null)|0/2/0/2\n' +
  'gpu|up|1-00:00:00|2|gpu:4|0/2/0/2\n' +
  'old|down|infinite|1|(null)|0/0/1/1\n';
const cluster = { partitions: parseSinfo(SINFO), accounts: [] };
const login: HostState = { id: 'ssh:login', label: 'login', state: 'connected', slurm: cluster };

test('an SSH host just added is listed with no run; this machine alone with none leaves the welcome view', () => {
  const plain: HostState = { id: 'ssh:box', label: 'box', state: 'connected' };
  assert.deepEqual(listedHosts([LOCAL], 0), [], 'the welcome view (Start Training, Open Run Folder)');
  assert.deepEqual(
    listedHosts([LOCAL, plain], 0).map((h) => h.label),
    ['This machine', 'box'],
  );
  assert.deepEqual(
    listedHosts([LOCAL], 3).map((h) => h.label),
    ['This machine'],
  );
});

test('a host with no run says why and what to do: Start Training, Reconnect, or wait', () => {
  const up = noRunsRow({ id: 'ssh:box', label: 'box', state: 'connected' });
  assert.deepEqual(
    [up.label, up.command?.id, up.command?.hostId],
    ['No runs yet', 'steelscope.startTraining', 'ssh:box'],
    'Start Training with this host offered first',
  );
  const down = noRunsRow({ id: 'ssh:box', label: 'box', state: 'disconnected' });
  assert.deepEqual(
    [down.label, down.command?.id, down.command?.hostId],
    ['Not connected', 'steelscope.reconnectSshHost', 'ssh:box'],
  );
  assert.equal(noRunsRow({ id: 'ssh:box', label: 'box', state: 'connecting' }).command, undefined);
});

test("a login node's description: Slurm and its partitions, the default first and starred", () => {
  assert.equal(hostDescription(login), 'Slurm · debug*, gpu, old');
  assert.equal(hostDescription(LOCAL), '');
  assert.equal(hostDescription({ id: 'ssh:box', label: 'box', state: 'disconnected' }), 'disconnected');
  const many = parseSinfo(['a*', 'b', 'c', 'd', 'e', 'f'].map((n) => `${n}|up|1:00|1|(null)|0/1/0/1`).join('\n'));
  assert.equal(
    hostDescription({ ...login, slurm: { partitions: many, accounts: [] } }),
    'Slurm · a*, b, c, d +2',
    'a long list is cut, the rest counted',
  );
});

test('the Partitions row sums idle and total nodes; each partition row shows state, nodes, GPUs, limit', () => {
  const group = partitionsRow(login.id, cluster);
  assert.equal(group.label, 'Partitions');
  assert.equal(group.description, '5 of 9 nodes idle');
  assert.equal(group.collapsed, true, 'collapsed: the runs stay in sight');
  const rows = cluster.partitions.map((p) => partitionRow(login.id, p));
  assert.deepEqual(
    rows.map((r) => [r.label, r.description, r.icon, r.contextValue]),
    [
      ['gpu', '6 nodes (3 idle) · 8 GPUs/node · limit 1-00:00:00', 'server', 'slurmPartition.up'],
      ['debug', 'default · 2 nodes (2 idle) · CPU only · limit 30:00', 'server', 'slurmPartition.up'],
      ['old', '1 node (0 idle) · CPU only · no time limit · down', 'circle-slash', 'slurmPartition.down'],
    ],
  );
  assert.equal(new Set(rows.map((r) => r.id)).size, rows.length, 'ids unique within the host');
});
