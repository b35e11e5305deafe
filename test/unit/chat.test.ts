// Chat without processes: the chat messages of the webview protocol, the host's chat model with a
// scripted serve, which checkpoint @steelscope answers from, and its literal markdown.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ChatHub,
  chatCheckpoints,
  DashboardChat,
  doneNote,
  generateParams,
  laneHistory,
  refOnHost,
} from '../../src/host/chat/dashboardChat';
import { answeringLine, LiteralBlock, participantChoice } from '../../src/host/chat/participantText';
import { escapeMarkdown } from '../../src/host/markdown';
import type { Generation } from '../../src/host/chat/serveClient';
import type { CheckpointSummary, RunData, RunStoreApi, RunSummary } from '../../src/host/runs/types';
import {
  checkHostMessage,
  checkWebviewMessage,
  DEFAULT_CHAT_SETTINGS,
  type ChatTurn,
  type HostToWebview,
  type WebviewToHost,
} from '../../src/shared/protocol';
import type { DoneMessage, GenerateParams } from '../../src/shared/serve-protocol';

const ckpt = (dir: string, step: number, extra: Partial<CheckpointSummary> = {}): CheckpointSummary => ({
  step,
  dir,
  evalLoss: null,
  best: false,
  complete: true,
  ...extra,
});

function store(...runs: Partial<RunSummary>[]): RunStoreApi {
  const map = new Map<string, RunData>();
  for (const r of runs) {
    const summary = {
      key: `local::${r.dir}`,
      hostId: 'local',
      hostLabel: 'this machine',
      dir: '/r',
      name: 'r',
      status: 'finished',
      checkpoints: [],
      malformed: { metrics: 0, samples: 0, events: 0 },
      ...r,
    } as RunSummary;
    map.set(summary.key, { summary, tables: new Map(), samples: [], events: [], evals: [] });
  }
  return { runs: map, get: (k) => map.get(k), onDidChange: () => ({ dispose() {} }) };
}

test('chat messages: well-formed ones pass, malformed ones are named', () => {
  const settings = DEFAULT_CHAT_SETTINGS;
  const good: WebviewToHost[] = [
    { type: 'chatSend', prompt: '春', checkpoint: '/c/1', compare: null, settings },
    { type: 'chatSend', prompt: '', checkpoint: '/c/1', compare: '/c/2', settings: { ...settings, seed: 0xffffffff } },
    { type: 'chatRegenerate', checkpoint: '/c/1', compare: null, settings },
    { type: 'chatStop' },
    { type: 'chatClear' },
    { type: 'chatSelect', checkpoint: null, compare: null, settings },
  ];
  for (const m of good) assert.deepEqual(checkWebviewMessage(JSON.parse(JSON.stringify(m))), { ok: true, message: m });
  const answer = {
    checkpoint: '/c/1',
    label: 'step 1',
    text: '<img src=x onerror=alert(1)>',
    status: 'done',
    note: 'eos',
  };
  const host: HostToWebview[] = [
    {
      type: 'chatSnapshot',
      checkpoints: [{ dir: '/c/1', label: 'step 1', step: 1, best: true }],
      checkpoint: '/c/1',
      compare: null,
      settings,
      turns: [{ id: 1, prompt: 'p', answers: [answer as never] }],
      focus: true,
    },
    { type: 'chatToken', turn: 1, lane: 0, token: '春' },
    { type: 'chatDone', turn: 1, lane: 1, answer: answer as never },
    { type: 'chatError', message: 'no' },
  ];
  for (const m of host) assert.deepEqual(checkHostMessage(JSON.parse(JSON.stringify(m))), { ok: true, message: m });
  const bad: [unknown, RegExp][] = [
    [{ type: 'chatSend', prompt: 1, checkpoint: '/c', compare: null, settings }, /prompt: expected a string/],
    [{ type: 'chatSend', prompt: 'p', checkpoint: null, compare: null, settings }, /checkpoint: expected a string/],
    [
      { type: 'chatSend', prompt: 'p', checkpoint: '/c', compare: null, settings: { ...settings, top_p: 0 } },
      /settings\.top_p/,
    ],
    [
      { type: 'chatSend', prompt: 'p', checkpoint: '/c', compare: null, settings: { ...settings, top_k: 1.5 } },
      /settings\.top_k: expected an integer/,
    ],
    [
      { type: 'chatSend', prompt: 'p', checkpoint: '/c', compare: null, settings: { ...settings, seed: -1 } },
      /settings\.seed/,
    ],
    [
      { type: 'chatSend', prompt: 'p', checkpoint: '/c', compare: null, settings: { ...settings, max_tokens: 0 } },
      /settings\.max_tokens/,
    ],
    [{ type: 'chatStop', now: true }, /now: unknown field/],
  ];
  for (const [m, re] of bad) {
    const r = checkWebviewMessage(m);
    assert.equal(r.ok, false, JSON.stringify(m));
    if (!r.ok) assert.match(r.error, re);
  }
  const r = checkHostMessage({ type: 'chatDone', turn: 1, lane: 0, answer: { ...answer, status: 'finished' } });
  assert.ok(!r.ok && /answer\.status/.test(r.error));
});

