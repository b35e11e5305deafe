// `steelscope train|resume --engine torch`: prepares the data with this core, then starts the
// PyTorch engine (src/engines/torch, shipped as dist/engines/torch) under torchrun and stays as its
// supervisor: run.json names this process, so Stop signals it and it asks the ranks to stop (a
// stop file rank 0 polls); a second signal kills the whole torchrun tree. When torchrun ends with
// a rank's failure the engine could not record, it is recorded here (crash event, status failed).
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { TrainConfig } from '../shared/config';
import { describeTorch, findTorch, type TorchFound } from '../shared/node/python';
import type { RunInfo, RunStatus } from '../shared/run';
import { resolveCorpus, verifyCorpus } from '../core/data';
import { checkNewRunDir, restoreShards, resumeCheckpoint } from '../core/train/session';
import { prepareSftRun, readSftInputs } from '../core/train/sft';
import { DONE_FILE, TOKENIZER_FILE } from '../shared/checkpoint';
import { listCheckpointFolders } from '../shared/node/checkpoints';
import { pruneCheckpoints } from '../core/train/checkpoint';
import { BpeTokenizer } from '../core/tokenizer';
import { prepareRun, writeEvals, writePrompts } from '../core/train/prepare';
import { resolveTasks } from '../core/eval';
import { readRunInfo, readRunToResume, RunWriter } from '../core/train/rundir';
import { UsageError } from './args';

export interface TorchControl {
  log: (line: string) => void;
  stopRequested: () => boolean;
}

export interface TorchOptions {
  nproc: number | 'auto';
  python?: string;
}

interface RankError {
  rank: number;
  message: string;
  type: string;
  traceback: string;
  t: number;
}

const ENGINE_MAIN = join(__dirname, 'engines', 'torch', 'main.py');
const TERMINAL: readonly RunStatus[] = ['finished', 'stopped', 'failed'];

/** The torch to use, or a UsageError saying what to install (before anything is written). */
function requireTorch(python: string | undefined, log: (line: string) => void): TorchFound {
  const result = findTorch(python);
  if ('reason' in result) throw new UsageError(result.reason);
  log(`engine: ${describeTorch(result.found)} (${result.found.executable})`);
  return result.found;
}

