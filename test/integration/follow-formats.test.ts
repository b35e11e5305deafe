// `steelscope follow` on a run folder in another format (TensorBoard event files written live by
// an independent Python writer): the records arrive as the format reader reads them, and a follow
// stopped and started again with --from the offsets the client kept loses and repeats nothing.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import {
  applyFollowMessage,
  asFollowMessage,
  emptyOffsets,
  encodeFollowOffsets,
  type FollowMessage,
  type FollowOffsets,
} from '../../src/shared/follow-protocol';
import { EventFolderReader } from '../../src/shared/node/formats/tfevents';
import type { FormatBatch } from '../../src/shared/node/formats/batch';
import { fold, points, writeEvents, type TbEvent } from '../formats/fixtures';
import { CLI, scratch, TEST_ENV } from '../helpers';

const event = (step: number): TbEvent => ({
  wall_time: 1700000000 + step,
  step,
  values: [
    { tag: 'train/loss', simple_value: 3 - step / 100 },
    { tag: 'train/lr', tensor: step / 1000, dtype: 'double', packed: 'val' },
    ...(step % 5 === 0
      ? [
          { tag: 'eval/loss', simple_value: 4 - step / 50 },
          { tag: 'sample', text: `text at ${step}` },
        ]
      : []),
  ],
});

/**
 * Runs follow until `until` holds for what arrived, then stops it; returns the batches and the
 * offsets kept. `onReady` runs when the follower says it is ready (it has looked at the folder).
 */
async function follow(
  dir: string,
  from: FollowOffsets,
  until: (batches: FormatBatch[]) => boolean,
  onReady: () => void = () => {},
): Promise<{ batches: FormatBatch[]; offsets: FollowOffsets }> {
  const child = spawn(
    process.execPath,
    [CLI, 'follow', dir, '--poll-ms', '50', '--heartbeat-ms', '200', '--from', encodeFollowOffsets(from)],
    { env: TEST_ENV },
  );
  child.stderr.resume();
  const batches: FormatBatch[] = [];
  let offsets = from;
  let done!: () => void;
  const finished = new Promise<void>((resolve) => (done = resolve));
  createInterface({ input: child.stdout }).on('line', (line) => {
    const message: FollowMessage | undefined = asFollowMessage(JSON.parse(line));
    assert.ok(message, `a protocol message: ${line}`);
    offsets = applyFollowMessage(offsets, message);
    if ('ready' in message) onReady();
    if ('formats' in message) batches.push(message.formats);
    if (until(batches)) done();
  });
  const timer = setTimeout(() => done(), 30_000);
  await finished;
  clearTimeout(timer);
  child.stdin.end();
  await new Promise((resolve) => child.once('exit', resolve));
  return { batches, offsets };
}

const lastStep = (batches: FormatBatch[]) => Math.max(-1, ...batches.flatMap((b) => b.metrics.map((m) => m.step)));

test('an event-file folder followed live and resumed with --from loses and repeats nothing', async () => {
  const dir = scratch('follow-tfevents');
  const path = join(dir, 'events.out.tfevents.1700000000.host');
  writeEvents(
    path,
    Array.from({ length: 10 }, (_, i) => event(i)),
  );
  const first = await follow(dir, emptyOffsets(), (b) => lastStep(b) >= 9);
  assert.ok(first.offsets.sources?.['events.out.tfevents.1700000000.host'], 'the client keeps the source position');
  // Written while no follower runs (a dropped connection), then more while the next one follows.
  writeEvents(
    path,
    Array.from({ length: 10 }, (_, i) => event(10 + i)),
  );
  const second = follow(dir, first.offsets, (b) => lastStep(b) >= 29);
  writeEvents(
    path,
    Array.from({ length: 10 }, (_, i) => ({ ...event(20 + i), delay: 0.02 })),
  );
  const resumed = await second;

  const got = fold([...first.batches, ...resumed.batches]);
  const expected = fold([await new EventFolderReader(dir).read()]);
  assert.deepEqual(points(got), points(expected));
  assert.deepEqual(got.samples, expected.samples, 'no sample lost or repeated');
  assert.equal(got.samples.length, 6);
  assert.deepEqual(points(got)['train:train/loss'].length, 30);
});

test('a follow started before the first event file is written sends its records once it appears', async () => {
  const dir = scratch('follow-tfevents-later');
  const path = join(dir, 'events.out.tfevents.1700000000.host');
  // Written only once the follower has looked at the empty folder (it does before it says ready):
  // a folder's format is known from its first file, whenever that comes.
  const writeFirstFile = () =>
    writeEvents(
      path,
      Array.from({ length: 10 }, (_, i) => event(i)),
    );
  const { batches } = await follow(dir, emptyOffsets(), (b) => lastStep(b) >= 9, writeFirstFile);
  assert.equal(lastStep(batches), 9, 'the records of the file written after the start');
});
