// RunStore: what the views rely on — series columns built from records, a resumed run's repeated
// steps superseding the old ones, checkpoint summaries, stale runs, foreign runs, and change
// notifications batched to one per run per flush.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { PRESETS } from '../../src/shared/config';
import { checkHostMessage, DEFAULT_VIEW } from '../../src/shared/protocol';
import { DashboardModel } from '../../src/host/panels/dashboardModel';
import { RUN_FORMAT, type RunInfo } from '../../src/shared/run';
import { RunStore } from '../../src/host/runs/store';
import { appendRecord, lastValue, newSeriesTable } from '../../src/host/runs/seriesTable';
import type { RunChange, RunTarget, SeriesTable } from '../../src/host/runs/types';
import { evalAverage, scratch, storeOnlyTarget, writeTestCheckpoint } from '../helpers';

/** A target whose pids are alive exactly when listed; nothing else is used by the store. */
function fakeTarget(alive = new Set<number>()): RunTarget & { alive: Set<number> } {
  return { ...storeOnlyTarget('fake', 'Fake host', async (info) => alive.has(info.pid)), alive };
}

/** Everything driven by explicit refresh()/flush(): no watch, no poll, no timer-dependent assertions. */
function quietStore(): RunStore {
  return new RunStore({ watch: false, pollMs: 0, aliveCheckMs: 0, flushMs: 60_000 });
}

function runInfo(patch: Partial<RunInfo> = {}): RunInfo {
  return {
    format: RUN_FORMAT,
    id: 'r1',
    name: 'my run',
    createdAt: '2025-01-01T00:00:00Z',
    host: 'h',
    pid: 4242,
    status: 'running',
    step: 0,
    config: PRESETS.tiny,
    backend: { name: 'cpu', skipped: [] },
    data: { input: 'default', files: [] },
    resumes: [],
    exit: null,
    ...patch,
  };
}

const jsonl = (...records: object[]) => records.map((r) => JSON.stringify(r) + '\n').join('');
const column = (table: SeriesTable | undefined, field: string) =>
  Array.from(table?.fields.get(field)?.subarray(0, table.length) ?? []);
const steps = (table: SeriesTable | undefined) => Array.from(table?.step.subarray(0, table?.length ?? 0) ?? []);

async function settled(store: RunStore): Promise<void> {
  await store.refresh();
  await store.whenIdle();
}

test('metrics become per-kind columns; NaN and Infinity strings stay non-finite numbers', async () => {
  const dir = scratch('store');
  writeFileSync(join(dir, 'run.json'), JSON.stringify(runInfo()));
  writeFileSync(
    join(dir, 'metrics.jsonl'),
    jsonl(
      { step: 1, t: 10, kind: 'train', loss: 5.5, lr: 0.001, grad_norm: 1.5, tokens: 128, tok_per_s: 300 },
      { step: 2, t: 20, kind: 'train', loss: 'NaN', lr: 0.002, grad_norm: 'Infinity', tokens: 256, tok_per_s: 310 },
      { step: 2, t: 21, kind: 'eval', loss: 5.1 },
      {
        step: 3,
        t: 30,
        kind: 'train',
        loss: 4.5,
        lr: 0.003,
        grad_norm: '-Infinity',
        tokens: 384,
        tok_per_s: 320,
        note: 'text is not a series',
      },
    ),
  );
  const store = quietStore();
  const key = store.addRun(fakeTarget(new Set([4242])), dir);
  await store.whenIdle();
  const data = store.get(key);
  assert.ok(data);
  const train = data.tables.get('train');
  assert.deepEqual(steps(train), [1, 2, 3]);
  assert.deepEqual(column(train, 'loss'), [5.5, NaN, 4.5]);
  assert.deepEqual(column(train, 'grad_norm'), [1.5, Infinity, -Infinity]);
  assert.deepEqual(Array.from(train?.t.subarray(0, 3) ?? []), [10, 20, 30]);
  assert.ok(!train?.fields.has('note') && !train?.fields.has('kind'));
  assert.deepEqual(steps(data.tables.get('eval')), [2]);
  assert.deepEqual(column(data.tables.get('eval'), 'loss'), [5.1]);
  assert.equal(data.summary.lastStep, 3);
  assert.equal(data.summary.lastLoss, 4.5);
  assert.equal(data.summary.lastTokPerS, 320);
  assert.equal(data.summary.name, 'my run');
  assert.equal(data.summary.status, 'running');
  store.dispose();
});

