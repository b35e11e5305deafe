// The torch engine's eval_tasks: it scores the prompts the TypeScript side rendered
// (data/evals.json) and gives the same per-choice log-likelihoods as `steelscope eval`'s scorer
// within 1e-4 on the same checkpoint, hence the same records; and a torch training run appends
// those records to evals.jsonl at step 0 and at each checkpoint.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
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
import { PRESETS } from '../../src/shared/config';
import { MACRO_SUBJECT, type EvalRecord } from '../../src/shared/eval';
import { scanCheckpoints } from '../../src/shared/node/checkpoints';
import { readEvalRecords, scratch, trainWithEvalTasks } from '../helpers';
import { requireTorch, torchFlags, TORCH_SKIP } from '../torch';

const TOL = 1e-4;
const EVALS_PY = join(__dirname, '..', '..', 'src', 'engines', 'torch', 'evals.py');

/** The figures two engines' records must share (t aside). */
const figures = (r: EvalRecord) => [r.step, r.task, r.subject, r.n, r.acc, r.acc_norm, r.shots, r.format];

test(
  'torch scores the rendered prompts as the TS scorer does (1e-4) on the same checkpoint',
  { skip: TORCH_SKIP },
  async (t) => {
    await selectBackend('cpu');
    const dir = scratch('torch-evals');
    const taskDir = builtAsset('tasks/poetry-mc');
    assert.ok(taskDir, 'poetry-mc is built (npm run build)');
    // A larger init_std than training's, so the logits are far from uniform and differences show.
    const config = { ...PRESETS.tiny, vocab_size: 512, seq_len: 48, init_std: 0.1 };
    const task = readMcTask(taskDir);
    const docs = task.subjects.flatMap((s) => s.questions.map((q) => [q.question, ...q.choices].join('\n')));
    const tokenizer = BpeTokenizer.train(docs, config.vocab_size);
    const model = SteelLM.init(config, 7);
    t.after(() => model.dispose());
    const weights: Tensors = new Map();
    const shapes = model.paramShapes();
    for (const [name, data] of model.readWeights())
      weights.set(name, { shape: shapes.get(name) ?? [data.length], data });
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

    const out = join(dir, 'out.json');
    const args = [
      EVALS_PY,
      '--checkpoint',
      checkpoint,
      '--evals',
      join(dir, 'evals.json'),
      '--out',
      out,
      '--step',
      '3',
    ];
    const r = spawnSync(requireTorch().executable, args, { encoding: 'utf8', timeout: 300_000 });
    assert.equal(r.status, 0, r.stderr);
    const theirs = JSON.parse(readFileSync(out, 'utf8')) as {
      scores: (number[][][] | null)[];
      records: EvalRecord[][];
    };
    const flat = (x: number[][][][]) => x.flat(3);
    const mine = flat(ours);
    const reference = flat(theirs.scores.filter((s): s is number[][][] => s !== null));
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
