// Start Training's questions on a Slurm login node: partition (from sinfo, the default one first),
// nodes, GPUs per node (none asked on a CPU-only partition: the job runs one task), time limit, and
// account / QoS only where the cluster keeps accounting. The answers are remembered per host
// (globalState, schema-checked when read) and offered first the next time; Resume offers them as
// they are, or to change.
import * as vscode from 'vscode';
import * as v from 'valibot';
import { checkJobOptions, type SlurmJobOptions } from '../slurm/batchScript';
import type { SlurmPartition } from '../slurm/cluster';
import { describeJob, fitsCluster } from '../slurm/jobChoice';
import { partitionLine, partitionsDefaultFirst, type SlurmCluster } from '../slurm/loginNode';

const JOBS_KEY = 'steelscope.slurmJobs';

const SlurmJobSchema = v.object({
  partition: v.string(),
  nodes: v.pipe(v.number(), v.integer(), v.minValue(1)),
  gpusPerNode: v.pipe(v.number(), v.integer(), v.minValue(0)),
  timeLimit: v.string(),
  account: v.optional(v.string()),
  qos: v.optional(v.string()),
});
const RememberedJobs = v.record(v.string(), v.unknown());

/** The Slurm answers of each host, kept in the editor's global state. */
export class SlurmJobMemory {
  constructor(private readonly state: vscode.Memento) {}

  get(hostId: string): SlurmJobOptions | undefined {
    const all: unknown = this.state.get(JOBS_KEY, {});
    if (!v.is(RememberedJobs, all)) return undefined;
    const parsed = v.safeParse(SlurmJobSchema, all[hostId]);
    return parsed.success ? parsed.output : undefined;
  }

  async set(hostId: string, job: SlurmJobOptions): Promise<void> {
    const all: unknown = this.state.get(JOBS_KEY, {});
    await this.state.update(JOBS_KEY, { ...(v.is(RememberedJobs, all) ? all : {}), [hostId]: job });
  }
}

