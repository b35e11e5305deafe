// Starting and resuming runs: everything that has to happen before the training loop and after
// it (run.json status, events, the final exit record). The CLI only parses arguments and calls these.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { randomUUID } from 'node:crypto';
import type { TrainConfig } from '../../shared/config';
import { isPendingRunOf, RUN_FORMAT, type DataFileRecord, type RunInfo, type RunStatus } from '../../shared/run';
import { selectBackend, type BackendChoice, type BackendName } from '../backend';
import {
  BlockLoader,
  buildDataset,
  checkDocuments,
  DataError,
  evalBatches,
  readShard,
  resolveCorpus,
  verifyCorpus,
  type DataCursor,
} from '../data';
import { SteelLM } from '../model';
import { CsvError, resolveTasks } from '../eval';
import { UsageError } from '../errors';
import { Rng } from '../rng';
import { BpeTokenizer } from '../tokenizer';
import { AdamW } from './adamw';
import { TOKENIZER_FILE, TOKENIZER_MAX_BYTES, type CheckpointManifest } from '../../shared/checkpoint';
import {
  checkCheckpoint,
  latestValidCheckpoint,
  readRegularFile,
  type CheckpointFolder,
} from '../../shared/node/checkpoints';
import { loadCheckpoint, sha256 } from './checkpoint';
import { filesIntact, prepareData } from './prepare';
import { readRunToResume, RunWriter, writeFileAtomic } from './rundir';
import { readSftRows, sftDataFile, sftLoader } from './sftdata';
import { startSystemSampler, type SystemSampler } from './system';
import { trainLoop, type Batch, type StepProgress, type TrainSession } from './trainer';

/** run.json's engine fields for this engine (a torch run resumed here is recorded as tfjs from then on). */
const TFJS_ENGINE = { engine: 'tfjs', precision: 'fp32', world_size: 1 } as const satisfies Partial<RunInfo>;

export interface RunControl {
  log: (line: string) => void;
  stopRequested: () => boolean;
  /** Called after each step, once its tensors are released (tests watch tf.memory() here). */
  onStep?: (step: number) => void;
  /** Each step's figures for a progress display (the CLI's); without it the loop logs a line per step. */
  progress?: (p: StepProgress) => void;
}

export interface StartOptions {
  runDir: string;
  config: TrainConfig;
  data: string;
  name?: string;
  backend: BackendName | 'auto';
  steps: number;
}

/** Creates a run directory and trains it. Errors found before anything is written throw UsageError or DataError. */
export async function startRun(opts: StartOptions, control: RunControl): Promise<RunStatus> {
  const runDir = resolve(opts.runDir);
  const discard = checkNewRunDir(runDir);
  // Missing, empty, whitespace-only or non-UTF-8 input fails here, before anything is written.
  checkDocuments(resolveCorpus(opts.data));
  const evalTasks = resolveTasks(opts.config.eval_tasks ?? []);
  const backend = await announceBackend(opts.backend, control);
  mkdirSync(runDir, { recursive: true });
  const writer = new RunWriter(runDir, newRunInfo(runDir, opts, backend));
  writer.update({});
  // Input found wrong only while preparing (e.g. too few tokens for seq_len) leaves nothing behind (discard).
  return runGuarded(writer, discard, async () => {
    const data = prepareData(opts.data, opts.config, runDir, control.log);
    writer.update({ data: { input: opts.data, files: data.files, shards: data.shards } });
    const config = opts.config;
    const model = SteelLM.init(config, config.seed);
    const session: TrainSession = {
      config,
      writer,
      model,
      optimizer: new AdamW(model.params, config),
      tokenizer: data.tokenizer,
      tokenizerJson: data.tokenizerJson,
      loader: new BlockLoader(
        readShard(data.trainPath),
        config.seq_len + 1,
        config.seed,
        undefined,
        `The training split of ${opts.data}`,
      ),
      evalSet: makeEvalSet(readShard(data.valPath), config),
      evalTasks,
      dataFiles: data.files,
      startStep: 0,
      targetStep: opts.steps,
      rng: new Rng(config.seed),
      ...control,
    };
    if (session.evalSet.length === 0)
      writer.event(
        0,
        'eval-skipped',
        'warning',
        `The validation split is shorter than one sequence of ${config.seq_len + 1} tokens: no eval loss. Use more data or a larger val_fraction.`,
      );
    writer.event(
      0,
      'start',
      'info',
      `Run started on ${backend.name}: ${config.n_layer} layers, d=${config.n_embd}, vocab ${config.vocab_size}.`,
    );
    return session;
  });
}

