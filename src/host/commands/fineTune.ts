// Start Training's "Fine-tune from a checkpoint" path and the checkpoint menu's "Fine-tune from This
// Checkpoint…": a complete checkpoint of a run on the chosen target, a chat data file (the shipped
// poetry-sft set or the user's JSONL), steps, the peak learning rate and a name; the run is
// `steelscope sft --from …` started through the target's run control like any other (locally, over
// SSH, on either engine).
import * as vscode from 'vscode';
import * as v from 'valibot';
import { parseLearningRate, sftLearningRate, sftLearningRateSettings } from '../../shared/config';
import { SHIPPED_SFT_SET } from '../../shared/run';
import type { CheckpointSummary, RunStoreApi, RunSummary, RunTarget } from '../runs/types';
import { askSteps } from './pickers';

/** The preset step's row that leads here. */
export const FINE_TUNE = 'fine-tune';

export const FINE_TUNE_ITEM = {
  name: FINE_TUNE,
  label: '$(comment-discussion) Fine-tune from a checkpoint…',
  description: 'ChatML conversations',
  detail: 'Train a checkpoint of a run on this target further on chat data (steelscope sft)',
} as const;

const SFT_DEFAULT_STEPS = 200;
/** Start Training's steps once "Fine-tune from a checkpoint" is chosen (the learning rate is one more). */
const STEPS = 7;

/** The learning rate last given per base run (its run key), in the extension's global state. */
const SFT_LR_KEY = 'steelscope.sftLearningRates';
const RememberedRates = v.record(v.string(), v.pipe(v.number(), v.finite(), v.minValue(0)));
/** Base runs remembered at most; the oldest answer is forgotten first. */
const REMEMBERED_MAX = 50;

export interface FineTuneBase {
  run: RunSummary;
  checkpoint: CheckpointSummary;
}

/** A complete checkpoint of any run on `target`, newest run first; undefined when dismissed or none. */
export async function pickBaseCheckpoint(store: RunStoreApi, target: RunTarget): Promise<FineTuneBase | undefined> {
  const runs = [...store.runs.values()].map((r) => r.summary).filter((r) => r.hostId === target.id);
  const items = runs.flatMap((run) =>
    run.checkpoints
      .filter((c) => c.complete)
      .reverse()
      .map((checkpoint) => ({
        label: `${run.name} · step ${checkpoint.step}`,
        description: [checkpoint.best ? 'best' : '', run.info?.template === 'chatml' ? 'fine-tuned' : '']
          .filter(Boolean)
          .join(' · '),
        detail: checkpoint.dir,
        base: { run, checkpoint },
      })),
  );
  if (items.length === 0) {
    void vscode.window.showInformationMessage(
      `Steelscope: no run on ${target.label} has a complete checkpoint to fine-tune. Train one first.`,
    );
    return undefined;
  }
  const picked = await vscode.window.showQuickPick(items, {
    title: `Start Training (3/${STEPS}): checkpoint to fine-tune`,
    matchOnDetail: true,
  });
  return picked?.base;
}

/** `poetry-sft`, or a chat JSONL file ({"messages":[…]} per line): a workspace file, browsed, or a path on `remoteHost`. */
export async function pickChatData(remoteHost?: string): Promise<string | undefined> {
  const shipped = {
    label: '$(book) Poetry instructions (poetry-sft)',
    description: 'shipped instruction set',
    detail: '400 conversations from the default corpus: write the poem titled X; who wrote this poem?',
    value: SHIPPED_SFT_SET,
  };
  const items: (vscode.QuickPickItem & { value: string })[] = [shipped];
  if (remoteHost) {
    items.push({ label: `$(edit) A path on ${remoteHost}…`, description: 'a chat .jsonl file', value: 'path' });
  } else {
    const files = await vscode.workspace.findFiles('**/*.jsonl', '**/{node_modules,runs,.git,dist}/**', 50);
    for (const f of files)
      items.push({
        label: `$(file) ${vscode.workspace.asRelativePath(f)}`,
        description: 'workspace file',
        value: f.fsPath,
      });
    items.push({ label: '$(folder-opened) Browse…', description: 'a chat .jsonl file', value: 'browse' });
  }
  const picked = await vscode.window.showQuickPick(items, {
    title: `Start Training (4/${STEPS}): training data`,
    placeHolder: 'Conversations: a JSONL file of {"messages":[{"role","content"},…]} lines',
    matchOnDescription: true,
  });
  if (!picked || picked.value === SHIPPED_SFT_SET || (picked.value !== 'path' && picked.value !== 'browse'))
    return picked?.value;
  if (picked.value === 'path') {
    const path = await vscode.window.showInputBox({
      title: `Chat data on ${remoteHost ?? 'the host'}`,
      prompt: 'Absolute path (or relative to the home folder) of a .jsonl file of {"messages":[…]} lines',
      validateInput: (v) => (v.trim() ? undefined : 'Enter a path.'),
    });
    return path?.trim() || undefined;
  }
  const chosen = await vscode.window.showOpenDialog({
    canSelectFiles: true,
    canSelectMany: false,
    openLabel: 'Fine-tune on this',
    filters: { 'Chat JSONL': ['jsonl'] },
  });
  return chosen?.[0]?.fsPath;
}

