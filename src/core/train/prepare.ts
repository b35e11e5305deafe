// Data preparation for a new run: resolve and hash the corpus, train (or reuse) the tokenizer,
// tokenize into shards. Tokenizers and shards are cached by the hashes that determine them, so
// a second run on the same data starts in seconds; the run directory always gets its own copy,
// so a run never depends on the cache.
import { RENDERED_EVALS_FILE, renderEvals, resolveTasks, type ResolvedTask } from '../eval';
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { TrainConfig } from '../../shared/config';
import type { DataFileRecord } from '../../shared/run';
import { buildDataset, readDocuments, resolveCorpus, type CorpusFile } from '../data';
import { BpeTokenizer } from '../tokenizer';
import { sha256 } from './checkpoint';
import { writeFileAtomic } from './rundir';
import { SAMPLE_PROMPTS } from './trainer';

export interface PreparedData {
  files: CorpusFile[];
  tokenizer: BpeTokenizer;
  tokenizerJson: string;
  trainPath: string;
  valPath: string;
  shards: DataFileRecord[];
}

export type ProgressLog = (message: string) => void;

export function cacheRoot(): string {
  return process.env.STEELSCOPE_CACHE || join(homedir(), '.cache', 'steelscope');
}

/** Bumped whenever tokenizer training or shard layout changes, so stale cache entries are ignored. */
const PIPELINE_VERSION = 1;

