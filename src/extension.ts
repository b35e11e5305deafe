// Extension entry: wiring only. The model core never loads here; runs are CLI child processes
// that write run directories, which the RunStore tails (see DESIGN.md).
import * as vscode from 'vscode';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { AlertNotifier, AlertRuleStore } from './host/alerts/notifier';
import { registerChat } from './host/chat/register';
import { registerFastBackendCommand } from './host/commands/fastBackend';
import { registerEvaluateCommand } from './host/commands/evaluate';
import { registerRunCommands, type CommandServices } from './host/commands/runCommands';
import { SlurmJobMemory } from './host/commands/slurmPick';
import { DashboardPanel } from './host/panels/dashboard';
import { LocalTarget } from './host/runs/localTarget';
import { RunStore } from './host/runs/store';
import type { RunTarget } from './host/runs/types';
import { disposeHostLog, hostLog } from './host/log';
import { extensionVersion, pythonPath, runsRoot, trainerEnv, trainerNode } from './host/settings';
import { RunsTreeProvider } from './host/views/runsTree';
import { hostStates, observeRun, registerSshCommands } from './host/ssh/commands';
import { RunStatusBar } from './host/views/statusBar';

const OBSERVED_FOLDERS = 'steelscope.observedFolders';

export function activate(context: vscode.ExtensionContext): void {
  const store = new RunStore({ log: hostLog() });
  const cliPath = join(context.extensionPath, 'dist', 'cli.js');
  let local = makeLocalTarget(cliPath);
  // SSH hosts (issue 4): created first because the tree lists their connection states and the chat serves on them.
  let refreshTree = (): void => undefined;
  const ssh = registerSshCommands({ context, store, onHostsChanged: () => refreshTree() });
  // The notifier needs the dashboard, the dashboard the rules: rules saved on a dashboard reach the
  // notifier (`alerts`, made below; a save can only come after activation) so they apply at once.
  const alertRules = new AlertRuleStore(context.workspaceState, (keys) => keys.forEach((k) => alerts.reloadRules(k)));
  const chat = registerChat(context, store, () => ssh.hosts.list(), alertRules);
  const targets = (): RunTarget[] => [local, ...ssh.hosts.list()];

  const tree = new RunsTreeProvider(store, () => [
    { id: local.id, label: local.label, state: 'connected' },
    ...hostStates(ssh.hosts),
  ]);
  refreshTree = () => tree.refresh();
  const statusBar = new RunStatusBar(store);
  const view = vscode.window.createTreeView('steelscope.runs', {
    treeDataProvider: tree,
    canSelectMany: true,
    showCollapseAll: true,
  });

  const rescan = async (): Promise<void> => {
    for (const dir of await local.listRunDirs()) store.addRun(local, dir);
    for (const dir of context.globalState.get<string[]>(OBSERVED_FOLDERS, []))
      if (existsSync(dir)) store.addRun(local, dir);
    await ssh.hosts.rescan(store);
    await store.refresh();
  };

  const openDashboard = (keys: string[]): void => {
    DashboardPanel.show(context, store, keys, chat, alertRules);
    statusBar.focus(keys[0]);
  };
  const alerts = new AlertNotifier(store, (key) => alertRules.forRun(key), openDashboard);

  const commands: CommandServices = {
    store,
    targets,
    addRun: (target, dir) => observeRun(store, target, dir),
    removeRun: (key) => void store.removeRun(key),
    refresh: async () => void (await Promise.all([rescan(), ssh.hosts.refreshClusters()])),
    openDashboard,
    rememberFolder: async (dir) => {
      const folders = new Set(context.globalState.get<string[]>(OBSERVED_FOLDERS, []));
      await context.globalState.update(OBSERVED_FOLDERS, [...folders.add(dir)]);
    },
    slurmJobs: new SlurmJobMemory(context.globalState),
    memory: context.globalState,
    forgetFolder: async (dir) => {
      const folders = context.globalState.get<string[]>(OBSERVED_FOLDERS, []).filter((f) => f !== dir);
      await context.globalState.update(OBSERVED_FOLDERS, folders);
    },
  };
  context.subscriptions.push(
    { dispose: disposeHostLog },
    alerts,
    store,
    DashboardPanel.registerSerializer(context, store, chat, alertRules),
    tree,
    statusBar,
    view,
    ...ssh.disposables,
    ...registerRunCommands(commands),
    registerEvaluateCommand(commands),
    vscode.commands.registerCommand('steelscope.showVersion', () => {
      const version = extensionVersion(context) ?? 'unknown';
      void vscode.window.showInformationMessage(`Steelscope ${version}`);
    }),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (
        !['runsRoot', 'hostRunsFolders', 'nodePath', 'threads'].some((key) =>
          e.affectsConfiguration(`steelscope.${key}`),
        )
      )
        return;
      local = makeLocalTarget(cliPath);
      void rescan();
    }),
  );
  registerFastBackendCommand(context, () => trainerNode().path, cliPath);
  // Re-attach to every run on disk, running ones included (their pid is in run.json).
  void rescan();
}

function makeLocalTarget(cliPath: string): LocalTarget {
  const node = trainerNode();
  if (node.problem) {
    // Shown now; a start then fails with this name and the hint to set the path.
    hostLog().warn(node.problem);
    void vscode.window.showWarningMessage(`Steelscope: ${node.problem}`);
  }
  return new LocalTarget({ runsRoot: runsRoot(), nodePath: node.path, cliPath, env: trainerEnv(), pythonPath });
}

export function deactivate(): void {}
