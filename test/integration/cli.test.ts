// The CLI as a user meets it: a real process, real files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { poetrySubset, readEvents, readMetrics, readSamples, runCli, scratch, SMALL_SETS } from '../helpers';

test('bad arguments exit with code 2, name the problem, and write nothing', () => {
  const dir = scratch('cli-bad');
  const runDir = join(dir, 'run');
  const cases: [string[], RegExp][] = [
    [
      ['train', '--data', 'default', '--run-dir', runDir, '--set', 'learning_rate=1'],
      /Unknown config key "learning_rate"/,
    ],
    [['train', '--data', 'default', '--run-dir', runDir, '--set', 'batch_size=two'], /batch_size must be an integer/],
    [['train', '--data', 'default', '--run-dir', runDir, '--set', 'n_head=3'], /n_head/],
    [['train', '--preset', 'huge', '--data', 'default', '--run-dir', runDir], /Unknown preset "huge"/],
    [['train', '--data', join(dir, 'nowhere.txt'), '--run-dir', runDir], /nowhere\.txt/],
    [['train', '--data', 'default', '--run-dir', runDir, '--steps', '0'], /--steps must be a positive integer/],
    [['train', '--data', 'default', '--run-dir', runDir, '--bogus'], /Unknown option --bogus/],
    [['frobnicate'], /Unknown command "frobnicate"/],
  ];
  for (const [args, message] of cases) {
    const r = runCli(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.doesNotMatch(r.stderr, /    at /, 'no stack trace for a usage error');
    assert.ok(!existsSync(runDir), `${args.join(' ')} wrote ${runDir}`);
  }
});

test('info prints the shape and the closed-form parameter count', () => {
  const r = runCli(['info', 'steel-1b']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /layers 18, hidden 1792, heads 32/);
  assert.match(r.stdout, /parameters 1,1\d\d,\d{3},\d{3} \(1\.1\dB\)/);
});

test('a short run writes the whole run directory, and sample/info read its checkpoint', () => {
  const dir = scratch('cli-run');
  const data = poetrySubset(dir, 400);
  const runDir = join(dir, 'run');
  const r = runCli(['train', '--data', data, '--run-dir', runDir, '--steps', '20', ...SMALL_SETS]);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.match(r.stdout, /backend: using wasm/);

  const info = JSON.parse(readFileSync(join(runDir, 'run.json'), 'utf8'));
  assert.equal(info.format, 'steelscope.run/1');
  assert.equal(info.status, 'finished');
  assert.equal(info.backend.name, 'wasm');
  assert.equal(info.data.files[0].path, data);
  assert.match(info.data.files[0].sha256, /^[0-9a-f]{64}$/);

  const train = readMetrics(runDir).filter((m) => m.kind === 'train');
  assert.deepEqual(
    train.map((m) => m.step),
    [...Array(20).keys()],
  );
  for (const m of train) {
    for (const key of ['loss', 'lr', 'grad_norm', 'tokens', 'tok_per_s'])
      assert.equal(typeof m[key], 'number', `${key} at step ${m.step}`);
  }
  assert.ok(Math.abs((train[0].loss as number) - Math.log(320)) < 0.3, `initial loss ${train[0].loss} vs ln(320)`);
  const evals = readMetrics(runDir).filter((m) => m.kind === 'eval');
  assert.deepEqual(
    evals.map((m) => m.step),
    [0, 5, 10, 15, 20],
  );

  const samples = readSamples(runDir);
  assert.deepEqual([...new Set(samples.map((s) => s.step))], [0, 10, 20]);
  const kinds = readEvents(runDir).map((e) => e.kind);
  assert.deepEqual(
    kinds.filter((k) => k !== 'checkpoint'),
    ['start', 'finish'],
  );
  assert.deepEqual(readdirSync(join(runDir, 'checkpoints')).sort(), ['step-00000010', 'step-00000020']);
  assert.ok(existsSync(join(runDir, 'tokenizer.json')));

  const s1 = runCli(['sample', runDir, '--prompt', '春', '--max-tokens', '12', '--seed', '3']);
  const s2 = runCli([
    'sample',
    join(runDir, 'checkpoints', 'step-00000020'),
    '--prompt',
    '春',
    '--max-tokens',
    '12',
    '--seed',
    '3',
  ]);
  assert.equal(s1.code, 0, s1.stderr);
  assert.equal(s1.stdout, s2.stdout, 'same seed, same checkpoint: same text');
  assert.ok(s1.stdout.startsWith('春'));
  const i = runCli(['info', runDir]);
  assert.equal(i.code, 0, i.stderr);
  assert.match(i.stdout, /step 20, tokens 2,560/);
});

test('a run folder that already holds a run is refused', () => {
  const dir = scratch('cli-twice');
  const data = poetrySubset(dir, 200);
  const runDir = join(dir, 'run');
  assert.equal(runCli(['train', '--data', data, '--run-dir', runDir, '--steps', '2', ...SMALL_SETS]).code, 0);
  const again = runCli(['train', '--data', data, '--run-dir', runDir, '--steps', '2', ...SMALL_SETS]);
  assert.equal(again.code, 2);
  assert.match(again.stderr, /already holds a run\. Resume it with `steelscope resume/);
});
