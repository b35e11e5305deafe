// Shared by the integration tests: run the built CLI as a real child process, make small corpora.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { selectBackend } from '../src/core/backend';
import { SteelLM } from '../src/core/model/gpt';
import { BpeTokenizer } from '../src/core/tokenizer';
import { saveCheckpoint, type Tensors } from '../src/core/train/checkpoint';
import type { RunTarget } from '../src/host/runs/types';
import { PRESETS, type TrainConfig } from '../src/shared/config';
import { EvalRecordSchema, MACRO_SUBJECT, type EvalRecord } from '../src/shared/eval';
import { scanCheckpoints } from '../src/shared/node/checkpoints';
import { parseJsonl } from '../src/shared/jsonl';
import { parseAs } from '../src/shared/schema';
import {
  isEventRecord,
  isMetricRecord,
  isSampleRecord,
  parseRunInfo,
  type EventRecord,
  type MetricRecord,
  type RunInfo,
  type SampleRecord,
} from '../src/shared/run';

export const ROOT = resolve(__dirname, '..');
export const CLI = join(ROOT, 'dist', 'cli.js');

/** A scratch folder under .test-tmp (kept out of /tmp so a failed run can be inspected). */
export function scratch(name: string): string {
  const base = join(ROOT, '.test-tmp');
  mkdirSync(base, { recursive: true });
  return mkdtempSync(join(base, `${name}-`));
}

/** Tokenizers and shards are cached per test run, not in the user's home. */
export const TEST_ENV = { ...process.env, STEELSCOPE_CACHE: join(ROOT, '.test-tmp', 'cache') };

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the CLI to its end. `timeoutMs` only guards against a hung command; it is no measure of
 * speed: the old 120 s ran out on a loaded 2-core machine for legitimate work (a resume, then a
 * reference run, of 1000 micro-batches a step), and the CLI, signalled with its pipes already
 * closed, exited 7, which read like a crash. A timeout now says so (code null). `env`: variables
 * added to the tests' environment (a Slurm job's, say).
 */
export function runCli(args: string[], timeoutMs = 600_000, env: NodeJS.ProcessEnv = {}): CliResult {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    env: { ...TEST_ENV, ...env },
    encoding: 'utf8',
    timeout: timeoutMs,
  });
  if ((r.error as NodeJS.ErrnoException | undefined)?.code === 'ETIMEDOUT')
    return {
      code: null,
      stdout: r.stdout,
      stderr: `${r.stderr}\nrunCli: no exit within ${timeoutMs} ms: ${args.join(' ')}`,
    };
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Spawns the CLI; the child is killed when the test process exits, so a failed test leaves no trainer behind. */
export function spawnCli(args: string[]): ChildProcess {
  const child = spawn(process.execPath, [CLI, ...args], { env: TEST_ENV, stdio: ['ignore', 'ignore', 'inherit'] });
  const reap = () => child.kill('SIGKILL');
  process.once('exit', reap);
  child.once('exit', () => process.removeListener('exit', reap));
  return child;
}

/** The first `poems` documents of the built default corpus, as a .jsonl file. */
export function poetrySubset(dir: string, poems: number): string {
  const lines = gunzipSync(readFileSync(join(ROOT, 'dist', 'corpus', 'poetry.jsonl.gz')))
    .toString('utf8')
    .split('\n');
  const path = join(dir, `poems-${poems}.jsonl`);
  writeFileSync(path, lines.slice(0, poems).join('\n') + '\n');
  return path;
}

/** A CPU-quick model: the tiny block at a fraction of its size. */
export const SMALL_SETS = [
  'vocab_size=320',
  'n_layer=2',
  'n_embd=32',
  'n_head=2',
  'n_kv_head=2',
  'intermediate_size=64',
  'seq_len=32',
  'batch_size=4',
  'warmup_steps=5',
  'eval_every=5',
  'eval_batches=2',
  'sample_every=10',
  'sample_tokens=8',
  'checkpoint_every=10',
  'keep_checkpoints=5',
].flatMap((s) => ['--set', s]);

function readJsonl<T>(path: string, accept: (v: unknown) => v is T): T[] {
  if (!existsSync(path)) return [];
  return parseJsonl(readFileSync(path), accept).records;
}