test('settings become serve parameters; a null seed is left to the server', () => {
  const messages = [{ role: 'user' as const, content: '春' }];
  assert.deepEqual(generateParams(DEFAULT_CHAT_SETTINGS, messages), {
    messages,
    temperature: 0.8,
    top_k: 40,
    top_p: 0.95,
    max_tokens: 128,
    repetition_penalty: 1.1,
    valid_utf8: false,
  });
  assert.equal(generateParams({ ...DEFAULT_CHAT_SETTINGS, seed: 7 }, messages).seed, 7);
  assert.equal(generateParams({ ...DEFAULT_CHAT_SETTINGS, valid_utf8: true }, messages).valid_utf8, true);
});

test('each lane keeps its own conversation; a failed answer is left out', () => {
  const a = (text: string, status: 'done' | 'error' = 'done') => ({
    checkpoint: '/c',
    label: '',
    text,
    status,
    note: '',
  });
  const turns: ChatTurn[] = [
    { id: 1, prompt: 'one', answers: [a('A1'), a('B1')] },
    { id: 2, prompt: 'two', answers: [a('A2')] },
    { id: 3, prompt: 'three', answers: [a('', 'error'), a('B3')] },
    { id: 4, prompt: 'four', answers: [a(''), a('')] },
  ];
  assert.deepEqual(
    laneHistory(turns, turns[3], 1).map((m) => `${m.role}:${m.content}`),
    ['user:one', 'assistant:B1', 'user:two', 'assistant:A2', 'user:three', 'assistant:B3', 'user:four'],
  );
  assert.deepEqual(
    laneHistory(turns, turns[3], 0).map((m) => m.content),
    ['one', 'A1', 'two', 'A2', 'three', 'four'],
  );
});

/** A serve that answers when told to, recording what it was asked. */
class ScriptedServe {
  readonly asked: {
    checkpoint: string;
    params: GenerateParams;
    onToken: (t: string) => void;
    finish: (d: Partial<DoneMessage>) => void;
    cancelled: boolean;
  }[] = [];
  generate(checkpoint: string, params: GenerateParams, onToken: (t: string) => void): Generation {
    let finish: (d: Partial<DoneMessage>) => void = () => {};
    const done = new Promise<DoneMessage>(
      (resolve) =>
        (finish = (d) =>
          resolve({
            id: 1,
            done: true,
            text: '',
            reason: 'eos',
            prompt_tokens: 1,
            completion_tokens: 1,
            seed: 9,
            ...d,
          })),
    );
    const entry = { checkpoint, params, onToken, finish, cancelled: false };
    this.asked.push(entry);
    return {
      done,
      cancel: () => {
        entry.cancelled = true;
        finish({ reason: 'cancelled' });
      },
    };
  }
  dispose(): void {}
}

