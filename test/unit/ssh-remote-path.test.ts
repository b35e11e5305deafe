// A path on an SSH host "relative to the home folder" (the data picker's words) is made absolute
// against the home folder, not against the folder the trainer later runs in (the runs folder).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { underHome } from '../../src/host/ssh/remoteHost';

test('underHome: relative paths, ~ and ~/x are in the home folder', () => {
  assert.equal(underHome('data/poems.txt', '/home/me'), '/home/me/data/poems.txt');
  assert.equal(underHome('~/data/poems.txt', '/home/me'), '/home/me/data/poems.txt');
  assert.equal(underHome('~', '/home/me'), '/home/me');
  assert.equal(underHome('./x.jsonl', '/home/me'), '/home/me/x.jsonl');
});
