// A TensorBoard run of several event files followed over the REAL test sshd (`steelscope follow` on
// "the host", this machine): one older file replaced as a sync does, then a middle one truncated and
// written again in two goes. The editor's run ends with exactly the points a fresh read of the folder
// gives (nothing lost, nothing repeated), never read again from the start (each change arrives as a
// cut of the rows from its step on), and rows logged afterwards still arrive. And a CSV log with a
// stray quote: one malformed row, said once, the rows after it charted.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { isDeepStrictEqual } from 'node:util';
import { appendFileSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RunStore } from '../../src/host/runs/store';
import type { RunKey } from '../../src/host/runs/types';
import type { RunSource } from '../../src/host/runs/runTracker';
import type { RemoteTarget } from '../../src/host/ssh/remoteTarget';
import { EventFolderReader } from '../../src/shared/node/formats/tfevents';
import { MAX_ROW_LINES } from '../../src/shared/formats/csv';
import { fold, points, writeEvents, type Folded, type TbEvent } from '../formats/fixtures';
import { scratch, until } from '../helpers';
import { sshdSkipReason, sshdTarget, TestSshd } from '../sshd';

const skip = sshdSkipReason();

const lossAt = (step: number, loss: number, text?: string): TbEvent => ({
  wall_time: 1700000000 + step,
  step,
  values: [{ tag: 'loss', simple_value: loss }, ...(text ? [{ tag: 'generation', text }] : [])],
});

const steps = (from: number, to: number, loss: number): TbEvent[] =>
  Array.from({ length: to - from + 1 }, (_, i) =>
    lossAt(from + i, loss + i / 100, i === 1 ? `at ${from + i}` : undefined),
  );

/** Replaces a file as a sync tool does: written aside, then renamed over it (a new inode). */
function replaceEvents(path: string, events: TbEvent[]): void {
  const aside = `${path}.tmp`;
  writeFileSync(aside, '');
  writeEvents(aside, events);
  renameSync(aside, path);
}

/** What a run shows: points per series (emptied series left out), samples by step and text. */
function shown(folded: Folded): { points: ReturnType<typeof points>; samples: string[] } {
  const series = Object.entries(points(folded)).filter(([, pairs]) => pairs.length > 0);
  return { points: Object.fromEntries(series), samples: folded.samples.map((s) => `${s.step} ${s.text}`).sort() };
}