const settle = () => new Promise((r) => setImmediate(r));

test('dashboard chat: streams into the history, refuses while busy, stops, clears, survives a new webview', async () => {
  const serve = new ScriptedServe();
  const posted: HostToWebview[] = [];
  const list = [
    { dir: '/c/20', label: 'step 20', step: 20, best: false },
    { dir: '/c/10', label: 'step 10 ★ best', step: 10, best: true },
  ];
  const chat = new DashboardChat(
    new ChatHub(serve),
    () => list,
    (m) => (posted.push(m), true),
  );
  const settings = DEFAULT_CHAT_SETTINGS;
  assert.equal(chat.snapshot().checkpoint, '/c/10', 'best first');
  chat.handle({ type: 'chatSend', prompt: 'hi', checkpoint: '/c/20', compare: '/c/20', settings });
  assert.equal(serve.asked.length, 1, 'comparing a checkpoint with itself is no comparison');
  serve.asked[0].onToken('春');
  serve.asked[0].onToken('眠');
  assert.deepEqual(
    posted.filter((m) => m.type === 'chatToken').map((m) => m.type === 'chatToken' && m.token),
    ['春', '眠'],
  );
  assert.equal(chat.snapshot().turns[0].answers[0].text, '春眠', 'a new webview gets the text so far');

  chat.handle({ type: 'chatSend', prompt: 'again', checkpoint: '/c/20', compare: null, settings });
  assert.match(JSON.stringify(posted.at(-1)), /still being written/);
  chat.handle({ type: 'chatStop' });
  await settle();
  const done = posted.at(-1);
  assert.ok(
    done?.type === 'chatDone' && done.answer.status === 'stopped' && /stopped/.test(done.answer.note),
    JSON.stringify(done),
  );

  chat.handle({
    type: 'chatSend',
    prompt: 'next',
    checkpoint: '/c/20',
    compare: '/c/10',
    settings: { ...settings, seed: 3 },
  });
  assert.deepEqual(
    serve.asked.slice(1).map((a) => [a.checkpoint, a.params.seed, a.params.messages?.length]),
    [
      ['/c/20', 3, 2],
      ['/c/10', 3, 2],
    ],
  );
  chat.handle({ type: 'chatClear' });
  serve.asked[1].onToken('late');
  serve.asked[2].finish({ text: 'late' });
  await settle();
  assert.equal(
    posted.some((m) => m.type === 'chatToken' && m.token === 'late'),
    false,
    'nothing of a cleared turn is posted',
  );
  assert.deepEqual(chat.snapshot().turns, []);
  chat.handle({ type: 'chatRegenerate', checkpoint: '/c/20', compare: null, settings });
  assert.match(JSON.stringify(posted.at(-1)), /Nothing to regenerate/);
});

test('a chat is kept across a window reload: a new DashboardChat with the same memory has its turns and choice', async () => {
  const serve = new ScriptedServe();
  let kept: unknown;
  const memory = {
    load: () => kept,
    save: (chat: unknown) => {
      kept = JSON.parse(JSON.stringify(chat));
    },
  };
  const list = [
    { dir: '/c/2', label: '2', step: 2, best: true },
    { dir: '/c/1', label: '1', step: 1, best: false },
  ];
  const settings = { ...DEFAULT_CHAT_SETTINGS, temperature: 0.3 };
  const first = new DashboardChat(
    new ChatHub(serve),
    () => list,
    () => true,
    memory,
  );
  first.handle({ type: 'chatSend', prompt: 'one', checkpoint: '/c/1', compare: null, settings });
  serve.asked[0].finish({ text: 'answer one' });
  await settle();
  first.handle({ type: 'chatSend', prompt: 'two', checkpoint: '/c/1', compare: null, settings }); // the window goes while it streams

  const restored = new DashboardChat(
    new ChatHub(serve),
    () => list,
    () => true,
    memory,
  ).snapshot();
  assert.deepEqual(
    restored.turns.map((t) => [t.prompt, t.answers[0].text, t.answers[0].status]),
    [
      ['one', 'answer one', 'done'],
      ['two', '', 'stopped'],
    ],
  );
  assert.match(restored.turns[1].answers[0].note, /interrupted by a window reload/);
  assert.deepEqual([restored.checkpoint, restored.settings.temperature], ['/c/1', 0.3]);

  const broken = new DashboardChat(
    new ChatHub(serve),
    () => list,
    () => true,
    { load: () => ({ turns: 'not turns' }), save: () => {} },
  ).snapshot();
  assert.deepEqual(broken.turns, [], 'a damaged memory is ignored');
});