/** A run folder with these records per file, read by a store; then the changes it reports from here on. */
async function watchedRun(
  files: Record<string, object[]>,
): Promise<{ dir: string; store: RunStore; key: string; changes: RunChange[] }> {
  const dir = scratch('store');
  for (const [name, records] of Object.entries(files)) writeFileSync(join(dir, name), jsonl(...records));
  const store = quietStore();
  const key = store.addRun(fakeTarget(), dir);
  await store.whenIdle();
  store.flush();
  const changes: RunChange[] = [];
  store.onDidChange((c) => changes.push(c));
  return { dir, store, key, changes };
}

test('a resumed run repeating steps supersedes them; the change names the first rewritten row', async () => {
  const { dir, store, key, changes } = await watchedRun({
    'metrics.jsonl': [1, 2, 3, 4, 5].map((step) => ({ step, t: step, kind: 'train', loss: 10 - step })),
  });
  appendFileSync(
    join(dir, 'metrics.jsonl'),
    jsonl({ step: 3, t: 30, kind: 'train', loss: 0.3 }, { step: 4, t: 40, kind: 'train', loss: 0.4 }),
  );
  await settled(store);
  store.flush();
  const train = store.get(key)?.tables.get('train');
  assert.deepEqual(steps(train), [1, 2, 3, 4]);
  assert.deepEqual(column(train, 'loss'), [9, 8, 0.3, 0.4]);
  assert.equal(store.get(key)?.summary.lastStep, 4);
  assert.equal(changes.length, 1);
  assert.equal(changes[0].tablesFrom.get('train'), 2);
  store.dispose();
});

test('columns grow past their initial capacity, and a field appearing late reads NaN before it', async () => {
  const dir = scratch('store');
  const records = Array.from({ length: 1000 }, (_, step) =>
    step < 600 ? { step, t: step, loss: step } : { step, t: step, loss: step, extra: -step },
  );
  writeFileSync(join(dir, 'metrics.jsonl'), jsonl(...records));
  const store = quietStore();
  const key = store.addRun(fakeTarget(), dir);
  await store.whenIdle();
  const train = store.get(key)?.tables.get('train');
  assert.equal(train?.length, 1000);
  assert.equal(column(train, 'loss')[999], 999);
  const extra = column(train, 'extra');
  assert.ok(Number.isNaN(extra[599]));
  assert.equal(extra[600], -600);
  store.dispose();
});

test('checkpoints: complete ones carry eval loss, best is the lowest complete one, no DONE means incomplete', async () => {
  const dir = scratch('store');
  writeFileSync(join(dir, 'run.json'), JSON.stringify(runInfo({ status: 'finished' })));
  const ckpt = (step: number, evalLoss: number | null, done: boolean) => writeTestCheckpoint(dir, step, evalLoss, done);
  ckpt(10, 3.0, true);
  ckpt(20, 2.5, true);
  ckpt(30, 1.0, false); // lower, but the write never finished
  ckpt(40, null, true);
  mkdirSync(join(dir, 'checkpoints', '.tmp-step-00000050-99'));
  const store = quietStore();
  const key = store.addRun(fakeTarget(), dir);
  await store.whenIdle();
  const summary = store.get(key)?.summary;
  assert.deepEqual(
    summary?.checkpoints.map((c) => [c.step, c.complete, c.evalLoss, c.best]),
    [
      [10, true, 3.0, false],
      [20, true, 2.5, true],
      [30, false, null, false],
      [40, true, null, false],
    ],
  );
  assert.equal(basename(summary?.checkpoints[0].dir ?? ''), 'step-00000010');
  writeFileSync(join(dir, 'checkpoints', 'step-00000030', 'DONE'), '');
  await settled(store);
  assert.equal(store.get(key)?.summary.checkpoints.find((c) => c.best)?.step, 30, 'completed later: now the best');
  store.dispose();
});

