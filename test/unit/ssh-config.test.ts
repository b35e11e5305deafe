// ~/.ssh/config as ssh reads it: patterns, negation, first value wins, IdentityFile tokens,
// ProxyJump, Include, Match skipped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveSpec } from '../../src/host/ssh/hosts';
import { hostMatches, hostsFromConfig, parseJump, resolveHost } from '../../src/host/ssh/sshConfig';

const ctx = { home: '/home/me', localUser: 'me', readFile: () => undefined, glob: (p: string) => [p] };

const CONFIG = `
# comment
Host gpu gpu-2
  HostName 10.0.0.5
  User trainer
  Port 2222
  IdentityFile ~/.ssh/id_%h_%r
  ProxyJump bastion

Host bastion
  HostName bastion.example.com
  User jump

Host *.lab !secret.lab
  User labuser
  IdentityFile "~/.ssh/lab key"

Match host gpu
  User ignored-by-match

Host *
  User default-user
  Port 22
  IdentityFile ~/.ssh/id_ed25519
  ServerAliveInterval=30
`;

test('hostsFromConfig lists concrete aliases only', () => {
  assert.deepEqual(hostsFromConfig(CONFIG, ctx), ['gpu', 'gpu-2', 'bastion']);
});

test('pattern matching: *, ?, negation, case-insensitive', () => {
  assert.ok(hostMatches(['*.lab'], 'a.lab'));
  assert.ok(!hostMatches(['*.lab', '!secret.lab'], 'secret.lab'));
  assert.ok(hostMatches(['gpu?'], 'GPU1'));
  assert.ok(!hostMatches(['gpu?'], 'gpu12'));
  assert.ok(!hostMatches(['gpu?'], 'gpu'), "? is exactly one character (ssh-config's glob lets it match none)");
  assert.ok(!hostMatches(['!x'], 'y'), 'a negation alone matches nothing');
});

test('the first value wins; IdentityFile accumulates with ~ and %h/%r expanded', () => {
  const gpu = resolveHost('gpu', CONFIG, ctx);
  assert.equal(gpu.hostName, '10.0.0.5');
  assert.equal(gpu.user, 'trainer');
  assert.equal(gpu.port, 2222);
  assert.deepEqual(gpu.identityFiles, ['/home/me/.ssh/id_10.0.0.5_trainer', '/home/me/.ssh/id_ed25519']);
  assert.deepEqual(gpu.proxyJump, [{ host: 'bastion', user: undefined, port: undefined }]);
  const lab = resolveHost('x.lab', CONFIG, ctx);
  assert.equal(lab.user, 'labuser');
  assert.deepEqual(lab.identityFiles, ['/home/me/.ssh/lab key', '/home/me/.ssh/id_ed25519']);
  assert.equal(resolveHost('secret.lab', CONFIG, ctx).user, 'default-user');
  const unknown = resolveHost('elsewhere', '', ctx);
  assert.deepEqual([unknown.hostName, unknown.user, unknown.port, unknown.proxyJump], ['elsewhere', 'me', 22, []]);
});

test('ProxyJump forms and none', () => {
  assert.deepEqual(parseJump('u@h.example:2200'), { host: 'h.example', user: 'u', port: 2200 });
  assert.deepEqual(parseJump('ssh://[::1]:22'), { host: '::1', user: undefined, port: 22 });
  assert.deepEqual(resolveHost('a', 'Host a\n ProxyJump none\n ProxyJump b', ctx).proxyJump, []);
  assert.equal(resolveHost('a', 'Host a\n ProxyJump j1,j2', ctx).proxyJump.length, 2);
  assert.throws(() => resolveHost('a', 'Host a\n Port 99999', ctx), /not a port/);
});

test('Include is expanded in place, relative to ~/.ssh, globs included, inside the block it appears in', () => {
  const files: Record<string, string> = {
    '/home/me/.ssh/config.d/a.conf': 'Host inc\n  HostName inc.example\n',
    '/home/me/.ssh/config.d/b.conf': 'User from-include\n',
  };
  const withFiles = {
    ...ctx,
    readFile: (p: string) => files[p],
    glob: (p: string) => (p.endsWith('*.conf') ? Object.keys(files).sort() : [p]),
  };
  const text = 'Include config.d/*.conf\nHost other\n  Include config.d/b.conf\n';
  assert.deepEqual(hostsFromConfig(text, withFiles), ['inc', 'other']);
  assert.equal(resolveHost('inc', text, withFiles).hostName, 'inc.example');
  assert.equal(
    resolveHost('inc', text, withFiles).user,
    'from-include',
    'each included file starts in the context of its Include line (here: all hosts)',
  );
  assert.equal(resolveHost('other', text, withFiles).user, 'from-include');
});

test('a config ssh-config cannot parse is one clear error, not a crash of the host list', () => {
  assert.throws(() => hostsFromConfig('Host "unterminated\n', ctx), /not readable as an ssh config/);
});

test('a host spec is an alias of the config, or user@host[:port] over it', () => {
  const config = 'Host gpu\n  HostName 10.0.0.5\n  User trainer\n  Port 2222\n';
  const alias = resolveSpec('gpu', config);
  assert.deepEqual([alias.alias, alias.hostName, alias.user, alias.port], ['gpu', '10.0.0.5', 'trainer', 2222]);
  const typed = resolveSpec('me@gpu:2200', config);
  assert.deepEqual([typed.alias, typed.hostName, typed.user, typed.port], ['me@gpu:2200', '10.0.0.5', 'me', 2200]);
});

test("StrictHostKeyChecking: ask by default, ssh's spellings, a bad value refused", () => {
  assert.equal(resolveHost('a', '', ctx).strictHostKeyChecking, 'ask');
  const of = (v: string) => resolveHost('a', `Host a\n StrictHostKeyChecking ${v}`, ctx).strictHostKeyChecking;
  assert.deepEqual(['yes', 'no', 'off', 'accept-new', 'ask', 'YES'].map(of), [
    'yes',
    'no',
    'no',
    'accept-new',
    'ask',
    'yes',
  ]);
  assert.equal(resolveHost('a', 'Host *\n StrictHostKeyChecking=yes', ctx).strictHostKeyChecking, 'yes');
  assert.throws(() => of('maybe'), /StrictHostKeyChecking maybe of host a/);
});
