import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BpeTokenizer,
  PRETOKENIZER_V1,
  PRETOKENIZERS,
  SPECIAL_TOKENS,
  type TokenizerJSON,
} from '../../src/core/tokenizer';
import { Rng } from '../../src/core/rng';

// Poetry-like text from a small pool of common characters: 5-character lines, "，" and "。\n",
// so frequent characters and pairs are plentiful and every run of the generator is identical.
const POOL = '月山風花雲水春秋夜人天日江南何處不知長無一年時空白青明寒來歸去中有落生';

function poetryLikeDocuments(count: number, seed: number): string[] {
  const rng = new Rng(seed);
  const line = (): string => Array.from({ length: 5 }, () => POOL[rng.int(POOL.length)]).join('');
  return Array.from({ length: count }, () => {
    const couplets = Array.from({ length: 4 }, () => `${line()}，${line()}。`);
    return couplets.join('\n');
  });
}

const MIXED_SAMPLES = [
  '床前明月光，疑是地上霜。舉頭望明月，低頭思故鄉。', // traditional
  '床前明月光，疑是地上霜。举头望明月，低头思故乡。', // simplified
  "The quick brown fox doesn't jump; it's 42 times lazier.\n",
  'emoji: 😀👍🏽 👨‍👩‍👧 🇨🇳 ❤️',
  '混合 mixed 文本 text 123 ４５６「引號」『書名』、！？；：……——',
  '',
  '\n',
  '\n\n\n',
  '\r\n \t  \n ',
  'にほんご カタカナー 한국어 Ελληνικά русский é (e\u0301)',
  'tabs\tand   spaces   \n  indented',
  '<|endoftext|> and <|im_start|>user\nhi<|im_end|>',
];

const docs = poetryLikeDocuments(300, 7);
const trained = BpeTokenizer.train(docs, 2048);

test('round-trips Chinese, English, emoji, mixed, empty and whitespace-only text', () => {
  for (const text of MIXED_SAMPLES) {
    assert.equal(trained.decode(trained.encode(text)), text, JSON.stringify(text));
    assert.equal(trained.decode(trained.encode(text, { allowSpecial: true })), text, JSON.stringify(text));
  }
  assert.deepEqual(trained.encode(''), []);
});

test('round-trips a long unpunctuated run (one huge pretoken)', () => {
  const rng = new Rng(3);
  const text = Array.from({ length: 5000 }, () => POOL[rng.int(POOL.length)]).join('');
  const ids = trained.encode(text);
  assert.equal(trained.decode(ids), text);
  assert.deepEqual(ids, referenceEncode(trained.toJSON(), text));
});

test('specials map to their ids only with allowSpecial', () => {
  const tok = trained;
  assert.equal(tok.vocabSize, 2048);
  assert.deepEqual([tok.eotId, tok.imStartId, tok.imEndId], [2045, 2046, 2047]);
  const text = `${SPECIAL_TOKENS[1]}user\n月${SPECIAL_TOKENS[2]}${SPECIAL_TOKENS[0]}`;
  const withSpecials = tok.encode(text, { allowSpecial: true });
  assert.equal(withSpecials[0], tok.imStartId);
  assert.deepEqual(withSpecials.slice(-2), [tok.imEndId, tok.eotId]);
  assert.equal(tok.decode(withSpecials), text);

  const plain = tok.encode(text);
  assert.ok(
    plain.every((id) => id < tok.eotId),
    'no special id without allowSpecial',
  );
  assert.equal(tok.decode(plain), text);
  assert.deepEqual(tok.encode(SPECIAL_TOKENS[0], { allowSpecial: true }), [tok.eotId]);
  assert.equal(tok.tokenString(tok.imEndId), '<|im_end|>');
});

test('training is deterministic and ids stay below vocabSize', () => {
  const again = BpeTokenizer.train(poetryLikeDocuments(300, 7), 2048);
  assert.deepEqual(again.toJSON(), trained.toJSON());
  for (const text of [...MIXED_SAMPLES, ...docs.slice(0, 20)]) {
    for (const id of trained.encode(text, { allowSpecial: true }))
      assert.ok(Number.isInteger(id) && id >= 0 && id < 2048);
  }
});

test('a corpus that runs out of pairs still gives the requested vocab size', () => {
  const tok = BpeTokenizer.train(['abab abab'], 300);
  assert.equal(tok.vocabSize, 300);
  assert.ok(tok.mergeCount < 300 - 259);
  assert.equal(tok.eotId, 297);
  const unused = 256 + tok.mergeCount;
  assert.equal(tok.tokenString(unused), `<|unused:${unused}|>`);
  assert.equal(tok.decode([unused]), '');
  assert.throws(() => tok.decode([300]), /id 300 is not in 0\.\.299/);
  assert.throws(() => tok.decode([-1]), RangeError);
});