test('a run whose pid is gone while run.json says running is stale; a finished one is not', async () => {
  const dir = scratch('store');
  writeFileSync(join(dir, 'run.json'), JSON.stringify(runInfo({ status: 'running', pid: 777 })));
  const target = fakeTarget(new Set([777]));
  const store = quietStore();
  const key = store.addRun(target, dir);
  await store.whenIdle();
  assert.equal(store.get(key)?.summary.status, 'running');
  target.alive.delete(777);
  await settled(store);
  assert.equal(store.get(key)?.summary.status, 'stale');
  writeFileSync(join(dir, 'run.json'), JSON.stringify(runInfo({ status: 'finished', pid: 777 })));
  await settled(store);
  assert.equal(store.get(key)?.summary.status, 'finished');
  store.dispose();
});

test('the pid is re-checked on a timer while the run is active', async () => {
  const dir = scratch('store');
  writeFileSync(join(dir, 'run.json'), JSON.stringify(runInfo({ status: 'stopping', pid: 778 })));
  const target = fakeTarget(new Set([778]));
  const store = new RunStore({ watch: false, pollMs: 0, aliveCheckMs: 20, flushMs: 60_000 });
  const key = store.addRun(target, dir);
  await store.whenIdle();
  assert.equal(store.get(key)?.summary.status, 'stopping');
  target.alive.delete(778);
  const deadline = Date.now() + 5000;
  while (store.get(key)?.summary.status !== 'stale' && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 10));
  assert.equal(store.get(key)?.summary.status, 'stale');
  store.dispose();
});

test('a half-written or invalid run.json is ignored until it is valid', async () => {
  const dir = scratch('store');
  writeFileSync(join(dir, 'run.json'), JSON.stringify(runInfo({ name: 'first', status: 'finished' })));
  const store = quietStore();
  const key = store.addRun(fakeTarget(), dir);
  await store.whenIdle();
  writeFileSync(join(dir, 'run.json'), '{"format":"steelscope.run/1","id":"r1","na');
  await settled(store);
  assert.equal(store.get(key)?.summary.name, 'first');
  writeFileSync(join(dir, 'run.json'), JSON.stringify({ format: 'something else', id: 'x', status: 'running' }));
  await settled(store);
  assert.equal(store.get(key)?.summary.status, 'finished');
  writeFileSync(join(dir, 'run.json'), JSON.stringify(runInfo({ name: 'second', status: 'finished' })));
  await settled(store);
  assert.equal(store.get(key)?.summary.name, 'second');
  store.dispose();
});

