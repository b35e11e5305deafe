// Sampling only tokens that keep the text valid UTF-8: the byte-level state machine (Unicode Table
// 3-7), the mask over a byte-level token table (a prefix that can still complete is allowed, a
// special only on a whole character), and through serve: with valid_utf8 a random model's streamed
// text holds no U+FFFD, while the same seed without it does; streamed pieces are always whole
// characters (a character split across tokens is held back until it completes).
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { selectBackend } from '../../src/core/backend';
import { SteelLM } from '../../src/core/model';
import { Rng } from '../../src/core/rng';
import { generate as generateIds, sampleFromLogits } from '../../src/core/sample/generate';
import { chatSpecials } from '../../src/core/serve/chat';
import { advanceUtf8, Utf8Constraint } from '../../src/core/sample/utf8';
import { ServeSession } from '../../src/core/serve/server';
import { BpeTokenizer } from '../../src/core/tokenizer';
import { PRESETS } from '../../src/shared/config';
import type { ServeMessage } from '../../src/shared/serve-protocol';

const bytes = (...b: number[]) => Uint8Array.from(b);
const utf8 = (s: string) => new TextEncoder().encode(s);
const SPRING = utf8('春'); // e6 98 a5

describe('advanceUtf8', () => {
  test('a prefix that can still complete is allowed; its completion returns to a whole character', () => {
    const one = advanceUtf8(0, SPRING.subarray(0, 1));
    const two = advanceUtf8(one, SPRING.subarray(1, 2));
    assert.ok(one > 0 && two > 0 && one !== two);
    assert.equal(advanceUtf8(two, SPRING.subarray(2)), 0);
    assert.equal(advanceUtf8(0, utf8('a春😀é')), 0);
  });

  test('ill-formed sequences are refused', () => {
    const refused: [string, Uint8Array][] = [
      ['ASCII after a lead byte', bytes(0xe6, 0x61)],
      ['a lone continuation byte', bytes(0x98)],
      ['C0 (overlong lead)', bytes(0xc0)],
      ['E0 80 (overlong)', bytes(0xe0, 0x80)],
      ['ED A0 (a surrogate)', bytes(0xed, 0xa0)],
      ['F0 80 (overlong)', bytes(0xf0, 0x80)],
      ['F4 90 (above U+10FFFF)', bytes(0xf4, 0x90)],
      ['F5', bytes(0xf5)],
      ['a lead byte after a lead byte', bytes(0xe6, 0xe6)],
    ];
    for (const [what, b] of refused) assert.equal(advanceUtf8(0, b), -1, what);
  });

  test('a token with no bytes (a special) only on a whole character', () => {
    assert.equal(advanceUtf8(0, bytes()), 0);
    assert.equal(advanceUtf8(advanceUtf8(0, bytes(0xe6)), bytes()), -1);
  });
});

describe('Utf8Constraint on a byte-level table', () => {
  // Ids 0..255: the bytes; then merged tokens; then a special with no bytes.
  const extra = [
    SPRING.subarray(0, 2), // 256: e6 98 (ends inside 春)
    Uint8Array.from([...SPRING.subarray(2), ...utf8('a')]), // 257: a5 61 (finishes 春, then a)
    utf8('秋'), // 258: a whole character
    bytes(0x98, 0xa5), // 259: finishes 春 after e6
    bytes(0x98), // 260: one continuation byte
    bytes(), // 261: <|im_end|>
  ];
  const table = [...Array.from({ length: 256 }, (_, b) => bytes(b)), ...extra];
  const allowedIds = (c: Utf8Constraint) => {
    const logits = new Float32Array(table.length);
    c.mask(logits);
    return [...logits.keys()].filter((id) => logits[id] === 0);
  };

  test('on a whole character: every token that starts well-formed (lead bytes included), and the special', () => {
    const ids = allowedIds(new Utf8Constraint(table));
    const expected = [...Array.from({ length: 0x80 }, (_, b) => b)];
    for (let b = 0xc2; b <= 0xf4; b++) expected.push(b);
    expected.push(256, 258, 261);
    assert.deepEqual(ids, expected);
  });

  test('after e6: only what continues 春-like characters (98..bf), no ASCII, no special', () => {
    const c = new Utf8Constraint(table);
    c.accept(0xe6);
    assert.equal(c.complete, false);
    const expected = Array.from({ length: 0xbf - 0x80 + 1 }, (_, i) => 0x80 + i);
    assert.deepEqual(allowedIds(c), [...expected, 259, 260]);
  });

  test('after e6 98 (id 256): the last byte alone, or a token that finishes it and goes on', () => {
    const c = new Utf8Constraint(table);
    c.accept(256);
    const ids = allowedIds(c);
    assert.ok(ids.includes(0xa5) && ids.includes(257));
    assert.ok(!ids.includes(258) && !ids.includes(259) && !ids.includes(261) && !ids.includes(0x61));
    c.accept(257);
    assert.equal(c.complete, true);
  });

  test('2,000 draws from random logits: the bytes always decode strictly; without the mask they do not', () => {
    const draw = (constrained: boolean) => {
      const rng = new Rng(11);
      const c = new Utf8Constraint(table);
      const out: number[] = [];
      for (let i = 0; i < 2000; i++) {
        const logits = Float32Array.from(table, () => rng.next() * 4);
        if (constrained) c.mask(logits);
        const id = sampleFromLogits(logits, { temperature: 1, topK: 0, topP: 1, rng });
        c.accept(id);
        out.push(...table[id]);
      }
      return Uint8Array.from(out);
    };
    const strict = new TextDecoder('utf-8', { fatal: true });
    const constrained = draw(true);
    // A prefix that can still complete may end the sequence: decode up to the last whole character.
    assert.doesNotThrow(() => strict.decode(constrained, { stream: true }));
    assert.throws(() => strict.decode(draw(false)));
  });
});

