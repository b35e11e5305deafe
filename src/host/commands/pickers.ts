// Quick picks and input boxes shared by the commands: which run, which preset, which data.
import * as vscode from 'vscode';
import { parameterCount, PRESET_NAMES, PRESETS, type PresetName } from '../../shared/config';
import type { RunDisplayStatus, RunKey, RunStoreApi, RunSummary } from '../runs/types';

interface RunPick extends vscode.QuickPickItem {
  key: RunKey;
}

function runPickItem(s: RunSummary): RunPick {
  const step = s.lastStep !== undefined ? ` · step ${s.lastStep}` : '';
  return { key: s.key, label: s.name, description: `${s.status}${step}`, detail: `${s.hostLabel}: ${s.dir}` };
}

/** Asks for runs (one, or several with `many`), optionally only those in `statuses`. */
export async function pickRuns(
  store: RunStoreApi,
  title: string,
  opts: { many?: boolean; statuses?: RunDisplayStatus[] } = {},
): Promise<RunKey[]> {
  const runs = [...store.runs.values()]
    .map((r) => r.summary)
    .filter((s) => !opts.statuses || opts.statuses.includes(s.status));
  if (runs.length === 0) {
    void vscode.window.showInformationMessage(
      opts.statuses
        ? `Steelscope: no run is ${opts.statuses.join(' or ')}.`
        : 'Steelscope: there are no runs yet. Start one with "Steelscope: Start Training…".',
    );
    return [];
  }
  const items = runs.map(runPickItem);
  if (opts.many) {
    const picked = await vscode.window.showQuickPick(items, { title, canPickMany: true, matchOnDetail: true });
    return picked?.map((p) => p.key) ?? [];
  }
  const picked = await vscode.window.showQuickPick(items, { title, matchOnDetail: true });
  return picked ? [picked.key] : [];
}

/** A preset, or `extra`'s name when the row appended after the presets (Fine-tune from a checkpoint…) is chosen. */
export async function pickPreset<E extends string>(
  defaultPreset: string,
  extra?: { name: E; label: string; description: string; detail: string },
): Promise<PresetName | E | undefined> {
  const items = PRESET_NAMES.map((name) => {
    const c = PRESETS[name];
    const params = parameterCount(c);
    const size = params >= 1e9 ? `${(params / 1e9).toFixed(2)}B` : `${(params / 1e6).toFixed(1)}M`;
    return {
      name,
      label: name,
      description: `${size} parameters`,
      detail: `${c.n_layer} layers · hidden ${c.n_embd} · ${c.n_head} heads · vocab ${c.vocab_size} · context ${c.seq_len}${name === 'steel-1b' || name === 'base-100m' ? ' — needs a GPU' : ''}`,
      picked: name === defaultPreset,
    };
  });
  items.sort((a, b) => Number(b.label === defaultPreset) - Number(a.label === defaultPreset));
  const rows: { name: PresetName | E; label: string; description: string; detail: string }[] = [...items];
  if (extra) rows.push(extra);
  const picked = await vscode.window.showQuickPick(rows, { title: 'Start Training (3/6): model preset' });
  return picked?.name;
}

/** On an SSH host: `default`, or a path on that host. */
async function pickRemoteData(host: string): Promise<string | undefined> {
  const picked = await vscode.window.showQuickPick(
    [
      { label: '$(book) Classical Chinese poetry', description: 'embedded default corpus', value: 'default' },
      { label: `$(edit) A path on ${host}…`, description: 'a .txt/.jsonl file or a folder of them', value: 'path' },
    ],
    { title: 'Start Training (4/6): training data' },
  );
  if (!picked || picked.value === 'default') return picked?.value;
  const path = await vscode.window.showInputBox({
    title: `Training data on ${host}`,
    prompt: 'Absolute path (or relative to the home folder) of a .txt/.jsonl file or a folder',
    validateInput: (v) => (v.trim() ? undefined : 'Enter a path.'),
  });
  return path?.trim() || undefined;
}

/** `default`, or an absolute path to a .txt/.jsonl file or a folder of them (on `remoteHost` when given). */
export async function pickData(remoteHost?: string): Promise<string | undefined> {
  if (remoteHost) return pickRemoteData(remoteHost);
  const items: (vscode.QuickPickItem & { value: string })[] = [
    {
      label: '$(book) Classical Chinese poetry',
      description: 'embedded default corpus',
      detail: '30,720 Tang and Song poems, traditional characters',
      value: 'default',
    },
  ];
  const files = await vscode.workspace.findFiles(
    '**/*.{txt,jsonl,txt.gz,jsonl.gz}',
    '**/{node_modules,runs,.git,dist}/**',
    50,
  );
  for (const f of files)
    items.push({
      label: `$(file) ${vscode.workspace.asRelativePath(f)}`,
      description: 'workspace file',
      value: f.fsPath,
    });
  items.push({
    label: '$(folder-opened) Browse…',
    description: 'a .txt/.jsonl file or a folder of them',
    value: 'browse',
  });
  const picked = await vscode.window.showQuickPick(items, {
    title: 'Start Training (4/6): training data',
    matchOnDescription: true,
  });
  if (!picked) return undefined;
  if (picked.value !== 'browse') return picked.value;
  const chosen = await vscode.window.showOpenDialog({
    canSelectFiles: true,
    canSelectFolders: true,
    canSelectMany: false,
    openLabel: 'Train on this',
    filters: { 'Text corpora': ['txt', 'jsonl', 'gz'] },
  });
  return chosen?.[0]?.fsPath;
}

export async function askSteps(title: string, value: number, atLeast = 1): Promise<number | undefined> {
  const text = await vscode.window.showInputBox({
    title,
    value: String(value),
    prompt: 'Number of optimizer steps (train until this step)',
    validateInput: (v) =>
      /^\d+$/.test(v.trim()) && Number(v) >= atLeast ? undefined : `Enter a whole number of at least ${atLeast}.`,
  });
  return text === undefined ? undefined : Number(text.trim());
}