test('focus selects the checkpoint and asks for the Chat tab until a webview gets it', () => {
  let open = false;
  const posted: HostToWebview[] = [];
  const list = [
    { dir: '/c/2', label: '2', step: 2, best: true },
    { dir: '/c/1', label: '1', step: 1, best: false },
  ];
  const chat = new DashboardChat(
    new ChatHub(new ScriptedServe()),
    () => list,
    (m) => open && (posted.push(m), true),
  );
  chat.focus('/c/1');
  assert.equal(posted.length, 0);
  open = true;
  chat.resend();
  const snap = posted.at(-1);
  assert.ok(snap?.type === 'chatSnapshot' && snap.focus && snap.checkpoint === '/c/1', JSON.stringify(snap));
  chat.resend();
  assert.ok(
    posted.at(-1)?.type === 'chatSnapshot' && !(posted.at(-1) as { focus: boolean }).focus,
    'focus is asked once',
  );
  chat.focus('/elsewhere');
  assert.equal((posted.at(-1) as { checkpoint: string }).checkpoint, '/c/1', 'an unknown checkpoint is not chosen');
});

test('chat lists complete checkpoints, newest first, best marked; a remote one by host and folder', () => {
  const s = store(
    {
      dir: '/a',
      name: 'a',
      checkpoints: [
        ckpt('/a/1', 1, { evalLoss: 3.5, best: true }),
        ckpt('/a/2', 2, { evalLoss: 3.6 }),
        ckpt('/a/3', 3, { complete: false }),
      ],
    },
    { dir: '/b', name: 'b', hostId: 'ssh:gpu', checkpoints: [ckpt('/b/1', 1)] },
  );
  assert.deepEqual(chatCheckpoints(s, ['local::/a']), [
    { dir: '/a/2', step: 2, best: false, label: 'step 2 · eval 3.600' },
    { dir: '/a/1', step: 1, best: true, label: 'step 1 · eval 3.500 ★ best' },
  ]);
  assert.deepEqual(
    chatCheckpoints(s, ['local::/a', 'local::/b']).map((c) => [c.dir, c.label]),
    [
      ['/a/2', 'a · step 2 · eval 3.600'],
      ['/a/1', 'a · step 1 · eval 3.500 ★ best'],
      ['ssh:gpu::/b/1', 'b · step 1'],
    ],
  );
  assert.equal(refOnHost('ssh:gpu::/b/1', 'ssh:gpu'), '/b/1');
  assert.equal(refOnHost('ssh:gpu::/b/1', 'ssh:other'), undefined);
  assert.equal(refOnHost('/a/1', 'local'), undefined);
});

