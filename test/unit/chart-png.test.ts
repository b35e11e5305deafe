// Save Chart as PNG, host side (src/host/panels/chartPng.ts): only a real PNG is written, under a
// file name made from the runs and the chart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pngBytes, pngFileName } from '../../src/host/panels/chartPng';
import { checkWebviewMessage } from '../../src/shared/protocol';

// A 1x1 PNG (the smallest valid one).
const PIXEL = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==';

test('a PNG data URL gives its bytes; anything else is refused with a reason', () => {
  const ok = pngBytes(`data:image/png;base64,${PIXEL}`);
  assert.ok(ok.ok);
  assert.deepEqual([...ok.bytes.subarray(1, 4)], [0x50, 0x4e, 0x47]);
  const jpeg = pngBytes('data:image/jpeg;base64,/9j/4AAQ');
  assert.deepEqual(jpeg, { ok: false, error: 'the chart did not arrive as a PNG data URL' });
  assert.deepEqual(pngBytes('data:image/png;base64,PHN2Zz4='), { ok: false, error: 'the chart picture is not a PNG' });
  const garbled = pngBytes('data:image/png;base64,@@@');
  assert.deepEqual(garbled, { ok: false, error: 'the chart picture is not valid base64' });
});

test('the savePng message is checked: a PNG data URL of a named chart', () => {
  const good = checkWebviewMessage({ type: 'savePng', chart: 'loss', dataUrl: `data:image/png;base64,${PIXEL}` });
  assert.equal(good.ok, true);
  const wrong = checkWebviewMessage({ type: 'savePng', chart: 'loss', dataUrl: 'javascript:alert(1)' });
  assert.ok(!wrong.ok && /savePng\.dataUrl/.test(wrong.error), JSON.stringify(wrong));
});

test('the file name offered names the runs and the chart, and is a safe file name', () => {
  assert.equal(pngFileName(['tiny-default'], 'loss'), 'tiny-default-loss.png');
  assert.equal(pngFileName(['a', 'b', 'c', 'd'], 'grad_norm'), 'a-b-and-2-more-grad_norm.png');
  assert.equal(pngFileName(['../../etc'], 'eval/acc'), 'etc-eval_acc.png');
  assert.equal(pngFileName(['詩 run'], 'lr'), '詩_run-lr.png');
  assert.equal(pngFileName([], ''), 'chart.png');
});