function processCount(nproc: number | 'auto', torch: TorchFound, config: TrainConfig): number {
  const n = nproc === 'auto' ? Math.max(1, torch.gpus.length) : nproc;
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--nproc must be a positive integer or auto, got ${nproc}.`);
  if (config.batch_size % n !== 0) {
    throw new UsageError(
      `batch_size (${config.batch_size}) must be a multiple of --nproc (${n}): each process takes an equal slice of every batch.`,
    );
  }
  return n;
}

export interface TorchStart extends TorchOptions {
  runDir: string;
  config: TrainConfig;
  data: string;
  name?: string;
  steps: number;
}

/** A new run: checks, `prepare`, then the engine's `train`. */
export async function startTorchRun(opts: TorchStart, control: TorchControl): Promise<RunStatus> {
  const runDir = resolve(opts.runDir);
  if (existsSync(join(runDir, 'run.json')))
    throw new UsageError(`${runDir} already holds a run. Resume it, or choose another --run-dir.`);
  if (existsSync(runDir) && readdirSync(runDir).length > 0)
    throw new UsageError(`${runDir} exists and is not empty. Choose a new or empty --run-dir.`);
  resolveCorpus(opts.data);
  const torch = requireTorch(opts.python, control.log);
  const nproc = processCount(opts.nproc, torch, opts.config);
  prepareRun(opts.data, opts.config, runDir, control.log);
  const args = [
    'train',
    '--run-dir',
    runDir,
    '--steps',
    String(opts.steps),
    ...(opts.name ? ['--name', opts.name] : []),
  ];
  return superviseTorchrun(torch, nproc, runDir, args, opts.config, control);
}

export interface TorchSft extends TorchOptions {
  from: string;
  data: string;
  runDir: string;
  steps: number;
  sets: readonly string[];
  name?: string;
}

/** A fine-tuning run (`steelscope sft --engine torch`): this core renders the conversations, the engine trains. */
export async function startTorchSft(opts: TorchSft, control: TorchControl): Promise<RunStatus> {
  const runDir = resolve(opts.runDir);
  checkNewRunDir(runDir);
  const inputs = readSftInputs(opts);
  const torch = requireTorch(opts.python, control.log);
  const nproc = processCount(opts.nproc, torch, inputs.config);
  prepareSftRun(runDir, opts.data, inputs, control.log);
  const args = ['sft', '--run-dir', runDir, '--steps', String(opts.steps), ...(opts.name ? ['--name', opts.name] : [])];
  return superviseTorchrun(torch, nproc, runDir, args, inputs.config, control);
}

export interface TorchResume extends TorchOptions {
  runDir: string;
  steps?: number;
  checkpoint?: string;
}

/** Continues a run of either engine on torch. */
export async function resumeTorchRun(opts: TorchResume, control: TorchControl): Promise<RunStatus> {
  const runDir = resolve(opts.runDir);
  const info = readRunToResume(runDir);
  const torch = requireTorch(opts.python, control.log);
  const nproc = processCount(opts.nproc, torch, info.config);
  restoreData(runDir, info);
  // Chosen here, by the one checkpoint module (validity, this run's), and named to the engine.
  const found = resumeCheckpoint(runDir, info, opts.checkpoint, control.log);
  const args = ['resume', '--run-dir', runDir, '--checkpoint', found.folder.dir];
  if (opts.steps !== undefined) args.push('--steps', String(opts.steps));
  return superviseTorchrun(torch, nproc, runDir, args, found.manifest.config, control);
}

/**
 * What the engine reads besides the checkpoint, as the TF.js resume has it: the corpus unchanged,
 * the shards (re-tokenized when missing, and recorded in run.json), the sample prompts' ids.
 */
function restoreData(runDir: string, info: RunInfo): void {
  verifyCorpus(info.data.files);
  const tokenizerPath = join(runDir, TOKENIZER_FILE);
  if (!existsSync(tokenizerPath)) return; // the engine says what is missing
  const tokenizer = BpeTokenizer.fromJSON(JSON.parse(readFileSync(tokenizerPath, 'utf8')));
  const { records } = restoreShards(runDir, info, tokenizer, info.config);
  if (JSON.stringify(records) !== JSON.stringify(info.data.shards))
    new RunWriter(runDir, info).update({ data: { ...info.data, shards: records } });
  if (!existsSync(join(runDir, 'data', 'prompts.json'))) writePrompts(runDir, tokenizer);
  // Rendered again each time: the tasks' files are read as they are now, as the TF.js resume reads them.
  writeEvals(runDir, tokenizer, resolveTasks(info.config.eval_tasks ?? []));
}

/** torchrun's per-rank "i:1,…" mapping: torch 1.13 on Python 3.11 crashes on the default "0". */
function perRank(nproc: number): string {
  return Array.from({ length: nproc }, (_, i) => `${i}:1`).join(',');
}

/** The ranks' environment: threads, NCCL error handling, and what the engine's header documents. */
function torchrunEnv(nproc: number, stopFile: string, errorDir: string): NodeJS.ProcessEnv {
  // torchrun sets 1 thread per process on its own (with a warning); our share of the cores is better.
  const threads = process.env.OMP_NUM_THREADS ?? String(Math.max(1, Math.floor(availableParallelism() / nproc)));
  // NCCL aborts a collective that outlives the process-group timeout only with async error
  // handling (its name before and after torch 2.2), so a hung peer fails the run instead of hanging it.
  const nccl = { NCCL_ASYNC_ERROR_HANDLING: '1', TORCH_NCCL_ASYNC_ERROR_HANDLING: '1' };
  return {
    ...nccl,
    ...process.env,
    OMP_NUM_THREADS: threads,
    STEELSCOPE_SUPERVISOR_PID: String(process.pid),
    STEELSCOPE_STOP_FILE: stopFile,
    STEELSCOPE_ERROR_DIR: errorDir,
    PYTHONUNBUFFERED: '1',
    PYTHONDONTWRITEBYTECODE: '1',
  };
}

async function superviseTorchrun(
  torch: TorchFound,
  nproc: number,
  runDir: string,
  engineArgs: string[],
  config: TrainConfig,
  control: TorchControl,
): Promise<RunStatus> {
  const scratch = mkdtempSync(join(tmpdir(), 'steelscope-torch-'));
  const stopFile = join(scratch, 'stop');
  const errorDir = join(scratch, 'errors');
  // --standalone on one node, but with the rendezvous store on a free port: torch 1.13's standalone
  // takes port 29400, so two runs on one machine would meet in one store.
  const standalone = [
    '--nnodes',
    '1',
    '--rdzv_backend',
    'c10d',
    '--rdzv_endpoint',
    'localhost:0',
    '--rdzv_id',
    randomUUID(),
  ];
  const args = [
    '-m',
    'torch.distributed.run',
    ...standalone,
    '--nproc_per_node',
    String(nproc),
    '--redirects',
    perRank(nproc),
    '--tee',
    perRank(nproc),
    '--log_dir',
    join(scratch, 'logs'),
    ENGINE_MAIN,
    ...engineArgs,
  ];
  const env = torchrunEnv(nproc, stopFile, errorDir);
  control.log(
    `engine: torchrun with ${nproc} process${nproc > 1 ? 'es' : ''} (${nproc > 1 ? (torch.cuda ? 'nccl' : 'gloo') : 'no process group'})`,
  );
  // Its own process group, so a second signal (or this process exiting) can end every rank at once.
  const child = spawn(torch.executable, args, { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const killTree = () => {
    if (child.pid !== undefined && child.exitCode === null) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  };
  process.once('exit', killTree);
  let stderrTail = '';
  relayLines(child.stdout, (line) => control.log(line.replace(/^\[default\d+\]:/, '')));
  child.stderr.on('data', (chunk: Buffer) => {
    process.stderr.write(chunk);
    stderrTail = (stderrTail + chunk.toString('utf8')).slice(-16_384);
  });
  const pruner = checkpointPruner(runDir, config.keep_checkpoints, control.log);
  const poll = setInterval(() => {
    if (control.stopRequested() && !existsSync(stopFile)) writeFileSync(stopFile, '');
    pruner.whileRunning();
  }, 200);
  const code = await new Promise<number | null>((done) => child.once('close', (c) => done(c)));
  clearInterval(poll);
  pruner.afterExit();
  process.removeListener('exit', killTree);
  try {
    return recordOutcome(runDir, code, readRankErrors(errorDir), stderrTail);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** Step and DONE time of each complete checkpoint: it changes when the engine saves (or re-saves) one. */
function savedCheckpoints(runDir: string): string {
  const done = listCheckpointFolders(runDir).map((f) => ({
    step: f.step,
    at: lstatSync(join(f.dir, DONE_FILE), { throwIfNoEntry: false })?.mtimeMs,
  }));
  return done
    .filter((d) => d.at !== undefined)
    .map((d) => `${d.step}@${d.at}`)
    .join(',');
}

/**
 * The engine only writes checkpoints; keep_checkpoints and the best are applied here, by the rule
 * both engines share (pruneCheckpoints), each time it has saved one. Nothing is pruned before its
 * first save: a resume may start from an older checkpoint that the rule would remove. (With one
 * supervisor per node, as a multi-node job would have, only rank 0's node should prune.)
 */
function checkpointPruner(runDir: string, keep: number, log: (line: string) => void) {
  const atStart = savedCheckpoints(runDir);
  let seen = atStart;
  /** Prunes when the saved checkpoints differ from `since` (a function: read when called). */
  const pruneIfSavedSince = (since: () => string, staleTemps: boolean) => {
    try {
      if (savedCheckpoints(runDir) === since()) return;
      const removed = pruneCheckpoints(runDir, keep, { staleTemps });
      if (removed.length) log(`checkpoints pruned (keep_checkpoints=${keep}, and the best): ${removed.join(', ')}`);
      seen = savedCheckpoints(runDir);
    } catch (err) {
      // A folder that vanished or cannot be removed must not end the run: the next save tries again.
      log(`checkpoints not pruned: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  return {
    /** After each save; the engine's own temp folder (a checkpoint being written) is left alone. */
    whileRunning: () => pruneIfSavedSince(() => seen, false),
    /** When it saved any: its last checkpoint, and the temp folders of killed writers. */
    afterExit: () => pruneIfSavedSince(() => atStart, true),
  };
}