describe('foreign-format runs followed over SSH (real sshd): a file starting over, a stray quote', { skip }, () => {
  let sshd: TestSshd;
  let root: string;
  let target: RemoteTarget;

  before(async () => {
    sshd = await TestSshd.start();
    root = scratch('ssh-formats');
    target = sshdTarget(sshd, root, { alias: 'test-sshd', follower: { initialBackoffMs: 100, maxBackoffMs: 1000 } });
  });

  after(async () => {
    target?.disconnect();
    await sshd?.stop();
  });

  test('an older file replaced, a middle one truncated and rewritten: the run ends as a fresh read', async () => {
    const dir = join(root, 'runs', 'tb-three');
    mkdirSync(dir, { recursive: true });
    const files = ['1.a', '2.b', '3.c'].map((name) => join(dir, `events.out.tfevents.${name}`));
    writeEvents(files[0], steps(1, 10, 5));
    writeEvents(files[1], steps(11, 20, 4));
    writeEvents(files[2], steps(21, 30, 3));
    const store = new RunStore({ flushMs: 20, pollMs: 250, aliveCheckMs: 300 });
    try {
      const follower = target.createFollower(dir);
      const seen = { resets: 0, cuts: 0 };
      const key = store.addRemoteRun(target, dir, spied(follower, seen));
      const arrives = (what: string) => waitForFreshRead(store, key, dir, what);

      await arrives('the three files');
      const resetsBefore = seen.resets;
      replaceEvents(files[0], steps(1, 8, 9)); // other values, fewer steps
      await arrives('the replaced older file, the later files kept');
      writeFileSync(files[1], '');
      writeEvents(files[1], steps(11, 14, 8));
      await arrives('the truncated middle file, written again in part');
      writeEvents(files[1], steps(15, 22, 7)); // now past the newest file's first step (21)
      await arrives('the middle file written to its end');
      writeEvents(files[2], steps(31, 33, 2)); // the newest file goes on, behind everything before it
      const final = await arrives('rows logged afterwards');
      assert.deepEqual(
        final.points['train:loss'].map(([step]) => step),
        [
          ...Array.from({ length: 8 }, (_, i) => 1 + i),
          ...Array.from({ length: 10 }, (_, i) => 11 + i),
          ...Array.from({ length: 13 }, (_, i) => 21 + i),
        ],
      );
      assert.equal(seen.resets, resetsBefore, 'the run was never read again from the start');
      assert.ok(seen.cuts >= 3, `the changed files' rows were cut (${seen.cuts} cuts)`);
    } finally {
      store.dispose();
    }
  });

  test('a CSV log with a stray quote: the editor counts one malformed row, says why once, and charts the rest, live too', async () => {
    const dir = join(root, 'runs', 'csv-stray');
    mkdirSync(dir, { recursive: true });
    const path = join(dir, 'metrics.csv');
    const rows = (from: number, to: number) =>
      Array.from({ length: to - from + 1 }, (_, i) => `${from + i},${(from + i) / 1000}\n`).join('');
    writeFileSync(path, 'step,loss\n' + rows(1, 3) + '4,"oops\n' + rows(5, 4 + MAX_ROW_LINES));
    const store = new RunStore({ flushMs: 20, pollMs: 250, aliveCheckMs: 300 });
    try {
      const key = store.addRemoteRun(target, dir, target.createFollower(dir));
      const steps = () => {
        store.flush();
        const table = store.get(key)?.tables.get('train');
        return table ? Array.from(table.step.subarray(0, table.length)) : [];
      };
      const all = (last: number) => [1, 2, 3, ...Array.from({ length: last - 4 }, (_, i) => 5 + i)];
      await until('the rows around the stray quote', () => isDeepStrictEqual(steps(), all(4 + MAX_ROW_LINES)));
      appendFileSync(path, rows(5 + MAX_ROW_LINES, 6 + MAX_ROW_LINES));
      await until('rows appended live', () => isDeepStrictEqual(steps(), all(6 + MAX_ROW_LINES)));
      const summary = store.get(key)?.summary;
      assert.equal(summary?.malformed.metrics, 1);
      assert.equal(summary?.problems?.length, 1);
      assert.match(summary?.problems?.[0] ?? '', /opens a quoted cell that is not closed within 100 lines/);
    } finally {
      store.dispose();
    }
  });
});

/** The follower, counting the batches that drop everything (reset) and those that cut a file's rows. */
function spied(follower: RunSource, seen: { resets: number; cuts: number }): RunSource {
  return {
    start: (sink) =>
      follower.start({
        batch: (batch) => {
          if (batch.reset) seen.resets++;
          if (batch.file === 'metrics' && batch.cut) seen.cuts++;
          sink.batch(batch);
        },
        malformed: (file, total) => sink.malformed(file, total),
        runInfo: (observed) => sink.runInfo(observed),
        checkpoints: (list) => sink.checkpoints(list),
      }),
    dispose: () => follower.dispose(),
    whenIdle: () => follower.whenIdle?.() ?? Promise.resolve(),
  };
}

/** Waits until the editor's run shows what a fresh read of the folder shows; returns that. */
async function waitForFreshRead(
  store: RunStore,
  key: RunKey,
  dir: string,
  what: string,
): Promise<ReturnType<typeof shown>> {
  const expected = shown(fold([await new EventFolderReader(dir).read()]));
  let last: ReturnType<typeof shown> | undefined;
  try {
    return await until(
      what,
      () => {
        store.flush();
        const data = store.get(key);
        if (!data) return undefined;
        last = shown({ tables: data.tables, samples: [...data.samples], malformed: 0 });
        return isDeepStrictEqual(last, expected) && last;
      },
      60_000,
      25,
    );
  } catch (err) {
    assert.deepEqual(last, expected, `${what}: ${String(err)}`); // shows the difference
    throw err;
  }
}