test('toJSON/fromJSON round-trip encodes identically', () => {
  const restored = BpeTokenizer.fromJSON(JSON.parse(JSON.stringify(trained.toJSON())));
  assert.deepEqual(restored.toJSON(), trained.toJSON());
  for (const text of [...MIXED_SAMPLES, ...docs.slice(0, 20)]) {
    assert.deepEqual(restored.encode(text, { allowSpecial: true }), trained.encode(text, { allowSpecial: true }));
  }
});

test('fromJSON rejects malformed input with a clear message', () => {
  const good = trained.toJSON();
  const bad = (patch: Record<string, unknown>): unknown => ({ ...good, ...patch });
  assert.throws(() => BpeTokenizer.fromJSON(null), /expected an object/);
  assert.throws(() => BpeTokenizer.fromJSON([]), /expected an object/);
  assert.throws(() => BpeTokenizer.fromJSON(bad({ format: 'other/2' })), /format must be "steelscope.tokenizer\/1"/);
  assert.throws(() => BpeTokenizer.fromJSON(bad({ type: 'wordpiece' })), /type must be "byte-bpe"/);
  assert.throws(() => BpeTokenizer.fromJSON(bad({ vocab_size: '2048' })), /vocab_size must be a number/);
  assert.throws(() => BpeTokenizer.fromJSON(bad({ vocab_size: 100 })), /vocab_size must be an integer in 259\.\./);
  assert.throws(() => BpeTokenizer.fromJSON(bad({ vocab_size: 300 })), /merges do not fit vocab_size 300/);
  assert.throws(() => BpeTokenizer.fromJSON(bad({ merges: 'x' })), /merges must be an array/);
  assert.throws(() => BpeTokenizer.fromJSON(bad({ merges: [[1, 2], [3]] })), /merges\[1\] must be \[left, right\]/);
  assert.throws(() => BpeTokenizer.fromJSON(bad({ merges: [[1, 256]] })), /merges\[0\].*below 256/);
  assert.throws(
    () =>
      BpeTokenizer.fromJSON(
        bad({
          merges: [
            [1, 2],
            [1, 2],
          ],
        }),
      ),
    /merges\[1\] repeats the pair/,
  );
  assert.throws(() => BpeTokenizer.fromJSON(bad({ specials: { '<|endoftext|>': 2045 } })), /specials must be exactly/);
  assert.throws(
    () => BpeTokenizer.fromJSON(bad({ pretokenizer: 7 })),
    /pretokenizer must be one of qwen2-cjk-v1, got number/,
  );
  assert.throws(() => BpeTokenizer.fromJSON(bad({ pretokenizer: '(' })), /pretokenizer must be one of qwen2-cjk-v1/);
});

test('pre-tokenizers are named by id: a regex from a file is never compiled, an unknown id is refused', () => {
  const good = trained.toJSON();
  assert.equal(good.pretokenizer, 'qwen2-cjk-v1');
  // Catastrophic backtracking: compiled, this kept serve busy for minutes on a 42-character prompt.
  const evil = { ...good, pretokenizer: '(a|a)+$|(\\p{L}+)+!' };
  assert.throws(
    () => BpeTokenizer.fromJSON(evil),
    /tokenizer JSON: pretokenizer must be one of qwen2-cjk-v1, got "\(a\|a\)\+\$/,
  );
  assert.throws(
    () => BpeTokenizer.fromJSON({ ...good, pretokenizer: 'qwen2-cjk-v9' }),
    /must be one of qwen2-cjk-v1, got "qwen2-cjk-v9"/,
  );
  assert.throws(() => BpeTokenizer.fromJSON({ ...good, pretokenizer: 'toString' }), /must be one of/);
});

test('tokenizer files written before ids (carrying the v1 pattern itself) load and encode the same', () => {
  const legacy = { ...trained.toJSON(), pretokenizer: PRETOKENIZER_V1 };
  const loaded = BpeTokenizer.fromJSON(legacy);
  const text = "床前明月光，疑是地上霜。\nIt's 2024 — 舉頭望明月。";
  assert.deepEqual(loaded.encode(text), trained.encode(text));
  assert.equal(loaded.toJSON().pretokenizer, 'qwen2-cjk-v1');
  // A pattern that is not exactly one of ours is not "close enough".
  assert.throws(() => BpeTokenizer.fromJSON({ ...legacy, pretokenizer: PRETOKENIZER_V1 + '|x' }), /must be one of/);
});

test('common characters of the training text become single tokens', () => {
  for (const char of '月山風花，') assert.equal(trained.encode(char).length, 1, char);
  const moon = trained.encode('月')[0];
  assert.equal(trained.tokenString(moon), '月');
  assert.equal(trained.tokenString(10), '\\x0a');
  assert.equal(trained.tokenString(0xe6), '\\xe6');
});