test('a run.json with bad fields is reported on that run only: the others, and a dashboard comparing them, are whole', async () => {
  const good = scratch('store');
  const careless = scratch('store');
  const broken = scratch('store');
  writeFileSync(join(good, 'run.json'), JSON.stringify(runInfo({ id: 'good', name: 'good run' })));
  const badFields = { name: 5, createdAt: { when: 'now' }, step: '12', config: { n_layer: 'many' }, backend: [] };
  writeFileSync(join(careless, 'run.json'), JSON.stringify({ ...runInfo({ id: 'careless' }), ...badFields }));
  writeFileSync(
    join(broken, 'run.json'),
    JSON.stringify(runInfo({ id: 'broken', status: 'paused' as RunInfo['status'] })),
  );
  for (const dir of [good, careless, broken])
    writeFileSync(join(dir, 'metrics.jsonl'), jsonl({ step: 1, t: 10, kind: 'train', loss: 3 }));
  const store = quietStore();
  const keys = [good, careless, broken].map((dir) => store.addRun(fakeTarget(new Set([4242])), dir));
  await store.whenIdle();
  const [g, c, b] = keys.map((key) => store.get(key)?.summary);
  assert.equal(g?.name, 'good run');
  assert.deepEqual(g?.problems, []);
  assert.equal(c?.name, 'careless', 'a bad name is shown as the id');
  assert.equal(c?.status, 'running');
  assert.equal(c?.info?.createdAt, '', 'sorting by createdAt compares strings');
  assert.equal(c?.config, undefined, 'a bad config is left out, not passed on');
  assert.deepEqual(
    c?.problems?.map((p) => p.split(':')[1].trim().split('.')[0]),
    ['name', 'createdAt', 'step', 'config', 'backend'],
  );
  assert.equal(b?.status, 'unknown', 'a run.json that is not a run is not read...');
  assert.match(b?.problems?.[0] ?? '', /status: expected one of pending, starting/, '...and says why');
  const snapshot = new DashboardModel(store, keys, DEFAULT_VIEW).snapshot();
  const checked = checkHostMessage(JSON.parse(JSON.stringify(snapshot)));
  assert.ok(checked.ok && checked.message.type === 'snapshot', checked.ok ? '' : checked.error);
  assert.deepEqual(
    checked.message.runs.map((r) => r.series.length > 0),
    [true, true, true],
    'every compared run is drawn',
  );
  store.dispose();
});

test('a foreign run with only metrics.jsonl is observed under its folder name, status unknown', async () => {
  const dir = scratch('foreign-torch');
  writeFileSync(
    join(dir, 'metrics.jsonl'),
    jsonl({ step: 0, t: 1, loss: 7 }, { step: 1, t: 2, loss: 6, acc: 0.1 }) + 'garbage\n',
  );
  const store = quietStore();
  const key = store.addRun(fakeTarget(), dir);
  await store.whenIdle();
  const data = store.get(key);
  assert.equal(data?.summary.name, basename(dir));
  assert.equal(data?.summary.status, 'unknown');
  assert.equal(data?.summary.info, undefined);
  assert.equal(data?.summary.lastLoss, 6);
  assert.deepEqual(column(data?.tables.get('train'), 'acc'), [NaN, 0.1]);
  assert.equal(data?.tables.get('train')?.loggedNaN.get('acc')?.size ?? 0, 0, 'a field left out is not a logged NaN');
  assert.deepEqual(data?.summary.malformed, { metrics: 1, samples: 0, events: 0, system: 0, evals: 0 });
  assert.equal(key, `fake::${dir}`);
  store.dispose();
});

test('evals.jsonl is read as it grows: records in file order, a bad line counted, a truncated file read again', async () => {
  const dir = scratch('evals-run');
  const record = (step: number, subject: string, acc: number) => ({
    step,
    t: step,
    task: 'poetry-mc',
    subject,
    n: 200,
    acc,
    stderr: 0.03,
  });
  writeFileSync(join(dir, 'evals.jsonl'), jsonl(record(0, 'author', 0.25), record(0, '_average', 0.26)));
  const store = quietStore();
  const key = store.addRun(fakeTarget(), dir);
  await store.whenIdle();
  assert.deepEqual(
    store.get(key)?.evals.map((r) => [r.step, r.subject, r.acc]),
    [
      [0, 'author', 0.25],
      [0, '_average', 0.26],
    ],
  );
  store.flush();
  const changes: RunChange[] = [];
  store.onDidChange((c) => changes.push(c));
  appendFileSync(join(dir, 'evals.jsonl'), jsonl(record(100, '_average', 0.31)) + '{"step":1,"task":"x"}\n');
  await store.refresh();
  store.flush();
  assert.deepEqual(store.get(key)?.evals.at(-1), record(100, '_average', 0.31));
  assert.equal(store.get(key)?.summary.malformed.evals, 1, 'a record without t, subject or n is skipped and counted');
  assert.equal(changes.at(-1)?.evalsFrom, 2, 'only the new record is announced');
  writeFileSync(join(dir, 'evals.jsonl'), jsonl(record(5, '_average', 0.5)));
  await store.refresh();
  assert.deepEqual(
    store.get(key)?.evals.map((r) => r.step),
    [5],
    'a rewritten file replaces what was read',
  );
  store.dispose();
});

