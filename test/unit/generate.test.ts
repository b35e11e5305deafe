// Sampling: seeded determinism, greedy = step-by-step argmax of the forward logits, top-k 1 =
// greedy, top-p and temperature behave, stop ids end generation (and are not returned), no leaks.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../../src/core/backend';
import { SteelLM } from '../../src/core/model';
import { Rng } from '../../src/core/rng';
import { argmax, generate, sampleFromLogits, type SampleOptions } from '../../src/core/sample/generate';
import { PRESETS, type TrainConfig } from '../../src/shared/config';

const CONFIG: TrainConfig = {
  ...PRESETS.tiny,
  vocab_size: 64,
  n_embd: 32,
  n_layer: 2,
  n_head: 4,
  n_kv_head: 2,
  intermediate_size: 48,
  seq_len: 16,
};
const PROMPT = [3, 14, 15, 9, 26];

let model: SteelLM;

function opts(over: Partial<SampleOptions>): SampleOptions {
  return { maxTokens: 12, temperature: 1, topK: 0, topP: 1, rng: new Rng(1), ...over };
}

describe('generate', () => {
  before(async () => {
    await selectBackend('cpu');
    // A larger init spreads the logits, so sampling differs visibly from greedy.
    model = SteelLM.init({ ...CONFIG, init_std: 0.5 }, 21);
  });
  after(() => model.dispose());

  test('the same seed gives the same ids; another seed gives others', () => {
    const a = generate(model, PROMPT, opts({ rng: new Rng(5) }));
    const b = generate(model, PROMPT, opts({ rng: new Rng(5) }));
    const c = generate(model, PROMPT, opts({ rng: new Rng(6) }));
    assert.equal(a.length, 12);
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
    assert.ok(a.every((id) => Number.isInteger(id) && id >= 0 && id < 64));
  });

  test('greedy equals the argmax of the forward logits step by step, over a cropped context', () => {
    const got = generate(model, PROMPT, opts({ temperature: 0, maxTokens: 20 })); // 5 + 20 > seq_len 16
    const ids = [...PROMPT];
    for (let i = 0; i < 20; i++) {
      const ctx = ids.slice(-CONFIG.seq_len);
      const next = tf.tidy(() => {
        const logits = model.forward(tf.tensor2d([ctx], [1, ctx.length], 'int32'));
        return argmax(logits.dataSync().slice((ctx.length - 1) * 64) as Float32Array);
      });
      ids.push(next);
    }
    assert.deepEqual(got, ids.slice(PROMPT.length));
    assert.deepEqual(generate(model, PROMPT, opts({ temperature: 0, maxTokens: 20, rng: new Rng(99) })), got);
  });

  test('top-k 1 equals greedy', () => {
    const greedy = generate(model, PROMPT, opts({ temperature: 0 }));
    assert.deepEqual(generate(model, PROMPT, opts({ topK: 1, temperature: 0.9, rng: new Rng(3) })), greedy);
  });

  test('a stop id ends generation and is not returned', () => {
    const free = generate(model, PROMPT, opts({ temperature: 0 }));
    const stop = free[4];
    const first = free.indexOf(stop);
    const stopped = generate(model, PROMPT, opts({ temperature: 0, stopIds: [stop] }));
    assert.deepEqual(stopped, free.slice(0, first));
  });

  test('no tensors leak across generate calls', () => {
    generate(model, PROMPT, opts({ maxTokens: 2 }));
    const before = tf.memory().numTensors;
    generate(model, PROMPT, opts({ maxTokens: 5 }));
    generate(model, PROMPT, opts({ maxTokens: 5, temperature: 0 }));
    assert.equal(tf.memory().numTensors, before);
  });

  test('an empty prompt is refused', () => {
    assert.throws(() => generate(model, [], opts({})), /at least one id/);
  });
});

describe('sampleFromLogits', () => {
  const logits = Float32Array.from([1, 3, 3, 0.5, -2, 2.9]);

  test('greedy takes the lowest id among ties', () => {
    assert.equal(argmax(logits), 1);
    assert.equal(sampleFromLogits(logits, { temperature: 0, topK: 0, topP: 1, rng: new Rng(1) }), 1);
  });

  test('top-k and top-p restrict the candidates', () => {
    const rng = new Rng(2);
    const seen = new Set<number>();
    for (let i = 0; i < 300; i++) seen.add(sampleFromLogits(logits, { temperature: 1, topK: 3, topP: 1, rng }));
    assert.deepEqual([...seen].sort(), [1, 2, 5]);
    seen.clear();
    // ids 1 and 2 have probability about 0.32 each: top-p 0.5 keeps exactly those two.
    for (let i = 0; i < 300; i++) seen.add(sampleFromLogits(logits, { temperature: 1, topK: 0, topP: 0.5, rng }));
    assert.deepEqual([...seen].sort(), [1, 2]);
  });

  test('frequencies follow softmax(logits / temperature)', () => {
    const rng = new Rng(4);
    const counts = new Array<number>(6).fill(0);
    const n = 20000;
    for (let i = 0; i < n; i++) counts[sampleFromLogits(logits, { temperature: 2, topK: 0, topP: 1, rng })]++;
    const w = Array.from(logits, (l) => Math.exp(l / 2));
    const z = w.reduce((s, x) => s + x, 0);
    w.forEach((x, i) => assert.ok(Math.abs(counts[i] / n - x / z) < 0.015, `id ${i}: ${counts[i] / n} vs ${x / z}`));
  });
});
