// A run on a shipped dataset (`--data default`, `poetry-sft`) resumes after the extension updated:
// dist/ moves to a new versioned folder, and resume finds the same bytes there by the dataset's name.
// Installs are simulated by copies of dist/ holding a small corpus and chat set, so each run is quick.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { sftLearningRate } from '../../src/shared/config';
import { ROOT, scratch, SMALL_SETS, TEST_ENV, trainLosses } from '../helpers';
import { TORCH_SKIP, torchFlags } from '../torch';

/** A copy of dist/ at `dir` with `poems` of the corpus as its default corpus and `chats` as poetry-sft. */
function install(dir: string, poems: number, chats: number): string {
  cpSync(join(ROOT, 'dist'), dir, {
    recursive: true,
    filter: (src) => !src.endsWith('.map') && !src.includes(join('dist', 'webview')),
  });
  const corpus = join(dir, 'corpus', 'poetry.jsonl.gz');
  const lines = readFileSync(join(ROOT, 'dist', 'sft', 'poetry-sft.jsonl'), 'utf8').split('\n');
  writeFileSync(join(dir, 'sft', 'poetry-sft.jsonl'), lines.slice(0, chats).join('\n') + '\n');
  const text = gunzipSync(readFileSync(corpus)).toString('utf8').split('\n').slice(0, poems).join('\n') + '\n';
  writeFileSync(corpus, gzipSync(text));
  return join(dir, 'cli.js');
}