export interface ResumeOptions {
  runDir: string;
  steps?: number;
  backend: BackendName | 'auto';
  /** Resume from this checkpoint folder instead of the newest valid one. */
  checkpoint?: string;
  /** The run's data file(s) at a new place (`resume --data`): found by their sha256. */
  data?: string;
}

/** Continues a run (a fine-tuning run too) from its newest valid checkpoint, bit-exactly. */
export async function resumeRun(opts: ResumeOptions, control: RunControl): Promise<RunStatus> {
  const runDir = resolve(opts.runDir);
  const recorded = readRunToResume(runDir);
  const found = resumeCheckpoint(runDir, recorded, opts.checkpoint, control.log);
  const info = locateRunData(recorded, opts.data);
  const writer = new RunWriter(runDir, info);
  const evalTasks = resolveTasks(found.manifest.config.eval_tasks ?? []);
  const target = opts.steps ?? found.manifest.config.max_steps;
  if (target <= found.manifest.step) {
    throw new UsageError(
      `The newest checkpoint is at step ${found.manifest.step}; --steps must be larger (got ${target}).`,
    );
  }
  const backend = await announceBackend(opts.backend, control);
  writer.update({
    data: info.data, // where its files are now (a shipped dataset moves with each update)
    pid: process.pid,
    status: 'starting',
    exit: null,
    backend,
    ...TFJS_ENGINE,
    device: undefined, // fields a torch engine may have written, dropped from run.json
    torch_version: undefined,
    gpus: undefined,
    slurm_job_id: process.env.SLURM_JOB_ID, // the job resuming it, or none (dropped)
    resumes: [
      ...info.resumes,
      { at: new Date().toISOString(), step: found.manifest.step, pid: process.pid, checkpoint: found.folder.dir },
    ],
  });
  return runGuarded(writer, undefined, async () => {
    const ckpt = loadCheckpoint(found.folder.dir);
    const config = ckpt.manifest.config;
    const tokenizer = BpeTokenizer.fromJSON(ckpt.tokenizerJson);
    const data = resumeData(runDir, info, tokenizer, config, ckpt.manifest.data.cursor);
    const weights = new Map([...ckpt.weights].map(([name, t]) => [name, t.data]));
    const model = SteelLM.fromWeights(config, weights);
    const optimizer = new AdamW(model.params, config);
    optimizer.load(ckpt.optimizerState, ckpt.manifest.optimizer.step);
    writer.event(ckpt.manifest.step, 'resume', 'info', `Resumed from step ${ckpt.manifest.step} on ${backend.name}.`, {
      checkpoint: found.folder.dir,
    });
    const session: TrainSession = {
      config,
      writer,
      model,
      optimizer,
      tokenizer,
      tokenizerJson: JSON.stringify(ckpt.tokenizerJson),
      ...data,
      evalTasks,
      dataFiles: ckpt.manifest.data.files,
      startStep: ckpt.manifest.step,
      targetStep: target,
      rng: Rng.fromState(ckpt.manifest.rng),
      ...control,
    };
    return session;
  });
}

/** The run with its data files where they are now, their sha256 checked (verifyCorpus), on either engine. */
export function locateRunData(info: RunInfo, given: string | undefined): RunInfo {
  return { ...info, data: { ...info.data, files: verifyCorpus(info.data.files, info.data.input, given) } };
}

/**
 * What a resumed run reads from its checkpoint's place on: the loader over its shards and its eval
 * set, or for a fine-tuning run its conversations' rows with their loss mask (no eval split).
 */
function resumeData(
  runDir: string,
  info: RunInfo,
  tokenizer: BpeTokenizer,
  config: TrainConfig,
  cursor: DataCursor,
): Pick<TrainSession, 'loader' | 'evalSet'> {
  if (info.template === 'chatml') {
    const { rows } = readSftRows(sftDataFile(info).path, info.data.input, tokenizer, config.seq_len);
    return { loader: sftLoader(rows, config, info.data.input, cursor), evalSet: [] };
  }
  const shards = restoreShards(runDir, info, tokenizer, config);
  return {
    loader: new BlockLoader(shards.train, config.seq_len + 1, config.seed, cursor),
    evalSet: makeEvalSet(shards.val, config),
  };
}

