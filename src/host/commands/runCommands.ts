// The commands of the Runs view and the command palette. Each resolves its runs (tree selection
// or a quick pick), asks the run's target to act, and reports failures with what to do next.
import * as vscode from 'vscode';
import { writeFile } from 'node:fs/promises';
import { PRESETS } from '../../shared/config';
import { describeFound, findRuns } from '../../shared/node/formats/detect';
import type { EngineOptions, RunKey, RunStoreApi, RunSummary, RunTarget, StartRequest } from '../runs/types';
import { deleteQuestion } from '../runs/deletePlan';
import { metricsCsv } from '../csv';
import { defaultPreset } from '../settings';
import { checkpointArg, hostIdArg, keysFromArgs } from './menuArgs';
import { pickEngine } from './enginePick';
import { askSteps, pickData, pickPreset, pickRuns } from './pickers';
import { askSlurmJob, confirmSlurmJob, type SlurmJobMemory } from './slurmPick';
import { askFineTune, FINE_TUNE, FINE_TUNE_ITEM, pickBaseCheckpoint, type FineTuneBase } from './fineTune';
import type { SlurmCluster } from '../slurm/loginNode';
import type { SlurmJobOptions } from '../slurm/batchScript';

export interface CommandServices {
  store: RunStoreApi;
  targets: () => RunTarget[];
  /** Starts observing a run folder on a target; returns its key. */
  addRun(target: RunTarget, dir: string): RunKey;
  removeRun(key: RunKey): void;
  /** The Runs view's Refresh: every run folder read again, every login node asked about its partitions. */
  refresh(): Promise<void>;
  openDashboard(keys: RunKey[]): void;
  /** Remembers a folder opened with "Open Run Folder…" across sessions. */
  rememberFolder(dir: string): Promise<void>;
  /** Stops remembering a folder opened with "Open Run Folder…" (nothing on disk changes). */
  forgetFolder(dir: string): Promise<void>;
  /** The Slurm answers remembered per host. */
  slurmJobs: Pick<SlurmJobMemory, 'get' | 'set'>;
  /** Where other answers are remembered (the extension's globalState): eval tasks, fine-tuning learning rates. */
  memory: vscode.Memento;
}

type Handler = (node?: unknown, nodes?: unknown) => Promise<void>;

export function registerRunCommands(s: CommandServices): vscode.Disposable[] {
  const commands: Record<string, Handler> = {
    'steelscope.startTraining': (n) => startTraining(s, hostIdArg(n)),
    'steelscope.stopRun': (n, ns) => stopRuns(s, n, ns),
    'steelscope.resumeRun': (n, ns) => resumeRun(s, n, ns),
    'steelscope.resumeFromCheckpoint': (n) => resumeFromCheckpoint(s, n),
    'steelscope.fineTuneFromCheckpoint': (n) => fineTuneFromCheckpoint(s, n),
    'steelscope.openDashboard': async (n, ns) => {
      const keys = keysFromArgs(n, ns);
      const chosen = keys.length ? keys : await pickRuns(s.store, 'Open Dashboard');
      if (chosen.length) s.openDashboard(chosen);
    },
    'steelscope.compareRuns': async (n, ns) => {
      const preselected = keysFromArgs(n, ns);
      const keys =
        preselected.length > 1
          ? preselected
          : await pickRuns(s.store, 'Compare Runs: pick the runs to overlay', { many: true });
      if (keys.length) s.openDashboard(keys);
    },
    'steelscope.openRunFolder': () => openRunFolder(s),
    'steelscope.exportCsv': (n, ns) => exportCsv(s, n, ns),
    'steelscope.deleteRun': (n, ns) => deleteRuns(s, n, ns),
    'steelscope.revealRun': async (n) => {
      const [key] = keysFromArgs(n, undefined);
      const dir = checkpointArg(n)?.checkpoint.dir ?? (key === undefined ? undefined : s.store.get(key)?.summary.dir);
      if (dir) await vscode.commands.executeCommand('revealFileInOS', vscode.Uri.file(dir));
    },
    'steelscope.refreshRuns': () => s.refresh(),
  };
  return Object.entries(commands).map(([id, handler]) =>
    vscode.commands.registerCommand(id, async (node?: unknown, nodes?: unknown) => {
      try {
        await handler(node, nodes);
      } catch (err) {
        void vscode.window.showErrorMessage(`Steelscope: ${err instanceof Error ? err.message : String(err)}`);
      }
    }),
  );
}

export function targetOf(s: CommandServices, summary: RunSummary): RunTarget {
  const target = s.targets().find((t) => t.id === summary.hostId);
  if (!target) throw new Error(`the host of run ${summary.name} (${summary.hostLabel}) is not configured.`);
  return target;
}

async function runsFor(
  s: CommandServices,
  node: unknown,
  nodes: unknown,
  title: string,
  statuses?: RunSummary['status'][],
): Promise<RunSummary[]> {
  const keys = keysFromArgs(node, nodes);
  const chosen = keys.length ? keys : await pickRuns(s.store, title, { many: false, statuses });
  return chosen.map((k) => s.store.get(k)?.summary).filter((x): x is RunSummary => !!x);
}

