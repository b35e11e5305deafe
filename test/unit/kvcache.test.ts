// The KV cache: the same logits as a full forward pass, the same greedy ids with and without it
// (cpu and wasm), the documented crop-and-rebuild past seq_len, seeded sampling, no tensor
// leaks. Also the pure pieces of `serve` built on it: streaming text (split UTF-8, stop strings),
// the ChatML template and the request validator.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, type BackendName } from '../../src/core/backend';
import { SteelLM } from '../../src/core/model';
import { KvCache } from '../../src/core/model/kvcache';
import { Rng } from '../../src/core/rng';
import {
  applyRepetitionPenalty,
  argmax,
  generate,
  tokenStream,
  type SampleOptions,
} from '../../src/core/sample/generate';
import { renderChatML } from '../../src/core/serve/chat';
import { StreamingText } from '../../src/core/serve/text';
import { BpeTokenizer } from '../../src/core/tokenizer';
import { PRESETS, type TrainConfig } from '../../src/shared/config';
import { asServeMessage, parseServeRequest } from '../../src/shared/serve-protocol';

// Grouped-query (4 query heads over 2 kv heads), untied head: every branch of the cached path.
const CONFIG: TrainConfig = {
  ...PRESETS.tiny,
  vocab_size: 96,
  n_embd: 32,
  n_layer: 2,
  n_head: 4,
  n_kv_head: 2,
  intermediate_size: 48,
  seq_len: 80,
  tie_embeddings: false,
  init_std: 0.5,
};
const PROMPT = [3, 14, 15, 9, 26];

function opts(over: Partial<SampleOptions>): SampleOptions {
  return { maxTokens: 64, temperature: 0, topK: 0, topP: 1, rng: new Rng(1), ...over };
}

/** Last-position logits of a full forward pass over ids. */
function fullLogits(model: SteelLM, ids: readonly number[]): Float32Array {
  return tf.tidy(() => {
    const logits = model.forward(tf.tensor2d([[...ids]], [1, ids.length], 'int32'));
    return logits.dataSync().slice((ids.length - 1) * model.config.vocab_size) as Float32Array;
  });
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  return a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);
}

for (const backend of ['cpu', 'wasm'] as BackendName[]) {
  describe(`KvCache on ${backend}`, () => {
    let model: SteelLM;
    before(async () => {
      await selectBackend(backend);
      model = SteelLM.init(CONFIG, 7);
    });
    after(() => model.dispose());

    test('logits match a full forward pass, fed one id or several at a time', () => {
      const cache = new KvCache(model);
      const ids = [...PROMPT];
      let worst = maxAbsDiff(cache.forward(ids), fullLogits(model, ids));
      for (const chunk of [[40], [41, 42, 43], [7], [90, 1]]) {
        ids.push(...chunk);
        worst = Math.max(worst, maxAbsDiff(cache.forward(chunk), fullLogits(model, ids)));
      }
      assert.equal(cache.length, ids.length);
      cache.dispose();
      assert.ok(worst < 1e-4, `max |cached - full| = ${worst}`);
    });

    test('greedy ids are identical with and without the cache for 64 tokens', () => {
      const cached = generate(model, PROMPT, opts({}));
      const full = generate(model, PROMPT, opts({ useCache: false }));
      assert.equal(cached.length, 64);
      assert.deepEqual(cached, full);
      assert.ok(new Set(cached).size > 4, 'a varied continuation, not one id repeated');
    });

    test('past seq_len the default crop is the sliding window: still identical', () => {
      const short = SteelLM.init({ ...CONFIG, seq_len: 24 }, 7);
      try {
        assert.deepEqual(
          generate(short, PROMPT, opts({ maxTokens: 48 })),
          generate(short, PROMPT, opts({ maxTokens: 48, useCache: false })),
        );
      } finally {
        short.dispose();
      }
    });
  });
}