test('compresses its training text below one token per character at vocab 2048', () => {
  const text = docs.join('\n');
  const ratio = trained.encode(text).length / text.length;
  assert.ok(ratio < 1, `tokens per char ${ratio.toFixed(3)}`);
});

test('broken UTF-8 decodes with U+FFFD; decodeBytes gives the raw bytes', () => {
  const ids = trained.encode('月');
  const bytes = trained.decodeBytes(ids);
  assert.deepEqual([...bytes], [0xe6, 0x9c, 0x88]);
  assert.equal(trained.decode([0xe6, 0x9c]), '\uFFFD');
  assert.equal(trained.decode([0x41, 0xff, 0x42]), 'A\uFFFDB');
});

test('maxBytes and onProgress', () => {
  const progressAtZero: number[] = [];
  const empty = BpeTokenizer.train(['月月月月月月'], 400, {
    maxBytes: 0,
    onProgress: (merges) => progressAtZero.push(merges),
  });
  assert.equal(empty.mergeCount, 0);
  assert.deepEqual(progressAtZero, [0]);
  // 5 bytes keep only one "月" (a cut never splits a character), whose byte pairs occur once: no
  // merge; 6 bytes keep "月月", whose byte pairs occur twice.
  assert.equal(BpeTokenizer.train(['月月月月月月'], 400, { maxBytes: 5 }).mergeCount, 0);
  assert.ok(BpeTokenizer.train(['月月月月月月'], 400, { maxBytes: 6 }).mergeCount > 0);
  const calls: [number, number][] = [];
  const tok = BpeTokenizer.train(docs, 600, { onProgress: (merges, total) => calls.push([merges, total]) });
  assert.ok(calls.length > 0);
  assert.deepEqual(calls[calls.length - 1], [tok.mergeCount, 600 - 259]);
  assert.throws(() => BpeTokenizer.train(docs, 258), /vocab_size must be an integer/);
});

test('incremental training and heap encoding match a naive reference BPE', () => {
  const rng = new Rng(11);
  const alphabet = ['a', 'b', 'c', ' ', '月', '光', '，', '\n', 'aa', 'ab'];
  const corpus = Array.from({ length: 40 }, () =>
    Array.from({ length: 60 }, () => alphabet[rng.int(alphabet.length)]).join(''),
  );
  const tok = BpeTokenizer.train(corpus, 400);
  const reference = referenceTrain(corpus, 400 - 259);
  assert.deepEqual(tok.toJSON().merges, reference);
  for (const text of [...corpus.slice(0, 10), 'aaaaaaaaaaa', 'abababab aaa 月月月光光']) {
    assert.deepEqual(tok.encode(text), referenceEncode(tok.toJSON(), text));
  }
});

// --- naive reference: full recount every step, same tie-break (count desc, then smallest pair) ---

function pretokenize(text: string, pattern: string): string[] {
  return text.match(new RegExp(pattern, 'gv')) ?? [];
}

function applyMerge(word: number[], left: number, right: number, merged: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < word.length; i++) {
    if (i + 1 < word.length && word[i] === left && word[i + 1] === right) {
      out.push(merged);
      i++;
    } else out.push(word[i]);
  }
  return out;
}

function referenceTrain(corpus: string[], maxMerges: number): [number, number][] {
  let words = corpus.flatMap((text) => pretokenize(text, PRETOKENIZER_V1)).map((p) => [...new TextEncoder().encode(p)]);
  const merges: [number, number][] = [];
  while (merges.length < maxMerges) {
    const counts = new Map<string, number>();
    for (const word of words) {
      for (let i = 0; i + 1 < word.length; i++)
        counts.set(`${word[i]},${word[i + 1]}`, (counts.get(`${word[i]},${word[i + 1]}`) ?? 0) + 1);
    }
    let best: [number, number] | null = null;
    let bestCount = 1;
    for (const [key, count] of counts) {
      const pair = key.split(',').map(Number) as [number, number];
      const smaller = best === null || pair[0] < best[0] || (pair[0] === best[0] && pair[1] < best[1]);
      if (count > bestCount || (count === bestCount && best !== null && smaller)) [best, bestCount] = [pair, count];
    }
    if (best === null) break;
    const [left, right] = best;
    words = words.map((word) => applyMerge(word, left, right, 256 + merges.length));
    merges.push(best);
  }
  return merges;
}

function referenceEncode(json: TokenizerJSON, text: string): number[] {
  return pretokenize(text, PRETOKENIZERS[json.pretokenizer]).flatMap((piece) => {
    let word = [...new TextEncoder().encode(piece)];
    json.merges.forEach(([left, right], rank) => (word = applyMerge(word, left, right, 256 + rank)));
    return word;
  });
}