test('@steelscope answers from the last checkpoint used, else the best of the newest run', () => {
  const s = store(
    {
      dir: '/old',
      name: 'old',
      info: { createdAt: '2026-01-01' } as never,
      checkpoints: [ckpt('/old/5', 5, { best: true })],
    },
    {
      dir: '/new',
      name: 'new*run',
      info: { createdAt: '2026-02-01' } as never,
      checkpoints: [ckpt('/new/1', 1), ckpt('/new/2', 2, { best: true }), ckpt('/new/3', 3)],
    },
    {
      dir: '/far',
      name: 'far',
      hostId: 'gpu',
      info: { createdAt: '2026-03-01' } as never,
      checkpoints: [ckpt('/far/1', 1, { best: true })],
    },
  );
  const best = participantChoice(s, undefined);
  assert.deepEqual([best?.dir, best?.why], ['/new/2', 'the best checkpoint of the newest run']);
  assert.equal(
    answeringLine(best!),
    'Answering from **new\\*run · step 2** (the best checkpoint of the newest run):\n\n',
  );
  const settings = { ...DEFAULT_CHAT_SETTINGS, seed: 4 };
  const last = participantChoice(s, { checkpoint: { dir: '/old/5', label: '', step: 5, best: true }, settings });
  assert.deepEqual(
    [last?.dir, last?.why, last?.settings.seed],
    ['/old/5', 'the checkpoint last used in the dashboard chat', 4],
  );
  const remote = participantChoice(s, { checkpoint: { dir: 'gpu::/far/1', label: '', step: 1, best: true }, settings });
  assert.deepEqual([remote?.dir, remote?.label], ['gpu::/far/1', 'far · step 1'], 'the last one used, on its host');
  const gone = participantChoice(s, { checkpoint: { dir: '/deleted/1', label: '', step: 1, best: false }, settings });
  assert.equal(gone?.dir, '/new/2');
  assert.equal(participantChoice(store(), undefined), undefined);
});

/** The text back out of an indented code block: each line without its four spaces. */
function unindent(markdown: string): string {
  return markdown
    .split('\n')
    .map((line) => line.slice(4))
    .join('\n');
}

test('model text becomes an indented code block that no text can leave, however it is split', () => {
  const texts = [
    '春眠不覺曉',
    '```\n# not a heading\n```\n<script>alert(1)</script>',
    '````````js\n*bold* _it_ [link](command:x) ![img](x) <img src=x onerror=alert(1)>',
    'a\r\nb\rc\n\n\nd\n',
    '\n  leading blank line',
    '    already indented\n\ttab',
  ];
  for (const text of texts) {
    const whole = new LiteralBlock();
    const md = whole.push(text);
    const lines = md.split('\n');
    for (const line of lines.slice(0, md.endsWith('\n') ? -1 : undefined))
      assert.ok(line.startsWith('    '), `${JSON.stringify(line)} of ${JSON.stringify(text)} is in the block`);
    assert.equal(unindent(md), text.replace(/\r\n?/g, '\n'), JSON.stringify(text));
    // Streamed one character at a time (\r and \n in separate pieces): the same markdown.
    const pieces = new LiteralBlock();
    assert.equal([...text].map((ch) => pieces.push(ch)).join(''), md);
    assert.equal(pieces.end(), whole.end());
    assert.match(md + whole.end(), /\n\n$|\n$/);
  }
  const empty = new LiteralBlock();
  assert.equal(empty.push(''), '');
  assert.equal(empty.end(), '');
  assert.ok(empty.isEmpty);
  assert.equal(escapeMarkdown('a_b [c](d) `e` <f>'), 'a\\_b \\[c\\]\\(d\\) \\`e\\` \\<f\\>');
});

test("an answer's note says whether it was asked in ChatML or continued as plain text", () => {
  const d = {
    id: 1,
    done: true as const,
    text: 'x',
    reason: 'eos' as const,
    prompt_tokens: 3,
    completion_tokens: 1,
    seed: 5,
  };
  assert.match(doneNote(d, 'chatml'), /ChatML \(fine-tuned\)$/);
  assert.match(doneNote(d, 'plain'), /plain continuation \(base model\)$/);
  assert.doesNotMatch(doneNote(d), /ChatML|plain/);
  assert.match(doneNote(d), /^end of answer · /, 'a server that does not say which end token');
  assert.match(doneNote({ ...d, eos: '<|im_end|>' }, 'chatml'), /^ended at <\|im_end\|> · 1 token · seed 5 · ChatML/);
});
