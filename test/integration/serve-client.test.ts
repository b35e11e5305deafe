// The extension's serve client against real `node dist/cli.js serve` processes on checkpoints of a
// short real training run: streaming, reuse, cancel, two checkpoints side by side, idle exit,
// a checkpoint that cannot load, and the dashboard chat model driving it all.
import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ChatHub, DashboardChat } from '../../src/host/chat/dashboardChat';
import { ServePool, type ServeClientOptions } from '../../src/host/chat/serveClient';
import { isPidAlive } from '../../src/shared/node/pid';
import {
  checkHostMessage,
  DEFAULT_CHAT_SETTINGS,
  type ChatCheckpoint,
  type HostToWebview,
} from '../../src/shared/protocol';
import { CLI, poetrySubset, runCli, scratch, SMALL_SETS, TEST_ENV, until } from '../helpers';

const options = (extra: Partial<ServeClientOptions> = {}): ServeClientOptions => ({
  nodePath: () => process.execPath,
  cliPath: CLI,
  env: TEST_ENV,
  ...extra,
});

describe('serve client', () => {
  let runDir: string;
  let step10: string;
  let step20: string;
  const pools: ServePool[] = [];
  const pool = (extra: Partial<ServeClientOptions & { maxProcesses: number }> = {}) => {
    const p = new ServePool({ ...options(), ...extra });
    pools.push(p);
    return p;
  };

  before(() => {
    const dir = scratch('serve-client');
    runDir = join(dir, 'run');
    const r = runCli(['train', '--data', poetrySubset(dir, 300), '--run-dir', runDir, '--steps', '20', ...SMALL_SETS]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    step10 = join(runDir, 'checkpoints', 'step-00000010');
    step20 = join(runDir, 'checkpoints', 'step-00000020');
  });
  after(() => pools.forEach((p) => p.dispose()));

  test('streams tokens whose concatenation is the text, and reuses one process per checkpoint', async () => {
    const p = pool();
    const client = p.client(step20);
    assert.equal((await client.ready).step, 20);
    const tokens: string[] = [];
    const params = { messages: [{ role: 'user' as const, content: '春' }], max_tokens: 24, temperature: 1, seed: 3 };
    const first = await p.generate(step20, params, (t) => tokens.push(t)).done;
    assert.ok(tokens.length > 0 && first.completion_tokens > 0);
    assert.equal(tokens.join(''), first.text);
    const again = await p.generate(step20, params, () => {}).done;
    assert.equal(again.text, first.text, 'same seed, same text');
    assert.equal(p.client(step20), client, 'the same process answers again');
    assert.deepEqual(p.live, [step20]);
  });

  test('cancel stops a long generation', async () => {
    const p = pool();
    for (let seed = 1; seed < 6; seed++) {
      let first: () => void = () => {};
      const started = new Promise<void>((r) => (first = r));
      const generation = p.generate(step10, { prompt: '春', max_tokens: 1_000_000, seed }, () => first());
      await Promise.race([started, generation.done]);
      generation.cancel();
      const done = await generation.done;
      if (done.reason === 'eos') continue; // ended on its own before the cancel arrived
      assert.equal(done.reason, 'cancelled');
      return;
    }
    assert.fail('every try ended on its own before the cancel');
  });

  test('two checkpoints answer side by side, each in its own process', async () => {
    const p = pool();
    const params = { prompt: '月', max_tokens: 16, temperature: 0 };
    const [a, b] = await Promise.all([
      p.generate(step10, params, () => {}).done,
      p.generate(step20, params, () => {}).done,
    ]);
    assert.ok(a.completion_tokens > 0 && b.completion_tokens > 0);
    assert.deepEqual(p.live.sort(), [step10, step20].sort());
    assert.notEqual(p.client(step10).pid, p.client(step20).pid);
  });

  test('an idle process ends on its own; the next generation starts a fresh one', async () => {
    const p = pool({ idleMs: 300 });
    const client = p.client(step10);
    await p.generate(step10, { prompt: '花', max_tokens: 4 }, () => {}).done;
    const pid = client.pid!;
    await until('the idle process to exit', () => client.closed && !isPidAlive(pid));
    assert.deepEqual(p.live, []);
    const done = await p.generate(step10, { prompt: '花', max_tokens: 4 }, () => {}).done;
    assert.ok(done.completion_tokens > 0);
    assert.notEqual(p.client(step10).pid, pid);
  });

  test('dispose ends every process, and waiting generations fail', async () => {
    const p = pool();
    const client = p.client(step20);
    await client.ready;
    const pid = client.pid!;
    const pending = p.generate(step20, { prompt: '春', max_tokens: 1_000_000 }, () => {}).done;
    p.dispose();
    await assert.rejects(pending, /closed/);
    await until('the disposed process to exit', () => !isPidAlive(pid));
  });

  test("a checkpoint that cannot load fails with the server's message; a missing node says so", async () => {
    const broken = join(scratch('serve-client-broken'), 'step-00000010');
    cpSync(step10, broken, { recursive: true });
    // Same size, one byte changed: the size check passes and the hash check must catch it.
    const weights = readFileSync(join(broken, 'weights.bin'));
    weights[weights.length >> 1] ^= 0xff;
    writeFileSync(join(broken, 'weights.bin'), weights);
    const p = pool();
    const generation = p.generate(broken, { prompt: '春', max_tokens: 4 }, () => {});
    await assert.rejects(generation.done, /Could not load .*step-00000010: .*weights\.bin does not match its sha256/);
    await assert.rejects(p.client(broken).ready, /does not match its sha256/);
    assert.deepEqual(
      p.live.filter((c) => c === broken),
      [],
      'a failed process is not kept',
    );

    const noNode = pool({
      nodePath: () => {
        throw new Error('No `node` found on PATH.');
      },
    });
    await assert.rejects(
      noNode.generate(step10, { prompt: '春' }, () => {}).done,
      /Could not start the serve process: No `node` found on PATH/,
    );
    const badNode = pool({ nodePath: () => join(runDir, 'no-such-node') });
    await assert.rejects(
      badNode.generate(step10, { prompt: '春' }, () => {}).done,
      /Could not run the serve process: .*ENOENT/,
    );
  });

  test('the dashboard chat: one prompt to two checkpoints, streamed, then regenerate and clear', async () => {
    const posted: HostToWebview[] = [];
    const list: ChatCheckpoint[] = [
      { dir: step20, label: 'step 20', step: 20, best: true },
      { dir: step10, label: 'step 10', step: 10, best: false },
    ];
    const hub = new ChatHub(pool());
    const chat = new DashboardChat(
      hub,
      () => list,
      (m) => {
        const checked = checkHostMessage(JSON.parse(JSON.stringify(m)));
        assert.ok(checked.ok, checked.ok ? '' : checked.error);
        posted.push(m);
        return true;
      },
    );
    assert.equal(chat.snapshot().checkpoint, step20, 'the best checkpoint is chosen first');
    const settings = { ...DEFAULT_CHAT_SETTINGS, max_tokens: 12, seed: 5 };
    chat.handle({ type: 'chatSend', prompt: '寫一首春天的詩', checkpoint: step20, compare: step10, settings });
    await until('both answers', () => posted.filter((m) => m.type === 'chatDone').length === 2);
    const lanes = [0, 1].map((lane) => ({
      tokens: posted.flatMap((m) => (m.type === 'chatToken' && m.lane === lane ? [m.token] : [])).join(''),
      done: posted.find((m) => m.type === 'chatDone' && m.lane === lane),
    }));
    for (const { tokens, done } of lanes) {
      assert.ok(done?.type === 'chatDone' && done.answer.status === 'done', JSON.stringify(done));
      assert.equal(tokens, done.answer.text);
      assert.match(done.answer.note, /seed 5/);
    }
    assert.deepEqual(hub.last?.checkpoint.dir, step20);

    posted.length = 0;
    chat.handle({ type: 'chatRegenerate', checkpoint: step20, compare: null, settings });
    await until('the regenerated answer', () => posted.some((m) => m.type === 'chatDone'));
    const turns = chat.snapshot().turns;
    assert.equal(turns.length, 1);
    assert.equal(turns[0].answers.length, 1, 'regenerated without the comparison');
    assert.equal(
      turns[0].answers[0].text,
      lanes[0].done?.type === 'chatDone' ? lanes[0].done.answer.text : '',
      'same seed, same answer',
    );

    chat.handle({ type: 'chatClear' });
    assert.deepEqual(chat.snapshot().turns, []);
    chat.dispose();
  });
});
