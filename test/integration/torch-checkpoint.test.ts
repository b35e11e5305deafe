// Checkpoints cross engines: a PyTorch engine checkpoint is sampled and served by the TypeScript
// CLI; a TensorFlow.js checkpoint resumes on torch and a torch checkpoint on TensorFlow.js, and the
// loss continues where the other engine would have taken it (no jump above 1e-3 relative), even
// when the run's shards were lost meanwhile (rebuilt from the corpus before torch starts). Torch
// checkpoints are pruned by the rule the TypeScript engine uses (the supervisor applies it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ServePool } from '../../src/host/chat/serveClient';
import { listCheckpointFolders } from '../../src/shared/node/checkpoints';
import { checkpointDirName } from '../../src/shared/run';
import { parseServeMessage, type ServeMessage } from '../../src/shared/serve-protocol';
import { CLI, poetrySubset, readEvents, runCli, scratch, SMALL_SETS, TEST_ENV, trainLosses } from '../helpers';
import { torchFlags, torchPython, TORCH_SKIP } from '../torch';

const STEPS = 20;

/** Train losses of steps from..to-1 of `resumed` against `reference`; returns the largest relative difference. */
function continuation(reference: Map<number, number>, resumed: Map<number, number>, from: number, to: number): number {
  let worst = 0;
  for (let step = from; step < to; step++) {
    const expected = reference.get(step);
    const got = resumed.get(step);
    assert.ok(expected !== undefined && got !== undefined, `step ${step}: ${got} vs ${expected}`);
    const rel = Math.abs(got - expected) / Math.abs(expected);
    assert.ok(rel <= 1e-3, `step ${step}: ${got} after the switch vs ${expected} (relative ${rel.toExponential(2)})`);
    worst = Math.max(worst, rel);
  }
  return worst;
}

function serveOnce(target: string, params: object): Promise<ServeMessage[]> {
  const child = spawn(process.execPath, [CLI, 'serve', target], { env: TEST_ENV });
  const messages: ServeMessage[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => (child.kill('SIGKILL'), reject(new Error(`serve: no answer; ${JSON.stringify(messages)}`))),
      60_000,
    );
    child.stderr.resume();
    createInterface({ input: child.stdout }).on('line', (line) => {
      const message = parseServeMessage(line);
      if (!message) return;
      messages.push(message);
      if ('ready' in message) child.stdin.write(JSON.stringify({ id: 1, method: 'generate', params }) + '\n');
      if ('done' in message || 'error' in message) {
        clearTimeout(timer);
        child.stdin.end();
        child.kill();
        resolve(messages);
      }
    });
  });
}

/** A new run of `steps` steps on torch (1 process) over 300 poems; returns its folder. */
function trainOnTorch(name: string, steps: number): string {
  const dir = scratch(name);
  const run = join(dir, 'run');
  const args = ['--data', poetrySubset(dir, 300), '--run-dir', run, '--steps', String(steps)];
  const r = runCli(['train', ...args, ...SMALL_SETS, ...torchFlags(1)]);
  assert.equal(r.code, 0, r.stderr);
  return run;
}

test(
  'a torch checkpoint samples with `steelscope sample`, serves, and shows in `steelscope info`',
  { skip: TORCH_SKIP },
  async () => {
    const run = trainOnTorch('torch-ckpt', 10);
    const sample = runCli(['sample', run, '--prompt', '春', '--max-tokens', '8', '--seed', '3']);
    assert.equal(sample.code, 0, sample.stderr);
    assert.match(sample.stdout, /春/);
    const info = runCli(['info', join(run, 'checkpoints', 'step-00000010')]);
    assert.equal(info.code, 0, info.stderr);
    assert.match(
      info.stdout,
      /files: weights\.json, weights\.bin, optimizer\.json, optimizer\.bin, tokenizer\.json, DONE/,
    );
    const messages = await serveOnce(run, { prompt: '春', max_tokens: 6, temperature: 0 });
    const ready = messages.find((m) => 'ready' in m);
    assert.ok(ready && 'step' in ready && ready.step === 10, JSON.stringify(messages[0]));
    const done = messages.find((m) => 'done' in m);
    assert.ok(done && 'completion_tokens' in done && done.completion_tokens >= 1, JSON.stringify(messages));
    const samples = readFileSync(join(run, 'samples.jsonl'), 'utf8').trim().split('\n');
    assert.ok(samples.length >= 3, 'the engine samples the fixed prompts at step 0');

    // The dashboard's chat talks to checkpoints through the host's serve pool: the same
    // answer, streamed token by token, from the torch checkpoint.
    const pool = new ServePool({ nodePath: () => process.execPath, cliPath: CLI, env: TEST_ENV });
    try {
      const tokens: string[] = [];
      const checkpoint = join(run, 'checkpoints', 'step-00000010');
      const chat = pool.generate(checkpoint, { prompt: '春', max_tokens: 6, temperature: 0 }, (t) => tokens.push(t));
      const answer = await chat.done;
      assert.ok(answer.completion_tokens >= 1 && tokens.length >= 1, JSON.stringify(answer));
      assert.equal(tokens.join(''), answer.text, 'the streamed pieces add up to the answer');
      assert.equal(answer.text, done && 'text' in done ? done.text : undefined, 'greedy: the same text as serve gave');
    } finally {
      pool.dispose();
    }
  },
);