/**
 * The checkpoint a resume continues from, on either engine: the chosen one (valid and of this run)
 * or the newest valid one of this run; each one passed over gets a checkpoint-skipped event.
 */
export function resumeCheckpoint(
  runDir: string,
  info: RunInfo,
  chosen: string | undefined,
  log: (line: string) => void,
) {
  const notOfThisRun = (manifest: CheckpointManifest) => runMismatch(manifest, info, runDir);
  const writer = new RunWriter(runDir, info);
  const onSkip = (folder: CheckpointFolder, reason: string) => {
    writer.event(folder.step, 'checkpoint-skipped', 'warning', `Checkpoint step ${folder.step} not used: ${reason}.`, {
      path: folder.dir,
    });
    log(`skipping checkpoint ${folder.dir}: ${reason}`);
  };
  const found = chosen ? chosenCheckpoint(chosen, notOfThisRun) : latestValidCheckpoint(runDir, onSkip, notOfThisRun);
  if (!found) throw new UsageError(`${runDir} has no complete checkpoint to resume from. Start a new run.`);
  return found;
}

function chosenCheckpoint(
  dir: string,
  notOfThisRun: (m: CheckpointManifest) => string | undefined,
): { folder: CheckpointFolder; manifest: CheckpointManifest } {
  const result = checkCheckpoint(resolve(dir), { hashes: true });
  if (!result.ok) throw new UsageError(`Checkpoint ${dir} cannot be used: ${result.reason}.`);
  const mismatch = notOfThisRun(result.manifest);
  if (mismatch)
    throw new UsageError(
      `Checkpoint ${dir} is not from this run: ${mismatch}. Resume the run it came from, or start a new run.`,
    );
  return { folder: { step: result.manifest.step, dir: resolve(dir) }, manifest: result.manifest };
}

/**
 * Why a checkpoint cannot continue this run: another run id, another tokenizer (its sha256 against
 * the run's tokenizer.json) or other data files (their sha256s). Undefined when it can. Checkpoints
 * written before run_id was recorded are matched by tokenizer and data alone.
 */
export function runMismatch(manifest: CheckpointManifest, info: RunInfo, runDir: string): string | undefined {
  const problems: string[] = [];
  if (manifest.run_id !== undefined && manifest.run_id !== info.id)
    problems.push(`run id ${manifest.run_id} (this run is ${info.id})`);
  const runTokenizer = join(runDir, TOKENIZER_FILE);
  if (existsSync(runTokenizer)) {
    const ours = sha256(readRegularFile(runTokenizer, TOKENIZER_FILE, TOKENIZER_MAX_BYTES));
    const theirs = manifest.files.find((f) => f.name === TOKENIZER_FILE)?.sha256;
    if (theirs !== ours)
      problems.push(`tokenizer sha256 ${theirs?.slice(0, 12)}… (this run's is ${ours.slice(0, 12)}…)`);
  }
  const hashes = (files: readonly { sha256: string }[]) =>
    files
      .map((f) => f.sha256)
      .sort()
      .join(',');
  if (hashes(manifest.data.files) !== hashes(info.data.files)) {
    problems.push(
      `data file sha256s (the checkpoint's ${manifest.data.files.length} file(s) differ from this run's ${info.data.files.length})`,
    );
  }
  return problems.length ? problems.join('; ') : undefined;
}

export async function announceBackend(preference: BackendName | 'auto', control: RunControl): Promise<BackendChoice> {
  const backend = await selectBackend(preference);
  for (const s of backend.skipped) control.log(`backend: skipped ${s.name}: ${s.reason}`);
  control.log(`backend: using ${backend.name}${backend.kernels ? ` (${backend.kernels})` : ''}`);
  return backend;
}

/**
 * Checks, before anything is written, that `runDir` can take a new run: it is missing, empty, or
 * holds the pending run.json of the Slurm job this process runs in (written at submission beside
 * the job's batch script and log: see pendingRunInfo). A file, a folder holding a run or anything
 * else is a UsageError. Returns what undoes the start when the input proves wrong while preparing
 * (the folder removed or emptied); undefined for a Slurm job's folder, whose run.json records the
 * failure instead, so the Runs view says why the job ended.
 */
