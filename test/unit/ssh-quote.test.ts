// shQuote: every argument of every remote command. Checked against a real POSIX shell: what the
// shell receives must be exactly what was quoted, and nothing in it may run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { shCommand, shEnv, shQuote } from '../../src/host/ssh/quote';

const NASTY = [
  '',
  'plain',
  'with space',
  "it's",
  "''",
  'a;b && c || d',
  '$(touch /tmp/steelscope-quote-pwned)',
  '`touch /tmp/steelscope-quote-pwned`',
  '$HOME ${HOME} $1 $@ $$',
  'line one\nline two\n',
  'tab\there',
  '唐詩 三百首 「春眠」',
  'back\\slash \\\' "double"',
  '-n',
  '*?[a]~',
  "it's; $(touch /tmp/steelscope-quote-pwned) `x`",
  "it's!",
  'a!b',
  'A=1',
  '~user',
  '#x',
  'x\\',
  '{a,b}',
  'a\u2028b',
];

test('every argument reaches the shell byte for byte, and nothing in it runs', () => {
  rmSync('/tmp/steelscope-quote-pwned', { force: true });
  for (const arg of NASTY) {
    const r = spawnSync('sh', ['-c', `printf '%s' ${shQuote(arg)}`], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, arg, JSON.stringify(arg));
  }
  assert.ok(!existsSync('/tmp/steelscope-quote-pwned'));
});

test('shCommand quotes the program and every argument; the shell sees the same argv', () => {
  const r = spawnSync('sh', ['-c', shCommand(['printf', '%s|', ...NASTY])], { encoding: 'utf8' });
  assert.equal(r.stdout, NASTY.map((a) => `${a}|`).join(''));
  for (const shell of ['bash', 'dash']) {
    const other = spawnSync(shell, ['-c', shCommand(['printf', '%s|', ...NASTY])], { encoding: 'utf8' });
    assert.equal(other.stdout, NASTY.map((a) => `${a}|`).join(''), shell);
  }
  assert.throws(() => shCommand([]), /empty/);
  assert.throws(() => shQuote('a\0b'), /NUL/);
});

test('shEnv quotes values and refuses names that are not names', () => {
  const r = spawnSync('sh', ['-c', `${shEnv({ A: '$(x) y', B_2: "q'" })} sh -c 'printf "%s|%s" "$A" "$B_2"'`], {
    encoding: 'utf8',
  });
  assert.equal(r.stdout, "$(x) y|q'");
  assert.throws(() => shEnv({ 'A;rm': 'x' }), /Not an environment variable name/);
});
