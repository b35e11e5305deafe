// The torch engine's eval_tasks: it scores the prompts the TypeScript side rendered
// (data/evals.json) and gives the same per-choice log-likelihoods as `steelscope eval`'s scorer
// within 1e-4 on the same checkpoint, hence the same records; a torch training run appends
// those records to evals.jsonl at step 0 and at each checkpoint; and under torchrun the ranks share
// the scoring, with the numbers and records of one process, and agree on skipping it at a stop.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { selectBackend } from '../../src/core/backend';
import { builtAsset } from '../../src/core/data';
import { mcRecords, renderEvals, resolveTasks, scoreRendered } from '../../src/core/eval';
import { evaluatePpl } from '../../src/core/eval/run';
import { readMcTask } from '../../src/core/eval/tasks';
import { SteelLM } from '../../src/core/model/gpt';
import { BpeTokenizer } from '../../src/core/tokenizer';
import { saveCheckpoint, type Tensors } from '../../src/core/train/checkpoint';
import { torchrunArgs } from '../../src/cli/torchrun';
import { PRESETS } from '../../src/shared/config';
import { MACRO_SUBJECT, type EvalRecord } from '../../src/shared/eval';
import { scanCheckpoints } from '../../src/shared/node/checkpoints';
import {
  poetrySubset,
  readEvalRecords,
  scratch,
  sleep,
  SMALL_SETS,
  spawnCli,
  trainLosses,
  trainWithEvalTasks,
} from '../helpers';
import { processesMentioning, requireTorch, torchFlags, TORCH_SKIP } from '../torch';

const TOL = 1e-4;
const EVALS_PY = join(__dirname, '..', '..', 'src', 'engines', 'torch', 'evals.py');

/** The figures two engines' records must share (t aside). */
const figures = (r: EvalRecord) => [r.step, r.task, r.subject, r.n, r.acc, r.acc_norm, r.shots, r.format];

/** A checkpoint at step 3 of a tiny model whose logits are far from uniform, and its tokenizer. */
function fixtureCheckpoint(dir: string) {
  const taskDir = builtAsset('tasks/poetry-mc');
  assert.ok(taskDir, 'poetry-mc is built (npm run build)');
  // A larger init_std than training's, so the logits are far from uniform and differences show.
  const config = { ...PRESETS.tiny, vocab_size: 512, seq_len: 48, init_std: 0.1 };
  const task = readMcTask(taskDir);
  const docs = task.subjects.flatMap((s) => s.questions.map((q) => [q.question, ...q.choices].join('\n')));
  const tokenizer = BpeTokenizer.train(docs, config.vocab_size);
  const model = SteelLM.init(config, 7);
  const weights: Tensors = new Map();
  const shapes = model.paramShapes();
  for (const [name, data] of model.readWeights()) weights.set(name, { shape: shapes.get(name) ?? [data.length], data });
  const checkpoint = saveCheckpoint(dir, {
    step: 3,
    tokens: 0,
    config,
    data: { cursor: { seed: 0, epoch: 0, index: 0 }, files: [] },
    rng: [1, 2, 3, 4],
    optimizer: { step: 3 },
    eval_loss: null,
    train_loss: null,
    weights,
    optimizerState: new Map(),
    tokenizerJson: JSON.stringify(tokenizer.toJSON()),
  });
  return { taskDir, config, docs, tokenizer, model, checkpoint };
}

/** What evals.py writes: per task the per-choice log-likelihoods (null for ppl), and the records. */
interface TorchScores {
  scores: (number[][][] | null)[];
  records: EvalRecord[][];
}