test('best_by poetry-mc/acc: ★ best moves to the checkpoint with the best accuracy once evals.jsonl says so', async () => {
  const dir = scratch('best-by-run');
  const config = { ...PRESETS.tiny, best_by: 'poetry-mc/acc', eval_tasks: [{ task: 'poetry-mc' }] };
  writeTestCheckpoint(dir, 10, 2.0, true, config);
  writeTestCheckpoint(dir, 20, 3.0, true, config);
  const store = quietStore();
  const key = store.addRun(fakeTarget(), dir);
  await store.whenIdle();
  const best = () => store.get(key)?.summary.checkpoints.find((c) => c.best)?.step;
  assert.equal(best(), undefined, 'no accuracy yet: none is best, although step 10 has the lower eval loss');
  const average = (step: number, acc: number) => evalAverage('poetry-mc', step, acc);
  appendFileSync(join(dir, 'evals.jsonl'), jsonl(average(10, 0.3), average(20, 0.4)));
  await store.refresh();
  await store.whenIdle();
  assert.equal(best(), 20);
  store.dispose();
});

const START = { step: 0, t: 0, kind: 'start', level: 'info', message: 'go' };
const sampleAt = (step: number, t = step) => ({
  step,
  t,
  prompt: '春',
  text: `${step}@${t}`,
  temperature: 1,
  top_k: 0,
  top_p: 1,
  seed: 1,
});

test('samples and events are kept in order and reported from their first new index', async () => {
  const { dir, store, key, changes } = await watchedRun({ 'samples.jsonl': [sampleAt(10)], 'events.jsonl': [START] });
  appendFileSync(join(dir, 'samples.jsonl'), jsonl(sampleAt(20), sampleAt(30)));
  appendFileSync(join(dir, 'events.jsonl'), jsonl({ step: 30, t: 3, kind: 'stop', level: 'info', message: 'bye' }));
  await settled(store);
  store.flush();
  assert.deepEqual(
    store.get(key)?.samples.map((s) => s.step),
    [10, 20, 30],
  );
  assert.deepEqual(
    store.get(key)?.events.map((e) => e.kind),
    ['start', 'stop'],
  );
  assert.equal(changes.length, 1);
  assert.equal(changes[0].samplesFrom, 1);
  assert.equal(changes[0].eventsFrom, 1);
  store.dispose();
});

test("after a resume, the first attempt's samples of later steps are dropped, whichever file is read first", async () => {
  // The first attempt sampled steps 10, 20, 30 and died after its step-20 checkpoint.
  const { dir, store, key, changes } = await watchedRun({
    'samples.jsonl': [sampleAt(10, 100), sampleAt(20, 200), sampleAt(30, 300)],
    'events.jsonl': [START],
  });
  // The resumed trainer samples step 30 again (after its resume event); the samples arrive first.
  appendFileSync(join(dir, 'samples.jsonl'), jsonl(sampleAt(30, 600)));
  await settled(store);
  appendFileSync(
    join(dir, 'events.jsonl'),
    jsonl({ step: 20, t: 500, kind: 'resume', level: 'info', message: 'Resumed from step 20' }),
  );
  await settled(store);
  store.flush();
  assert.deepEqual(
    store.get(key)?.samples.map((s) => s.text),
    ['10@100', '20@200', '30@600'],
  );
  assert.deepEqual(
    store.get(key)?.events.map((e) => e.kind),
    ['start', 'resume'],
  );
  assert.equal(
    Math.min(...changes.map((c) => c.samplesFrom ?? Infinity)),
    2,
    'the webview re-reads samples from the first dropped one',
  );
  store.dispose();
});