export const readMetrics = (run: string): MetricRecord[] => readJsonl(join(run, 'metrics.jsonl'), isMetricRecord);
export const readEvents = (run: string): EventRecord[] => readJsonl(join(run, 'events.jsonl'), isEventRecord);
export const readSamples = (run: string): SampleRecord[] => readJsonl(join(run, 'samples.jsonl'), isSampleRecord);

/** Train losses by step; a later record of the same step (after a resume) supersedes an earlier one. */
export function trainLosses(run: string): Map<number, number> {
  const byStep = new Map<number, number>();
  for (const r of readMetrics(run)) if (r.kind === 'train' && typeof r.loss === 'number') byStep.set(r.step, r.loss);
  return byStep;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A TCP port on 127.0.0.1 that was free a moment ago (for test servers: sshd, code-server). */
export async function freePort(): Promise<number> {
  const [port] = await freePorts(1);
  return port;
}

/**
 * `count` different TCP ports on 127.0.0.1 that were free a moment ago (Slurm's two daemons). Each
 * is held until all are chosen: ports asked one after another may come back equal, since a port
 * closed is free again. Another process may still take one before the server binds it: servers
 * started on them retry with new ports when their bind fails.
 */
export async function freePorts(count: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const server = createServer();
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => resolve());
      });
    }
    return servers.map((server) => {
      const address = server.address();
      return typeof address === 'object' && address ? address.port : 0;
    });
  } finally {
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  }
}

/** A real, tiny checkpoint folder as the trainer writes it (without DONE when `done` is false); returns its path. */
export function writeTestCheckpoint(
  runDir: string,
  step: number,
  evalLoss: number | null,
  done = true,
  config: TrainConfig = PRESETS.tiny,
): string {
  const w = new Float32Array([1, 2, 3, 4, 5, 6]);
  const dir = saveCheckpoint(runDir, {
    step,
    tokens: step * 100,
    config,
    data: { cursor: { seed: 1, epoch: 0, index: 0 }, files: [] },
    rng: [1, 2, 3, 4],
    optimizer: { step },
    eval_loss: evalLoss,
    train_loss: null,
    weights: new Map([['wte', { shape: [2, 3], data: w }]]),
    optimizerState: new Map([['m.wte', { shape: [2, 3], data: w }]]),
    tokenizerJson: '{}',
  });
  if (!done) unlinkSync(join(dir, 'DONE'));
  return dir;
}

/**
 * A checkpoint at `step` of a real (untrained, one-layer) model with a tokenizer trained on a few
 * lines, in `runDir`: small enough to score a task in seconds on the cpu backend. Returns its folder.
 */
export async function writeScorableCheckpoint(runDir: string, step = 7): Promise<string> {
  await selectBackend('cpu');
  const config = { ...PRESETS.tiny, vocab_size: 300, n_layer: 1, seq_len: 64 };
  const tokenizer = BpeTokenizer.train(['春眠不覺曉，處處聞啼鳥。', '答案： A B C D'], config.vocab_size);
  const model = SteelLM.init(config, 1);
  const weights: Tensors = new Map();
  const shapes = model.paramShapes();
  for (const [name, data] of model.readWeights()) weights.set(name, { shape: shapes.get(name) ?? [data.length], data });
  model.dispose();
  return saveCheckpoint(runDir, {
    step,
    tokens: 0,
    config,
    data: { cursor: { seed: 0, epoch: 0, index: 0 }, files: [] },
    rng: [1, 2, 3, 4],
    optimizer: { step },
    eval_loss: null,
    train_loss: null,
    weights,
    optimizerState: new Map(),
    tokenizerJson: JSON.stringify(tokenizer.toJSON()),
  });
}

/**
 * A one-subject task CSV (`dir`/long.csv) of 50,000 questions, for a test that cancels an eval: the
 * shipped poetry-mc scores in about 2 s on the wasm backend, so a cancel sent at its first progress
 * line could arrive (over SSH, on a loaded machine) after the records were written and the eval had
 * succeeded. This one takes minutes on any backend (about 4 ms a question on wasm, 300 ms on cpu),
 * and its first progress line still comes within seconds.
 */
