// Input errors as a careless or hostile user makes them: each is one line on stderr saying what is
// wrong and what to do, exit code 2, no stack trace, and no run folder left behind. Data that is
// not UTF-8 text is refused with its path and the byte offset of the first bad sequence.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, readFileSync, readdirSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { poetrySubset, runCli, scratch, SMALL_SETS } from '../helpers';

function expectInputError(args: string[], message: RegExp): void {
  const r = runCli(args);
  assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line on stderr, got:\n${r.stderr}`);
  assert.match(lines[0], message);
  assert.doesNotMatch(r.stderr, /    at |TypeError|ENOTDIR: /, 'no stack trace, no raw system error');
}

test('train: impossible input leaves no run folder behind', () => {
  const dir = scratch('cli-errors-train');
  const data = poetrySubset(dir, 300);
  const runDir = join(dir, 'run');
  const whitespace = join(dir, 'blank.txt');
  writeFileSync(whitespace, '   \n\n\t\n\u3000\n');
  const cases: [string[], RegExp][] = [
    // Only the tokenized data shows that 20k tokens cannot fill one block of a million.
    [
      ['train', '--data', data, '--run-dir', runDir, '--steps', '2', '--set', 'seq_len=1048576'],
      /too few for one block.*smaller seq_len/,
    ],
    [['train', '--data', whitespace, '--run-dir', runDir, '--steps', '2'], /blank\.txt contains no text/],
  ];
  for (const [args, message] of cases) {
    expectInputError(args, message);
    assert.ok(!existsSync(runDir), `${args.join(' ')} left ${runDir} behind`);
  }
  // An empty folder given as --run-dir stays, and stays empty.
  mkdirSync(runDir);
  expectInputError(
    ['train', '--data', data, '--run-dir', runDir, '--steps', '2', '--set', 'seq_len=1048576'],
    /too few/,
  );
  assert.deepEqual(readdirSync(runDir), []);
});

test('train: a --run-dir that is a file, or lies under one', () => {
  const dir = scratch('cli-errors-rundir');
  const file = join(dir, 'notes.txt');
  writeFileSync(file, 'mine');
  expectInputError(
    ['train', '--data', 'default', '--run-dir', file, '--steps', '2'],
    /notes\.txt is a file, not a folder/,
  );
  expectInputError(
    ['train', '--data', 'default', '--run-dir', join(file, 'run'), '--steps', '2'],
    /cannot be used \(ENOTDIR\)/,
  );
  assert.equal(readFileSync(file, 'utf8'), 'mine');
});

test('resume: a folder that is not a run, and a run.json without data', () => {
  const dir = scratch('cli-errors-resume');
  mkdirSync(join(dir, 'empty'));
  expectInputError(['resume', join(dir, 'empty')], /empty is not a steelscope run folder: it has no run\.json/);
  writeFileSync(join(dir, 'empty', 'run.json'), '{"format": ');
  expectInputError(['resume', join(dir, 'empty')], /run\.json is not valid JSON/);

  const runDir = join(dir, 'run');
  assert.equal(
    runCli(['train', '--data', poetrySubset(dir, 300), '--run-dir', runDir, '--steps', '2', ...SMALL_SETS]).code,
    0,
  );
  const copy = join(dir, 'no-data');
  cpSync(runDir, copy, { recursive: true });
  const info = JSON.parse(readFileSync(join(copy, 'run.json'), 'utf8')) as Record<string, unknown>;
  delete info.data;
  writeFileSync(join(copy, 'run.json'), JSON.stringify(info));
  expectInputError(['resume', copy, '--steps', '4'], /run\.json is not a usable steelscope\.run\/1 file \(.*data/);
});

test('text data that is not UTF-8 is refused with its path and the offset of the first bad byte', () => {
  const dir = scratch('cli-errors-utf8');
  const runDir = join(dir, 'run');
  const latin1 = join(dir, 'latin1.txt');
  writeFileSync(
    latin1,
    Buffer.concat([Buffer.from('春眠不覺曉\n\ncaf'), Buffer.from([0xe9]), Buffer.from(' au lait\n')]),
  );
  const binary = join(dir, 'program.txt');
  writeFileSync(binary, Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0x02, 0x01, 0x01, 0x00, 0xff, 0xfe]));
  const utf16 = join(dir, 'utf16.jsonl');
  writeFileSync(utf16, Buffer.from('\ufeff{"text":"春"}\n', 'utf16le'));
  const gz = join(dir, 'poems.txt.gz');
  writeFileSync(gz, gzipSync(Buffer.concat([Buffer.from('好詩\n'), Buffer.from([0xc3, 0x28])])));
  const cases: [string, RegExp][] = [
    [latin1, /latin1\.txt is not UTF-8 text: an invalid byte sequence at byte offset 20\b/],
    [binary, /program\.txt is not UTF-8 text: a NUL byte at byte offset 7\b/],
    [utf16, /utf16\.jsonl is not UTF-8 text: an invalid byte sequence at byte offset 0\b/],
    [gz, /poems\.txt\.gz is not UTF-8 text: an invalid byte sequence at byte offset 7 of its decompressed data/],
  ];
  for (const [data, message] of cases) {
    expectInputError(['train', '--data', data, '--run-dir', runDir, '--steps', '2'], message);
    assert.ok(!existsSync(runDir));
  }
});