function relayLines(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let pending = '';
  stream.setEncoding('utf8'); // a character split across chunks stays whole
  stream.on('data', (chunk: string) => {
    const lines = (pending + chunk).split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) onLine(line);
  });
  stream.on('end', () => pending && onLine(pending));
}

function readRankErrors(dir: string): RankError[] {
  if (!existsSync(dir)) return [];
  const errors: RankError[] = [];
  for (const name of readdirSync(dir)) {
    try {
      errors.push(JSON.parse(readFileSync(join(dir, name), 'utf8')) as RankError);
    } catch {
      // a rank killed while writing it: torchrun's own summary still names the failure
    }
  }
  return errors.sort((a, b) => a.t - b.t);
}

interface RankExit {
  rank: number;
  exitcode: number;
  trace: string;
}

/** The entries of torchrun's failure summary ("Failures:" and "Root Cause"), one per rank. */
function summarizedExits(stderr: string): RankExit[] {
  const exits = new Map<number, RankExit>();
  const entry = /rank\s*:\s*(\d+).*\n.*exitcode\s*:\s*(-?\d+).*\n.*\n\s*traceback\s*:\s*(.*)/g;
  for (const m of stderr.matchAll(entry)) {
    const trace = m[3].trim().startsWith('To enable') ? '' : m[3].trim();
    exits.set(Number(m[1]), { rank: Number(m[1]), exitcode: Number(m[2]), trace });
  }
  return [...exits.values()];
}