describe('generation with the cache (cpu)', () => {
  let model: SteelLM;
  before(async () => {
    await selectBackend('cpu');
    model = SteelLM.init(CONFIG, 7);
  });
  after(() => model.dispose());

  test('cropTo: a full cache restarts from the last cropTo ids at position 0', () => {
    const short = SteelLM.init({ ...CONFIG, seq_len: 16 }, 7);
    try {
      const got = generate(short, PROMPT, opts({ maxTokens: 40, cropTo: 6 }));
      // The documented policy, replayed with full forward passes.
      const ids = [...PROMPT];
      let windowStart = 0;
      for (let i = 0; i < 40; i++) {
        if (ids.length - windowStart > 16) windowStart = ids.length - 6;
        ids.push(argmax(fullLogits(short, ids.slice(windowStart))));
      }
      assert.deepEqual(got, ids.slice(PROMPT.length));
    } finally {
      short.dispose();
    }
  });

  test('the same seed gives the same sampled ids; another seed others', () => {
    const sample = (seed: number) =>
      generate(model, PROMPT, opts({ temperature: 1, topK: 20, topP: 0.95, rng: new Rng(seed) }));
    assert.deepEqual(sample(5), sample(5));
    assert.notDeepEqual(sample(5), sample(6));
    assert.deepEqual(
      sample(5),
      generate(model, PROMPT, opts({ temperature: 1, topK: 20, topP: 0.95, rng: new Rng(5), useCache: false })),
    );
  });

  test('tf.memory() is flat across cached generations, finished or stopped early', () => {
    generate(model, PROMPT, opts({ maxTokens: 3 }));
    const { numTensors, numBytes } = tf.memory();
    for (let i = 0; i < 3; i++) {
      generate(model, PROMPT, opts({ maxTokens: 30, temperature: 0.9, rng: new Rng(i) }));
      generate(model, PROMPT, opts({ maxTokens: 30, stopIds: [...Array(96).keys()] })); // stops at once
      const stream = tokenStream(model, PROMPT, opts({ maxTokens: 30 }));
      stream.next();
      stream.next();
      stream.return(); // what a cancelled serve request does
    }
    assert.equal(tf.memory().numTensors, numTensors);
    assert.equal(tf.memory().numBytes, numBytes);
  });

  test('repetition penalty follows Hugging Face: positive logits divided, negative multiplied', () => {
    const logits = Float32Array.from([2, -2, 1, 0.5]);
    applyRepetitionPenalty(logits, new Set([0, 1, 3]), 2);
    assert.deepEqual([...logits], [1, -4, 1, 0.25]);
    const plain = generate(model, PROMPT, opts({ maxTokens: 24 }));
    const penalised = generate(model, PROMPT, opts({ maxTokens: 24, repetitionPenalty: 1e6 }));
    assert.ok(new Set(penalised).size > new Set(plain).size, 'a strong penalty repeats less');
    assert.throws(() => generate(model, PROMPT, opts({ repetitionPenalty: 0 })), /repetitionPenalty/);
  });
});

describe('StreamingText', () => {
  const bytes = (s: string) => new TextEncoder().encode(s);

  test('a character split across tokens is released whole, once complete', () => {
    const t = new StreamingText();
    const spring = bytes('春'); // 3 bytes
    assert.deepEqual(t.push(spring.subarray(0, 1)), { piece: '', stopped: false });
    assert.deepEqual(t.push(spring.subarray(1, 2)), { piece: '', stopped: false });
    assert.deepEqual(t.push(Uint8Array.from([...spring.subarray(2), ...bytes('a')])), { piece: '春a', stopped: false });
    assert.equal(t.flush(), '');
    assert.equal(t.value, '春a');
  });

  test('an unfinished character at the end is flushed as U+FFFD', () => {
    const t = new StreamingText();
    t.push(bytes('x'));
    t.push(bytes('春').subarray(0, 2));
    assert.equal(t.flush(), '\ufffd');
    assert.equal(t.value, 'x\ufffd');
  });

  test('a stop string ends the text before it, even when it arrives in pieces', () => {
    const t = new StreamingText(['<END>', '。\n']);
    const pieces = ['春眠', '不覺<E', 'N', 'D>', 'more'].map((s) => t.push(bytes(s)));
    assert.deepEqual(
      pieces.map((p) => p.piece),
      ['春眠', '不覺', '', '', ''],
    );
    assert.deepEqual(
      pieces.map((p) => p.stopped),
      [false, false, false, true, true],
    );
    assert.equal(t.value, '春眠不覺');
    assert.equal(t.flush(), '');
  });

  test('text that only looked like a stop string is released', () => {
    const t = new StreamingText(['<END>']);
    assert.equal(t.push(bytes('a<EN')).piece, 'a');
    assert.equal(t.push(bytes('X')).piece, '<ENX');
    assert.equal(t.push(bytes('<')).piece, '');
    assert.equal(t.flush(), '<');
    assert.equal(t.value, 'a<ENX<');
  });
});