function cli(at: string, args: string[]) {
  const r = spawnSync(process.execPath, [at, ...args], { env: TEST_ENV, encoding: 'utf8', timeout: 300_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const runJson = (runDir: string) => JSON.parse(readFileSync(join(runDir, 'run.json'), 'utf8'));
const SETS = [...SMALL_SETS, '--set', 'checkpoint_every=4', '--set', 'max_steps=8'];

test('--data default: resumed by an updated install (dist/ moved, same bytes); changed bytes are refused', () => {
  const dir = scratch('bundled-default');
  const v1 = install(join(dir, 'v1'), 300, 20);
  const runDir = join(dir, 'run');
  const first = cli(v1, ['train', '--data', 'default', '--run-dir', runDir, '--steps', '4', ...SETS]);
  assert.equal(first.code, 0, first.stderr);
  const recorded = runJson(runDir).data.files;
  assert.equal(recorded.length, 1);
  assert.equal(recorded[0].bundled, 'default');
  assert.equal(recorded[0].path, join(dir, 'v1', 'corpus', 'poetry.jsonl.gz'));

  // The update: the same bytes in a new folder, the old one removed.
  cpSync(join(dir, 'v1'), join(dir, 'v2'), { recursive: true });
  rmSync(join(dir, 'v1'), { recursive: true });
  const changed = install(join(dir, 'v3'), 301, 20);

  const refused = cli(changed, ['resume', runDir]);
  assert.equal(refused.code, 2, refused.stderr);
  const lines = refused.stderr.trim().split('\n');
  assert.equal(lines.length, 1, refused.stderr);
  assert.match(lines[0], /the bundled corpus changed since this run started \(sha256 [0-9a-f]{12}…/i);
  assert.match(lines[0], /resume with --data <file> pointing at the original/);
  assert.equal(runJson(runDir).status, 'finished', 'a refused resume leaves the run as it was');

  const resumed = cli(join(dir, 'v2', 'cli.js'), ['resume', runDir, '--steps', '8']);
  assert.equal(resumed.code, 0, resumed.stderr);
  const info = runJson(runDir);
  assert.equal(info.status, 'finished');
  assert.equal(info.resumes.length, 1);
  assert.equal(info.data.files[0].path, join(dir, 'v2', 'corpus', 'poetry.jsonl.gz'), 'run.json says where it is now');
  assert.deepEqual(
    [...trainLosses(runDir).keys()].sort((a, b) => a - b),
    [0, 1, 2, 3, 4, 5, 6, 7],
  );
});

test('an old run.json (no bundled name, dist/ gone) resumes when an install ships the same file', () => {
  const dir = scratch('bundled-old');
  const v1 = install(join(dir, 'v1'), 300, 20);
  const runDir = join(dir, 'run');
  const first = cli(v1, ['train', '--data', 'default', '--run-dir', runDir, '--steps', '4', ...SETS]);
  assert.equal(first.code, 0, first.stderr);
  // As written before the name was recorded; --data's word too, so only the file name says it shipped.
  const old = runJson(runDir);
  old.data = { ...old.data, input: join(dir, 'v1', 'corpus', 'poetry.jsonl.gz') };
  for (const f of old.data.files) delete f.bundled;
  writeFileSync(join(runDir, 'run.json'), JSON.stringify(old, null, 2) + '\n');
  cpSync(join(dir, 'v1'), join(dir, 'v2'), { recursive: true });
  rmSync(join(dir, 'v1'), { recursive: true });

  const resumed = cli(join(dir, 'v2', 'cli.js'), ['resume', runDir, '--steps', '6']);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.equal(runJson(runDir).data.files[0].path, join(dir, 'v2', 'corpus', 'poetry.jsonl.gz'));
});

test('resume --data <file>: the original corpus given by hand when the install ships other bytes', () => {
  const dir = scratch('bundled-given');
  const v1 = install(join(dir, 'v1'), 300, 20);
  const runDir = join(dir, 'run');
  const first = cli(v1, ['train', '--data', 'default', '--run-dir', runDir, '--steps', '4', ...SETS]);
  assert.equal(first.code, 0, first.stderr);
  const original = join(dir, 'kept.jsonl.gz');
  cpSync(join(dir, 'v1', 'corpus', 'poetry.jsonl.gz'), original);
  rmSync(join(dir, 'v1'), { recursive: true });
  const changed = install(join(dir, 'v2'), 301, 20);

  const wrong = cli(changed, ['resume', runDir, '--data', join(dir, 'v2', 'corpus', 'poetry.jsonl.gz')]);
  assert.equal(wrong.code, 2, wrong.stderr);
  assert.match(wrong.stderr, /holds no file with the sha256 of the run's poetry\.jsonl\.gz/);
  const resumed = cli(changed, ['resume', runDir, '--data', original, '--steps', '6']);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.equal(runJson(runDir).data.files[0].path, original);
});

test('--data poetry-sft: a fine-tuning run resumed by an updated install; changed bytes are refused', () => {
  const dir = scratch('bundled-sft');
  const v1 = install(join(dir, 'v1'), 300, 24);
  const base = join(dir, 'base');
  const pre = cli(v1, ['train', '--data', 'default', '--run-dir', base, '--steps', '4', ...SETS]);
  assert.equal(pre.code, 0, pre.stderr);
  const from = join(base, 'checkpoints', 'step-00000004');
  const runDir = join(dir, 'sft');
  const sftSets = ['eval_every=0', 'sample_every=0', 'checkpoint_every=2', 'max_steps=4'].flatMap((s) => ['--set', s]);
  const first = cli(v1, [
    'sft',
    '--from',
    from,
    '--data',
    'poetry-sft',
    '--run-dir',
    runDir,
    '--steps',
    '2',
    ...sftSets,
  ]);
  assert.equal(first.code, 0, first.stderr);
  const started = runJson(runDir);
  assert.equal(started.data.files[0].bundled, 'poetry-sft');
  // No --set lr=: a tenth of the base run's peak, the floor a tenth of that, as the UI's walk defaults.
  const baseLr = runJson(base).config.lr;
  assert.deepEqual([started.config.lr, started.config.min_lr], [sftLearningRate(baseLr), 3e-5]);
  assert.equal(baseLr, 3e-3);

  cpSync(join(dir, 'v1'), join(dir, 'v2'), { recursive: true });
  rmSync(join(dir, 'v1'), { recursive: true });
  const changed = install(join(dir, 'v3'), 300, 23);
  const refused = cli(changed, ['resume', runDir]);
  assert.equal(refused.code, 2, refused.stderr);
  assert.equal(refused.stderr.trim().split('\n').length, 1, refused.stderr);
  assert.match(refused.stderr, /the bundled poetry-sft set changed since this run started/i);

  const resumed = cli(join(dir, 'v2', 'cli.js'), ['resume', runDir]);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.equal(runJson(runDir).status, 'finished');
  assert.equal(runJson(runDir).data.files[0].path, join(dir, 'v2', 'sft', 'poetry-sft.jsonl'));
  assert.deepEqual(
    [...trainLosses(runDir).keys()].sort((a, b) => a - b),
    [0, 1, 2, 3],
  );
});

test(
  'torch engine: --data default resumed by an updated install; changed bytes are refused',
  { skip: TORCH_SKIP },
  () => {
    const dir = scratch('bundled-torch');
    const v1 = install(join(dir, 'v1'), 300, 20);
    const runDir = join(dir, 'run');
    const torch = torchFlags(1);
    const first = cli(v1, ['train', '--data', 'default', '--run-dir', runDir, '--steps', '4', ...SETS, ...torch]);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(runJson(runDir).data.files[0].bundled, 'default');
    cpSync(join(dir, 'v1'), join(dir, 'v2'), { recursive: true });
    rmSync(join(dir, 'v1'), { recursive: true });
    const changed = install(join(dir, 'v3'), 301, 20);

    const refused = cli(changed, ['resume', runDir, ...torch]);
    assert.equal(refused.code, 2, refused.stderr);
    assert.equal(refused.stderr.trim().split('\n').length, 1, refused.stderr);
    assert.match(refused.stderr, /the bundled corpus changed since this run started/i);

    const resumed = cli(join(dir, 'v2', 'cli.js'), ['resume', runDir, '--steps', '8', ...torch]);
    assert.equal(resumed.code, 0, resumed.stderr);
    const info = runJson(runDir);
    assert.equal(info.status, 'finished');
    assert.equal(info.engine, 'torch');
    assert.equal(info.data.files[0].path, join(dir, 'v2', 'corpus', 'poetry.jsonl.gz'));
    assert.deepEqual(
      [...trainLosses(runDir).keys()].sort((a, b) => a - b),
      [0, 1, 2, 3, 4, 5, 6, 7],
    );
  },
);
