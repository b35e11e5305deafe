// "Steelscope: Install Fast Backend": runs `steelscope install-backend` (src/cli/commands/
// install-backend.ts) under a progress notification, npm's output in an output channel, and
// reports the outcome. The CLI does the work and the explaining; this only shows it.
import * as vscode from 'vscode';
import { spawn } from 'node:child_process';

export const FAST_BACKEND_COMMAND = 'steelscope.installFastBackend';

interface Outcome {
  code: number | null;
  /** The CLI's own lines (they start after npm's output), for the notification. */
  summary: string[];
  cancelled: boolean;
}

function runInstall(
  nodePath: string,
  cliPath: string,
  gpu: boolean,
  channel: vscode.OutputChannel,
  progress: vscode.Progress<{ message?: string }>,
  token: vscode.CancellationToken,
): Promise<Outcome> {
  return new Promise((resolveOutcome) => {
    const args = [cliPath, 'install-backend', ...(gpu ? ['--gpu'] : [])];
    channel.appendLine(`$ ${nodePath} ${args.join(' ')}`);
    const child = spawn(nodePath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const lines: string[] = [];
    const onData = (chunk: Buffer): void => {
      const text = chunk.toString('utf8');
      channel.append(text);
      for (const line of text
        .split('\n')
        .map((l) => l.trim())
        .filter(Boolean)) {
        lines.push(line);
        progress.report({ message: line.slice(0, 120) });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    let cancelled = false;
    const sub = token.onCancellationRequested(() => {
      cancelled = true;
      child.kill();
    });
    const finish = (code: number | null): void => {
      sub.dispose();
      const ours = lines.filter(
        (l) => l.startsWith('steelscope:') || /^Training |works \(|^Install the CPU build/.test(l),
      );
      resolveOutcome({ code, summary: ours.length ? ours : lines.slice(-2), cancelled });
    };
    child.on('error', (err) => {
      lines.push(`steelscope: could not start ${nodePath}: ${err.message}`);
      finish(null);
    });
    child.on('close', finish);
  });
}

async function installFastBackend(
  nodePath: () => string,
  cliPath: string,
  channel: vscode.OutputChannel,
): Promise<void> {
  const choice = await vscode.window.showQuickPick(
    [
      { label: 'CPU', description: '@tensorflow/tfjs-node', gpu: false },
      { label: 'NVIDIA GPU', description: '@tensorflow/tfjs-node-gpu (needs CUDA and its driver)', gpu: true },
    ],
    {
      title: 'Steelscope: Install Fast Backend',
      placeHolder: 'Which TensorFlow backend to install (training uses WebAssembly until one works)',
    },
  );
  if (choice === undefined) return;
  channel.show(true);
  const outcome = await vscode.window.withProgress(
    {
      location: vscode.ProgressLocation.Notification,
      title: 'Steelscope: installing the fast backend',
      cancellable: true,
    },
    (progress, token) => runInstall(nodePath(), cliPath, choice.gpu, channel, progress, token),
  );
  const text = outcome.summary.join(' ');
  if (outcome.cancelled) {
    void vscode.window.showWarningMessage(
      'Steelscope: the fast backend install was cancelled. Training continues on WebAssembly.',
    );
  } else if (outcome.code === 0) {
    void vscode.window.showInformationMessage(`Steelscope: ${text}`);
  } else {
    const show = await vscode.window.showWarningMessage(
      text.startsWith('steelscope:') ? `S${text.slice(1)}` : `Steelscope: ${text}`,
      'Show Output',
    );
    if (show) channel.show();
  }
}

/** Registers the command; the returned disposable also disposes its output channel. */
export function registerFastBackendCommand(
  context: vscode.ExtensionContext,
  nodePath: () => string,
  cliPath: string,
): vscode.Disposable {
  const channel = vscode.window.createOutputChannel('Steelscope: Fast Backend');
  const command = vscode.commands.registerCommand(FAST_BACKEND_COMMAND, async () => {
    try {
      await installFastBackend(nodePath, cliPath, channel);
    } catch (err) {
      void vscode.window.showErrorMessage(`Steelscope: ${err instanceof Error ? err.message : String(err)}`);
    }
  });
  const both = vscode.Disposable.from(command, channel);
  context.subscriptions.push(both);
  return both;
}
