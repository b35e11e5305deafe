// Scoring against an independent computation: test/golden/reference.py (PyTorch, written from the
// spec) gives the same per-choice log-likelihoods within 1e-4 as src/core/eval for one set of
// weights and the shipped poetry-mc prompts (2-shot, left-truncated to seq_len): the letters A-D
// (the one-pass path) and the choices' own texts (several tokens each).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { selectBackend } from '../../src/core/backend';
import { builtAsset } from '../../src/core/data';
import { choiceLogLikelihoods, continuationLogLikelihood } from '../../src/core/eval/score';
import { CHOICE_LETTERS, fewShotPrompt, readMcTask, TARGET_DELIMITER } from '../../src/core/eval/tasks';
import { SteelLM } from '../../src/core/model/gpt';
import { BpeTokenizer } from '../../src/core/tokenizer';
import { encodeTensors } from '../../src/core/train/tensorfile';
import { PRESETS } from '../../src/shared/config';
import { requireTorch, TORCH_SKIP } from '../torch';

const TOL = 1e-4;
const REFERENCE = join(__dirname, '..', 'golden', 'reference.py');

test('per-choice log-likelihoods match the PyTorch reference within 1e-4', { skip: TORCH_SKIP }, async (t) => {
  await selectBackend('cpu');
  const taskDir = builtAsset('tasks/poetry-mc');
  assert.ok(taskDir, 'poetry-mc is built (npm run build)');
  const task = readMcTask(taskDir);
  // A larger init_std than training's, so the logits are far from uniform and differences show.
  const config = { ...PRESETS.tiny, vocab_size: 512, seq_len: 48, init_std: 0.1 };
  const docs = task.subjects.flatMap((s) => s.questions.map((q) => [q.question, ...q.choices].join('\n')));
  const tokenizer = BpeTokenizer.train(docs, config.vocab_size);
  const model = SteelLM.init(config, 7);
  const requests: { context: number[]; continuation: number[] }[] = [];
  const ours: number[] = [];
  try {
    for (const subject of task.subjects) {
      for (const q of subject.questions.slice(0, 3)) {
        const context = tokenizer.encode(fewShotPrompt(subject, q, 2));
        const letters = CHOICE_LETTERS.map((l) => tokenizer.encode(TARGET_DELIMITER + l));
        ours.push(...choiceLogLikelihoods(model, context, letters));
        const texts = q.choices.map((c) => tokenizer.encode(TARGET_DELIMITER + c));
        ours.push(...texts.map((c) => continuationLogLikelihood(model, context, c)));
        for (const continuation of [...letters, ...texts]) requests.push({ context, continuation });
      }
    }
    const dir = mkdtempSync(join(tmpdir(), 'steelscope-eval-golden-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const [index, bin] = encodeTensors(
      new Map(
        [...model.paramShapes()].map(([name, shape]) => [
          name,
          { shape, data: model.readWeights().get(name) as Float32Array },
        ]),
      ),
    );
    writeFileSync(join(dir, 'weights.json'), index);
    writeFileSync(join(dir, 'weights.bin'), bin);
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
    writeFileSync(join(dir, 'requests.json'), JSON.stringify(requests));
    const args = [
      'loglik',
      '--config',
      join(dir, 'config.json'),
      '--weights',
      join(dir, 'weights'),
      '--requests',
      join(dir, 'requests.json'),
      '--out',
      join(dir, 'out.json'),
    ];
    const r = spawnSync(requireTorch().executable, [REFERENCE, ...args], { encoding: 'utf8', timeout: 300_000 });
    assert.equal(r.status, 0, r.stderr);
    const reference = JSON.parse(readFileSync(join(dir, 'out.json'), 'utf8')) as number[];
    assert.equal(reference.length, ours.length);
    assert.ok(
      requests.some((q) => q.context.length + q.continuation.length > config.seq_len + 1),
      'some prompts are truncated',
    );
    let worst = 0;
    ours.forEach((x, i) => {
      worst = Math.max(worst, Math.abs(x - reference[i]));
      assert.ok(Math.abs(x - reference[i]) <= TOL, `request ${i}: ${x} vs reference ${reference[i]}`);
    });
    const spread = Math.max(...reference) - Math.min(...reference);
    assert.ok(spread > 1, 'the log-likelihoods differ enough for the comparison to mean something');
    t.diagnostic(
      `${ours.length} log-likelihoods, largest difference ${worst.toExponential(2)}, spread ${spread.toFixed(2)}`,
    );
  } finally {
    model.dispose();
  }
});