/** Start Training; from a host's row in the Runs view ("No runs yet"), that host is offered first. */
async function startTraining(s: CommandServices, hostId?: string): Promise<void> {
  const targets = [...s.targets()].sort((a, b) => Number(b.id === hostId) - Number(a.id === hostId));
  const where = await vscode.window.showQuickPick(
    targets.map((t) => ({
      label: t.id === 'local' ? `$(vm) ${t.label}` : `$(${t.kind ? 'server-environment' : 'remote'}) ${t.label}`,
      description: t.kind,
      target: t,
    })),
    { title: 'Start Training (1/6): where should it run?' },
  );
  if (!where) return;
  const target = where.target;
  const cluster = target.slurmCluster
    ? await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Window, title: `Steelscope: asking ${target.label} about Slurm…` },
        () => target.slurmCluster?.() ?? Promise.resolve(undefined),
      )
    : undefined;
  const engine = await pickEngine(target, '2/6', cluster === undefined);
  if (engine === 'cancel') return;
  const preset = await pickPreset(defaultPreset(), FINE_TUNE_ITEM);
  if (!preset) return;
  if (preset === FINE_TUNE) {
    const base = await pickBaseCheckpoint(s.store, target);
    if (base) await fineTune(s, target, base, engine, cluster);
    return;
  }
  const data = await pickData(where.target.id === 'local' ? undefined : where.target.label);
  if (!data) return;
  const steps = await askSteps('Start Training (5/6): steps', PRESETS[preset].max_steps);
  if (steps === undefined) return;
  const stamp = new Date().toISOString().slice(5, 16).replace(/[-:T]/g, '');
  const name = await vscode.window.showInputBox({
    title: 'Start Training (6/6): run name (optional)',
    value: `${preset}-${stamp}`,
    prompt: 'Shown in the Runs view; any text',
  });
  if (name === undefined) return;
  await launch(s, target, { preset, data, steps, name: name.trim() || undefined, engine }, cluster, preset);
}

/** Asks for the Slurm job where the target is a login node, then starts the run and opens its dashboard. */
async function launch(
  s: CommandServices,
  target: RunTarget,
  request: StartRequest,
  cluster: SlurmCluster | undefined,
  what: string,
): Promise<void> {
  const { engine } = request;
  let slurm: SlurmJobOptions | undefined;
  if (cluster) {
    slurm = await askSlurmJob(target.label, cluster, s.slurmJobs.get(target.id));
    if (!slurm) return;
    await s.slurmJobs.set(target.id, slurm);
    // One process per GPU of each node; one task on a CPU-only node.
    if (engine) engine.nproc = Math.max(slurm.gpusPerNode, 1);
  }
  const how = slurm ? `submitting ${what} to Slurm (${slurm.partition})` : `starting ${what}`;
  await vscode.window.withProgress(
    {
      location: vscode.ProgressLocation.Notification,
      title: `Steelscope: ${how}${engine ? ' (PyTorch)' : ''} on ${target.label}…`,
    },
    async () => {
      // A queued job may wait long for its nodes: the Runs view shows it pending meanwhile.
      const dir = await target.start(slurm ? { ...request, slurm, waitUntil: 'submitted' } : request);
      s.openDashboard([s.addRun(target, dir)]);
    },
  );
}

/** The fine-tune path once target, engine and base checkpoint are known: chat data, steps, learning rate, name, start. */
async function fineTune(
  s: CommandServices,
  target: RunTarget,
  base: FineTuneBase,
  engine: EngineOptions | undefined,
  cluster: SlurmCluster | undefined,
): Promise<void> {
  const answers = await askFineTune(target, base, s.memory);
  if (!answers) return;
  const request = { ...answers, preset: FINE_TUNE, name: answers.name.trim() || undefined, engine };
  await launch(s, target, request, cluster, `fine-tuning ${base.run.name} from step ${base.checkpoint.step}`);
}

/** The checkpoint menu's "Fine-tune from This Checkpoint…": Start Training's fine-tune path on that base. */
async function fineTuneFromCheckpoint(s: CommandServices, node: unknown): Promise<void> {
  const n = checkpointArg(node);
  if (!n) throw new Error('pick a checkpoint in the Runs view.');
  const run = s.store.get(n.key)?.summary;
  const checkpoint = run?.checkpoints.find((c) => c.dir === n.checkpoint.dir && c.complete);
  if (!run || !checkpoint) throw new Error(`checkpoint ${n.checkpoint.dir} is not complete; pick another.`);
  const target = targetOf(s, run);
  const cluster = await target.slurmCluster?.();
  const engine = await pickEngine(target, '2/6', cluster === undefined);
  if (engine === 'cancel') return;
  await fineTune(s, target, { run, checkpoint }, engine, cluster);
}

