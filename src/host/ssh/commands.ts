// The SSH commands: Add SSH Host…, Remove, Reconnect, Fetch Checkpoint, Install GPU Backend.
// registerSshCommands returns the disposables and the SshHosts the rest of the extension uses
// (targets for Start Training, states for the Runs tree).
import * as vscode from 'vscode';
import { join } from 'node:path';
import { checkpointDirName } from '../../shared/run';
import type { RunKey, RunStoreApi, RunTarget } from '../runs/types';
import type { HostState } from '../views/hostRows';
import { checkpointArg, hostIdArg } from '../commands/menuArgs';
import { SshHosts, type RemoteRunSink } from './hosts';
import type { JobSink } from '../slurm/jobWatch';
import { hostLog } from '../log';
import { RemoteTarget } from './remoteTarget';
import { hostsFromConfig, readUserConfig } from './sshConfig';
import { extensionVersion, hostRunsFolder } from '../settings';
import { VscodeSshPrompts } from './vscodePrompts';

const HOSTS_KEY = 'steelscope.sshHosts';

export interface SshCommandServices {
  context: vscode.ExtensionContext;
  store: RunStoreApi & RemoteRunSink & Pick<JobSink, 'setJob'>;
  /** The tree refreshes when a host is added, removed or changes state. */
  onHostsChanged(): void;
}

/** A run folder on any target: remote ones are followed over SSH, local ones tailed. */
export function observeRun(
  store: RemoteRunSink & { addRun(target: RunTarget, dir: string): RunKey },
  target: RunTarget,
  dir: string,
): RunKey {
  return target instanceof RemoteTarget
    ? store.addRemoteRun(target, dir, target.createFollower(dir))
    : store.addRun(target, dir);
}

export function hostStates(hosts: SshHosts): HostState[] {
  return hosts.list().map((t) => ({ id: t.id, label: t.label, state: t.state, slurm: t.slurm.cluster }));
}

export function registerSshCommands(s: SshCommandServices): { hosts: SshHosts; disposables: vscode.Disposable[] } {
  const { context } = s;
  const hosts = new SshHosts({
    prompts: new VscodeSshPrompts(context.secrets),
    storage: {
      get: () => context.globalState.get<string[]>(HOSTS_KEY, []),
      set: (list) => context.globalState.update(HOSTS_KEY, list),
    },
    distDir: join(context.extensionPath, 'dist'),
    version: extensionVersion(context) ?? '0.0.0',
    runsRootOf: hostRunsFolder,
  });
  const watch = (t: RemoteTarget) => {
    const subscriptions = [
      t.onState(() => s.onHostsChanged()),
      t.slurm.onChange((state) => {
        if (state.kind === 'plain' && state.why)
          hostLog().warn(
            `${t.label}: sbatch is there but sinfo failed, so it is used as a plain SSH host: ${state.why}`,
          );
        s.onHostsChanged();
      }),
      t.watchJobs({
        runs: () => [...s.store.runs.values()].map((r) => r.summary).filter((r) => r.hostId === t.id),
        setJob: (key, job) => s.store.setJob(key, job),
      }),
    ];
    return { dispose: () => subscriptions.forEach((d) => d.dispose()) };
  };
  const watched = new Map<string, { dispose(): void }>(hosts.list().map((t) => [t.id, watch(t)]));
  const commands: Record<string, (node?: unknown) => Promise<void>> = {
    'steelscope.addSshHost': async () => {
      const alias = await pickHost();
      if (!alias) return;
      const target = await vscode.window.withProgress(
        {
          location: vscode.ProgressLocation.Notification,
          title: `Steelscope: connecting to ${alias} and installing the trainer…`,
        },
        () => hosts.add(alias),
      );
      if (!watched.has(target.id)) watched.set(target.id, watch(target));
      await hosts.rescan(s.store);
      s.onHostsChanged();
      void vscode.window.showInformationMessage(`Steelscope: ${alias} is ready; pick it in Start Training.`);
    },
    'steelscope.removeSshHost': async (node) => {
      const target = await targetFrom(hosts, node, 'Remove SSH Host');
      if (!target) return;
      await hosts.remove(target.label);
      watched.get(target.id)?.dispose();
      watched.delete(target.id);
      s.onHostsChanged();
    },
    'steelscope.reconnectSshHost': async (node) => {
      const target = await targetFrom(hosts, node, 'Reconnect SSH Host');
      if (!target) return;
      await target.reconnect();
      await hosts.rescan(s.store);
    },
    'steelscope.fetchCheckpoint': (node) => fetchCheckpoint(s, hosts, node),
    'steelscope.installGpuBackend': async (node) => {
      const target = await targetFrom(hosts, node, 'Install GPU Backend');
      if (!target) return;
      await vscode.window.withProgress(
        {
          location: vscode.ProgressLocation.Notification,
          title: `Steelscope: installing tfjs-node-gpu on ${target.label}…`,
        },
        () => target.installGpuBackend(),
      );
      void vscode.window.showInformationMessage(
        `Steelscope: the GPU backend is installed on ${target.label}; new runs there use it.`,
      );
    },
  };
  const disposables = Object.entries(commands).map(([id, handler]) =>
    vscode.commands.registerCommand(id, async (node?: unknown) => {
      try {
        await handler(node);
      } catch (err) {
        void vscode.window.showErrorMessage(`Steelscope: ${err instanceof Error ? err.message : String(err)}`);
      }
    }),
  );
  disposables.push({ dispose: () => (watched.forEach((w) => w.dispose()), hosts.dispose()) });
  void hosts.rescan(s.store);
  return { hosts, disposables };
}