const describeExit = (e: RankExit) => `rank ${e.rank} exited with code ${e.exitcode}${e.trace ? ` (${e.trace})` : ''}`;

/** Reads what rank 0 recorded and adds what only torchrun knows; returns the run's final status. */
function recordOutcome(runDir: string, code: number | null, errors: RankError[], stderrTail: string): RunStatus {
  const exits = summarizedExits(stderrTail);
  if (!existsSync(join(runDir, 'run.json'))) {
    const first = errors[0];
    const message = first?.message ?? (exits[0] ? describeExit(exits[0]) : `torchrun exited with code ${code}`);
    if (!first || first.type === 'UsageError' || first.type === 'DataError') throw new UsageError(message);
    throw new Error(message);
  }
  const info = readRunInfo(runDir);
  const writer = new RunWriter(runDir, info);
  if (code === 0 && errors.length === 0 && TERMINAL.includes(info.status)) return info.status;
  // Rank 0 records its own failure; another rank's, or a rank killed by a signal, only shows here.
  for (const e of errors) {
    if (e.rank !== 0 || info.status !== 'failed')
      writer.event(info.step, 'crash', 'error', `rank ${e.rank}: ${e.message}`, { stack: e.traceback });
  }
  const silent = exits.filter((x) => !errors.some((e) => e.rank === x.rank));
  for (const x of silent)
    writer.event(info.step, 'crash', 'error', `${describeExit(x)}.`, { stderr: stderrTail.slice(-4000) });
  if (errors.length === 0 && silent.length === 0) {
    writer.event(info.step, 'crash', 'error', `torchrun exited with code ${code}.`, {
      stderr: stderrTail.slice(-4000),
    });
  }
  // The cause: a rank other than 0 that failed by itself or was killed, before rank 0's consequence of it.
  const other = errors.find((e) => e.rank !== 0);
  const killed = silent.find((x) => x.exitcode < 0);
  const reason = other
    ? `rank ${other.rank}: ${other.message}`
    : killed
      ? describeExit(killed)
      : errors[0]
        ? `rank ${errors[0].rank}: ${errors[0].message}`
        : silent[0]
          ? describeExit(silent[0])
          : `torchrun exited with code ${code}`;
  writer.update({ status: 'failed', exit: { code: code || 1, reason, at: new Date().toISOString() } });
  return 'failed';
}
