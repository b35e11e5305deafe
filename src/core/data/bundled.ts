// Finds the data files a run started with, for a resume on either engine. A shipped dataset (`--data
// default`, `poetry-sft`) lies in dist/, whose absolute path changes with every update of the extension
// (~/.vscode/extensions/<publisher>.<name>-<version>/) or re-deploy to an SSH host: it is found in the
// install at hand by its name, and its bytes must be the ones the run started with (sha256).
import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import {
  BUNDLED_DATA,
  builtAsset,
  DataError,
  hashFile,
  resolveCorpus,
  verifyDataFile,
  type CorpusFile,
} from './corpus';

const BUNDLED_LABEL: Readonly<Record<string, string>> = { default: 'bundled corpus' };

/**
 * The name of the shipped dataset a recorded file is: its `bundled` field, or for a run.json written
 * before that field, `--data`'s word (`input`) or, once its path is gone, its file name.
 */
function bundledName(file: CorpusFile, input: string): string | undefined {
  if (file.bundled !== undefined) return BUNDLED_DATA[file.bundled] !== undefined ? file.bundled : undefined;
  if (BUNDLED_DATA[input] !== undefined) return input;
  if (existsSync(file.path)) return undefined;
  return Object.keys(BUNDLED_DATA).find((name) => basename(BUNDLED_DATA[name]) === basename(file.path));
}

/** Where a shipped dataset's recorded file is now: this install's copy when its bytes are the run's. */
function locateBundled(file: CorpusFile, name: string, claimed: boolean): CorpusFile {
  const current = builtAsset(BUNDLED_DATA[name]);
  const now = current === undefined ? undefined : hashFile(current).sha256;
  if (current !== undefined && now === file.sha256) return { ...file, path: current, bundled: name };
  // The install the run started from may still be there (running from source, an old version kept).
  if (existsSync(file.path) && hashFile(file.path).sha256 === file.sha256) return { ...file, bundled: name };
  // Only a file name in common with a shipped set, and other bytes: say what today's resume said.
  if (!claimed) return verifyAt(file);
  const what = BUNDLED_LABEL[name] ?? `bundled ${name} set`;
  const change = now === undefined ? 'is missing from this install' : `changed since this run started`;
  throw new DataError(
    `The ${what} ${change} (sha256 ${file.sha256.slice(0, 12)}…${now ? `, now ${now.slice(0, 12)}…` : ''}); ` +
      `resume with --data <file> pointing at the original.`,
  );
}

function verifyAt(file: CorpusFile): CorpusFile {
  verifyDataFile(file);
  return file;
}

/** `resume --data <file or folder>`: each recorded file is the one given with its sha256. */
function locateGiven(recorded: readonly CorpusFile[], given: string): CorpusFile[] {
  const offered = resolveCorpus(given);
  return recorded.map((file) => {
    const same = offered.find((f) => f.sha256 === file.sha256);
    if (same) return { path: same.path, sha256: same.sha256, bytes: same.bytes };
    throw new DataError(
      `--data ${given} holds no file with the sha256 of the run's ${basename(file.path)} (${file.sha256.slice(0, 12)}…). ` +
        `Pass the file the run started with.`,
    );
  });
}

/**
 * The files a run started with (run.json data.files), where they are now, their sha256 checked: a
 * user's file at its recorded path, a shipped dataset in this install, or all of them in `given`
 * (`resume --data`). Throws a DataError naming the first that is missing or changed.
 */
export function verifyCorpus(recorded: readonly CorpusFile[], input = '', given?: string): CorpusFile[] {
  if (given !== undefined) return locateGiven(recorded, given);
  return recorded.map((file) => {
    const name = bundledName(file, input);
    if (name === undefined) return verifyAt(file);
    return locateBundled(file, name, file.bundled !== undefined || input === name);
  });
}