describe('serve with valid_utf8', () => {
  const config = {
    ...PRESETS.tiny,
    vocab_size: 300,
    n_embd: 32,
    n_layer: 1,
    n_head: 2,
    n_kv_head: 2,
    intermediate_size: 48,
    seq_len: 64,
    init_std: 0.5,
  };
  let model: SteelLM;
  let tokenizer: BpeTokenizer;
  before(async () => {
    await selectBackend('cpu');
    tokenizer = BpeTokenizer.train(['春眠不覺曉，處處聞啼鳥。夜來風雨聲，花落知多少。'], config.vocab_size);
    model = SteelLM.init(config, 3);
  });

  async function generate(validUtf8: boolean | undefined, serverDefault = false) {
    const sent: ServeMessage[] = [];
    const session = new ServeSession(model, tokenizer, (m) => sent.push(m), { validUtf8: serverDefault });
    const params = { prompt: '春', max_tokens: 120, temperature: 1.5, top_k: 0, top_p: 1, seed: 5 };
    session.handleLine(JSON.stringify({ id: 1, method: 'generate', params: { ...params, valid_utf8: validUtf8 } }));
    await session.drain();
    const pieces = sent.flatMap((m) => ('token' in m ? [m.token] : []));
    const done = sent.find((m) => 'done' in m);
    assert.ok(done && 'text' in done);
    assert.equal(pieces.join(''), done.text);
    return { pieces, text: done.text };
  }

  test('the streamed text holds no U+FFFD with valid_utf8 (request or server default); the same seed without does', async () => {
    const free = await generate(undefined);
    assert.ok(free.text.includes('\ufffd'), 'an untrained model over byte tokens writes ill-formed bytes');
    for (const text of [(await generate(true)).text, (await generate(undefined, true)).text]) {
      assert.ok(!text.includes('\ufffd'), text);
      assert.ok(text.length > 0);
    }
    assert.equal((await generate(false, true)).text, free.text, 'a request can turn the server default off');
  });

  test('streamed text equals the whole decode: no U+FFFD where a character was split across tokens', async () => {
    const { text } = await generate(undefined);
    const { imEnd, endOfText } = chatSpecials(tokenizer);
    const ids = generateIds(model, tokenizer.encode('春'), {
      maxTokens: 120,
      temperature: 1.5,
      topK: 0,
      topP: 1,
      rng: new Rng(5),
      cropTo: 48,
      stopIds: [imEnd, endOfText],
    });
    const strict = new TextDecoder('utf-8', { fatal: true });
    const split = ids.filter((id) => {
      try {
        strict.decode(tokenizer.decodeBytes([id]));
        return false;
      } catch {
        return true;
      }
    });
    assert.ok(split.length > 0, 'some tokens hold part of a character');
    assert.equal(text, new TextDecoder().decode(tokenizer.decodeBytes(ids)));
  });
});