/** evals.py's output on the checkpoint, on `nproc` CPU processes (torchrun and gloo when more than one). */
function torchScores(dir: string, evals: string, checkpoint: string, nproc: number): TorchScores {
  const out = join(dir, `scores-${nproc}.json`);
  const script = [EVALS_PY, '--checkpoint', checkpoint, '--evals', evals, '--out', out, '--step', '3'];
  const logs = join(dir, `torchrun-${nproc}`);
  const launch = nproc > 1 ? ['-m', 'torch.distributed.run', ...torchrunArgs(nproc, undefined, logs)] : [];
  // One thread per process, whatever the count, so that only the sharding differs between runs.
  const env = { ...process.env, OMP_NUM_THREADS: '1' };
  const r = spawnSync(requireTorch().executable, [...launch, ...script], { encoding: 'utf8', env, timeout: 300_000 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(readFileSync(out, 'utf8')) as TorchScores;
}

/** Every per-choice log-likelihood of the mc tasks, in order. */
const flatScores = (x: TorchScores) => x.scores.filter((s): s is number[][][] => s !== null).flat(3);

test(
  'torch scores the rendered prompts as the TS scorer does (1e-4) on the same checkpoint',
  { skip: TORCH_SKIP },
  async (t) => {
    await selectBackend('cpu');
    const dir = scratch('torch-evals');
    const { docs, tokenizer, model, checkpoint } = fixtureCheckpoint(dir);
    t.after(() => model.dispose());
    const text = join(dir, 'held.txt');
    writeFileSync(text, docs.slice(0, 20).join('\n'));
    const resolved = resolveTasks([
      { task: 'poetry-mc', shots: 2, limit: 4 },
      { task: 'poetry-mc', shots: 1, limit: 4, format: 'cloze' },
      { task: `ppl:${text}` },
    ]);
    const rendered = renderEvals(tokenizer, resolved);
    writeFileSync(join(dir, 'evals.json'), JSON.stringify(rendered));
    const ours: number[][][][] = [];
    const ourRecords: EvalRecord[] = [];
    for (const r of rendered.tasks) {
      if (r.kind !== 'mc') continue;
      const scores = scoreRendered(model, r, { step: 3 });
      ours.push(scores);
      ourRecords.push(...mcRecords(r, scores, 3));
    }
    ourRecords.push(...evaluatePpl(model, tokenizer, text, { step: 3 }));

    const theirs = torchScores(dir, join(dir, 'evals.json'), checkpoint, 1);
    const flat = (x: number[][][][]) => x.flat(3);
    const mine = flat(ours);
    const reference = flatScores(theirs);
    assert.equal(reference.length, mine.length);
    let worst = 0;
    mine.forEach((x, i) => {
      worst = Math.max(worst, Math.abs(x - reference[i]));
      assert.ok(Math.abs(x - reference[i]) <= TOL, `choice ${i}: ${x} vs torch ${reference[i]}`);
    });
    assert.ok(Math.max(...mine) - Math.min(...mine) > 1, 'the log-likelihoods differ enough to mean something');
    const records = theirs.records.flat();
    assert.deepEqual(
      records.filter((x) => x.ppl === undefined).map(figures),
      ourRecords.filter((x) => x.ppl === undefined).map(figures),
    );
    const ppl = (list: EvalRecord[]) => list.find((x) => x.ppl !== undefined)?.ppl ?? NaN;
    assert.ok(Math.abs(ppl(records) / ppl(ourRecords) - 1) < 1e-4, `ppl ${ppl(records)} vs ${ppl(ourRecords)}`);
    t.diagnostic(`${mine.length} log-likelihoods, largest difference ${worst.toExponential(2)}`);
  },
);

test(
  'torchrun 2 processes (gloo) share the scoring: the log-likelihoods and records of 1 process, uneven shards too',
  { skip: TORCH_SKIP },
  async (t) => {
    await selectBackend('cpu');
    const dir = scratch('torch-evals-shard');
    const { taskDir, docs, tokenizer, model, checkpoint } = fixtureCheckpoint(dir);
    model.dispose();
    const text = join(dir, 'held.txt');
    writeFileSync(text, docs.slice(0, 5).join('\n')); // 7 windows: rank 0 scores 4, rank 1 3
    const author = join(taskDir, 'test', 'author.csv');
    // Each subject's rows go in batches of 16, and 2 ranks take every other batch of a task.
    const rendered = renderEvals(
      tokenizer,
      resolveTasks([
        { task: 'poetry-mc', shots: 1, limit: 20 }, // 2 subjects of 80 rows (a row per choice here): 10 batches
        { task: author, shots: 0, limit: 9, format: 'cloze' }, // 36 rows: 3 batches, 2 and 1
        { task: author, shots: 0, limit: 3 }, // 12 rows, 1 batch: rank 1 scores none
        { task: `ppl:${text}` },
      ]),
    );
    const [pplIds] = rendered.tasks.flatMap((x) => (x.kind === 'ppl' ? [x.ids.length] : []));
    const windows = Math.ceil((pplIds - 1) / 48); // seq_len
    assert.ok(windows > 1 && windows % 2 === 1, `the ppl text makes an odd number of windows (${windows})`);
    const evals = join(dir, 'evals.json');
    writeFileSync(evals, JSON.stringify(rendered));
    const one = torchScores(dir, evals, checkpoint, 1);
    const two = torchScores(dir, evals, checkpoint, 2);
    const [a, b] = [flatScores(one), flatScores(two)];
    assert.equal(b.length, a.length);
    assert.equal(a.length, 2 * 20 * 4 + 9 * 4 + 3 * 4);
    let worst = 0;
    a.forEach((x, i) => {
      worst = Math.max(worst, Math.abs(x - b[i]));
      assert.ok(Math.abs(x - b[i]) <= TOL, `choice ${i}: 2 processes ${b[i]} vs 1 process ${x}`);
    });
    const untimed = (x: TorchScores) => x.records.flat().map((r) => ({ ...r, t: 0 }));
    assert.deepEqual(untimed(two), untimed(one));
    assert.equal(untimed(one).length, 3 + 2 + 2 + 1);
    t.diagnostic(`${a.length} log-likelihoods, ${windows} ppl windows; largest difference ${worst}`);
  },
);

test(
  'a torch run appends eval_tasks records at step 0 and at each checkpoint; best_by prunes',
  { skip: TORCH_SKIP },
  async () => {
    const dir = scratch('torch-evals-run');
    const tasks = '[{"task":"poetry-mc","shots":0,"limit":5}]';
    const { runDir, result: r } = trainWithEvalTasks(dir, tasks, 'poetry-mc/acc', torchFlags(1));
    assert.equal(r.code, 0, r.stderr);
    const records = readEvalRecords(runDir);
    assert.deepEqual(
      records.filter((x) => x.subject === MACRO_SUBJECT).map((x) => [x.step, x.task, x.n, x.shots, x.format]),
      [0, 2, 4].map((step) => [step, 'poetry-mc', 10, 0, 'letters']),
    );
    for (const x of records) assert.ok(typeof x.acc === 'number' && typeof x.acc_norm === 'number');
    // The supervisor prunes by the shared rule, which follows best_by: the newest, and the best acc (earliest on a tie).
    const acc = (step: number) => records.find((x) => x.step === step && x.subject === MACRO_SUBJECT)?.acc ?? NaN;
    const best = acc(2) >= acc(4) ? 2 : 4;
    const checkpoints = await scanCheckpoints(runDir);
    assert.deepEqual(
      checkpoints.map((c) => [c.step, c.best]),
      best === 2
        ? [
            [2, true],
            [4, false],
          ]
        : [[4, true]],
    );
  },
);

test('a 2-process torchrun (gloo) writes the evals.jsonl of a 1-process run', { skip: TORCH_SKIP }, () => {
  const dir = scratch('torch-evals-ranks');
  const taskDir = builtAsset('tasks/poetry-mc');
  assert.ok(taskDir, 'poetry-mc is built (npm run build)');
  const author = join(taskDir, 'test', 'author.csv');
  const text = join(dir, 'held.txt');
  writeFileSync(text, readFileSync(author, 'utf8').split('\n').slice(1, 9).join('\n'));
  const tasks = JSON.stringify([
    { task: 'poetry-mc', shots: 0, limit: 5 }, // 2 subjects of 20 rows: 4 batches
    { task: author, shots: 0, limit: 3, format: 'cloze' }, // 1 batch: rank 1 scores none
    { task: `ppl:${text}` },
  ]);
  // lr 0 keeps both runs' weights those of step 0 (DDP's mean of the ranks' gradients differs from one
  // process's in the last bits), so the records at steps 2 and 4 can differ only by the sharded scoring.
  const records = (nproc: number) => {
    const sub = join(dir, String(nproc));
    mkdirSync(sub);
    const sets = ['lr=0', 'min_lr=0'];
    const { runDir, result } = trainWithEvalTasks(sub, tasks, 'poetry-mc/acc', torchFlags(nproc), sets);
    assert.equal(result.code, 0, result.stderr);
    return readEvalRecords(runDir);
  };
  const [one, two] = [records(1), records(2)];
  assert.deepEqual(
    two.filter((x) => x.subject === MACRO_SUBJECT).map((x) => [x.step, x.task]),
    [0, 2, 4].flatMap((step) => ['poetry-mc', 'author:cloze', 'ppl:held.txt'].map((task) => [step, task])),
  );
  // The same records; ppl within 1e-6 (1 process runs 2 threads, each of 2 processes 1).
  const comparable = (list: EvalRecord[]) => list.map((r) => ({ ...r, t: 0, ppl: r.ppl?.toPrecision(7) }));
  assert.deepEqual(comparable(two), comparable(one));
});

test(
  'ranks agree on the stop at a checkpoint: rank 0 alone asked to stop, every rank skips the tasks; then all score',
  { skip: TORCH_SKIP },
  async (t) => {
    await selectBackend('cpu');
    const dir = scratch('torch-evals-agree');
    const { tokenizer, model, checkpoint } = fixtureCheckpoint(dir);
    model.dispose();
    const evals = join(dir, 'evals.json');
    writeFileSync(evals, JSON.stringify(renderEvals(tokenizer, resolveTasks([{ task: 'poetry-mc', limit: 2 }]))));
    const script = join(__dirname, 'torch-evals-stop.py');
    const launch = ['-m', 'torch.distributed.run', ...torchrunArgs(2, undefined, join(dir, 'torchrun'))];
    const env = { ...process.env, OMP_NUM_THREADS: '1' };
    const r = spawnSync(requireTorch().executable, [...launch, script, checkpoint, evals, dir], {
      encoding: 'utf8',
      env,
      timeout: 300_000,
    });
    assert.equal(r.status, 0, r.stderr);
    const rank = (n: number) =>
      JSON.parse(readFileSync(join(dir, `rank-${n}.json`), 'utf8')) as {
        scored_at: number[];
        written: number[] | null;
      };
    assert.deepEqual(rank(0).scored_at, [2]);
    assert.deepEqual(rank(1).scored_at, [2]);
    assert.deepEqual(rank(0).written, [2, 2, 2], 'rank 0 wrote the 2 subjects and the average at step 2');
    assert.equal(rank(1).written, null);
    t.diagnostic('both ranks skipped step 1 and scored step 2');
  },
);

test(
  'Stop of a 2-process run scoring eval_tasks at every step: a checkpoint, no scores at the stop, no rank left',
  { skip: TORCH_SKIP },
  async () => {
    // A checkpoint, hence the tasks, at every step: the stop (the supervisor's stop file, which rank 0
    // alone reads) lands between scorings; whichever check sees it first, every rank stops at one step.
    const dir = scratch('torch-evals-stop');
    const run = join(dir, 'run');
    const sets = ['checkpoint_every=1', 'keep_checkpoints=1', 'eval_tasks=[{"task":"poetry-mc","shots":0,"limit":2}]'];
    const args = ['train', '--data', poetrySubset(dir, 200), '--run-dir', run, '--steps', '1000', ...SMALL_SETS];
    const child = spawnCli([...args, ...sets.flatMap((x) => ['--set', x]), ...torchFlags(2)]);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const deadline = Date.now() + 240_000;
    while (Math.max(-1, ...trainLosses(run).keys()) < 2) {
      assert.ok(Date.now() < deadline, 'training started');
      await sleep(20);
    }
    process.kill(child.pid ?? 0, 'SIGTERM');
    assert.equal(await exited, 0);
    const info = JSON.parse(readFileSync(join(run, 'run.json'), 'utf8')) as { status: string; step: number };
    assert.equal(info.status, 'stopped');
    const last = join(run, 'checkpoints', `step-${String(info.step).padStart(8, '0')}`, 'DONE');
    assert.ok(existsSync(last), `a checkpoint at the stop's step ${info.step}`);
    const scored = readEvalRecords(run).filter((x) => x.subject === MACRO_SUBJECT);
    assert.ok(scored.length >= 3, 'the tasks were scored at steps 0, 1, 2');
    assert.ok(
      scored.every((x) => x.step < info.step),
      `no scores at the stop's step ${info.step}`,
    );
    assert.deepEqual(processesMentioning(run), [], 'no rank left running');
  },
);