export function checkNewRunDir(runDir: string): (() => void) | undefined {
  let isDir: boolean;
  try {
    isDir = statSync(runDir).isDirectory();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return () => rmSync(runDir, { recursive: true, force: true });
    throw new UsageError(`--run-dir ${runDir} cannot be used (${code ?? String(err)}). Choose a new or empty folder.`);
  }
  if (!isDir) throw new UsageError(`--run-dir ${runDir} is a file, not a folder. Choose a new or empty folder.`);
  if (existsSync(join(runDir, 'run.json'))) {
    if (readPendingRun(runDir)) return undefined;
    throw new UsageError(
      `${runDir} already holds a run. Resume it with \`steelscope resume ${runDir}\`, or choose another --run-dir.`,
    );
  }
  if (readdirSync(runDir).length > 0)
    throw new UsageError(`${runDir} exists and is not empty. Choose a new or empty --run-dir.`);
  return () => emptyFolder(runDir);
}

/** The run.json of `runDir` when it is the pending placeholder of this process's Slurm job. */
function readPendingRun(runDir: string): object | undefined {
  try {
    const value: unknown = JSON.parse(readFileSync(join(runDir, 'run.json'), 'utf8'));
    return isPendingRunOf(value, process.env.SLURM_JOB_ID) && typeof value === 'object' && value ? value : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A Slurm job's trainer that failed before taking its run (bad arguments, bad input, torch
 * missing…): the pending run.json says so (status failed, the reason: the line the CLI prints), or
 * the Runs view would show a queued run for ever.
 */
export function failPendingRun(runDir: string, err: unknown): void {
  const pending = readPendingRun(resolve(runDir));
  if (!pending) return;
  const reason = err instanceof Error ? err.message : String(err);
  const exit = { code: isInputError(err) ? 2 : 1, reason, at: new Date().toISOString() };
  writeFileAtomic(join(resolve(runDir), 'run.json'), JSON.stringify({ ...pending, status: 'failed', exit }, null, 2));
}

/** How markRequeued left run.json. */
export type RequeueMark = 'pending' | 'ended' | 'not-this-job';

/**
 * The Slurm job this process runs in is being requeued (time limit, preemption) after its trainer
 * stopped: run.json says `pending` again, with the same job, as at submission, until the requeued
 * job's trainer resumes the run from its checkpoint (readRunToResume takes a pending run of its own
 * job). The batch script calls this (`steelscope slurm-requeue`), the one place that knows the job
 * is requeued, whether the trainer saw USR1 or a preemption's TERM. A run that finished or failed
 * is left as it is ('ended': nothing to continue), and so is a run.json naming another job.
 */
export function markRequeued(runDir: string): RequeueMark {
  const path = join(resolve(runDir), 'run.json');
  const value: unknown = JSON.parse(readFileSync(path, 'utf8'));
  const jobId = process.env.SLURM_JOB_ID;
  if (!jobId || typeof value !== 'object' || !value || !('slurm_job_id' in value) || value.slurm_job_id !== jobId)
    return 'not-this-job';
  const status = 'status' in value ? value.status : undefined;
  if (status === 'finished' || status === 'failed') return 'ended';
  // The job id as pid, as in the placeholder (pendingRunInfo): the stopped trainer's pid means nothing now.
  const pending = { ...value, status: 'pending', pid: Number(jobId), exit: null };
  writeFileAtomic(path, JSON.stringify(pending, null, 2) + '\n');
  return 'pending';
}

/**
 * The batch script marked the run pending (markRequeued) but Slurm refused to requeue its job: the
 * job ends, so the run is `stopped` again, never left pending for a job that will not come back
 * (Resume continues it from its newest checkpoint). 'not-this-job' for a run.json not pending in
 * this job (left as it is).
 */
export function markRequeueFailed(runDir: string): 'stopped' | 'not-this-job' {
  const path = join(resolve(runDir), 'run.json');
  const pending = readPendingRun(resolve(runDir));
  if (!pending) return 'not-this-job';
  const reason = `stopped; Slurm did not requeue job ${process.env.SLURM_JOB_ID}: Resume continues the run`;
  const stopped = { ...pending, status: 'stopped', exit: { code: 0, reason, at: new Date().toISOString() } };
  writeFileAtomic(path, JSON.stringify(stopped, null, 2) + '\n');
  return 'stopped';
}

export function emptyFolder(dir: string): void {
  for (const name of readdirSync(dir)) rmSync(join(dir, name), { recursive: true, force: true });
}

/** An error in what the user gave (its message is the whole story: exit code 2). */
function isInputError(err: unknown): boolean {
  return (
    err instanceof UsageError ||
    err instanceof DataError ||
    err instanceof CsvError ||
    (err instanceof Error && err.name === 'ConfigError')
  );
}

/**
 * Runs setup and the loop, keeping run.json's status true whatever happens. When setup fails on
 * the user's input and `discard` is given (a new run), the run folder is removed instead.
 */
export async function runGuarded(
  writer: RunWriter,
  discard: (() => void) | undefined,
  setup: () => Promise<TrainSession>,
): Promise<RunStatus> {
  let session: TrainSession | undefined;
  let sampler: SystemSampler | undefined;
  try {
    session = await setup();
    writer.update({ status: 'running' });
    sampler = startSampler(session);
    const outcome = await trainLoop(session);
    const step = writer.run.step;
    const status: RunStatus = outcome === 'finished' ? 'finished' : 'stopped';
    writer.event(
      step,
      outcome === 'finished' ? 'finish' : 'stop',
      'info',
      outcome === 'finished' ? `Finished at step ${step}.` : `Stopped at step ${step} on request; checkpoint saved.`,
    );
    writer.update({ status, exit: { code: 0, reason: outcome, at: new Date().toISOString() } });
    return status;
  } catch (err) {
    if (session === undefined && discard && isInputError(err)) {
      discard();
      throw err;
    }
    const message = err instanceof Error ? err.message : String(err);
    writer.event(writer.run.step, 'crash', 'error', message, { stack: err instanceof Error ? err.stack : undefined });
    writer.update({ status: 'failed', exit: { code: 1, reason: message, at: new Date().toISOString() } });
    throw err;
  } finally {
    sampler?.stop();
    session?.model.dispose();
    session?.optimizer.dispose();
  }
}

/** system.jsonl while the loop runs; the step it names is the last one trained. */
function startSampler(session: TrainSession): SystemSampler {
  let step = session.startStep;
  const onStep = session.onStep;
  session.onStep = (done) => {
    step = done;
    onStep?.(done);
  };
  return startSystemSampler(
    (record) => session.writer.system(record),
    () => step,
  );
}

export function newRunInfo(
  runDir: string,
  opts: Pick<StartOptions, 'config' | 'data' | 'name'>,
  backend: BackendChoice,
): RunInfo {
  return {
    format: RUN_FORMAT,
    id: randomUUID(),
    name: opts.name ?? basename(runDir),
    createdAt: new Date().toISOString(),
    host: hostname(),
    pid: process.pid,
    ...(process.env.SLURM_JOB_ID ? { slurm_job_id: process.env.SLURM_JOB_ID } : {}),
    status: 'starting',
    step: 0,
    config: opts.config,
    backend,
    data: { input: opts.data, files: [] },
    resumes: [],
    exit: null,
    ...TFJS_ENGINE,
  };
}

function makeEvalSet(val: Uint16Array | Uint32Array, config: TrainConfig): Batch[] {
  if (val.length < config.seq_len + 1) return [];
  return evalBatches(val, config.seq_len + 1, config.batch_size, config.eval_batches);
}

/** The run's shards (and their records), re-tokenized from the (verified) corpus if they went missing or changed. */
export function restoreShards(runDir: string, info: RunInfo, tokenizer: BpeTokenizer, config: TrainConfig) {
  const recorded = info.data.shards ?? [];
  if (!(recorded.length === 2 && filesIntact(recorded))) {
    const dataDir = join(runDir, 'data');
    mkdirSync(dataDir, { recursive: true });
    const built = buildDataset({
      files: info.data.files,
      tokenizer,
      valFraction: config.val_fraction,
      seed: config.seed,
      outDir: dataDir,
    });
    const rebuilt: DataFileRecord[] = [built.trainPath, built.valPath].map((path) => ({
      path,
      sha256: sha256(readFileSync(path)),
      bytes: readFileSync(path).length,
    }));
    if (recorded.length === 2 && rebuilt.some((s, i) => s.sha256 !== recorded[i].sha256)) {
      throw new Error(
        `Re-tokenizing the data gave different shards than the run used (${rebuilt[0].path}); the run cannot be resumed exactly. Start a new run.`,
      );
    }
    return { train: readShard(built.trainPath), val: readShard(built.valPath), records: rebuilt };
  }
  return { train: readShard(recorded[0].path), val: readShard(recorded[1].path), records: recorded };
}