export function writeLongMcTask(dir: string): string {
  mkdirSync(dir, { recursive: true });
  const question = (i: number) => `${i},春眠不覺曉，處處聞啼鳥。第${i}問,甲,乙,丙,丁,${'ABCD'[i % 4]}`;
  const rows = Array.from({ length: 50_000 }, (_, i) => question(i));
  const file = join(dir, 'long.csv');
  writeFileSync(file, [',Question,A,B,C,D,Answer', ...rows].join('\n') + '\n');
  return file;
}

/** A CMMLU-layout task folder `root/name`: each file (dev/x.csv, test/x.csv) its rows below the header. */
export function writeCmmluTask(root: string, name: string, files: Record<string, string[]>): string {
  const task = join(root, name);
  for (const [file, rows] of Object.entries(files)) {
    mkdirSync(dirname(join(task, file)), { recursive: true });
    writeFileSync(join(task, file), [',Question,A,B,C,D,Answer', ...rows].join('\n') + '\n');
  }
  return task;
}

/**
 * A 4-step training run in `dir`/run that checkpoints at steps 2 and 4, keeps one beside the
 * newest, and runs `evalTasks` (eval_tasks JSON) with checkpoints ranked by `bestBy`; `engine`:
 * flags choosing the engine (none: TF.js); `extraSets`: more config keys (`key=value`).
 */
export function trainWithEvalTasks(
  dir: string,
  evalTasks: string,
  bestBy: string,
  engine: string[] = [],
  extraSets: string[] = [],
): { runDir: string; result: CliResult } {
  const runDir = join(dir, 'run');
  const sets = ['checkpoint_every=2', 'keep_checkpoints=1', `eval_tasks=${evalTasks}`, `best_by=${bestBy}`];
  sets.push(...extraSets);
  const args = ['train', ...engine, '--data', poetrySubset(dir, 200), '--run-dir', runDir, '--steps', '4'];
  const result = runCli([...args, ...SMALL_SETS, ...sets.flatMap((s) => ['--set', s])], 300_000);
  return { runDir, result };
}

/** The eval task of the fine-tuning resume tests: 10 poetry-mc questions, scored at step 0 and each checkpoint. */
const SFT_EVAL_TASKS = '[{"task":"poetry-mc","shots":0,"limit":5}]';

/**
 * A fine-tuning run stopped half-way and resumed, against one that ran through: from checkpoint
 * `from`, 8 steps of poetry-sft in `dir`/reference; in `dir`/resumed the same 8-step schedule
 * (max_steps=8) trained to step 4 only, then `steelscope resume` (on the same engine).
 * Both checkpoint every 4 steps, keep the newest and the best by poetry-mc accuracy, and run
 * SFT_EVAL_TASKS. `engine`: flags choosing the engine (none: TF.js); `beforeResume`: what befalls
 * the stopped run's folder before the resume.
 */
export function sftStoppedAndResumed(
  dir: string,
  from: string,
  engine: string[] = [],
  beforeResume: (runDir: string) => void = () => {},
) {
  const sets = [
    'eval_every=0',
    'sample_every=0',
    'batch_size=4',
    'checkpoint_every=4',
    'keep_checkpoints=1',
    `eval_tasks=${SFT_EVAL_TASKS}`,
    'best_by=poetry-mc/acc',
  ];
  const sft = (runDir: string, steps: number, more: string[]) => {
    const flags = [...sets, ...more].flatMap((s) => ['--set', s]);
    const args = ['sft', '--from', from, '--data', 'poetry-sft', '--run-dir', runDir, '--steps', String(steps)];
    return runCli([...args, ...flags, ...engine], 300_000);
  };
  const reference = join(dir, 'reference');
  const resumed = join(dir, 'resumed');
  const results = [sft(reference, 8, []), sft(resumed, 4, ['max_steps=8'])];
  beforeResume(resumed);
  results.push(runCli(['resume', resumed, ...engine], 300_000));
  return { reference, resumed, results };
}

/**
 * What a stopped and resumed fine-tuning run (sftStoppedAndResumed) must show: every step once in
 * metrics.jsonl with the uninterrupted run's loss (within `tolerance`), its eval tasks' records at
 * steps 0, 4 and 8 once each and equal to that run's, the checkpoints pruned by best_by, and
 * run.json saying it finished after one resume from step 4, still a ChatML fine-tuning run.
 */
