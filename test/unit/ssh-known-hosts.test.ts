// known_hosts as OpenSSH reads and writes it, cross-checked with ssh-keygen itself: fingerprints,
// hashed names, [host]:port, markers skipped, a changed key told apart from an unknown one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  addHostKey,
  checkHostKey,
  checkHostKeyIn,
  fingerprint,
  hostEntryName,
  keyType,
  knownHostsLine,
} from '../../src/host/ssh/knownHosts';
import { scratch } from '../helpers';

const haveKeygen = spawnSync('ssh-keygen', ['-?']).error === undefined;

function newKey(dir: string, name: string, type = 'ed25519'): Buffer {
  const path = join(dir, name);
  const r = spawnSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-f', path], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return Buffer.from(readFileSync(`${path}.pub`, 'utf8').split(/\s+/)[1], 'base64');
}

test('fingerprint equals ssh-keygen -lf', { skip: !haveKeygen && 'ssh-keygen missing' }, () => {
  const dir = scratch('kh-fp');
  const blob = newKey(dir, 'k');
  const printed = spawnSync('ssh-keygen', ['-lf', join(dir, 'k.pub')], { encoding: 'utf8' }).stdout.split(' ')[1];
  assert.equal(fingerprint(blob), printed);
  assert.equal(keyType(blob), 'ssh-ed25519');
});

test('plain, pattern, [host]:port and marker lines', { skip: !haveKeygen && 'ssh-keygen missing' }, () => {
  const dir = scratch('kh-plain');
  const a = newKey(dir, 'a');
  const b = newKey(dir, 'b');
  const rsa = newKey(dir, 'r', 'rsa');
  const b64 = (k: Buffer) => k.toString('base64');
  const text = [
    '# comment',
    `@cert-authority *.example ssh-ed25519 ${b64(b)}`,
    `@revoked gpu.example ssh-ed25519 ${b64(b)}`,
    `gpu.example,10.0.0.5 ssh-ed25519 ${b64(a)}`,
    `[gpu.example]:2222 ssh-ed25519 ${b64(b)}`,
    `*.lab,!secret.lab ssh-ed25519 ${b64(a)}`,
  ].join('\n');
  assert.equal(checkHostKeyIn(text, 'gpu.example', 22, a), 'known');
  assert.equal(checkHostKeyIn(text, '10.0.0.5', 22, a), 'known');
  assert.equal(checkHostKeyIn(text, 'gpu.example', 22, b), 'revoked', 'a @revoked key is refused, not merely changed');
  assert.equal(
    checkHostKeyIn(text, 'other.example', 22, b),
    'unknown',
    '@cert-authority does not make b known, @revoked is for its hosts',
  );
  assert.equal(
    checkHostKeyIn(`${text}\n@revoked * ssh-ed25519 ${b64(a)}`, 'gpu.example', 22, a),
    'revoked',
    'revoked wins over a known line',
  );
  assert.equal(checkHostKeyIn(text, 'gpu.example', 22, rsa), 'unknown', 'another key type is not a change');
  assert.equal(checkHostKeyIn(text, 'gpu.example', 2222, b), 'known');
  assert.equal(checkHostKeyIn(text, 'gpu.example', 2222, a), 'changed');
  assert.equal(checkHostKeyIn(text, 'x.lab', 22, a), 'known');
  assert.equal(checkHostKeyIn(text, 'secret.lab', 22, a), 'unknown');
  assert.equal(checkHostKeyIn(text, 'elsewhere', 22, a), 'unknown');
  assert.equal(hostEntryName('h', 22), 'h');
  assert.equal(hostEntryName('h', 2200), '[h]:2200');
});

test(
  'hashed names: ours are found by ssh-keygen -F, and ssh-keygen -H output is read',
  { skip: !haveKeygen && 'ssh-keygen missing' },
  () => {
    const dir = scratch('kh-hashed');
    const key = newKey(dir, 'k');
    const file = join(dir, 'known_hosts');
    addHostKey('gpu.example', 2222, key, { hashed: true, file });
    assert.match(readFileSync(file, 'utf8'), /^\|1\|[^|]+\|[^ ]+ ssh-ed25519 /);
    const found = spawnSync('ssh-keygen', ['-F', '[gpu.example]:2222', '-f', file], { encoding: 'utf8' });
    assert.equal(found.status, 0, 'ssh-keygen finds our hashed line');
    assert.equal(checkHostKey('gpu.example', 2222, key, file), 'known');
    assert.equal(checkHostKey('gpu.example', 22, key, file), 'unknown');

    const plain = join(dir, 'plain_hosts');
    writeFileSync(plain, knownHostsLine('other.example', 22, key) + '\n');
    assert.equal(spawnSync('ssh-keygen', ['-H', '-f', plain]).status, 0);
    assert.match(readFileSync(plain, 'utf8'), /^\|1\|/);
    assert.equal(checkHostKey('other.example', 22, key, plain), 'known', 'ssh-keygen -H hashes are read');
  },
);

test(
  'addHostKey creates the file 0600 and never glues onto a last line without newline',
  { skip: !haveKeygen && 'ssh-keygen missing' },
  () => {
    const dir = scratch('kh-add');
    const key = newKey(dir, 'k');
    const file = join(dir, 'ssh', 'known_hosts');
    assert.equal(checkHostKey('h', 22, key, file), 'unknown', 'no file: unknown');
    addHostKey('h', 22, key, { file });
    assert.equal(spawnSync('stat', ['-c', '%a', file], { encoding: 'utf8' }).stdout.trim(), '600');
    writeFileSync(file, readFileSync(file, 'utf8') + '# no newline');
    addHostKey('h2', 2200, key, { file });
    const lines = readFileSync(file, 'utf8').split('\n');
    assert.equal(lines[2], `[h2]:2200 ssh-ed25519 ${key.toString('base64')}`);
    assert.equal(checkHostKey('h2', 2200, key, file), 'known');
  },
);
