// Start Training's engine step: the bundled TensorFlow.js engine, or PyTorch where the target has
// a Python with torch (probed while the pick is shown: importing torch takes seconds), then how
// many processes torchrun starts. No torch: the message says what to install and nothing starts.
import * as vscode from 'vscode';
import { describeTorch, type TorchFound, type TorchSearch } from '../../shared/node/python';
import type { EngineOptions, RunTarget } from '../runs/types';

interface EngineItem extends vscode.QuickPickItem {
  engine: 'tfjs' | 'torch';
}

const TFJS_ITEM: EngineItem = {
  engine: 'tfjs',
  label: '$(package) Bundled (TensorFlow.js)',
  description: 'no Python needed',
};

function torchItem(search: TorchSearch | undefined): EngineItem {
  if (search === undefined)
    return { engine: 'torch', label: '$(flame) PyTorch', description: 'looking for Python with torch…' };
  if ('reason' in search)
    return { engine: 'torch', label: '$(flame) PyTorch', description: 'not found', detail: search.reason };
  return {
    engine: 'torch',
    label: '$(flame) PyTorch',
    description: describeTorch(search.found),
    detail: search.found.executable,
  };
}

/** Shows the engines at once and fills in PyTorch's line when the probe answers. */
async function pickEngineItem(title: string, search: Promise<TorchSearch>): Promise<EngineItem | undefined> {
  const pick = vscode.window.createQuickPick<EngineItem>();
  pick.title = title;
  pick.items = [TFJS_ITEM, torchItem(undefined)];
  pick.busy = true;
  // New items reset the highlighted row: keep the one the user moved to.
  const update = (result: TorchSearch) => {
    const active = pick.activeItems[0]?.engine;
    pick.items = [TFJS_ITEM, torchItem(result)];
    pick.activeItems = pick.items.filter((item) => item.engine === active);
    pick.busy = false;
  };
  void search.then(update, (err: unknown) => update({ reason: err instanceof Error ? err.message : String(err) }));
  try {
    return await new Promise<EngineItem | undefined>((resolvePick) => {
      pick.onDidAccept(() => resolvePick(pick.selectedItems[0]));
      pick.onDidHide(() => resolvePick(undefined));
      pick.show();
    });
  } finally {
    pick.dispose();
  }
}

/** The process counts offered: all GPUs first (then fewer), or 1 and 2 processes on a CPU. */
export function processChoices(found: TorchFound): { nproc: number; label: string }[] {
  const gpus = found.gpus.length;
  if (gpus === 0) {
    return [
      { nproc: 1, label: '1 process' },
      { nproc: 2, label: '2 processes (torchrun, gloo)' },
    ];
  }
  const counts = [...new Set([gpus, ...[8, 4, 2, 1].filter((n) => n < gpus)])];
  return counts.map((n) => ({
    nproc: n,
    label: n === gpus ? `${n} GPU${n > 1 ? 's' : ''} (all)` : `${n} GPU${n > 1 ? 's' : ''}`,
  }));
}

/**
 * The engine to start with on `target`: undefined for the bundled one (the CLI's default), the
 * torch options, or 'cancel' (dismissed, or PyTorch picked where there is none: said why).
 */
export async function pickEngine(
  target: RunTarget,
  step: string,
  /** false on a Slurm login node: the job's GPUs per node decide the processes, not this host's. */
  askProcesses = true,
): Promise<EngineOptions | undefined | 'cancel'> {
  const search = target.findTorch();
  const picked = await pickEngineItem(`Start Training (${step}): engine`, search);
  if (!picked) return 'cancel';
  if (picked.engine === 'tfjs') return undefined;
  const result = await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Window, title: `Steelscope: looking for PyTorch on ${target.label}…` },
    () => search,
  );
  if ('reason' in result) {
    void vscode.window.showErrorMessage(`Steelscope: ${result.reason}`);
    return 'cancel';
  }
  if (!askProcesses) return { name: 'torch', python: result.found.executable };
  const where = result.found.gpus.length ? 'GPUs' : 'processes';
  const choice = await vscode.window.showQuickPick(
    processChoices(result.found).map((c) => ({ ...c, description: describeTorch(result.found) })),
    { title: `Start Training (${step}): ${where} (torchrun)` },
  );
  if (!choice) return 'cancel';
  return { name: 'torch', nproc: choice.nproc, python: result.found.executable };
}