test('changes are batched: one notification per run per flush, with the earliest changed row', async () => {
  const a = scratch('store');
  const b = scratch('store');
  const store = quietStore();
  const target = fakeTarget();
  const keyA = store.addRun(target, a);
  const keyB = store.addRun(target, b);
  await store.whenIdle();
  store.flush();
  const changes: RunChange[] = [];
  store.onDidChange((c) => changes.push(c));
  for (let step = 0; step < 20; step++) {
    appendFileSync(join(a, 'metrics.jsonl'), jsonl({ step, t: step, loss: 1 }));
    await settled(store); // every record is read in its own batch
  }
  appendFileSync(join(b, 'metrics.jsonl'), jsonl({ step: 0, t: 0, loss: 2 }));
  await settled(store);
  assert.equal(changes.length, 0, 'nothing is delivered before the flush');
  store.flush();
  assert.equal(changes.length, 2);
  const byKey = new Map(changes.map((c) => [c.key, c]));
  assert.equal(byKey.get(keyA)?.tablesFrom.get('train'), 0);
  assert.equal(byKey.get(keyA)?.summaryChanged, true);
  assert.equal(byKey.get(keyB)?.tablesFrom.get('train'), 0);
  store.flush();
  assert.equal(changes.length, 2, 'an empty flush delivers nothing');

  assert.equal(store.removeRun(keyB), true);
  store.flush();
  assert.deepEqual([changes.at(-1)?.key, changes.at(-1)?.removed], [keyB, true]);
  assert.equal(store.get(keyB), undefined);
  store.dispose();
});

test('the flush timer delivers on its own, and the fs.watch path needs no refresh', async () => {
  const dir = scratch('store');
  const store = new RunStore({ flushMs: 30, pollMs: 0, aliveCheckMs: 0 });
  const key = store.addRun(fakeTarget(), dir);
  await store.whenIdle();
  const changes: RunChange[] = [];
  store.onDidChange((c) => changes.push(c));
  appendFileSync(join(dir, 'metrics.jsonl'), jsonl({ step: 1, t: 1, loss: 3 }));
  const deadline = Date.now() + 5000;
  while (!changes.some((c) => c.tablesFrom.has('train')) && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 10));
  assert.equal(store.get(key)?.summary.lastLoss, 3);
  store.dispose();
});

test('repeated steps (a resume) replace later rows and their logged NaNs; lastValue skips rows without the field', () => {
  const table = newSeriesTable('train');
  appendRecord(table, { step: 0, t: 1, loss: 7, acc: 0.1 });
  appendRecord(table, { step: 1, t: 2, loss: 'NaN', acc: 0.2 });
  appendRecord(table, { step: 2, t: 3, loss: 'NaN' });
  assert.deepEqual([...(table.loggedNaN.get('loss') ?? [])], [1, 2]);
  assert.equal(lastValue(table, 'acc'), 0.2, 'the newest row that logged acc');
  assert.ok(Number.isNaN(lastValue(table, 'loss') ?? 0), 'a logged NaN is the last value');
  appendRecord(table, { step: 1, t: 4, loss: 6 }); // resumed from step 1
  assert.equal(table.length, 2);
  assert.deepEqual([...(table.loggedNaN.get('loss') ?? [])], []);
  assert.equal(lastValue(table, 'loss'), 6);
  assert.equal(lastValue(table, 'acc'), 0.1);
  assert.equal(lastValue(table, 'missing'), undefined);
});
