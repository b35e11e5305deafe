import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseAlertRules, RunAlerts, shouldNotify, STALE_FACTOR, type AlertRule } from '../../src/host/alerts/alerts';

const steps = (n: number) => Array.from({ length: n }, (_, i) => i);

test('a rule fires once when its series crosses it, not on every record, and re-arms when back', () => {
  const rule: AlertRule = { kind: 'train', field: 'grad_norm', op: 'above', value: 10, scale: 'absolute' };
  const run = new RunAlerts('r', [rule]);
  const values = [1, 2, 11, 12, 15, 3, 4, 20, 25];
  const fired = run.onValues('train', 'grad_norm', values, steps(values.length));
  assert.equal(fired.length, 2, JSON.stringify(fired));
  assert.match(fired[0].message, /step 2: grad_norm = 11 crossed grad_norm > 10/);
  assert.match(fired[1].message, /step 7/);
  assert.deepEqual(run.onValues('train', 'loss', [100], [9]), [], 'another series');
  assert.deepEqual(run.onValues('train', 'grad_norm', [NaN, 30], [9, 10]), [], 'still above: no second alert');
});

test('tok/s below half its median: the median of the values seen so far', () => {
  const run = new RunAlerts('r', [{ kind: 'train', field: 'tok_per_s', op: 'below', value: 0.5, scale: 'median' }]);
  const values = [1000, 1010, 990, 1005, 600, 450, 400, 1000, 300];
  const fired = run.onValues('train', 'tok_per_s', values, steps(values.length));
  assert.deepEqual(
    fired.map((a) => a.message.match(/step (\d+)/)?.[1]),
    ['5', '8'],
  );
});

test('finish, failure, nan and spike events; each said once', () => {
  const run = new RunAlerts('r');
  assert.deepEqual(run.onStatus('running'), []);
  const events = [
    { kind: 'start', step: 0, message: 'go' },
    { kind: 'nan', step: 5, message: 'loss is NaN' },
  ];
  assert.deepEqual(
    run.onEvents(events).map((a) => [a.kind, a.problem]),
    [['nan', true]],
  );
  assert.deepEqual(run.onEvents(events), [], 'seen already');
  assert.deepEqual(
    run.onEvents([...events, { kind: 'spike', step: 9, message: 'up' }]).map((a) => a.kind),
    ['spike'],
  );
  const finished = run.onStatus('finished');
  assert.deepEqual(
    finished.map((a) => [a.kind, a.problem]),
    [['finished', false]],
  );
  assert.deepEqual(run.onStatus('finished'), []);
  assert.deepEqual(new RunAlerts('old').onStatus('finished'), [], 'a run already over when first seen says nothing');
  const failing = new RunAlerts('f');
  failing.onStatus('running');
  assert.deepEqual(
    failing.onStatus('failed').map((a) => a.kind),
    ['failed'],
  );
});

test('stale: no record for STALE_FACTOR x the usual interval, said once per silence', () => {
  const run = new RunAlerts('r');
  run.onStatus('running');
  run.onRecordTimes([0, 1000, 2000, 3000]);
  assert.deepEqual(run.checkStale(3000 + 1000 * STALE_FACTOR - 1), []);
  assert.equal(run.checkStale(3000 + 1000 * STALE_FACTOR).length, 1);
  assert.deepEqual(run.checkStale(100_000), [], 'once');
  run.onRecordTimes([100_000]);
  assert.equal(run.checkStale(100_000 + 1000 * STALE_FACTOR).length, 1, 'again after records came back');
});

test('a Slurm requeue (running, stopping, pending, starting, running) says nothing, and a stopping run is not stale', () => {
  const run = new RunAlerts('r');
  run.onStatus('running');
  run.onRecordTimes([0, 1000, 2000, 3000]);
  for (const status of ['stopping', 'pending', 'starting', 'running', 'stopping'])
    assert.deepEqual(run.onStatus(status), [], status);
  assert.deepEqual(run.checkStale(3000 + 1000 * STALE_FACTOR * 5), [], 'stopping: no records due');
  assert.deepEqual(run.onStatus('stopped'), [], 'a stop is no news');
  // Requeued or resumed: starting again a minute after the last record is no silence of this stretch.
  run.onStatus('pending');
  run.onStatus('starting');
  assert.deepEqual(run.checkStale(60_000), [], 'starting again: no records of its own yet');
  run.onRecordTimes([61_000, 62_000, 63_000]);
  assert.equal(run.checkStale(63_000 + 1000 * STALE_FACTOR).length, 1, 'silent after records of its own');
  const failed = new RunAlerts('f');
  failed.onStatus('stopping');
  assert.deepEqual(
    failed.onStatus('failed').map((a) => a.kind),
    ['failed'],
    'a job that died while stopping is',
  );
});

test('notify levels; rules are schema-checked', () => {
  const problem = { kind: 'nan' as const, problem: true, message: '' };
  const news = { kind: 'finished' as const, problem: false, message: '' };
  assert.deepEqual(
    [
      shouldNotify('all', news),
      shouldNotify('problems', news),
      shouldNotify('problems', problem),
      shouldNotify('none', problem),
    ],
    [true, false, true, false],
  );
  assert.ok(parseAlertRules([{ kind: 'train', field: 'grad_norm', op: 'above', value: 10, scale: 'absolute' }]).ok);
  assert.ok(parseAlertRules(undefined).ok);
  const bad = parseAlertRules([{ kind: 'train', field: 'grad_norm', op: 'over', value: 10, scale: 'absolute' }]);
  assert.ok(!bad.ok && /op/.test(bad.error), JSON.stringify(bad));
});
