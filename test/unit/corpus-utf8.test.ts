// The corpus reader refuses bytes that are not UTF-8 at their exact offset, also when the bad
// sequence or a character before it straddles the 4 MiB read chunks, and never mistakes a
// genuine U+FFFD in the text for an error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { firstInvalidUtf8, readDocuments, resolveCorpus } from '../../src/core/data/corpus';
import { scratch } from '../helpers';

const CHUNK = 4 * 1024 * 1024;

test('firstInvalidUtf8 finds the first bad sequence and skips genuine U+FFFD', () => {
  assert.equal(firstInvalidUtf8(Buffer.from('春天 \ufffd ok')), -1);
  assert.equal(firstInvalidUtf8(Buffer.concat([Buffer.from('a\ufffdb'), Buffer.from([0xc3, 0x28])])), 5);
  assert.equal(
    firstInvalidUtf8(Buffer.concat([Buffer.from('\ufeffab'), Buffer.from([0xff])])),
    5,
    'a BOM counts its 3 bytes',
  );
  assert.equal(firstInvalidUtf8(Buffer.from([0xe6, 0x98])), 0, 'a truncated character at the end');
});

function readAll(path: string): string[] {
  return [...readDocuments(resolveCorpus(path))];
}

test('offsets stay exact across read chunks', () => {
  const dir = scratch('corpus-utf8');
  // 3-byte characters from offset 2: one of them straddles the chunk boundary.
  const head = Buffer.from('xy' + '春'.repeat(Math.ceil(CHUNK / 3) + 2));
  assert.ok(head.length > CHUNK && (CHUNK - 2) % 3 !== 0, 'a character straddles the boundary');
  const valid = join(dir, 'valid.txt');
  writeFileSync(valid, head);
  assert.equal(readAll(valid)[0].length, head.toString('utf8').length, 'the straddling character is decoded whole');

  const bad = join(dir, 'bad.txt');
  writeFileSync(bad, Buffer.concat([head, Buffer.from([0x80]), Buffer.from('tail')]));
  assert.throws(
    () => readAll(bad),
    new RegExp(`bad\\.txt is not UTF-8 text: an invalid byte sequence at byte offset ${head.length}\\b`),
  );

  const truncated = join(dir, 'truncated.txt');
  writeFileSync(truncated, Buffer.concat([head, Buffer.from([0xe6, 0x98])]));
  assert.throws(() => readAll(truncated), new RegExp(`at byte offset ${head.length}\\b`));

  const nul = join(dir, 'nul.txt');
  writeFileSync(nul, Buffer.concat([head, Buffer.from('ab\0')]));
  assert.throws(() => readAll(nul), new RegExp(`a NUL byte at byte offset ${head.length + 2}\\b`));
});
