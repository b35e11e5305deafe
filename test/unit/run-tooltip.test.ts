// A run's tooltip is Markdown built from a run folder that may be anyone's: its name, folder and
// config values (a foreign run.json can put any text where numbers belong) show as text, never as
// links, images, HTML or theme icons.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { TrainConfig } from '../../src/shared/config';
import { RUN_FORMAT, type ObservedRun } from '../../src/shared/run';
import type { RunSummary } from '../../src/host/runs/types';
import { checkpointDescription, checkpointTooltipMarkdown, runTooltipMarkdown } from '../../src/host/views/runTooltip';
import { checkpointScores, type EvalRecord } from '../../src/shared/eval';

const hostile =
  '[click](command:workbench.action.terminal.new) ![x](https://evil.example/p.png) <img src=x> $(zap) **b**';

function summary(patch: Partial<RunSummary>): RunSummary {
  return {
    key: 'k',
    hostId: 'local',
    hostLabel: 'This machine',
    dir: '/runs/a',
    name: 'a',
    status: 'finished',
    checkpoints: [],
    malformed: { metrics: 0, samples: 0, events: 0 },
    ...patch,
  };
}

/** Markdown syntax that is live: not preceded by a backslash. */
function liveSyntax(md: string): string[] {
  return [...md.matchAll(/(?<!\\)(\]\(|!\[|<img|\$\(zap|\*\*b)/g)].map((m) => m[0]);
}

test('config values, name and folder of a foreign run.json are escaped in the tooltip', () => {
  // As a foreign run.json would hold it: text where the numbers belong.
  const config: TrainConfig = JSON.parse(JSON.stringify({ n_layer: hostile, n_embd: hostile, vocab_size: hostile }));
  const md = runTooltipMarkdown(summary({ name: hostile, dir: `/runs/${hostile}`, config }));
  assert.deepEqual(liveSyntax(md), []);
  assert.ok(md.includes('\\[click\\]\\(command:workbench'), md);
});

test('an ordinary run reads as before', () => {
  const config = { n_layer: 4, n_embd: 128, vocab_size: 2048 } as TrainConfig;
  const md = runTooltipMarkdown(summary({ name: 'tiny', config, lastTokPerS: 12345.6 }));
  assert.match(md, /^\*\*tiny\*\* — finished\n\n/);
  assert.match(md, /4 layers · d 128 · vocab 2048/);
  assert.match(md, /12,346 tokens\/s/);
});

test('a PyTorch run shows its engine, device, precision, world size and GPUs', () => {
  const info: ObservedRun = {
    format: RUN_FORMAT,
    id: 'r',
    name: 'r',
    createdAt: '',
    host: 'h',
    pid: 1,
    status: 'running',
    step: 0,
    engine: 'torch',
    device: 'cuda',
    precision: 'bf16',
    world_size: 8,
    gpus: ['NVIDIA H100 80GB HBM3'],
  };
  const md = runTooltipMarkdown(summary({ name: 'big', info }));
  assert.match(md, /PyTorch · cuda · bf16 · 8 processes/);
  assert.match(md, /NVIDIA H100 80GB HBM3/);
  assert.doesNotMatch(runTooltipMarkdown(summary({ name: 'old' })), /PyTorch|processes/);
});

test("a checkpoint shows each task's score at its step (the newest evaluation), ★ best and what best is by", () => {
  const avg = (step: number, task: string, acc: number, t = 0): EvalRecord => ({
    step,
    t,
    task,
    subject: '_average',
    n: 400,
    acc,
    stderr: 0.02,
    shots: 5,
  });
  const evals: EvalRecord[] = [
    avg(1200, 'poetry-mc', 0.25),
    { ...avg(1200, 'poetry-mc', 0.9), subject: 'author' },
    avg(600, 'poetry-mc', 0.5),
    avg(1200, 'cmmlu', 0.2612),
    avg(1200, 'poetry-mc', 0.312, 1), // evaluated again: this one counts
    { step: 1200, t: 2, task: 'ppl:val.txt', subject: '_average', n: 5000, ppl: 123.456 },
  ];
  const scores = checkpointScores(evals, 1200);
  const c = { step: 1200, dir: '/runs/a/checkpoints/step-00001200', evalLoss: 5.19, best: true, complete: true };
  assert.equal(
    checkpointDescription(c, scores),
    'eval 5.1900 · cmmlu 26.1% · poetry-mc 31.2% · ppl:val.txt 123.46 · ★ best',
  );
  const md = checkpointTooltipMarkdown(c, scores, 'poetry-mc/acc');
  assert.ok(md.includes('poetry\\-mc 31\\.2% (n 400, 5\\-shot; 95%: 27.3% – 35.1%)'), md);
  assert.ok(md.includes('★ best by poetry\\-mc/acc'), md);
  assert.equal(checkpointDescription({ ...c, step: 5, best: false, evalLoss: null }, checkpointScores(evals, 5)), '');
  const hostile = checkpointTooltipMarkdown(c, [{ ...avg(1200, '[x](command:evil)', 0.3) }], undefined);
  assert.deepEqual(liveSyntax(hostile), [], 'a task name from evals.jsonl is text');
  assert.match(hostile, /★ best by eval\\_loss/);
});