/** The learning rate last given for fine-tuning `baseKey`'s checkpoints (a bad entry is forgotten, not fatal). */
function rememberedRate(memory: vscode.Memento, baseKey: string): number | undefined {
  const parsed = v.safeParse(RememberedRates, memory.get(SFT_LR_KEY, {}));
  return parsed.success ? parsed.output[baseKey] : undefined;
}

async function rememberRate(memory: vscode.Memento, baseKey: string, lr: number): Promise<void> {
  const parsed = v.safeParse(RememberedRates, memory.get(SFT_LR_KEY, {}));
  const kept = Object.entries(parsed.success ? parsed.output : {}).filter(([key]) => key !== baseKey);
  await memory.update(SFT_LR_KEY, Object.fromEntries([...kept.slice(-(REMEMBERED_MAX - 1)), [baseKey, lr]]));
}

/** The peak learning rate: the one last given for this base, else a tenth of the base run's (config.ts). */
async function askLearningRate(memory: vscode.Memento, base: FineTuneBase): Promise<number | undefined> {
  const baseLr = (base.run.config ?? base.run.info?.config)?.lr;
  const fallback = sftLearningRate(baseLr);
  const text = await vscode.window.showInputBox({
    title: `Start Training (6/${STEPS}): learning rate`,
    value: String(rememberedRate(memory, base.run.key) ?? fallback),
    prompt:
      `Peak learning rate of the fine-tuning (warmup, then cosine to a tenth of it). Default ${fallback}` +
      (baseLr !== undefined ? `, a tenth of the base run's ${baseLr}` : ''),
    validateInput: (value) => {
      const lr = parseLearningRate(value);
      return typeof lr === 'number' ? undefined : lr;
    },
  });
  if (text === undefined) return undefined;
  const lr = parseLearningRate(text);
  if (typeof lr !== 'number') return undefined; // the box accepts only valid input
  await rememberRate(memory, base.run.key, lr);
  return lr;
}

/** The rest of the walk once the base is known: data, steps, learning rate, name. Undefined when dismissed. */
export async function askFineTune(
  target: RunTarget,
  base: FineTuneBase,
  memory: vscode.Memento,
): Promise<{ data: string; steps: number; sets: string[]; name: string; from: string } | undefined> {
  const data = await pickChatData(target.id === 'local' ? undefined : target.label);
  if (!data) return undefined;
  const steps = await askSteps(`Start Training (5/${STEPS}): steps`, SFT_DEFAULT_STEPS);
  if (steps === undefined) return undefined;
  const lr = await askLearningRate(memory, base);
  if (lr === undefined) return undefined;
  const stamp = new Date().toISOString().slice(5, 16).replace(/[-:T]/g, '');
  const name = await vscode.window.showInputBox({
    title: `Start Training (7/${STEPS}): run name (optional)`,
    value: `sft-${base.run.name}-step${base.checkpoint.step}-${stamp}`,
    prompt: 'Shown in the Runs view; any text',
  });
  if (name === undefined) return undefined;
  return { data, steps, sets: sftLearningRateSettings(lr), name, from: base.checkpoint.dir };
}
