import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DataError } from '../../src/core/data';
import { chatSpecials, renderChatML } from '../../src/core/serve/chat';
import { readFileSync } from 'node:fs';
import { conversationRows, parseConversations, resolveSftData } from '../../src/core/train/sftdata';
import { BpeTokenizer } from '../../src/core/tokenizer';
import { BlockLoader } from '../../src/core/data';

const tok = BpeTokenizer.train(['写一首题为《春》的诗 春眠不觉晓 system user assistant 作者 孟浩然'], 300);
const conversation = [
  { role: 'system' as const, content: '你是诗人' },
  { role: 'user' as const, content: '写一首题为《春》的诗' },
  { role: 'assistant' as const, content: '春眠不觉晓' },
  { role: 'user' as const, content: '这首诗的作者是谁？' },
  { role: 'assistant' as const, content: '孟浩然' },
];

test('sft mask: on a rendered conversation only the assistant tokens (and their <|im_end|>) count', () => {
  const seqLen = 256;
  const { tokens, weights, cut } = conversationRows(tok, [conversation], seqLen, tok.eotId);
  assert.equal(cut, 0);
  const { imEnd } = chatSpecials(tok);
  const counted = [...tokens].filter((_, i) => weights[i] === 1);
  const expected = [...tok.encode('春眠不觉晓'), imEnd, ...tok.encode('孟浩然'), imEnd];
  assert.deepEqual(counted, expected);
  // The system and user turns, headers and padding weigh nothing.
  const rendered = renderChatML(tok, conversation.slice(0, 2));
  assert.ok(
    rendered.every((_, i) => weights[i] === 0),
    'the prompt part of the first turn is masked out',
  );
  assert.equal(tok.decode([...tokens].filter((_, i) => weights[i] === 1 && tokens[i] !== imEnd)), '春眠不觉晓孟浩然');
});

test("sft rows: one conversation per row, padded; the batch mask is the targets' weights", () => {
  const seqLen = 256;
  const rows = conversationRows(tok, [conversation, conversation.slice(0, 3)], seqLen, tok.eotId);
  const loader = new BlockLoader(rows.tokens, seqLen + 1, 1, undefined, 'test', rows.weights);
  const batch = loader.nextBatch(2);
  assert.ok(batch.mask);
  for (let row = 0; row < 2; row++) {
    for (let t = 0; t + 1 < seqLen; t++) {
      const i = row * seqLen + t;
      assert.equal(batch.y[i], batch.x[i + 1], 'targets are inputs shifted');
    }
  }
  const total = batch.mask.reduce((a, b) => a + b, 0);
  assert.equal(
    total,
    rows.weights.reduce((a, b) => a + b, 0),
    'every assistant token is a target once',
  );
});

test('sft data: a bad line is named by its number', () => {
  const good = JSON.stringify({ messages: conversation });
  assert.equal(parseConversations(`${good}\n\n${good}\n`, 'chat.jsonl').length, 2);
  assert.throws(
    () => parseConversations(`${good}\n{oops`, 'chat.jsonl'),
    (e: Error) => e instanceof DataError && /chat\.jsonl line 2 is not JSON/.test(e.message),
  );
  assert.throws(
    () => parseConversations(`${good}\n{"messages":[{"role":"robot","content":"x"}]}`, 'chat.jsonl'),
    (e: Error) => e instanceof DataError && /line 2: .*role/.test(e.message),
  );
  assert.throws(
    () => parseConversations('{"messages":[{"role":"user","content":"x"}]}', 'c.jsonl'),
    /line 1 has no assistant message/,
  );
  assert.throws(() => parseConversations('\n', 'c.jsonl'), /holds no conversation/);
});

test("poetry-sft: the shipped set parses, asks in the corpus's script and answers with the poem and its poet", () => {
  const path = resolveSftData('poetry-sft');
  const conversations = parseConversations(readFileSync(path, 'utf8'), path);
  assert.ok(conversations.length >= 100, `${conversations.length} conversations`);
  for (const c of conversations) {
    assert.deepEqual(
      c.map((m) => m.role),
      ['user', 'assistant', 'user', 'assistant'],
    );
    assert.match(c[0].content, /^寫一首題為《.+》的詩$/);
    assert.equal(c[2].content, '這首詩的作者是誰？');
    assert.ok(c[1].content.length > 0 && c[3].content.length > 0);
  }
});
