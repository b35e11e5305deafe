// Chat wiring: the shared serve processes, "Steelscope: Chat with Checkpoint" (palette, and the
// context menu of runs and complete checkpoints), and the @steelscope chat participant.
import * as vscode from 'vscode';
import { pickRuns } from '../commands/pickers';
import { DashboardPanel } from '../panels/dashboard';
import { resolveNodePath } from '../runs/nodePath';
import type { RunKey, RunStoreApi } from '../runs/types';
import { nodePathSetting } from '../settings';
import type { RunsNode } from '../views/runsTree';
import { checkpointLabel, ChatHub } from './dashboardChat';
import { registerChatParticipant } from './participant';
import { ServePool } from './serveClient';

/** Registers the chat command and participant; returns the hub every dashboard chats through. */
export function registerChat(context: vscode.ExtensionContext, store: RunStoreApi): ChatHub {
  const cliPath = vscode.Uri.joinPath(context.extensionUri, 'dist', 'cli.js').fsPath;
  const hub = new ChatHub(new ServePool({ cliPath, nodePath: () => resolveNodePath(nodePathSetting()), onWarning: (m) => console.warn(m) }));
  const command = vscode.commands.registerCommand('steelscope.chatWithCheckpoint', async (node?: unknown) => {
    try {
      const chosen = await chooseCheckpoint(store, node as RunsNode | undefined);
      if (chosen) DashboardPanel.show(context, store, [chosen.key], hub).focusChat(chosen.dir);
    } catch (err) {
      void vscode.window.showErrorMessage(`Steelscope: ${err instanceof Error ? err.message : String(err)}`);
    }
  });
  context.subscriptions.push(hub, command, ...registerChatParticipant(context, store, hub));
  return hub;
}

/** From a checkpoint item, a run item (its best checkpoint), or quick picks: run, then checkpoint. */
async function chooseCheckpoint(store: RunStoreApi, node: RunsNode | undefined): Promise<{ key: RunKey; dir?: string } | undefined> {
  if (node?.kind === 'checkpoint') return { key: node.key, dir: node.checkpoint.dir };
  const key = node?.kind === 'run' ? node.key : (await pickRuns(store, 'Chat with Checkpoint: pick a run'))[0];
  const run = key !== undefined ? store.get(key)?.summary : undefined;
  if (!run) return undefined;
  if (run.hostId !== 'local') throw new Error(`chat runs on this machine only for now; ${run.name} is on ${run.hostLabel}.`);
  const complete = run.checkpoints.filter((c) => c.complete).reverse();
  if (complete.length === 0) throw new Error(`${run.name} has no complete checkpoint yet.`);
  if (node?.kind === 'run') return { key: run.key };
  const items = complete.map((c) => ({ label: checkpointLabel(run, c, false), detail: c.dir, dir: c.dir }));
  const picked = await vscode.window.showQuickPick(items, { title: `Chat with Checkpoint: ${run.name}`, placeHolder: 'The checkpoint to answer' });
  return picked ? { key: run.key, dir: picked.dir } : undefined;
}
