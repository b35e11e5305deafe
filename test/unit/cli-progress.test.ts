// What `steelscope train` shows in a terminal (src/cli/progress, plot, summary): a bar that
// redraws itself on a TTY, plain periodic lines in a log, and at the end the loss curve, the
// final losses, the newest samples and how to open the run in VS Code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StepProgress } from '../../src/core/train/trainer';
import { brailleChart } from '../../src/cli/plot';
import { progressDisplay, type Terminal } from '../../src/cli/progress';
import { runSummary } from '../../src/cli/summary';
import { scratch } from '../helpers';

function terminal(isTTY: boolean, columns = 100): Terminal & { text: () => string } {
  const chunks: string[] = [];
  return { isTTY, columns, write: (t: string) => chunks.push(t), text: () => chunks.join('') };
}

const step = (s: number, target = 1200): StepProgress => ({
  step: s,
  targetStep: target,
  startStep: 0,
  loss: 8 - s / 300,
  lr: 3e-3,
  gradNorm: 0.5,
  tokPerS: 5000,
  stepSeconds: 0.2,
});

test('in a log (not a TTY) a run prints about 40 plain progress lines, the last step included, and every log line', () => {
  const term = terminal(false);
  const clock = { t: 0 };
  const display = progressDisplay(term, () => clock.t);
  for (let s = 0; s < 1200; s++) {
    clock.t += 200;
    display.progress(step(s));
    if (s === 599) display.log('step 600: eval loss 6.0000');
  }
  display.end();
  const lines = term.text().split('\n').filter(Boolean);
  assert.ok(!term.text().includes('\r'), 'no carriage returns in a log');
  const progress = lines.filter((l) => l.startsWith('step ') && l.includes('tok/s'));
  assert.equal(progress.length, 41);
  assert.match(
    progress[0],
    /^step 1\/1200 \(0%\) │ loss 8\.0000 │ 5,000 tok\/s │ eta 4m00s │ lr 3\.00e-3 │ grad_norm 0\.500$/,
  );
  assert.match(progress[20], /^step 601\/1200 \(50%\) │ loss 6\.0\d+ │ 5,000 tok\/s │ eta 2m00s/);
  assert.match(progress.at(-1) ?? '', /^step 1200\/1200 \(100%\) │ .* │ done │/);
  assert.ok(lines.includes('step 600: eval loss 6.0000'));
});

test('on a TTY one line redraws in place, log lines go above it, and it fits the terminal', () => {
  const term = terminal(true, 90);
  const clock = { t: 0 };
  const display = progressDisplay(term, () => clock.t);
  for (let s = 0; s < 100; s++) {
    clock.t += 200;
    display.progress(step(s, 100));
    if (s === 49) display.log('step 50: checkpoint runs/x/checkpoints/step-00000050');
  }
  display.end();
  const out = term.text();
  const rows = out.split('\n');
  // Only the log line and the final bar end with a newline: the bar itself is redrawn with \r.
  assert.equal(rows.length, 3);
  assert.match(rows[0], /\r\x1b\[Kstep 50: checkpoint runs\/x\/checkpoints\/step-00000050$/);
  const bars = out
    .split('\r\x1b[K')
    .map((b) => b.replace(/\n$/, ''))
    .filter((b) => b.startsWith('['));
  assert.ok(bars.length >= 99);
  for (const bar of bars) assert.ok([...bar].length <= 89, `${bar} is wider than the terminal`);
  assert.match(bars[49], /^\[█{15}\s{15}\] 50\/100 │ loss 7\.8\d+ │ 5,000 tok\/s │ eta 10s$/);
  assert.match(rows[2] === '' ? rows[1] : rows[2], /\[█{30}\] 100\/100 │ .* │ done$/);
});

test('the loss curve goes from the top left to the bottom right with no gap, eval marks on it', () => {
  const train = Array.from({ length: 1200 }, (_, i) => [i, 8 - 5 * (i / 1199)] as const);
  const lines = brailleChart(train, {
    width: 60,
    height: 8,
    marks: [
      [0, 8],
      [1199, 3],
    ],
  });
  assert.equal(lines.length, 10);
  assert.match(lines[0], /^8\.00 ┤●/);
  assert.match(lines[7], /^3\.00 ┤ *[⠀-⣿]*●$/);
  const body = lines.slice(0, 8).map((l) => [...l.slice(l.indexOf('┤') + 1).padEnd(60)]);
  for (let c = 0; c < 60; c++)
    assert.ok(
      body.some((row) => row[c] !== ' '),
      `column ${c} is empty`,
    );
  assert.match(lines[9], /^ +0 +1199$/);
  assert.deepEqual(brailleChart([[0, NaN]], { width: 10, height: 4 }), []);
});

test('the summary: curve, final losses (superseded records ignored), the last samples and the next step', () => {
  const dir = scratch('summary');
  const runDir = join(dir, 'runs', 'tiny-default');
  mkdirSync(runDir, { recursive: true });
  const train = Array.from({ length: 100 }, (_, s) => ({ step: s, t: s, kind: 'train', loss: 5 - s / 100 }));
  // A resume re-ran steps 90..99 with other losses: those records supersede the first attempt's.
  const again = train.slice(90).map((r) => ({ ...r, loss: 1 }));
  const evals = [0, 50, 100].map((s) => ({ step: s, t: s, kind: 'eval', loss: s === 100 ? 'NaN' : 4 }));
  evals.push({ step: 100, t: 101, kind: 'eval', loss: 2.5 });
  writeFileSync(
    join(runDir, 'metrics.jsonl'),
    [...train, ...evals, ...again].map((r) => JSON.stringify(r) + '\n').join(''),
  );
  const sample = (s: number, prompt: string, text: string) => ({
    step: s,
    t: s,
    prompt,
    text,
    temperature: 1,
    top_k: 0,
    top_p: 1,
    seed: 1,
  });
  const samples = [sample(50, '春', '舊'), sample(100, '春', '風\n花'), sample(100, '秋夜\n', '月')];
  writeFileSync(join(runDir, 'samples.jsonl'), samples.map((r) => JSON.stringify(r) + '\n').join(''));

  const lines = runSummary(runDir, { columns: 80, cwd: dir });
  const text = lines.join('\n');
  assert.match(text, /loss over 100 steps/);
  assert.ok(
    lines.some((l) => l.includes('┤⠉') || l.includes('┤●')),
    'the chart starts at the top left',
  );
  // Steps 80..89 of the first attempt (4.20..4.11) and 90..99 of the resumed one (1).
  assert.match(text, /final: train loss 2\.5775 \(mean of the last 20 steps\)/);
  assert.match(text, /eval loss 2\.5000 at step 100/);
  assert.match(text, /samples at step 100:\n  春 → 風 \/ 花\n  秋夜 → 月/);
  assert.doesNotMatch(text, /舊/);
  assert.match(text, /code \.  +# then Steelscope \(activity bar\) › Runs › tiny-default › Open Dashboard/);

  const elsewhere = runSummary(runDir, { columns: 80, cwd: join(dir, 'runs') }).join('\n');
  assert.match(elsewhere, new RegExp(`Open Run Folder… → ${runDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
});
