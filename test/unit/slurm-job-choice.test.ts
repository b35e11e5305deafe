// Resume of a Slurm run offers the job last submitted on its host in one line, to confirm or change
// (src/host/commands/slurmPick.ts): that line, and whether those answers still fit the cluster
// (else Resume asks them all again, with them as defaults). src/host/slurm/jobChoice.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSinfo } from '../../src/host/slurm/cluster';
import { describeJob, fitsCluster } from '../../src/host/slurm/jobChoice';
import type { SlurmJobOptions } from '../../src/host/slurm/batchScript';

const DEBUG: SlurmJobOptions = { partition: 'debug', nodes: 1, gpusPerNode: 0, timeLimit: '120' };
const cluster = {
  partitions: parseSinfo('debug*|up|2:00:00|2|(null)|0/2/0/2\ngpu|up|1-00:00:00|4|gpu:a100:8|0/4/0/4\n'),
  accounts: [{ account: 'proj-a', qos: ['high', 'normal'] }],
};

test('the remembered job in one line: partition, nodes, GPUs, time limit (minutes said), account / QoS', () => {
  assert.equal(describeJob(DEBUG), 'debug, 1 node, CPU, 120 min');
  assert.equal(describeJob({ ...DEBUG, timeLimit: '' }), "debug, 1 node, CPU, the partition's time limit");
  assert.equal(
    describeJob({
      partition: 'gpu',
      nodes: 2,
      gpusPerNode: 8,
      timeLimit: '1-00:00:00',
      account: 'proj-a',
      qos: 'high',
    }),
    'gpu, 2 nodes, 8 GPUs/node, 1-00:00:00, account proj-a, QoS high',
  );
});

test('remembered answers are offered as they are only while the cluster still has what they ask for', () => {
  assert.equal(fitsCluster(DEBUG, cluster), true);
  assert.equal(fitsCluster({ ...DEBUG, partition: 'gone' }, cluster), false, 'a partition no longer listed');
  assert.equal(fitsCluster({ ...DEBUG, nodes: 3 }, cluster), false, 'more nodes than the partition has');
  assert.equal(fitsCluster({ ...DEBUG, gpusPerNode: 1 }, cluster), false, 'GPUs on a CPU-only partition');
  assert.equal(fitsCluster({ ...DEBUG, partition: 'gpu', nodes: 4, gpusPerNode: 8 }, cluster), true);
  assert.equal(fitsCluster({ ...DEBUG, account: 'proj-a' }, cluster), true);
  assert.equal(fitsCluster({ ...DEBUG, account: 'proj-old' }, cluster), false, "an account no longer the user's");
});
