// What a login node says about its cluster: whether it is one (`sbatch` found by the login
// shell), and its partitions from `sinfo` (name, default, up, time limit, nodes and how many are
// idle, GPUs per node).
// The parsing is pure (test/unit/slurm.test.ts); the queries go through the host's connection.
import type { RemoteHost } from '../ssh/remoteHost';

export interface SlurmPartition {
  name: string;
  isDefault: boolean;
  up: boolean;
  /** As sinfo prints it: infinite, 1-00:00:00, 30:00. */
  timeLimit: string;
  nodes: number;
  /** Of `nodes`, those idle now (sinfo's %F: allocated/idle/other/total). */
  idleNodes: number;
  /** The most GPUs a node of it has (from its GRES, gpu[:type]:N); 0 on a CPU-only partition. */
  gpusPerNode: number;
}

/** The sinfo format parseSinfo reads: partition, availability, time limit, node count, GRES, node states. */
export const SINFO_FORMAT = '%P|%a|%l|%D|%G|%F';

/** The idle count of sinfo's %F (allocated/idle/other/total); 0 when it is missing. */
function idleOf(states: string | undefined): number {
  return Number(states?.split('/')[1]) || 0;
}

function gpusOf(gres: string): number {
  let most = 0;
  for (const item of gres.split(',')) {
    const m = /^gpu(?::[^:(]+)?:(\d+)/.exec(item.trim());
    if (m) most = Math.max(most, Number(m[1]));
  }
  return most;
}

/** `sinfo -h -o SINFO_FORMAT` lines, one partition per line (several lines per partition merged). */
export function parseSinfo(text: string): SlurmPartition[] {
  const byName = new Map<string, SlurmPartition>();
  for (const line of text.split('\n')) {
    const [rawName, avail, timeLimit, nodes, gres, states] = line.trim().split('|');
    if (!rawName || avail === undefined) continue;
    const name = rawName.replace(/\*$/, '');
    const known = byName.get(name);
    const gpus = gpusOf(gres ?? '');
    if (known) {
      known.nodes += Number(nodes) || 0;
      known.idleNodes += idleOf(states);
      known.gpusPerNode = Math.max(known.gpusPerNode, gpus);
      continue;
    }
    byName.set(name, {
      name,
      isDefault: rawName.endsWith('*'),
      up: avail === 'up',
      timeLimit: timeLimit ?? '',
      nodes: Number(nodes) || 0,
      idleNodes: idleOf(states),
      gpusPerNode: gpus,
    });
  }
  return [...byName.values()];
}

/** The partitions of the cluster `host` logs into, or undefined when it is no Slurm login node. */
export async function slurmPartitions(host: RemoteHost): Promise<SlurmPartition[] | undefined> {
  const connection = await host.connection();
  const found = await connection.run('command -v sbatch', { timeoutMs: 30_000 });
  if (found.code !== 0) return undefined;
  return parseSinfo(await host.sh(`sinfo -h -o '${SINFO_FORMAT}'`, 'sinfo'));
}
