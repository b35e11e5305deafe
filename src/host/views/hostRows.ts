// The host rows of the Runs view and what hangs under a host besides its runs, without vscode so
// they are tested (test/unit/host-rows.test.ts): which hosts the view lists (every configured one,
// runs or not), a host's description (its kind and partitions: "Slurm · debug*, gpu"), a login
// node's Partitions row with one row per partition, and the row that stands for no runs.
import type { SlurmPartition } from '../slurm/cluster';
import { partitionLine, partitionNames, type SlurmCluster } from '../slurm/loginNode';

/** Hosts whose connection state the tree shows (this machine is always connected). */
export interface HostState {
  id: string;
  label: string;
  state: 'connected' | 'connecting' | 'disconnected';
  /** Set when the host is a Slurm login node: its partitions. */
  slurm?: SlurmCluster;
}

/** A tree row as data: runsTree.ts makes the vscode.TreeItem (icons are theme icon ids). */
export interface RowSpec {
  id: string;
  label: string;
  description: string;
  tooltip?: string;
  icon: string;
  /** A theme colour id for the icon. */
  color?: string;
  contextValue: string;
  collapsed?: boolean;
  /** Run on click, with the host row's node as its argument where it needs one. */
  command?: { id: string; title: string; hostId?: string };
}

/**
 * The hosts the view lists: every configured one (an SSH host just added shows before it has a run),
 * or none while this machine is the only host and has no run: the welcome view takes over then.
 */
export function listedHosts(hosts: readonly HostState[], runCount: number): HostState[] {
  return runCount > 0 || hosts.some((h) => h.id !== 'local') ? [...hosts] : [];
}

/** A host row's description: a login node's partitions, and the connection unless it is up. */
export function hostDescription(host: HostState | undefined): string {
  const slurm = host?.slurm ? `Slurm · ${partitionNames(host.slurm.partitions)}` : undefined;
  const connection = host && host.state !== 'connected' ? host.state : undefined;
  return [slurm, connection].filter(Boolean).join(' · ');
}

/** A login node's row above its runs, collapsed: its partitions within. */
export function partitionsRow(hostId: string, cluster: SlurmCluster): RowSpec {
  const idle = cluster.partitions.reduce((sum, p) => sum + p.idleNodes, 0);
  const nodes = cluster.partitions.reduce((sum, p) => sum + p.nodes, 0);
  return {
    id: `partitions:${hostId}`,
    label: 'Partitions',
    description: `${idle} of ${nodes} node${nodes === 1 ? '' : 's'} idle`,
    tooltip: 'From sinfo on the login node; Refresh asks again.',
    icon: 'layers',
    contextValue: 'slurmPartitions',
    collapsed: true,
  };
}

/** One partition: its state, nodes (idle of total), GPUs per node and time limit. */
export function partitionRow(hostId: string, p: SlurmPartition): RowSpec {
  return {
    id: `partition:${hostId}:${p.name}`,
    label: p.name,
    description: partitionLine(p),
    tooltip: `Partition ${p.name}${p.isDefault ? ' (the default)' : ''}: ${partitionLine(p)}`,
    icon: p.up ? 'server' : 'circle-slash',
    color: p.up ? undefined : 'list.warningForeground',
    contextValue: p.up ? 'slurmPartition.up' : 'slurmPartition.down',
  };
}

/** The row of a host with no run: Start Training (that host first) where it is reachable, Reconnect where not. */
export function noRunsRow(host: HostState): RowSpec {
  const base = { id: `noRuns:${host.id}`, icon: 'info', contextValue: 'noRuns' };
  if (host.state === 'connecting') return { ...base, label: 'Connecting…', description: '', icon: 'loading~spin' };
  if (host.state === 'disconnected')
    return {
      ...base,
      label: 'Not connected',
      description: 'Reconnect to list its runs',
      command: { id: 'steelscope.reconnectSshHost', title: 'Reconnect', hostId: host.id },
    };
  return {
    ...base,
    label: 'No runs yet',
    description: 'Start Training…',
    command: { id: 'steelscope.startTraining', title: 'Start Training', hostId: host.id },
  };
}
