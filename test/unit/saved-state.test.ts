// The dashboard webview's saved state, read back by a possibly newer bundle: field by field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_VIEW } from '../../src/shared/protocol';
import { readSavedState } from '../../webview/dashboard/savedState';

test('a saved state is read back whole; a field saved differently falls back alone', () => {
  const good = {
    view: DEFAULT_VIEW,
    hidden: ['train/loss'],
    samples: { run: 'k', stepIndex: 3 },
    tab: 'chat',
    keys: ['local::/r'],
    evalStep: 1200,
  };
  assert.deepEqual(readSavedState(good), good);
  assert.deepEqual(readSavedState({ ...good, evalStep: 'newest' }), { ...good, evalStep: undefined });
  const older = readSavedState({ ...good, view: { ...DEFAULT_VIEW, xAxis: 'epoch' }, tab: 'plots', samples: 'x' });
  assert.deepEqual(older, { ...good, view: null, tab: undefined, samples: { run: null, stepIndex: null } });
  assert.deepEqual(readSavedState({}), { view: null, hidden: [], samples: { run: null, stepIndex: null } });
  assert.equal(readSavedState(undefined), undefined);
  assert.equal(readSavedState('garbage'), undefined);
});
