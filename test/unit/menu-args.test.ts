// Command arguments from menus and executeCommand: checked, never trusted. A command handed
// something else acts as if run from the palette (it asks), instead of reading fields that are not there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkpointArg, hostIdArg, keysFromArgs, runKeyArg } from '../../src/host/commands/menuArgs';

const run = (key: string) => ({ kind: 'run', key });
const checkpoint = {
  kind: 'checkpoint',
  key: 'local::/r/a',
  checkpoint: { step: 40, dir: '/r/a/checkpoints/step-00000040', best: true },
};

test('the selection wins over the clicked item; keys of any run item, once each', () => {
  assert.deepEqual(keysFromArgs(run('a'), [run('b'), checkpoint, run('b'), { kind: 'samples', key: 'c' }]), [
    'b',
    'local::/r/a',
    'c',
  ]);
  assert.deepEqual(keysFromArgs(run('a'), []), ['a'], 'an empty selection falls back to the clicked item');
  assert.deepEqual(keysFromArgs(run('a'), undefined), ['a']);
  assert.deepEqual(keysFromArgs(undefined, undefined), []);
});

test('anything that is not a run item gives no key: the command then asks', () => {
  const junk = [
    { kind: 'host', hostId: 'local' },
    { kind: 'run' },
    { kind: 'run', key: 7 },
    { key: 'x' },
    'run',
    null,
    3,
    [run('a')],
  ];
  for (const arg of junk) assert.deepEqual(keysFromArgs(arg, undefined), [], JSON.stringify(arg));
  assert.deepEqual(keysFromArgs(undefined, junk), []);
  assert.equal(runKeyArg(checkpoint), undefined, 'a checkpoint is not a run item');
  assert.equal(runKeyArg(run('a')), 'a');
});

test('a checkpoint item needs its run key, a whole step and a folder', () => {
  assert.equal(checkpointArg(checkpoint)?.checkpoint.dir, '/r/a/checkpoints/step-00000040');
  assert.equal(checkpointArg({ ...checkpoint, checkpoint: { step: 40 } }), undefined);
  assert.equal(checkpointArg({ ...checkpoint, checkpoint: { step: -1, dir: '/x' } }), undefined);
  assert.equal(checkpointArg({ ...checkpoint, checkpoint: { step: 1.5, dir: '/x' } }), undefined);
  assert.equal(checkpointArg({ ...checkpoint, kind: 'run' }), undefined);
  assert.equal(checkpointArg(undefined), undefined);
});

test('a host item gives its host id; a run item gives none', () => {
  assert.equal(hostIdArg({ kind: 'host', hostId: 'ssh:gpu', label: 'gpu' }), 'ssh:gpu');
  assert.equal(hostIdArg({ kind: 'run', key: 'k', hostId: 'ssh:gpu' }), undefined);
  assert.equal(hostIdArg({ kind: 'host', hostId: 3 }), undefined);
});