describe('serve protocol and ChatML', () => {
  test('ChatML renders the template with special ids; content cannot forge them', () => {
    const tok = BpeTokenizer.train(['hello world, system user assistant'], 300);
    const ids = renderChatML(tok, [
      { role: 'system', content: 'be brief' },
      { role: 'user', content: 'hi <|im_end|>' },
    ]);
    const expected =
      '<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nhi <|im_end|><|im_end|>\n<|im_start|>assistant\n';
    assert.equal(tok.decode(ids), expected);
    const specials = ids.filter((id) => id >= tok.eotId).length;
    assert.equal(specials, 5, 'two turns of start/end plus the assistant header; the literal in the content is text');
  });

  test('requests are checked: good ones parse, bad ones name the problem and keep the id', () => {
    const ok = parseServeRequest('{"id":1,"method":"generate","params":{"prompt":"春","max_tokens":8,"stop":["。"]}}');
    assert.ok(ok.ok && ok.request.method === 'generate' && ok.request.params.max_tokens === 8);
    const cancel = parseServeRequest('{"id":"c","method":"cancel","params":{"target":1}}');
    assert.ok(cancel.ok && cancel.request.method === 'cancel' && cancel.request.params.target === 1);
    const bad: [string, RegExp, number | string | null][] = [
      ['{"id":1,', /Not valid JSON/, null],
      ['[1]', /JSON object/, null],
      ['{"method":"generate","params":{"prompt":""}}', /"id"/, null],
      ['{"id":2,"method":"sing"}', /Unknown method "sing"/, 2],
      [
        '{"id":3,"method":"generate","params":{"prompt":"a","max_tokens":"8"}}',
        /params\.max_tokens: expected an integer/,
        3,
      ],
      ['{"id":4,"method":"generate","params":{"prompt":"a","messages":[]}}', /exactly one of/, 4],
      ['{"id":5,"method":"generate","params":{"messages":[{"role":"robot","content":"x"}]}}', /messages\[0\]/, 5],
      ['{"id":6,"method":"generate","params":{"prompt":"a","maxTokens":3}}', /params\.maxTokens: unknown field/, 6],
      ['{"id":7,"method":"generate","params":{"prompt":"a","top_p":0}}', /top_p/, 7],
      ['{"id":8,"method":"generate","params":{"prompt":"a","stop":[""]}}', /stop/, 8],
      ['{"id":9,"method":"cancel","params":{}}', /target/, 9],
    ];
    for (const [line, message, id] of bad) {
      const r = parseServeRequest(line);
      assert.ok(!r.ok, line);
      assert.match(r.message, message, line);
      assert.equal(r.id, id, line);
    }
  });

  test('the message validator accepts what the server sends and rejects the rest', () => {
    assert.ok(asServeMessage({ id: 1, token: '春' }));
    assert.ok(
      asServeMessage({ id: 1, done: true, text: '', reason: 'eos', prompt_tokens: 3, completion_tokens: 1, seed: 0 }),
    );
    assert.ok(asServeMessage({ id: 2, result: { target: 1, cancelled: false } }));
    assert.ok(asServeMessage({ id: null, error: { message: 'x' } }));
    assert.ok(
      asServeMessage({
        ready: true,
        protocol: 'steelscope.serve/1',
        checkpoint: 'c',
        step: 1,
        config: PRESETS.tiny,
        backend: 'wasm',
      }),
    );
    assert.equal(
      asServeMessage({ id: 1, done: true, text: '', reason: 'bored', prompt_tokens: 3, completion_tokens: 1, seed: 0 }),
      undefined,
    );
    assert.equal(
      asServeMessage({
        ready: true,
        protocol: 'steelscope.serve/1',
        checkpoint: 'c',
        step: 1,
        config: { n_layer: 1 },
        backend: 'wasm',
      }),
      undefined,
    );
    assert.equal(asServeMessage({ id: 1 }), undefined);
  });
});