async function pickHost(): Promise<string | undefined> {
  const aliases = hostsFromConfig(readUserConfig());
  const other = '$(edit) Enter user@host[:port]…';
  const picked = await vscode.window.showQuickPick(
    [...aliases.map((a) => ({ label: a, description: '~/.ssh/config' })), { label: other, description: '' }],
    { title: 'Add SSH Host' },
  );
  if (!picked) return undefined;
  if (picked.label !== other) return picked.label;
  const typed = await vscode.window.showInputBox({
    title: 'Add SSH Host',
    prompt: 'user@host or user@host:port',
    validateInput: (v) =>
      /^([^@\s]+@)?[^@\s:]+(:\d+)?$/.test(v.trim()) ? undefined : 'Enter user@host or user@host:port.',
  });
  return typed?.trim() || undefined;
}

async function targetFrom(hosts: SshHosts, node: unknown, title: string): Promise<RemoteTarget | undefined> {
  const hostId = hostIdArg(node);
  const byNode = hosts.list().find((t) => t.id === hostId);
  if (byNode) return byNode;
  if (hosts.list().length === 0) throw new Error('no SSH host has been added. Use "Steelscope: Add SSH Host…".');
  const picked = await vscode.window.showQuickPick(
    hosts.list().map((t) => ({ label: t.label, description: t.state, target: t })),
    { title },
  );
  return picked?.target;
}

async function fetchCheckpoint(s: SshCommandServices, hosts: SshHosts, node: unknown): Promise<void> {
  const n = checkpointArg(node);
  const run = n ? s.store.get(n.key)?.summary : undefined;
  if (!run || !n) throw new Error('pick a checkpoint of a run on an SSH host in the Runs view.');
  const target = hosts.list().find((t) => t.id === run.hostId);
  if (!target) throw new Error(`${run.name} is not on an SSH host.`);
  const chosen = await vscode.window.showOpenDialog({
    canSelectFolders: true,
    canSelectFiles: false,
    openLabel: 'Download here',
  });
  if (!chosen?.[0]) return;
  const local = join(
    chosen[0].fsPath,
    `${run.name.replace(/[^\p{L}\p{N}._-]+/gu, '-')}-${checkpointDirName(n.checkpoint.step)}`,
  );
  const step = n.checkpoint.step;
  await vscode.window.withProgress(
    {
      location: vscode.ProgressLocation.Notification,
      title: `Steelscope: downloading checkpoint ${step}`,
      cancellable: false,
    },
    async (progress) => {
      let last = 0;
      await target.fetchCheckpoint(run.dir, step, local, (p) => {
        const pct = p.totalBytes ? (100 * p.bytes) / p.totalBytes : 100;
        progress.report({ increment: pct - last, message: p.file });
        last = pct;
      });
    },
  );
  void vscode.window.showInformationMessage(
    `Steelscope: checkpoint ${step} of ${run.name} is in ${local} (hashes checked).`,
  );
}
