import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applySettings, ConfigError, parameterCount, parseSetting, PRESETS, validateConfig } from '../../src/shared/config';
import { learningRate } from '../../src/core/train/schedule';

test('every preset is a valid config', () => {
  for (const preset of Object.values(PRESETS)) validateConfig(preset);
});

test('steel-1b has the 1.12B shape of Steel-LLM', () => {
  const c = PRESETS['steel-1b'];
  assert.equal(c.n_layer, 18);
  assert.equal(c.n_embd, 1792);
  assert.equal(c.n_head, 32);
  assert.equal(c.vocab_size, 151936);
  assert.equal(c.tie_embeddings, false);
  const n = parameterCount(c);
  assert.ok(n > 1.1e9 && n < 1.14e9, `parameter count ${n}`);
});

test('base-100m is the ~100M-parameter preset scripts/gpu-check.sh trains', () => {
  const c = PRESETS['base-100m'];
  assert.equal(parameterCount(c), 98_350_848);
  assert.equal(c.n_layer, 12);
  assert.equal(c.n_embd, 768);
});

test('--set parses typed values', () => {
  assert.deepEqual(parseSetting('lr=0.001'), ['lr', 0.001]);
  assert.deepEqual(parseSetting('batch_size=4'), ['batch_size', 4]);
  assert.deepEqual(parseSetting('tie_embeddings=false'), ['tie_embeddings', false]);
  const c = applySettings(PRESETS.tiny, ['seed=7', 'seq_len=64']);
  assert.equal(c.seed, 7);
  assert.equal(c.seq_len, 64);
  assert.equal(PRESETS.tiny.seed, 1337, 'presets are not mutated');
});

test('bad settings name the key and what is allowed', () => {
  const cases: [string[], string, RegExp][] = [
    [['learning_rate=1'], 'learning_rate', /Unknown config key "learning_rate".*Allowed keys: .*\blr\b/],
    [['batch_size=2.5'], 'batch_size', /batch_size must be an integer/],
    [['lr=fast'], 'lr', /lr must be a number/],
    [['tie_embeddings=yes'], 'tie_embeddings', /true or false/],
    [['seq_len=1'], 'seq_len', />= 2/],
    [['n_head=3'], 'n_head', /divisible by n_head/],
    [['n_kv_head=3'], 'n_kv_head', /must divide n_head/],
    [['n_embd=136', 'n_head=8'], 'n_head', /must be even/],
    [['min_lr=1'], 'min_lr', /must not exceed lr/],
    [['noequals'], 'noequals', /key=value/],
  ];
  for (const [sets, key, message] of cases) {
    assert.throws(
      () => applySettings(PRESETS.tiny, sets),
      (err: unknown) => err instanceof ConfigError && err.key === key && message.test(err.message),
      `${sets.join(' ')}`,
    );
  }
});

test('schedule: linear warmup, cosine to the floor, flat after', () => {
  const c = { lr: 1e-3, min_lr: 1e-4, warmup_steps: 10, max_steps: 110 };
  assert.ok(Math.abs(learningRate(0, c) - 1e-4) < 1e-12);
  assert.ok(Math.abs(learningRate(9, c) - 1e-3) < 1e-12);
  assert.ok(Math.abs(learningRate(10, c) - 1e-3) < 1e-12);
  assert.ok(Math.abs(learningRate(60, c) - 5.5e-4) < 1e-12, 'half way is the mean of peak and floor');
  assert.ok(Math.abs(learningRate(110, c) - 1e-4) < 1e-12);
  assert.ok(Math.abs(learningRate(500, c) - 1e-4) < 1e-12);
  for (let s = 10; s < 110; s++) assert.ok(learningRate(s + 1, c) <= learningRate(s, c), `monotone after warmup at ${s}`);
});