export function prepareData(input: string, config: TrainConfig, runDir: string, log: ProgressLog): PreparedData {
  const files = resolveCorpus(input);
  const mib = files.reduce((n, f) => n + f.bytes, 0) / 1048576;
  log(`data: ${files.length} file(s), ${mib.toFixed(1)} MiB (${input})`);
  const corpusKey = sha256(JSON.stringify({ v: PIPELINE_VERSION, files: files.map((f) => f.sha256) }));

  const tokenizerJson = cachedTokenizer(files, corpusKey, config.vocab_size, log);
  const tokenizer = BpeTokenizer.fromJSON(JSON.parse(tokenizerJson));
  const dataDir = join(runDir, 'data');
  mkdirSync(dataDir, { recursive: true });
  writeFileAtomic(join(runDir, 'tokenizer.json'), tokenizerJson);

  const datasetKey = sha256(
    JSON.stringify({ corpusKey, tok: sha256(tokenizerJson), val: config.val_fraction, seed: config.seed }),
  );
  const cached = join(cacheRoot(), 'datasets', datasetKey);
  if (!existsSync(join(cached, 'val.bin'))) {
    log('data: tokenizing into shards…');
    const tmp = `${cached}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    const { stats } = buildDataset({
      files,
      tokenizer,
      valFraction: config.val_fraction,
      seed: config.seed,
      outDir: tmp,
    });
    log(`data: ${stats.documents} documents, ${stats.trainTokens} train tokens, ${stats.valTokens} validation tokens`);
    publishDataset(tmp, cached);
  }
  const trainPath = join(dataDir, 'train.bin');
  const valPath = join(dataDir, 'val.bin');
  copyFileSync(join(cached, 'train.bin'), trainPath);
  copyFileSync(join(cached, 'val.bin'), valPath);
  const shards = [trainPath, valPath].map((path) => {
    const bytes = readFileSync(path);
    return { path, sha256: sha256(bytes), bytes: bytes.length };
  });
  return { files, tokenizer, tokenizerJson, trainPath, valPath, shards };
}

/**
 * Moves a freshly built dataset folder into the cache. Two runs preparing the same data at once
 * (two starts from the editor, a job array) both build it: the second finds the first's complete
 * folder, the same bytes, and keeps it. Removing it instead (as before) pulled the shards from
 * under the first while it copied them. Only a folder without its val.bin (left incomplete by
 * hand) is replaced.
 */
export function publishDataset(tmp: string, cached: string): void {
  try {
    renameSync(tmp, cached);
    return;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
  }
  if (existsSync(join(cached, 'val.bin'))) {
    rmSync(tmp, { recursive: true, force: true });
    return;
  }
  rmSync(cached, { recursive: true, force: true });
  renameSync(tmp, cached);
}

function cachedTokenizer(files: CorpusFile[], corpusKey: string, vocabSize: number, log: ProgressLog): string {
  const path = join(cacheRoot(), 'tokenizers', `${corpusKey.slice(0, 32)}-${vocabSize}.json`);
  if (existsSync(path)) {
    try {
      const text = readFileSync(path, 'utf8');
      BpeTokenizer.fromJSON(JSON.parse(text));
      log(`tokenizer: reusing cached BPE (${vocabSize} ids)`);
      return text;
    } catch {
      log('tokenizer: cached copy unreadable, training again');
    }
  }
  log(`tokenizer: training byte-level BPE to ${vocabSize} ids…`);
  const started = Date.now();
  const tokenizer = BpeTokenizer.train(readDocuments(files), vocabSize);
  const text = JSON.stringify(tokenizer.toJSON());
  mkdirSync(join(cacheRoot(), 'tokenizers'), { recursive: true });
  writeFileAtomic(path, text);
  log(`tokenizer: trained in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return text;
}

export const PREPARED_FORMAT = 'steelscope.prepared/1';
export const PROMPTS_FORMAT = 'steelscope.prompts/1';

/**
 * `steelscope prepare`: the data of a new run, prepared once by this core for any engine. Besides
 * prepareData's tokenizer.json and data/{train,val}.bin it writes data/prepared.json (the config,
 * the corpus files and the shards with their hashes: what the PyTorch engine starts from) and
 * data/prompts.json (the sample prompts' ids, so that engine needs no port of the encoder) and
 * data/evals.json (the config's eval_tasks rendered to ids: src/core/eval/render.ts).
 */
export function prepareRun(input: string, config: TrainConfig, runDir: string, log: ProgressLog): PreparedData {
  const evalTasks = resolveTasks(config.eval_tasks ?? []); // a bad task fails before anything is written
  const data = prepareData(input, config, runDir, log);
  const prepared = {
    format: PREPARED_FORMAT,
    config,
    input,
    files: data.files,
    shards: data.shards,
    tokenizer: 'tokenizer.json',
  };
  writeFileAtomic(join(runDir, 'data', 'prepared.json'), JSON.stringify(prepared, null, 2) + '\n');
  writePrompts(runDir, data.tokenizer);
  writeEvals(runDir, data.tokenizer, evalTasks);
  return data;
}

/** Whether each recorded file (a token shard) is still there with its recorded sha256. */
export function filesIntact(records: readonly DataFileRecord[]): boolean {
  return records.every((r) => existsSync(r.path) && sha256(readFileSync(r.path)) === r.sha256);
}

/** data/evals.json: the config's eval_tasks rendered to token ids, what the torch engine scores. */
export function writeEvals(runDir: string, tokenizer: BpeTokenizer, tasks: readonly ResolvedTask[]): void {
  mkdirSync(join(runDir, 'data'), { recursive: true });
  writeFileAtomic(join(runDir, 'data', RENDERED_EVALS_FILE), JSON.stringify(renderEvals(tokenizer, tasks)) + '\n');
}

/** data/prompts.json: SAMPLE_PROMPTS with their ids under this tokenizer (and the id that ends a sample). */
export function writePrompts(runDir: string, tokenizer: BpeTokenizer): void {
  const prompts = SAMPLE_PROMPTS.map((text) => ({ text, ids: tokenizer.encode(text) }));
  mkdirSync(join(runDir, 'data'), { recursive: true });
  const json = { format: PROMPTS_FORMAT, eot_id: tokenizer.eotId, prompts };
  writeFileAtomic(join(runDir, 'data', 'prompts.json'), JSON.stringify(json, null, 2) + '\n');
}