export async function assertSftResumedExactly(
  run: ReturnType<typeof sftStoppedAndResumed>,
  tolerance: number,
): Promise<void> {
  for (const r of run.results) assert.equal(r.code, 0, r.stderr);
  const steps = readMetrics(run.resumed)
    .filter((r) => r.kind === 'train')
    .map((r) => r.step);
  assert.deepEqual(steps, [0, 1, 2, 3, 4, 5, 6, 7], 'every step once');
  const expected = trainLosses(run.reference);
  for (const [step, loss] of trainLosses(run.resumed)) {
    const want = expected.get(step) ?? NaN;
    assert.ok(Math.abs(loss - want) <= tolerance, `step ${step}: resumed ${loss} vs uninterrupted ${want}`);
  }
  const macros = (runDir: string) =>
    readEvalRecords(runDir)
      .filter((x) => x.subject === MACRO_SUBJECT)
      .map((x) => [x.step, x.task, x.n, x.acc]);
  assert.deepEqual(
    macros(run.resumed).map(([step]) => step),
    [0, 4, 8],
    'eval tasks at step 0 and each checkpoint, once',
  );
  assert.deepEqual(macros(run.resumed), macros(run.reference));
  const acc = (step: number) => macros(run.resumed).find((m) => m[0] === step)?.[3] ?? NaN;
  const best = acc(4) >= acc(8) ? 4 : 8;
  const checkpoints = await scanCheckpoints(run.resumed);
  assert.deepEqual(
    checkpoints.map((c) => [c.step, c.best]),
    best === 4
      ? [
          [4, true],
          [8, false],
        ]
      : [[8, true]],
    'the newest checkpoint, and the best by best_by',
  );
  const info = JSON.parse(readFileSync(join(run.resumed, 'run.json'), 'utf8'));
  assert.equal(info.status, 'finished');
  assert.equal(info.template, 'chatml');
  assert.deepEqual(
    info.resumes.map((r: { step: number }) => r.step),
    [4],
  );
}

/** The macro-average record `steelscope eval` appends for `task` at `step`: 400 questions, 5 shots. */
export function evalAverage(task: string, step: number, acc: number): EvalRecord {
  return { step, t: step, task, subject: MACRO_SUBJECT, n: 400, acc, shots: 5 };
}

/** A run's evals.jsonl, every record checked against the schema `steelscope eval` writes by. */
export function readEvalRecords(runDir: string): EvalRecord[] {
  return readFileSync(join(runDir, 'evals.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((line) => {
      const parsed = parseAs(EvalRecordSchema, JSON.parse(line), 'record');
      assert.ok(parsed.ok, parsed.ok ? '' : parsed.error);
      return parsed.value;
    });
}

/**
 * Polls `probe` until it gives a value (anything but undefined or false), every `pollMs`; throws
 * "timed out waiting for <what>" after `timeoutMs`. For tests that wait on real processes.
 */
export async function until<T>(
  what: string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 60_000,
  pollMs = 25,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(pollMs);
  }
}

/** A run folder's run.json, checked by the same schema the extension uses; fails the test otherwise. */
export function readRunInfo(runDir: string): RunInfo {
  const info = parseRunInfo(JSON.parse(readFileSync(join(runDir, 'run.json'), 'utf8')));
  assert.ok(info.ok, info.ok ? '' : info.error);
  return info.value;
}

/**
 * A RunTarget for tests of the run store, which only names it and asks whether a trainer lives;
 * every other method rejects, so a test that reaches one fails loudly.
 */
export function storeOnlyTarget(
  id: string,
  label: string,
  isAlive: RunTarget['isAlive'] = async () => false,
): RunTarget {
  const unused = () => Promise.reject(new Error('not used by the store'));
  return {
    id,
    label,
    isAlive,
    listRunDirs: unused,
    start: unused,
    stop: unused,
    resume: unused,
    delete: unused,
    planDelete: unused,
    findTorch: unused,
    runCli: unused,
  };
}

/** Headless Chromium as every browser test runs it: no sandbox, GPU, network services or sync. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
