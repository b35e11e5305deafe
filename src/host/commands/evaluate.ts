// "Steelscope: Evaluate Checkpoint…" (palette, and the Runs view's menu on a checkpoint or a run):
// which checkpoint, which task (the shipped poetry-mc, a task the user chose before, or a CSV file
// or folder in the C-Eval/CMMLU layout: picked here, or typed as a path on the SSH host), how many
// shots; then `steelscope eval` runs on the checkpoint's own target (runEval) with its progress in a
// cancellable notification. The CLI appends the records to the run's evals.jsonl, which the
// tracker reads: the dashboard's Evals section and the Runs view show the score from there.
import * as vscode from 'vscode';
import { DEFAULT_SHOTS } from '../../shared/eval';
import { intRange } from '../../shared/schema';
import * as v from 'valibot';
import { EvalCancelled, resultLine, runEval, type EvalRequest } from '../runs/evalJob';
import type { CheckpointSummary, RunSummary } from '../runs/types';
import { checkpointArg, runKeyArg } from './menuArgs';
import { pickRuns } from './pickers';
import { targetOf, type CommandServices } from './runCommands';

/** Tasks the user chose before, per host id (newest first), in the extension's global state. */
const RECENT_TASKS = 'steelscope.evalTasks';
const RecentTasksSchema = v.record(v.string(), v.array(v.string()));
const RECENT_MAX = 5;
const SHIPPED_TASK = 'poetry-mc';

/** The chosen tasks are remembered in `memory` (the extension's globalState). */
export type EvaluateServices = CommandServices;

export function registerEvaluateCommand(s: EvaluateServices): vscode.Disposable {
  return vscode.commands.registerCommand('steelscope.evaluateCheckpoint', async (node?: unknown) => {
    try {
      await evaluateCheckpoint(s, node);
    } catch (err) {
      void vscode.window.showErrorMessage(`Steelscope: ${err instanceof Error ? err.message : String(err)}`);
    }
  });
}

async function evaluateCheckpoint(s: EvaluateServices, node: unknown): Promise<void> {
  const chosen = await chooseCheckpoint(s, node);
  if (!chosen) return;
  const { run, checkpoint } = chosen;
  const task = await pickTask(s, run);
  if (!task) return;
  const shots = await askShots();
  if (shots === undefined) return;
  await remember(s.memory, run.hostId, task);
  const request: EvalRequest = { checkpoint: checkpoint.dir, task, shots };
  const target = targetOf(s, run);
  const title = `Steelscope: evaluating ${run.name} step ${checkpoint.step} on ${taskLabel(task)}`;
  let table: string[];
  try {
    table = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title, cancellable: true },
      async (progress, token) => {
        const abort = new AbortController();
        token.onCancellationRequested(() => abort.abort());
        let shown = 0;
        progress.report({ message: `starting on ${run.hostLabel}…` });
        return runEval(target, request, {
          signal: abort.signal,
          onProgress: (p) => {
            const pct = Math.floor((100 * p.done) / p.total);
            progress.report({ message: `${p.what} ${p.done}/${p.total} (${pct}%)`, increment: pct - shown });
            shown = pct;
          },
        });
      },
    );
  } catch (err) {
    if (err instanceof EvalCancelled) return void vscode.window.showInformationMessage(`Steelscope: ${err.message}`);
    throw new Error(`evaluating ${run.name} step ${checkpoint.step} failed: ${(err as Error).message}`);
  }
  const open = 'Open Dashboard';
  const answer = await vscode.window.showInformationMessage(
    `Steelscope: ${run.name} step ${checkpoint.step} · ${resultLine(table)}`,
    open,
  );
  if (answer === open) s.openDashboard([run.key]);
}

/** A checkpoint item; a run item (one of its complete checkpoints, newest first); or a run, then a checkpoint. */
async function chooseCheckpoint(
  s: EvaluateServices,
  node: unknown,
): Promise<{ run: RunSummary; checkpoint: Pick<CheckpointSummary, 'step' | 'dir'> } | undefined> {
  const item = checkpointArg(node);
  const key = item?.key ?? runKeyArg(node) ?? (await pickRuns(s.store, 'Evaluate Checkpoint: pick a run'))[0];
  const run = key === undefined ? undefined : s.store.get(key)?.summary;
  if (!run) return undefined;
  if (item) return { run, checkpoint: item.checkpoint };
  const complete = run.checkpoints.filter((c) => c.complete).reverse();
  if (complete.length === 0) throw new Error(`${run.name} has no complete checkpoint to evaluate yet.`);
  const picked = await vscode.window.showQuickPick(
    complete.map((c) => ({ label: `step ${c.step}`, description: c.best ? '★ best' : '', detail: c.dir, c })),
    { title: `Evaluate Checkpoint: ${run.name}`, placeHolder: 'The checkpoint to evaluate' },
  );
  return picked ? { run, checkpoint: picked.c } : undefined;
}

