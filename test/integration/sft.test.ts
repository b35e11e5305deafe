// `steelscope sft` through the CLI: a bad chat line is one stderr line naming its line number
// (exit 2, no run folder left); a fine-tuning run from a base checkpoint records that checkpoint
// and the ChatML template, and serve then says it chats in ChatML (the base says plain); a
// fine-tuning run stopped half-way resumes exactly, with its eval tasks at step 0 and each checkpoint.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { selectBackend } from '../../src/core/backend';
import { SteelLM } from '../../src/core/model';
import { Rng } from '../../src/core/rng';
import { tokenStream } from '../../src/core/sample/generate';
import { chatSpecials, renderChatML } from '../../src/core/serve/chat';
import { BpeTokenizer } from '../../src/core/tokenizer';
import { loadCheckpoint } from '../../src/core/train/checkpoint';
import { assertSftResumedExactly, poetrySubset, runCli, scratch, sftStoppedAndResumed } from '../helpers';

const TINY = [
  '--set',
  'n_layer=1',
  '--set',
  'n_embd=32',
  '--set',
  'n_head=2',
  '--set',
  'n_kv_head=2',
  '--set',
  'intermediate_size=64',
  '--set',
  'vocab_size=512',
];

test('sft: bad lines refused by number; a fine-tuned run records its base and chats in ChatML', async () => {
  const dir = scratch('sft');
  const base = join(dir, 'base');
  const trained = runCli(['train', '--data', poetrySubset(dir, 200), '--run-dir', base, '--steps', '1', ...TINY]);
  assert.equal(trained.code, 0, trained.stderr);
  const checkpoint = join(base, 'checkpoints', 'step-00000001');

  const bad = join(dir, 'bad.jsonl');
  const good = JSON.stringify({
    messages: [
      { role: 'user', content: '春' },
      { role: 'assistant', content: '秋' },
    ],
  });
  writeFileSync(bad, `${good}\n${good}\n{"messages":[{"role":"user"}]}\n`);
  const refused = runCli(['sft', '--from', checkpoint, '--data', bad, '--run-dir', join(dir, 'refused')]);
  assert.equal(refused.code, 2, refused.stderr);
  assert.equal(refused.stderr.trim().split('\n').length, 1);
  assert.match(refused.stderr, /bad\.jsonl line 3: .*content/);
  assert.ok(!existsSync(join(dir, 'refused')), 'no run folder left behind');

  const ft = join(dir, 'ft');
  const fast = [
    '--set',
    'lr=3e-3',
    '--set',
    'min_lr=3e-4',
    '--set',
    'warmup_steps=5',
    '--set',
    'sample_every=0',
    '--set',
    'eval_every=0',
  ];
  const tuned = runCli([
    'sft',
    '--from',
    checkpoint,
    '--data',
    'poetry-sft',
    '--run-dir',
    ft,
    '--steps',
    '80',
    ...fast,
  ]);
  assert.equal(tuned.code, 0, tuned.stderr);
  const run = JSON.parse(readFileSync(join(ft, 'run.json'), 'utf8'));
  assert.equal(run.template, 'chatml');
  assert.equal(run.base_checkpoint.step, 1);
  assert.equal(run.base_checkpoint.path, checkpoint);
  assert.equal(run.status, 'finished');

  const ready = (dirOrRun: string) => JSON.parse(runCli(['serve', dirOrRun]).stdout.split('\n')[0]);
  const tunedCheckpoint = join(ft, 'checkpoints', 'step-00000080');
  assert.equal(ready(tunedCheckpoint).template, 'chatml');
  assert.equal(ready(checkpoint).template, 'plain');

  // Asked in ChatML, the fine-tuned model ends its reply with <|im_end|> (greedy, so deterministic).
  await selectBackend('cpu');
  const ckpt = loadCheckpoint(tunedCheckpoint);
  const tokenizer = BpeTokenizer.fromJSON(ckpt.tokenizerJson);
  const model = SteelLM.fromWeights(ckpt.manifest.config, new Map([...ckpt.weights].map(([k, t]) => [k, t.data])));
  const prompt = renderChatML(tokenizer, [{ role: 'user', content: '寫一首題為《春》的詩' }]);
  const reply = [...tokenStream(model, prompt, { maxTokens: 100, temperature: 0, topK: 0, topP: 1, rng: new Rng(1) })];
  model.dispose();
  assert.ok(
    reply.includes(chatSpecials(tokenizer).imEnd),
    `reply without <|im_end|>: ${JSON.stringify(tokenizer.decode(reply))}`,
  );
});

test('sft stopped at step 4 of 8 and resumed: the uninterrupted losses, evals at 0/4/8 once, best_by pruning', async () => {
  const dir = scratch('sft-resume');
  const base = join(dir, 'base');
  const trained = runCli(['train', '--data', poetrySubset(dir, 200), '--run-dir', base, '--steps', '1', ...TINY]);
  assert.equal(trained.code, 0, trained.stderr);
  const run = sftStoppedAndResumed(dir, join(base, 'checkpoints', 'step-00000001'));
  // The tolerance of the pretraining resume test (resume.test.ts).
  await assertSftResumedExactly(run, 1e-5);
});
