// `steelscope train|resume --engine torch`: prepares the data with this core, then starts the
// PyTorch engine (src/engines/torch, shipped as dist/engines/torch) under torchrun and stays as its
// supervisor: run.json names this process, so Stop signals it and it asks the ranks to stop (a
// stop file rank 0 polls); a second signal kills the whole torchrun tree. When torchrun ends with
// a rank's failure the engine could not record, it is recorded here (crash event, status failed).
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, hostname, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { TrainConfig } from '../shared/config';
import { describeTorch, findTorch, type TorchFound } from '../shared/node/python';
import type { RunInfo, RunStatus } from '../shared/run';
import { resolveCorpus } from '../core/data';
import { checkNewRunDir, locateRunData, restoreShards, resumeCheckpoint } from '../core/train/session';
import { prepareSftRun, readSftInputs, type SftRequest } from '../core/train/sft';
import { restoreSftShards } from '../core/train/sftdata';
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

/**
 * Where this supervisor's torchrun meets the others. One node: none (a store of its own). Several
 * (a Slurm job, one supervisor per node under srun): torchrun's c10d rendezvous hosted on the first
 * node, from the environment the batch script sets (rendezvousFromEnv).
 */
export interface Rendezvous {
  nnodes: number;
  /** host:port of the first node's store. */
  endpoint: string;
  /** The same on every node of one attempt (the Slurm job id). */
  id: string;
  /** This node's place in the allocation (SLURM_NODEID): node 0 prepares the data for every node. */
  nodeRank: number;
}

/**
 * STEELSCOPE_NNODES, STEELSCOPE_RDZV_ENDPOINT, STEELSCOPE_RDZV_ID and STEELSCOPE_NODE_RANK (default
 * SLURM_NODEID); undefined on one node. A UsageError names what is missing or malformed.
 */
export function rendezvousFromEnv(env: NodeJS.ProcessEnv): Rendezvous | undefined {
  const nnodes = Number(env.STEELSCOPE_NNODES ?? '1');
  if (!Number.isInteger(nnodes) || nnodes < 1)
    throw new UsageError(`STEELSCOPE_NNODES must be a positive integer, got "${env.STEELSCOPE_NNODES}".`);
  if (nnodes === 1) return undefined;
  const endpoint = env.STEELSCOPE_RDZV_ENDPOINT ?? '';
  const id = env.STEELSCOPE_RDZV_ID ?? '';
  const nodeRank = Number(env.STEELSCOPE_NODE_RANK ?? env.SLURM_NODEID ?? NaN);
  if (!/^[^\s:]+:\d+$/.test(endpoint))
    throw new UsageError(`STEELSCOPE_RDZV_ENDPOINT must be host:port for ${nnodes} nodes, got "${endpoint}".`);
  if (!id) throw new UsageError(`STEELSCOPE_RDZV_ID must name the rendezvous of the ${nnodes} nodes.`);
  if (!Number.isInteger(nodeRank) || nodeRank < 0 || nodeRank >= nnodes)
    throw new UsageError(`STEELSCOPE_NODE_RANK (or SLURM_NODEID) must be 0…${nnodes - 1} on ${nnodes} nodes.`);
  return { nnodes, endpoint, id, nodeRank };
}

/** torchrun's arguments before the engine's script: its rendezvous, processes, per-rank logs. */
export function torchrunArgs(nproc: number, rdzv: Rendezvous | undefined, logDir: string): string[] {
  // One node: --standalone, but with the rendezvous store on a free port: torch 1.13's standalone
  // takes port 29400, so two runs on one machine would meet in one store.
  const meet = rdzv
    ? [
        '--nnodes',
        String(rdzv.nnodes),
        '--rdzv_backend',
        'c10d',
        '--rdzv_endpoint',
        rdzv.endpoint,
        '--rdzv_id',
        rdzv.id,
      ]
    : ['--nnodes', '1', '--rdzv_backend', 'c10d', '--rdzv_endpoint', 'localhost:0', '--rdzv_id', randomUUID()];
  return [
    ...meet,
    '--nproc_per_node',
    String(nproc),
    '--redirects',
    perRank(nproc),
    '--tee',
    perRank(nproc),
    '--log_dir',
    logDir,
  ];
}

/**
 * How torchrun's agent is started: as `python -m torch.distributed.run`, but deaf to signals. Slurm
 * signals every process of a job (Stop's `scancel --signal=TERM --full`, a requeue, a preemption,
 * `--signal=USR1@…`); the agent would answer TERM by signalling its ranks a second time and exiting
 * with an error (the run recorded failed although rank 0 saved its checkpoint), and USR1 would end
 * it. The ranks and this supervisor act on signals; the agent ends when its ranks do, or with the
 * supervisor's SIGKILL of the tree. torch installs its handler when it starts the ranks
 * (elastic/multiprocessing/api.py `_terminate_process_handler`, torch 1.13 to 2.x): replaced by
 * SIG_IGN, which the ranks inherit until they set their own.
 */
