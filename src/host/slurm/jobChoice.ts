// A Slurm job as the user chose it, in words ("debug, 1 node, CPU, 2:00:00"), and whether the
// answers remembered for a host still fit its cluster: Resume offers them as they are only then,
// else it asks again with them as defaults. Pure: test/unit/slurm-job-choice.test.ts.
import type { SlurmJobOptions } from './batchScript';
import type { SlurmCluster } from './loginNode';

/** Slurm's time format in words: a bare number is minutes; '' is the partition's limit. */
function describeTimeLimit(limit: string): string {
  if (limit === '') return "the partition's time limit";
  return /^\d+$/.test(limit) ? `${limit} min` : limit;
}

/** One line for a job: partition, nodes, GPUs per node, time limit, and account / QoS where chosen. */
export function describeJob(job: SlurmJobOptions): string {
  const parts = [
    job.partition,
    `${job.nodes} node${job.nodes === 1 ? '' : 's'}`,
    job.gpusPerNode > 0 ? `${job.gpusPerNode} GPU${job.gpusPerNode === 1 ? '' : 's'}/node` : 'CPU',
    describeTimeLimit(job.timeLimit),
  ];
  if (job.account) parts.push(`account ${job.account}`);
  if (job.qos) parts.push(`QoS ${job.qos}`);
  return parts.join(', ');
}

/**
 * Whether `job` can be submitted as it is on `cluster`: its partition still listed, no more nodes
 * or GPUs per node than that partition has, its account (where one was chosen) still the user's.
 */
export function fitsCluster(job: SlurmJobOptions, cluster: SlurmCluster): boolean {
  const partition = cluster.partitions.find((p) => p.name === job.partition);
  if (!partition || job.nodes > Math.max(partition.nodes, 1) || job.gpusPerNode > partition.gpusPerNode) return false;
  return !job.account || cluster.accounts.some((a) => a.account === job.account);
}