/** What checkJobOptions says about `job`, as an input box's validation message. */
function problemOf(job: SlurmJobOptions): string | undefined {
  try {
    checkJobOptions(job);
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

async function askPartition(
  title: string,
  cluster: SlurmCluster,
  remembered: string | undefined,
): Promise<SlurmPartition | undefined> {
  if (cluster.partitions.length === 0) throw new Error('sinfo lists no partition on this host; nothing to submit to.');
  const items = partitionsDefaultFirst(cluster.partitions).map((p) => ({
    label: p.name,
    description: partitionLine(p),
    partition: p,
  }));
  const pick = vscode.window.createQuickPick<(typeof items)[number]>();
  pick.title = `${title}: partition`;
  pick.items = items;
  pick.activeItems = items.filter((i) => i.label === remembered);
  try {
    return await new Promise((resolvePick) => {
      pick.onDidAccept(() => resolvePick(pick.selectedItems[0]?.partition));
      pick.onDidHide(() => resolvePick(undefined));
      pick.show();
    });
  } finally {
    pick.dispose();
  }
}

async function askCount(title: string, prompt: string, value: number, min: number, max: number) {
  const text = await vscode.window.showInputBox({
    title,
    prompt,
    value: String(Math.min(Math.max(value, min), max)),
    validateInput: (s) =>
      /^\d+$/.test(s.trim()) && Number(s) >= min && Number(s) <= max
        ? undefined
        : `Enter a whole number from ${min} to ${max}.`,
  });
  return text === undefined ? undefined : Number(text.trim());
}

/** Account and QoS where the cluster has associations; none asked (and none sent) elsewhere. */
async function askAccount(
  title: string,
  cluster: SlurmCluster,
  remembered: SlurmJobOptions | undefined,
): Promise<{ account?: string; qos?: string } | undefined> {
  if (cluster.accounts.length === 0) return {};
  const none = { label: '(the default account)', account: undefined };
  const accounts = [none, ...cluster.accounts.map((a) => ({ label: a.account, account: a.account }))];
  accounts.sort((a, b) => Number(b.account === remembered?.account) - Number(a.account === remembered?.account));
  const account = await vscode.window.showQuickPick(accounts, { title: `${title}: account` });
  if (!account) return undefined;
  const qosList = cluster.accounts.find((a) => a.account === account.account)?.qos ?? [];
  if (qosList.length < 2) return { account: account.account };
  const qosItems = [{ label: '(the default QoS)', qos: undefined }, ...qosList.map((q) => ({ label: q, qos: q }))];
  qosItems.sort((a, b) => Number(b.qos === remembered?.qos) - Number(a.qos === remembered?.qos));
  const qos = await vscode.window.showQuickPick(qosItems, { title: `${title}: QoS` });
  return qos ? { account: account.account, qos: qos.qos } : undefined;
}

/** The job to submit on this cluster, or undefined when a question was dismissed. */
export async function askSlurmJob(
  hostLabel: string,
  cluster: SlurmCluster,
  remembered: SlurmJobOptions | undefined,
): Promise<SlurmJobOptions | undefined> {
  const title = `Slurm job on ${hostLabel}`;
  const partition = await askPartition(title, cluster, remembered?.partition);
  if (!partition) return undefined;
  const nodes = await askCount(
    `${title}: nodes`,
    `Nodes of ${partition.name} (torchrun starts one process per GPU on each)`,
    remembered?.nodes ?? 1,
    1,
    Math.max(partition.nodes, 1),
  );
  if (nodes === undefined) return undefined;
  // A CPU-only partition: the job runs one task (the bundled engine, or PyTorch on CPU).
  const gpus =
    partition.gpusPerNode === 0
      ? 0
      : await askCount(
          `${title}: GPUs per node`,
          `GPUs per node (${partition.name} has ${partition.gpusPerNode}); 0 runs one task on CPU`,
          remembered?.gpusPerNode ?? partition.gpusPerNode,
          0,
          partition.gpusPerNode,
        );
  if (gpus === undefined) return undefined;
  const job: SlurmJobOptions = { partition: partition.name, nodes, gpusPerNode: gpus, timeLimit: '' };
  const timeLimit = await vscode.window.showInputBox({
    title: `${title}: time limit`,
    prompt:
      `minutes, HH:MM:SS or D-HH:MM:SS; empty: the partition's (${partition.timeLimit}). ` +
      'The trainer checkpoints before it.',
    value: remembered?.timeLimit ?? '',
    validateInput: (s) => problemOf({ ...job, timeLimit: s.trim() }),
  });
  if (timeLimit === undefined) return undefined;
  const charge = await askAccount(title, cluster, remembered);
  if (!charge) return undefined;
  return { ...job, timeLimit: timeLimit.trim(), ...charge };
}

/**
 * Resume's Slurm job: the host's remembered answers as they are (the first row: Enter) or changed
 * (Start Training's questions, those answers as defaults). All asked when nothing is remembered, or
 * what is no longer fits the cluster (a partition gone, fewer nodes).
 */
export async function confirmSlurmJob(
  title: string,
  hostLabel: string,
  cluster: SlurmCluster,
  remembered: SlurmJobOptions | undefined,
): Promise<SlurmJobOptions | undefined> {
  if (!remembered || !fitsCluster(remembered, cluster)) return askSlurmJob(hostLabel, cluster, remembered);
  const keep = { label: `$(debug-start) Resume with: ${describeJob(remembered)}`, change: false };
  const change = { label: '$(edit) Change…', description: 'partition, nodes, GPUs, time limit', change: true };
  const picked = await vscode.window.showQuickPick([keep, change], {
    title: `${title}: Slurm job on ${hostLabel}`,
    placeHolder: 'The job last submitted on this host; Enter resumes with it',
  });
  if (!picked) return undefined;
  return picked.change ? askSlurmJob(hostLabel, cluster, remembered) : remembered;
}