test(
  'a TF.js checkpoint resumes on torch, and a torch checkpoint on TF.js: the loss continues within 1e-3',
  { skip: TORCH_SKIP },
  (t) => {
    const dir = scratch('torch-switch');
    const data = poetrySubset(dir, 400);
    const common = ['train', '--data', data, '--steps', String(STEPS), ...SMALL_SETS];
    const tfjsRun = join(dir, 'tfjs');
    assert.equal(runCli([...common, '--run-dir', tfjsRun]).code, 0);
    const tfjsLosses = trainLosses(tfjsRun);
    rmSync(join(tfjsRun, 'data', 'train.bin')); // the resume re-tokenizes a lost shard before torch starts
    const onTorch = runCli(
      [
        'resume',
        tfjsRun,
        '--engine',
        'torch',
        '--checkpoint',
        join(tfjsRun, 'checkpoints', 'step-00000010'),
        '--steps',
        String(STEPS),
        '--python',
        torchPython(),
      ],
      300_000,
    );
    assert.equal(onTorch.code, 0, onTorch.stderr);
    const toTorch = continuation(tfjsLosses, trainLosses(tfjsRun), 10, STEPS);
    assert.ok(readEvents(tfjsRun).some((e) => e.kind === 'resume' && /torch/.test(e.message)));

    const torchRun = join(dir, 'torch');
    assert.equal(runCli([...common, '--run-dir', torchRun, ...torchFlags(1)]).code, 0);
    const torchLosses = trainLosses(torchRun);
    const onTfjs = runCli([
      'resume',
      torchRun,
      '--engine',
      'tfjs',
      '--checkpoint',
      join(torchRun, 'checkpoints', 'step-00000010'),
      '--steps',
      String(STEPS),
    ]);
    assert.equal(onTfjs.code, 0, onTfjs.stderr);
    const toTfjs = continuation(torchLosses, trainLosses(torchRun), 10, STEPS);
    const info = JSON.parse(readFileSync(join(torchRun, 'run.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(info.engine, 'tfjs');
    t.diagnostic(
      `largest relative difference after the switch: TF.js -> torch ${toTorch.toExponential(2)}, torch -> TF.js ${toTfjs.toExponential(2)}`,
    );
  },
);

test(
  'torch checkpoints are pruned by the shared rule: the newest keep_checkpoints and the best (lowest eval loss)',
  { skip: TORCH_SKIP },
  () => {
    const run = trainOnTorch('torch-prune', 20);
    const step = (n: number) => join(run, 'checkpoints', checkpointDirName(n));
    const steps = () => listCheckpointFolders(run).map((f) => f.step);
    assert.deepEqual(steps(), [10, 20]);
    // Training lowers the eval loss, so the newest would be best: make step 10 the best, and let the
    // checkpoint the run resumes from keep only 1 (the manifest is not hashed; its data files are).
    const editManifest = (n: number, edit: (m: Record<string, unknown>) => void) => {
      const path = join(step(n), 'manifest.json');
      const manifest = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
      edit(manifest);
      writeFileSync(path, JSON.stringify(manifest));
    };
    editManifest(10, (m) => (m.eval_loss = 0.5));
    editManifest(20, (m) => ((m.config as Record<string, unknown>).keep_checkpoints = 1));
    const staleTemp = join(run, 'checkpoints', '.tmp-step-00000099-1');
    mkdirSync(staleTemp);

    const resumed = runCli(['resume', run, '--checkpoint', step(20), '--steps', '40', ...torchFlags(1)], 300_000);
    assert.equal(resumed.code, 0, resumed.stderr);
    // Saved 30 then 40; each save prunes to the newest 1 plus the best: 20 went at 30, 30 at 40.
    assert.deepEqual(steps(), [10, 40]);
    assert.match(resumed.stdout, /checkpoints pruned \(keep_checkpoints=1, and the best\): 20/);
    assert.ok(!existsSync(staleTemp), 'a killed writer’s temp folder is removed once the engine has exited');
  },
);
