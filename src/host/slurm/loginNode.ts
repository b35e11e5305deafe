// Whether an SSH host is a Slurm login node, and what its cluster offers: probed once per
// connection (sbatch found, partitions from sinfo, account / QoS where accounting runs), kept
// until the connection closes, so the Runs view and Start Training ask nothing twice. The parsing
// is pure (test/unit/slurm-login.test.ts); the queries go through the host's connection.
import { EventEmitter } from 'node:events';
import type { RemoteHost } from '../ssh/remoteHost';
import { slurmPartitions, type SlurmPartition } from './cluster';

/** An account the user may charge, with the QoS it allows ('' entries dropped). */
export interface SlurmAccount {
  account: string;
  qos: string[];
}

export interface SlurmCluster {
  partitions: SlurmPartition[];
  /** The user's associations; empty where the cluster keeps no accounting (no slurmdbd). */
  accounts: SlurmAccount[];
}

/** What the probe found: a cluster, no Slurm, or not yet known (not connected, or asking). */
export type LoginNodeState =
  | { kind: 'slurm'; cluster: SlurmCluster }
  /** why: sbatch was found but sinfo failed (said in the host's log). */
  | { kind: 'plain'; why?: string }
  | { kind: 'unknown' };

/**
 * Accounting only where slurmdbd keeps it: elsewhere sacctmgr waits for a daemon that is not there.
 * `timeout` (coreutils) bounds it on a cluster whose database is down.
 */
export const ACCOUNTS_SCRIPT =
  "if scontrol show config 2>/dev/null | grep -q '^AccountingStorageType *= *accounting_storage/slurmdbd'; then " +
  'timeout 20 sacctmgr -n -P show assoc user="$USER" format=account,qos 2>/dev/null; fi; true';

/** `sacctmgr -n -P show assoc … format=account,qos` lines: account|qos1,qos2 (accounts merged). */
export function parseAssociations(text: string): SlurmAccount[] {
  const byAccount = new Map<string, Set<string>>();
  for (const line of text.split('\n')) {
    const [account, qos] = line.trim().split('|');
    if (!account) continue;
    const known = byAccount.get(account) ?? new Set<string>();
    for (const q of (qos ?? '').split(',')) if (q.trim()) known.add(q.trim());
    byAccount.set(account, known);
  }
  return [...byAccount].map(([account, qos]) => ({ account, qos: [...qos].sort() }));
}

/** The default partition first, then the others in sinfo's order. */
export function partitionsDefaultFirst(partitions: readonly SlurmPartition[]): SlurmPartition[] {
  return [...partitions].sort((a, b) => Number(b.isDefault) - Number(a.isDefault));
}

/** One line per partition, as the host's tooltip, the Runs view and Start Training show it. */
export function describePartition(p: SlurmPartition): string {
  const gpus = p.gpusPerNode > 0 ? `${p.gpusPerNode} GPU${p.gpusPerNode > 1 ? 's' : ''}/node` : 'CPU only';
  const limit = p.timeLimit === 'infinite' ? 'no time limit' : `limit ${p.timeLimit}`;
  const nodes = `${p.nodes} node${p.nodes === 1 ? '' : 's'} (${p.idleNodes} idle)`;
  return `${nodes} · ${gpus} · ${limit}${p.up ? '' : ' · down'}`;
}

/** A partition's line where it is listed by name (a quick pick row, a Runs view row): the default said. */
export function partitionLine(p: SlurmPartition): string {
  return `${p.isDefault ? 'default · ' : ''}${describePartition(p)}`;
}

/** The partitions in a few words, as sinfo marks the default: "debug*, gpu" (the rest counted past `most`). */
export function partitionNames(partitions: readonly SlurmPartition[], most = 4): string {
  const names = partitionsDefaultFirst(partitions).map((p) => `${p.name}${p.isDefault ? '*' : ''}`);
  if (names.length === 0) return 'no partition';
  return names.length > most ? `${names.slice(0, most).join(', ')} +${names.length - most}` : names.join(', ');
}

export class SlurmLoginNode extends EventEmitter {
  private stateNow: LoginNodeState = { kind: 'unknown' };
  private probing: Promise<LoginNodeState> | undefined;
  /** Bumped when the connection closes: a probe of an earlier connection does not land. */
  private generation = 0;

  constructor(private readonly host: RemoteHost) {
    super();
    host.onState((state) => {
      if (state === 'connected') void this.probe().catch(() => undefined);
      if (state !== 'disconnected') return;
      this.generation++;
      this.probing = undefined;
      this.set({ kind: 'unknown' });
    });
  }

  get state(): LoginNodeState {
    return this.stateNow;
  }

  get cluster(): SlurmCluster | undefined {
    return this.stateNow.kind === 'slurm' ? this.stateNow.cluster : undefined;
  }

  onChange(listener: (state: LoginNodeState) => void): { dispose(): void } {
    this.on('change', listener);
    return { dispose: () => this.off('change', listener) };
  }

  /** The probe of this connection (asked once; again after a reconnect). */
  probe(): Promise<LoginNodeState> {
    if (this.stateNow.kind !== 'unknown') return Promise.resolve(this.stateNow);
    const generation = this.generation;
    this.probing ??= this.ask().then(
      (state) => {
        if (generation === this.generation) this.set(state);
        return state;
      },
      (err: unknown) => {
        if (generation === this.generation) this.probing = undefined;
        throw err;
      },
    );
    return this.probing;
  }

  /**
   * Asks the cluster again (the Runs view's Refresh: nodes go idle, partitions down); the state kept
   * until the answer comes. Nothing is asked while the host is not connected.
   */
  async refresh(): Promise<LoginNodeState> {
    if (this.host.state !== 'connected') return this.stateNow;
    if (this.stateNow.kind === 'unknown') return this.probe();
    const generation = this.generation;
    const state = await this.ask();
    if (generation === this.generation) this.set(state);
    return state;
  }

  private async ask(): Promise<LoginNodeState> {
    let partitions: SlurmPartition[] | undefined;
    try {
      partitions = await slurmPartitions(this.host);
    } catch (err) {
      // sbatch is installed but sinfo reaches no cluster (no slurm.conf): not a login node to submit from.
      if (this.host.state === 'connected')
        return { kind: 'plain', why: err instanceof Error ? err.message : String(err) };
      throw err;
    }
    if (!partitions) return { kind: 'plain' };
    const r = await (await this.host.connection()).run(ACCOUNTS_SCRIPT, { timeoutMs: 30_000 });
    return { kind: 'slurm', cluster: { partitions, accounts: r.code === 0 ? parseAssociations(r.stdout) : [] } };
  }

  private set(state: LoginNodeState): void {
    this.stateNow = state;
    this.emit('change', state);
  }
}