const TORCHRUN = [
  '-c',
  [
    'import runpy, signal, sys',
    'import torch.distributed.elastic.multiprocessing.api as elastic',
    'elastic._terminate_process_handler = signal.SIG_IGN',
    'signal.signal(signal.SIGUSR1, signal.SIG_IGN)',
    'sys.argv[0] = "torchrun"',
    'runpy.run_module("torch.distributed.run", run_name="__main__", alter_sys=True)',
  ].join('; '),
];

/** The torch to use, or a UsageError saying what to install (before anything is written). */
function requireTorch(python: string | undefined, log: (line: string) => void): TorchFound {
  const result = findTorch(python);
  if ('reason' in result) throw new UsageError(result.reason);
  log(`engine: ${describeTorch(result.found)} (${result.found.executable})`);
  return result.found;
}

function processCount(nproc: number | 'auto', torch: TorchFound, config: TrainConfig, nnodes: number): number {
  const n = nproc === 'auto' ? Math.max(1, torch.gpus.length) : nproc;
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--nproc must be a positive integer or auto, got ${nproc}.`);
  if (config.batch_size % (n * nnodes) !== 0) {
    const what = nnodes > 1 ? `--nproc × nodes (${n} × ${nnodes})` : `--nproc (${n})`;
    throw new UsageError(
      `batch_size (${config.batch_size}) must be a multiple of ${what}: each process takes an equal slice of every batch.`,
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

/** A new run: checks, `prepare` (by the first node only), then the engine's `train`. */
export async function startTorchRun(opts: TorchStart, control: TorchControl): Promise<RunStatus> {
  const runDir = resolve(opts.runDir);
  const rdzv = rendezvousFromEnv(process.env);
  const first = (rdzv?.nodeRank ?? 0) === 0;
  if (first) checkNewRunDir(runDir);
  resolveCorpus(opts.data);
  const torch = requireTorch(opts.python, control.log);
  const nproc = processCount(opts.nproc, torch, opts.config, rdzv?.nnodes ?? 1);
  if (first) prepareRun(opts.data, opts.config, runDir, control.log);
  else if (!(await preparedByFirstNode(runDir, control))) return 'stopped';
  const args = [
    'train',
    '--run-dir',
    runDir,
    '--steps',
    String(opts.steps),
    ...(opts.name ? ['--name', opts.name] : []),
  ];
  return superviseTorchrun(torch, nproc, rdzv, runDir, args, opts.config, control);
}

export interface TorchSft extends TorchOptions, SftRequest {}

/** A fine-tuning run (`steelscope sft --engine torch`): this core renders the conversations, the engine trains. */
export async function startTorchSft(opts: TorchSft, control: TorchControl): Promise<RunStatus> {
  const runDir = resolve(opts.runDir);
  checkNewRunDir(runDir);
  const inputs = readSftInputs(opts);
  const torch = requireTorch(opts.python, control.log);
  const nproc = processCount(opts.nproc, torch, inputs.config, 1);
  prepareSftRun(runDir, opts.data, inputs, control.log);
  const args = ['sft', '--run-dir', runDir, '--steps', String(opts.steps), ...(opts.name ? ['--name', opts.name] : [])];
  return superviseTorchrun(torch, nproc, undefined, runDir, args, inputs.config, control);
}

/**
 * Another node's supervisor waits until the first node has prepared the data on the shared run
 * folder before its torchrun joins the rendezvous (a client gives up on a store it cannot reach
 * within a minute; tokenizing a corpus can take longer). False: stopped while waiting. Should the
 * first node fail, srun --kill-on-bad-exit ends this one.
 */
async function preparedByFirstNode(runDir: string, control: TorchControl): Promise<boolean> {
  const prepared = join(runDir, 'data', 'prepared.json');
  if (!existsSync(prepared)) control.log(`engine: waiting for the first node to prepare ${prepared}`);
  while (!existsSync(prepared)) {
    if (control.stopRequested()) return false;
    await new Promise((r) => setTimeout(r, 1000));
  }
  return true;
}

export interface TorchResume extends TorchOptions {
  runDir: string;
  steps?: number;
  checkpoint?: string;
  /** The run's data file(s) at a new place (`resume --data`): found by their sha256. */
  data?: string;
}

/** Continues a run of either engine on torch. */
export async function resumeTorchRun(opts: TorchResume, control: TorchControl): Promise<RunStatus> {
  const runDir = resolve(opts.runDir);
  const rdzv = rendezvousFromEnv(process.env);
  const info = readRunToResume(runDir);
  const torch = requireTorch(opts.python, control.log);
  const nproc = processCount(opts.nproc, torch, info.config, rdzv?.nnodes ?? 1);
  if ((rdzv?.nodeRank ?? 0) === 0) restoreData(runDir, info, opts.data);
  // Chosen here, by the one checkpoint module (validity, this run's), and named to the engine.
  const found = resumeCheckpoint(runDir, info, opts.checkpoint, control.log);
  const args = ['resume', '--run-dir', runDir, '--checkpoint', found.folder.dir];
  if (opts.steps !== undefined) args.push('--steps', String(opts.steps));
  return superviseTorchrun(torch, nproc, rdzv, runDir, args, found.manifest.config, control);
}

/**
 * What the engine reads besides the checkpoint, as the TF.js resume has it: the corpus unchanged,
 * the shards (re-tokenized when missing, and recorded in run.json; a fine-tuning run's rows and
 * loss mask), the sample prompts' ids, the eval tasks' ids.
 */
function restoreData(runDir: string, recorded: RunInfo, given: string | undefined): void {
  const info = locateRunData(recorded, given);
  // Where its files are now (a shipped dataset moves with each update), before the engine reads run.json.
  if (JSON.stringify(info.data) !== JSON.stringify(recorded.data)) new RunWriter(runDir, recorded).update(info);
  const tokenizerPath = join(runDir, TOKENIZER_FILE);
  if (!existsSync(tokenizerPath)) return; // the engine says what is missing
  const tokenizer = BpeTokenizer.fromJSON(JSON.parse(readFileSync(tokenizerPath, 'utf8')));
  const records =
    info.template === 'chatml'
      ? restoreSftShards(runDir, info, tokenizer, info.config)
      : restoreShards(runDir, info, tokenizer, info.config).records;
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
  rdzv: Rendezvous | undefined,
  runDir: string,
  engineArgs: string[],
  config: TrainConfig,
  control: TorchControl,
): Promise<RunStatus> {
  const scratch = mkdtempSync(join(tmpdir(), 'steelscope-torch-'));
  const stopFile = join(scratch, 'stop');
  const errorDir = join(scratch, 'errors');
  const args = [...TORCHRUN, ...torchrunArgs(nproc, rdzv, join(scratch, 'logs')), ENGINE_MAIN, ...engineArgs];
  const env = torchrunEnv(nproc, stopFile, errorDir);
  const world = nproc * (rdzv?.nnodes ?? 1);
  const nodes = rdzv
    ? ` on each of ${rdzv.nnodes} nodes (rendezvous ${rdzv.endpoint}, this is node ${rdzv.nodeRank})`
    : '';
  control.log(
    `engine: torchrun with ${nproc} process${nproc > 1 ? 'es' : ''}${nodes} (${world > 1 ? (torch.cuda ? 'nccl' : 'gloo') : 'no process group'})`,
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
  // One pruner per run folder: with one supervisor per node on a shared filesystem, node 0's alone.
  const pruner =
    (rdzv?.nodeRank ?? 0) === 0 ? checkpointPruner(runDir, config.keep_checkpoints, control.log) : undefined;
  const poll = setInterval(() => {
    if (control.stopRequested() && !existsSync(stopFile)) writeFileSync(stopFile, '');
    pruner?.whileRunning();
  }, 200);
  const code = await new Promise<number | null>((done) => child.once('close', (c) => done(c)));
  clearInterval(poll);
  pruner?.afterExit();
  process.removeListener('exit', killTree);
  try {
    return recordOutcome(runDir, code, readRankErrors(errorDir), stderrTail, rdzv !== undefined);
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
 * first save: a resume may start from an older checkpoint that the rule would remove. On several
 * nodes only node 0's supervisor prunes (rank 0, which writes them, may run on any node).
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

/** Has the engine written run.json (not just found a Slurm job's pending one)? */
function engineTookRun(runDir: string): boolean {
  try {
    const status: unknown = (JSON.parse(readFileSync(join(runDir, 'run.json'), 'utf8')) as { status?: unknown }).status;
    return status !== 'pending';
  } catch {
    return false;
  }
}

/** Reads what rank 0 recorded and adds what only torchrun knows; returns the run's final status. */
function recordOutcome(
  runDir: string,
  code: number | null,
  errors: RankError[],
  stderrTail: string,
  severalNodes: boolean,
): RunStatus {
  const exits = summarizedExits(stderrTail);
  if (!engineTookRun(runDir)) {
    const first = errors[0];
    const message = first?.message ?? (exits[0] ? describeExit(exits[0]) : `torchrun exited with code ${code}`);
    if (!first || first.type === 'UsageError' || first.type === 'DataError') throw new UsageError(message);
    throw new Error(message);
  }
  const info = readRunInfo(runDir);
  // On several nodes rank 0 (which names its supervisor in run.json) may run under another node's
  // supervisor: that one records the outcome; this one's exit status tells srun how its ranks ended.
  if (severalNodes && !(info.pid === process.pid && info.host === hostname()))
    return code === 0 ? info.status : 'failed';
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
