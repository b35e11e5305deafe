// `steelscope serve` as the extension meets it: a real `node dist/cli.js serve` process on a
// checkpoint of a short real training run, requests on stdin, messages read back from stdout.
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { before, after, describe, test } from 'node:test';
import { renderChatML } from '../../src/core/serve/chat';
import { BpeTokenizer } from '../../src/core/tokenizer';
import {
  parseServeMessage,
  type DoneMessage,
  type RequestId,
  type ServeMessage,
} from '../../src/shared/serve-protocol';
import { CLI, poetrySubset, runCli, scratch, SMALL_SETS, TEST_ENV } from '../helpers';

/** One serve process: every stdout line must be a protocol message; waits by predicate. */
class ServeClient {
  readonly messages: ServeMessage[] = [];
  readonly exited: Promise<number | null>;
  private readonly child: ChildProcessWithoutNullStreams;
  private waiters: (() => void)[] = [];

  constructor(target: string) {
    this.child = spawn(process.execPath, [CLI, 'serve', target], { env: TEST_ENV });
    const reap = () => this.child.kill('SIGKILL');
    process.once('exit', reap);
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code) => (process.removeListener('exit', reap), resolve(code))),
    );
    this.child.stderr.resume();
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      const message = parseServeMessage(line);
      assert.ok(message, `not a serve message: ${line}`);
      this.messages.push(message);
      const waiters = this.waiters;
      this.waiters = [];
      waiters.forEach((w) => w());
    });
  }

  send(request: object | string): void {
    this.child.stdin.write((typeof request === 'string' ? request : JSON.stringify(request)) + '\n');
  }

  end(): void {
    this.child.stdin.end();
  }

  kill(): void {
    this.child.kill('SIGKILL');
  }

  async waitFor<T extends ServeMessage>(accept: (m: ServeMessage) => m is T, timeoutMs = 30_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.messages.find(accept);
      if (found) return found;
      if (Date.now() > deadline)
        throw new Error(`timed out; messages so far: ${JSON.stringify(this.messages.slice(-5))}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
  }

  done(id: RequestId): Promise<DoneMessage> {
    return this.waitFor((m): m is DoneMessage => 'done' in m && m.id === id);
  }

  tokens(id: RequestId): string[] {
    return this.messages.flatMap((m) => ('token' in m && m.id === id ? [m.token] : []));
  }
}

const withoutId = ({ id: _id, ...rest }: DoneMessage) => rest;

describe('steelscope serve', () => {
  let runDir: string;
  let client: ServeClient;

  before(() => {
    const dir = scratch('serve');
    runDir = join(dir, 'run');
    const r = runCli(['train', '--data', poetrySubset(dir, 300), '--run-dir', runDir, '--steps', '10', ...SMALL_SETS]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    client = new ServeClient(runDir);
  });
  after(() => client?.kill());

  test('announces the loaded checkpoint once ready', async () => {
    const ready = await client.waitFor((m): m is Extract<ServeMessage, { ready: true }> => 'ready' in m);
    assert.equal(ready.step, 10);
    assert.match(ready.checkpoint, /step-00000010$/);
    assert.equal(ready.config.seq_len, 32);
    assert.equal(ready.protocol, 'steelscope.serve/1');
  });

  test('the same seed gives the same text, streamed as whole characters', async () => {
    const params = { prompt: '春', max_tokens: 24, temperature: 1, top_k: 0, top_p: 1, seed: 7 };
    client.send({ id: 'a', method: 'generate', params });
    client.send({ id: 'b', method: 'generate', params });
    const [a, b] = [await client.done('a'), await client.done('b')];
    assert.deepEqual(withoutId(a), withoutId(b));
    assert.ok(a.reason === 'length' || a.reason === 'eos', a.reason);
    assert.ok(a.completion_tokens > 0 && a.seed === 7);
    assert.equal(client.tokens('a').join(''), a.text);
    for (const piece of client.tokens('a'))
      assert.doesNotMatch(piece, /[\ud800-\udbff]$/, 'no piece ends inside a surrogate pair');
    client.send({ id: 'c', method: 'generate', params: { ...params, seed: 8 } });
    assert.notEqual((await client.done('c')).text, a.text);
  });

  test('a malformed request gets an error and the next request still works', async () => {
    client.send('{"id": 40, "method": "generate", "params": {');
    client.send({ id: 41, method: 'summon', params: {} });
    client.send({ id: 42, method: 'generate', params: { prompt: '月', max_tokens: 'many' } });
    client.send({ id: 43, method: 'generate', params: { prompt: '月', max_tokens: 4, temperature: 0 } });
    const errors = await client.waitFor(
      (m): m is Extract<ServeMessage, { error: unknown }> => 'error' in m && m.id === 42,
    );
    assert.match(errors.error.message, /max_tokens/);
    assert.ok(client.messages.some((m) => 'error' in m && m.id === null && /JSON/.test(m.error.message)));
    assert.ok(
      client.messages.some((m) => 'error' in m && m.id === 41 && /Unknown method "summon"/.test(m.error.message)),
    );
    const done = await client.done(43);
    assert.ok(done.completion_tokens >= 1 && done.completion_tokens <= 4);
  });

  test('a base checkpoint continues the last message as plain text, and its ready line says so', async () => {
    const messages = [
      { role: 'system' as const, content: '你是詩人。' },
      { role: 'user' as const, content: '寫一首春天的詩' },
    ];
    client.send({ id: 50, method: 'generate', params: { messages, max_tokens: 16, temperature: 0 } });
    const done = await client.done(50);
    const tokenizer = BpeTokenizer.fromJSON(
      JSON.parse(readFileSync(join(runDir, 'checkpoints', 'step-00000010', 'tokenizer.json'), 'utf8')),
    );
    assert.ok(client.messages.some((m) => 'ready' in m && m.template === 'plain'));
    assert.equal(done.prompt_tokens, tokenizer.encode(messages[1].content).length);
    assert.notEqual(done.prompt_tokens, renderChatML(tokenizer, messages).length);
    assert.ok(['length', 'eos'].includes(done.reason));
    assert.equal(client.tokens(50).join(''), done.text);
  });

  test('a stop string ends generation before it', async () => {
    client.send({ id: 60, method: 'generate', params: { prompt: '春', max_tokens: 40, temperature: 0 } });
    const free = (await client.done(60)).text;
    const stop = [...free].find((ch, i) => i > 0 && ch.trim() !== '');
    assert.ok(stop !== undefined, `greedy text too short to pick a stop string: ${JSON.stringify(free)}`);
    client.send({ id: 61, method: 'generate', params: { prompt: '春', max_tokens: 40, temperature: 0, stop: [stop] } });
    const stopped = await client.done(61);
    assert.equal(stopped.reason, 'stop');
    assert.equal(stopped.text, free.slice(0, free.indexOf(stop)));
    assert.equal(client.tokens(61).join(''), stopped.text);
  });

  test('cancel stops a running generation at the next token; a queued one never runs', async (t) => {
    for (let seed = 1; ; seed++) {
      assert.ok(seed < 6, 'every try ended on its own before the cancel');
      const id = `long-${seed}`;
      client.send({ id, method: 'generate', params: { prompt: '春', max_tokens: 1_000_000, temperature: 1, seed } });
      client.send({ id: `queued-${seed}`, method: 'generate', params: { prompt: '春', max_tokens: 4 } });
      await client.waitFor((m): m is ServeMessage => 'token' in m && m.id === id);
      client.send({ id: `cq-${seed}`, method: 'cancel', params: { target: `queued-${seed}` } });
      const queued = await client.done(`queued-${seed}`);
      assert.deepEqual([queued.reason, queued.text, queued.completion_tokens], ['cancelled', '', 0]);
      const start = performance.now();
      client.send({ id: `c-${seed}`, method: 'cancel', params: { target: id } });
      const done = await client.done(id);
      const elapsed = performance.now() - start;
      if (done.reason !== 'cancelled') continue; // it sampled an end of sequence before the cancel
      t.diagnostic(`cancel answered in ${elapsed.toFixed(1)} ms after ${done.completion_tokens} tokens`);
      const reply = await client.waitFor(
        (m): m is Extract<ServeMessage, { result: unknown }> => 'result' in m && m.id === `c-${seed}`,
      );
      assert.deepEqual(reply.result, { target: id, cancelled: true });
      // Promptness by the order of serve's output, not by a clock (a loaded machine delays any
      // process): once the cancel is answered, no further token is sampled. At most one piece still
      // follows, the text a stop string or a split character held back, flushed with the end.
      const answeredAt = client.messages.indexOf(reply);
      const tokensAfter = client.messages.slice(answeredAt).filter((m) => 'token' in m && m.id === id);
      assert.ok(answeredAt < client.messages.indexOf(done), 'the cancel is answered before the generation ends');
      assert.ok(tokensAfter.length <= 1, `${tokensAfter.length} tokens streamed after the cancel was answered`);
      assert.equal(client.tokens(id).join(''), done.text);
      break;
    }
    client.send({ id: 'c-none', method: 'cancel', params: { target: 'nothing' } });
    const none = await client.waitFor(
      (m): m is Extract<ServeMessage, { result: unknown }> => 'result' in m && m.id === 'c-none',
    );
    assert.equal(none.result.cancelled, false);
  });

  test('EOF on stdin: the queued request is finished, then exit code 0', async () => {
    client.send({ id: 70, method: 'generate', params: { prompt: '花', max_tokens: 8 } });
    client.end();
    assert.equal((await client.done(70)).id, 70);
    assert.equal(await client.exited, 0);
  });

  test('a checkpoint that cannot be loaded: one error line, a clear message, exit code 2', () => {
    const broken = join(scratch('serve-broken'), 'step-00000010');
    cpSync(join(runDir, 'checkpoints', 'step-00000010'), broken, { recursive: true });
    const weights = readFileSync(join(broken, 'weights.bin'));
    weights[100] ^= 0xff; // same size, other bytes: only the hash can tell
    writeFileSync(join(broken, 'weights.bin'), weights);
    const shortened = join(scratch('serve-short'), 'step-00000010');
    cpSync(broken, shortened, { recursive: true });
    writeFileSync(join(shortened, 'weights.bin'), 'not weights');
    for (const [target, message] of [
      [broken, /weights\.bin does not match its sha256/],
      [shortened, /weights\.bin has 11 bytes, the manifest says \d+/],
      [join(runDir, 'nowhere'), /neither a checkpoint folder/],
    ] as const) {
      const r = runCli(['serve', target]);
      assert.equal(r.code, 2, r.stderr);
      const lines = r.stdout.trim().split('\n');
      assert.equal(lines.length, 1, r.stdout);
      const line = parseServeMessage(lines[0]);
      assert.ok(line && 'error' in line && line.id === null, lines[0]);
      assert.match(line.error.message, message);
      assert.match(r.stderr, message);
      assert.doesNotMatch(r.stderr, /    at /, 'no stack trace');
    }
  });
});