function taskLabel(task: string): string {
  return task === SHIPPED_TASK ? task : (task.split(/[\\/]/).filter(Boolean).pop() ?? task);
}

function recentTasks(memory: vscode.Memento, hostId: string): string[] {
  const parsed = v.safeParse(RecentTasksSchema, memory.get(RECENT_TASKS, {}));
  return parsed.success ? (parsed.output[hostId] ?? []) : []; // a bad entry is forgotten, not fatal
}

async function remember(memory: vscode.Memento, hostId: string, task: string): Promise<void> {
  if (task === SHIPPED_TASK) return;
  const parsed = v.safeParse(RecentTasksSchema, memory.get(RECENT_TASKS, {}));
  const all = parsed.success ? parsed.output : {};
  all[hostId] = [task, ...(all[hostId] ?? []).filter((t) => t !== task)].slice(0, RECENT_MAX);
  await memory.update(RECENT_TASKS, all);
}

type TaskChoice = { kind: 'task'; task: string } | { kind: 'file' } | { kind: 'folder' } | { kind: 'path' };

/** The task: poetry-mc, a remembered one, or a CSV file / folder picked here (typed as a path on an SSH host). */
async function pickTask(s: EvaluateServices, run: RunSummary): Promise<string | undefined> {
  const local = run.hostId === 'local';
  const items: (vscode.QuickPickItem & { choice: TaskChoice })[] = [
    {
      label: `$(book) ${SHIPPED_TASK}`,
      description: 'shipped',
      detail: 'Which poet wrote it, which line follows: 400 multiple-choice questions held out from the corpus',
      choice: { kind: 'task', task: SHIPPED_TASK },
    },
    ...recentTasks(s.memory, run.hostId).map((task) => ({
      label: `$(history) ${taskLabel(task)}`,
      description: 'used before',
      detail: task,
      choice: { kind: 'task', task } as const,
    })),
    ...(local
      ? [
          {
            label: '$(file) A CSV file…',
            detail: 'C-Eval (id,question,A,B,C,D,answer) or CMMLU (,Question,A,B,C,D,Answer) layout',
            choice: { kind: 'file' } as const,
          },
          {
            label: '$(folder) A task folder…',
            detail: 'C-Eval (dev/ val/ test/) or CMMLU (dev/ test/) layout, e.g. your copy of C-Eval or CMMLU',
            choice: { kind: 'folder' } as const,
          },
        ]
      : [
          {
            label: `$(remote) A path on ${run.hostLabel}…`,
            detail: 'A CSV file or a task folder in the C-Eval or CMMLU layout, on the host',
            choice: { kind: 'path' } as const,
          },
        ]),
  ];
  const picked = await vscode.window.showQuickPick(items, {
    title: 'Evaluate Checkpoint: task',
    placeHolder: 'Multiple-choice questions to score the checkpoint on',
    matchOnDetail: true,
  });
  if (!picked) return undefined;
  const choice = picked.choice;
  if (choice.kind === 'task') return choice.task;
  if (choice.kind === 'path') {
    const path = await vscode.window.showInputBox({
      title: `Evaluate Checkpoint: task on ${run.hostLabel}`,
      prompt: 'A CSV file or a task folder on the host (relative paths start in the home folder)',
      validateInput: (value) => (value.trim() ? undefined : 'Enter a path.'),
    });
    return path?.trim() || undefined;
  }
  const uris = await vscode.window.showOpenDialog({
    title: choice.kind === 'file' ? 'A task CSV file' : 'A task folder',
    canSelectFiles: choice.kind === 'file',
    canSelectFolders: choice.kind === 'folder',
    canSelectMany: false,
    filters: choice.kind === 'file' ? { 'CSV files': ['csv'] } : undefined,
  });
  return uris?.[0]?.fsPath;
}

const SHOTS_RANGE = intRange(0, 64);

async function askShots(): Promise<number | undefined> {
  const value = await vscode.window.showInputBox({
    title: 'Evaluate Checkpoint: shots',
    prompt: 'Solved examples from the same subject before each question (lm-evaluation-harness uses 5)',
    value: String(DEFAULT_SHOTS),
    validateInput: (text) =>
      v.is(SHOTS_RANGE, Number(text)) && text.trim() !== '' ? undefined : 'A whole number from 0 to 64.',
  });
  return value === undefined ? undefined : Number(value);
}