/** A run of a Slurm job resumes as a new job: the host's remembered answers, confirmed or changed. */
async function slurmResume(s: CommandServices, target: RunTarget, run: RunSummary) {
  if (!run.info?.slurm_job_id) return {};
  const cluster = await target.slurmCluster?.();
  if (!cluster) return {};
  const slurm = await confirmSlurmJob(`Resume ${run.name}`, target.label, cluster, s.slurmJobs.get(target.id));
  if (!slurm) return undefined;
  await s.slurmJobs.set(target.id, slurm);
  return { slurm, waitUntil: 'submitted' as const };
}

async function stopRuns(s: CommandServices, node: unknown, nodes: unknown): Promise<void> {
  for (const run of await runsFor(s, node, nodes, 'Stop Run', ['running', 'starting', 'pending'])) {
    await targetOf(s, run).stop(run.dir);
    void vscode.window.setStatusBarMessage(`Steelscope: stopping ${run.name} (it saves a checkpoint first)…`, 5000);
  }
}

async function resumeRun(s: CommandServices, node: unknown, nodes: unknown): Promise<void> {
  for (const run of await runsFor(s, node, nodes, 'Resume Run', ['stopped', 'failed', 'stale', 'finished'])) {
    const last = run.checkpoints.filter((c) => c.complete).at(-1)?.step ?? 0;
    const planned = run.config?.max_steps ?? last + 1;
    const steps = await askSteps(
      `Resume ${run.name}: train until step`,
      planned > last ? planned : last * 2 || 1,
      last + 1,
    );
    if (steps === undefined) return;
    const target = targetOf(s, run);
    const slurm = await slurmResume(s, target, run);
    if (!slurm) return;
    await target.resume(run.dir, { steps, ...slurm });
  }
}

async function resumeFromCheckpoint(s: CommandServices, node: unknown): Promise<void> {
  const n = checkpointArg(node);
  if (!n) throw new Error('pick a checkpoint in the Runs view.');
  const run = s.store.get(n.key)?.summary;
  if (!run) return;
  const steps = await askSteps(
    `Resume ${run.name} from step ${n.checkpoint.step}: train until step`,
    run.config?.max_steps ?? n.checkpoint.step * 2,
    n.checkpoint.step + 1,
  );
  if (steps === undefined) return;
  const target = targetOf(s, run);
  const slurm = await slurmResume(s, target, run);
  if (!slurm) return;
  await target.resume(run.dir, { steps, checkpoint: n.checkpoint.dir, ...slurm });
}

async function openRunFolder(s: CommandServices): Promise<void> {
  const chosen = await vscode.window.showOpenDialog({
    canSelectFolders: true,
    canSelectFiles: false,
    openLabel: 'Observe this run',
  });
  const dir = chosen?.[0]?.fsPath;
  if (!dir) return;
  const runs = await findRuns(dir);
  if (runs.length === 0) {
    throw new Error(
      `${dir} holds no run: neither run.json nor metrics.jsonl (one JSON object per line with "step"), ` +
        'TensorBoard event files (events.out.tfevents.*), a metrics.csv with a step column, nor trainer_state.json, ' +
        'in it or in its sub-folders.',
    );
  }
  const local = s.targets().find((t) => t.id === 'local');
  if (!local) return;
  const keys: RunKey[] = [];
  for (const run of runs) {
    await s.rememberFolder(run.dir);
    keys.push(s.addRun(local, run.dir));
  }
  void vscode.window.showInformationMessage(`Steelscope: ${dir}: ${describeFound(runs)}`);
  s.openDashboard(keys);
}

async function exportCsv(s: CommandServices, node: unknown, nodes: unknown): Promise<void> {
  const keys = keysFromArgs(node, nodes);
  const chosen = keys.length ? keys : await pickRuns(s.store, 'Export Metrics as CSV: pick runs', { many: true });
  const runs = chosen.map((k) => s.store.get(k)).filter((r) => r !== undefined);
  if (runs.length === 0) return;
  const target = await vscode.window.showSaveDialog({
    filters: { CSV: ['csv'] },
    saveLabel: 'Export',
    title: 'Export metrics as CSV',
  });
  if (!target) return;
  await writeFile(target.fsPath, metricsCsv(runs));
  void vscode.window.showInformationMessage(`Steelscope: exported ${runs.length} run(s) to ${target.fsPath}.`);
}

async function deleteRuns(s: CommandServices, node: unknown, nodes: unknown): Promise<void> {
  for (const run of await runsFor(s, node, nodes, 'Delete Run')) {
    const target = targetOf(s, run);
    // Only a folder the target created goes; one observed from elsewhere is only forgotten.
    const plan = await target.planDelete(run.dir);
    const verb = plan.action === 'delete' ? 'Delete' : 'Forget';
    const answer = await vscode.window.showWarningMessage(
      deleteQuestion(plan, run.name, run.hostLabel),
      { modal: true },
      verb,
    );
    if (answer !== verb) continue;
    if (plan.action === 'delete') await target.delete(plan.dir);
    else await s.forgetFolder(run.dir);
    s.removeRun(run.key);
  }
}
