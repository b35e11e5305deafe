import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  applySettings,
  ConfigError,
  parameterCount,
  parseLearningRate,
  parseSetting,
  PRESETS,
  sftLearningRate,
  sftLearningRateSettings,
  sftSettings,
  validateConfig,
} from '../../src/shared/config';

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

test('every preset has the parameter count its shape gives, written out by hand', () => {
  // d = hidden, kv = kv heads * head size, ff = SwiGLU width, V = vocabulary; per block:
  // 2 norms (2d) + q (d*d + d) + k, v (2 * (d*kv + kv)) + o (d*d) + SwiGLU (3*d*ff).
  const count = (V: number, L: number, d: number, kv: number, ff: number, tied: boolean) =>
    V * d + L * (2 * d + d * d + d + 2 * (d * kv + kv) + d * d + 3 * d * ff) + d + (tied ? 0 : d * V);
  const expected: Record<string, number> = {
    tiny: 1_067_648,
    small: 6_527_232,
    'base-100m': 98_350_848,
    'steel-1b': 1_122_729_216,
  };
  assert.equal(count(2048, 4, 128, 128, 352, true), expected.tiny);
  assert.equal(count(8192, 6, 256, 128, 704, true), expected.small);
  assert.equal(count(8192, 12, 768, 768, 2304, true), expected['base-100m']);
  assert.equal(count(151_936, 18, 1792, 1792, 3584, false), expected['steel-1b']);
  assert.deepEqual(Object.fromEntries(Object.entries(PRESETS).map(([name, c]) => [name, parameterCount(c)])), expected);
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

test('eval_tasks and best_by: --set forms, and a best_by naming no listed task is one line naming the key', () => {
  const names = applySettings(PRESETS.tiny, ['eval_tasks=poetry-mc,ppl:held.txt', 'best_by=poetry-mc/acc']);
  assert.deepEqual(names.eval_tasks, [{ task: 'poetry-mc' }, { task: 'ppl:held.txt' }]);
  const json = applySettings(PRESETS.tiny, [
    'eval_tasks=[{"task":"poetry-mc","shots":1,"format":"cloze"}]',
    'best_by=poetry-mc:cloze/acc_norm',
  ]);
  assert.deepEqual(json.eval_tasks, [{ task: 'poetry-mc', shots: 1, format: 'cloze' }]);
  assert.equal(PRESETS.tiny.best_by, 'eval_loss');
  assert.throws(() => applySettings(PRESETS.tiny, ['best_by=poetry-mc/acc']), {
    name: 'ConfigError',
    message: /best_by names task poetry-mc, which is not in eval_tasks \(none\)/,
  });
  assert.throws(() => applySettings(PRESETS.tiny, ['best_by=loss']), { message: /best_by must be "eval_loss"/ });
  assert.throws(() => applySettings(PRESETS.tiny, ['eval_tasks=[{"task":"poetry-mc","shots":-1}]']), {
    message: /^eval_tasks must be a list of eval tasks/,
  });
  assert.throws(() => applySettings(PRESETS.tiny, ['eval_tasks=poetry-mc,poetry-mc']), {
    message: /lists poetry-mc twice/,
  });
  // A config saved before these keys existed is still valid.
  const { eval_tasks: _t, best_by: _b, ...old } = PRESETS.tiny;
  assert.doesNotThrow(() => validateConfig(old));
});

test('fine-tuning learning rate: a tenth of the base run peak by default, tiny when the base says nothing', () => {
  assert.equal(sftLearningRate(PRESETS.tiny.lr), 3e-4);
  assert.equal(sftLearningRate(PRESETS['steel-1b'].lr), 3e-5);
  assert.equal(sftLearningRate(undefined), 3e-4);
  assert.equal(sftLearningRate(NaN), 3e-4);
  assert.equal(sftLearningRate(0), 3e-4);
});

test('sft --set list: lr and min_lr a tenth of the base peak by default; a given lr gets its floor; given keys win', () => {
  const at = (sets: string[]) => applySettings(PRESETS.tiny, sftSettings(PRESETS.tiny.lr, sets));
  assert.deepEqual([at([]).lr, at([]).min_lr], [3e-4, 3e-5]);
  assert.deepEqual([at(['lr=1e-3']).lr, at(['lr=1e-3']).min_lr], [1e-3, 1e-4]);
  assert.deepEqual([at(['lr=1e-3', 'min_lr=0']).lr, at(['lr=1e-3', 'min_lr=0']).min_lr], [1e-3, 0]);
  assert.deepEqual([at(['min_lr=1e-6']).lr, at(['min_lr=1e-6']).min_lr], [3e-4, 1e-6]);
  // The UI's walk passes sftLearningRateSettings: the same config as the CLI's default at that rate.
  assert.deepEqual(at(sftLearningRateSettings(3e-4)), at([]));
});

test('a typed learning rate: positive finite numbers up to --set lr= its bound, else one line saying what to enter', () => {
  assert.equal(parseLearningRate('3e-4'), 3e-4);
  assert.equal(parseLearningRate(' 0.001 '), 0.001);
  assert.equal(parseLearningRate('10'), 10);
  for (const bad of ['', '  ', '0', '-1e-4', 'abc', 'NaN', 'Infinity', '1e400', '11', '3e-4x']) {
    const message = parseLearningRate(bad);
    assert.equal(typeof message, 'string', `"${bad}" is refused`);
    assert.match(
      String(message),
      /^Enter a positive number up to 10 \(e\.g\. 3e-4\), the peak learning rate; got ".*"\.$/,
    );
  }
});

test('the settings of a fine-tune at a given peak apply to every preset (min_lr a tenth, never above lr)', () => {
  for (const preset of Object.values(PRESETS)) {
    for (const lr of [1e-6, sftLearningRate(preset.lr), 0.5]) {
      const config = applySettings(preset, sftLearningRateSettings(lr));
      assert.equal(config.lr, lr);
      assert.ok(config.min_lr <= config.lr && config.min_lr > 0, `min_lr ${config.min_lr} for lr ${lr}`);
    }
  }
});
