// Chat wiring: the shared serve processes, "Steelscope: Chat with Checkpoint" (palette, and the
// context menu of runs and complete checkpoints), and the @steelscope chat participant.
import * as vscode from 'vscode';
import type { AlertRuleStore } from '../alerts/notifier';
import { checkpointArg, runKeyArg } from '../commands/menuArgs';
import { pickRuns } from '../commands/pickers';
import { DashboardPanel } from '../panels/dashboard';
import type { RunKey, RunStoreApi } from '../runs/types';
import { hostLog } from '../log';
import { trainerNode } from '../settings';
import type { RemoteTarget } from '../ssh/remoteTarget';
import { checkpointLabel, checkpointRef, ChatHub, refOnHost } from './dashboardChat';
import { registerChatParticipant } from './participant';
import { ServePool, type ServeStart } from './serveClient';

/**
 * Registers the chat command and participant; returns the hub every dashboard chats through. A
 * checkpoint on an SSH host (one of `remotes`) is served there, over the host's connection.
 */
export function registerChat(
  context: vscode.ExtensionContext,
  store: RunStoreApi,
  remotes: () => readonly RemoteTarget[],
  alertRules: AlertRuleStore,
): ChatHub {
  const cliPath = vscode.Uri.joinPath(context.extensionUri, 'dist', 'cli.js').fsPath;
  const route = (ref: string): ServeStart | undefined => {
    for (const target of remotes()) {
      const dir = refOnHost(ref, target.id);
      if (dir !== undefined) return () => target.serve(dir);
    }
    return undefined;
  };
  const hub = new ChatHub(
    new ServePool({ cliPath, nodePath: () => trainerNode().path, onWarning: (m) => hostLog().warn(m), route }),
  );
  const command = vscode.commands.registerCommand('steelscope.chatWithCheckpoint', async (node?: unknown) => {
    try {
      const chosen = await chooseCheckpoint(store, node);
      if (chosen) DashboardPanel.show(context, store, [chosen.key], hub, alertRules).focusChat(chosen.dir);
    } catch (err) {
      void vscode.window.showErrorMessage(`Steelscope: ${err instanceof Error ? err.message : String(err)}`);
    }
  });
  context.subscriptions.push(hub, command, ...registerChatParticipant(context, store, hub));
  return hub;
}

/** From a checkpoint item, a run item (its best checkpoint), or quick picks: run, then checkpoint; `dir` is a chat ref. */
async function chooseCheckpoint(store: RunStoreApi, node: unknown): Promise<{ key: RunKey; dir?: string } | undefined> {
  const checkpoint = checkpointArg(node);
  const runItem = runKeyArg(node);
  const key = checkpoint?.key ?? runItem ?? (await pickRuns(store, 'Chat with Checkpoint: pick a run'))[0];
  const run = key !== undefined ? store.get(key)?.summary : undefined;
  if (!run) return undefined;
  if (checkpoint) return { key: run.key, dir: checkpointRef(run, checkpoint.checkpoint.dir) };
  const complete = run.checkpoints.filter((c) => c.complete).reverse();
  if (complete.length === 0) throw new Error(`${run.name} has no complete checkpoint yet.`);
  if (runItem !== undefined) return { key: run.key };
  const items = complete.map((c) => ({
    label: checkpointLabel(run, c, false),
    detail: c.dir,
    dir: checkpointRef(run, c.dir),
  }));
  const picked = await vscode.window.showQuickPick(items, {
    title: `Chat with Checkpoint: ${run.name}`,
    placeHolder: 'The checkpoint to answer',
  });
  return picked ? { key: run.key, dir: picked.dir } : undefined;
}
