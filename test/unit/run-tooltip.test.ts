// A run's tooltip is Markdown built from a run folder that may be anyone's: its name, folder and
// config values (a foreign run.json can put any text where numbers belong) show as text, never as
// links, images, HTML or theme icons.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { TrainConfig } from '../../src/shared/config';
import { RUN_FORMAT, type ObservedRun } from '../../src/shared/run';
import type { RunSummary } from '../../src/host/runs/types';
import { runTooltipMarkdown } from '../../src/host/views/runTooltip';

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
