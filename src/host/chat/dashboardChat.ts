// The dashboard's chat, host side and without vscode: the history lives here, not in the webview,
// so hiding, showing or reloading the panel loses nothing (the webview gets a chatSnapshot on
// "ready", then tokens as they stream), and a ChatMemory keeps it across a window reload. Each answer is a generation of `steelscope serve` on one
// checkpoint; "Compare with" sends the same prompt to a second checkpoint (lane 1).
import * as v from 'valibot';
import {
  ChatSettingsSchema,
  ChatTurnSchema,
  DEFAULT_CHAT_SETTINGS,
  type ChatAnswer,
  type ChatCheckpoint,
  type ChatSettings,
  type ChatTurn,
  type ChatWebviewMessage,
  type HostMessage,
  type HostToWebview,
} from '../../shared/protocol';
import { arr, obj, parseOrUndefined, str, type Output } from '../../shared/schema';
import type { ChatMessage, ChatTemplate, DoneMessage, FinishReason, GenerateParams } from '../../shared/serve-protocol';
import type { CheckpointSummary, RunKey, RunStoreApi, RunSummary } from '../runs/types';
import type { Generation, ServePool } from './serveClient';

/** The checkpoint and settings a chat used last: what @steelscope answers from. */
export interface ChatChoice {
  checkpoint: ChatCheckpoint;
  settings: ChatSettings;
}

/** Generations, and the memory of the last choice; shared by every panel and the chat participant. */
export class ChatHub {
  last: ChatChoice | undefined;

  constructor(readonly pool: Pick<ServePool, 'generate' | 'dispose'>) {}

  generate(checkpoint: string, params: GenerateParams, onToken: (token: string) => void): Generation {
    return this.pool.generate(checkpoint, params, onToken);
  }

  dispose(): void {
    this.pool.dispose();
  }
}

export function checkpointLabel(run: RunSummary, c: CheckpointSummary, withRun: boolean): string {
  const loss = c.evalLoss !== null ? ` · eval ${c.evalLoss.toFixed(3)}` : '';
  return `${withRun ? `${run.name} · ` : ''}step ${c.step}${loss}${c.best ? ' ★ best' : ''}`;
}

/**
 * How the chat names a checkpoint (ChatCheckpoint.dir): its folder on this machine, or
 * `${hostId}::${folder}` on an SSH host, where `steelscope serve` then runs (register.ts).
 */
export function checkpointRef(run: RunSummary, dir: string): string {
  return run.hostId === 'local' ? dir : `${run.hostId}::${dir}`;
}

/** The folder of a ref on the host `hostId`, or undefined where the ref is not that host's. */
export function refOnHost(ref: string, hostId: string): string | undefined {
  return hostId !== 'local' && ref.startsWith(`${hostId}::`) ? ref.slice(hostId.length + 2) : undefined;
}

/** Complete checkpoints of these runs, newest first, on this machine or an SSH host. */
export function chatCheckpoints(store: RunStoreApi, keys: readonly RunKey[]): ChatCheckpoint[] {
  const runs = keys.map((k) => store.get(k)?.summary).filter((s): s is RunSummary => s !== undefined);
  return runs.flatMap((run) =>
    run.checkpoints
      .filter((c) => c.complete)
      .reverse()
      .map((c) => ({
        dir: checkpointRef(run, c.dir),
        step: c.step,
        best: c.best,
        label: checkpointLabel(run, c, runs.length > 1),
      })),
  );
}

export function generateParams(settings: ChatSettings, messages: ChatMessage[]): GenerateParams {
  const { seed, ...rest } = settings;
  return { messages, ...rest, ...(seed !== null ? { seed } : {}) };
}

const REASONS: Record<FinishReason, string> = {
  length: 'max tokens reached',
  eos: 'end of answer',
  stop: 'stop string',
  cancelled: 'stopped',
};

const TEMPLATE_NOTES: Record<ChatTemplate, string> = {
  chatml: ' · ChatML (fine-tuned)',
  plain: ' · plain continuation (base model)',
};

/** How an answer ended, and, when the server said, whether it was asked in ChatML or continued as text. */
export function doneNote(d: DoneMessage, template?: ChatTemplate): string {
  const how = template ? TEMPLATE_NOTES[template] : '';
  const ended = d.reason === 'eos' && d.eos ? `ended at ${d.eos}` : REASONS[d.reason];
  return `${ended} · ${d.completion_tokens} token${d.completion_tokens === 1 ? '' : 's'} · seed ${d.seed}${how}`;
}

/**
 * The conversation lane `lane` has had up to `turn`: each earlier prompt with that lane's answer
 * (lane 0's where the lane did not answer), then this prompt. A failed answer is left out.
 */
export function laneHistory(turns: readonly ChatTurn[], turn: ChatTurn, lane: number): ChatMessage[] {
  const messages: ChatMessage[] = [];
  for (const t of turns) {
    if (t === turn) break;
    messages.push({ role: 'user', content: t.prompt });
    const answer = t.answers[lane] ?? t.answers[0];
    if (answer && answer.status !== 'error' && answer.text !== '')
      messages.push({ role: 'assistant', content: answer.text });
  }
  messages.push({ role: 'user', content: turn.prompt });
  return messages;
}

type Post = (message: HostToWebview) => boolean;

/** What a chat keeps across a window reload (in the workspace's state). */
const SavedChatSchema = obj({
  turns: arr(ChatTurnSchema),
  checkpoint: v.nullable(str),
  compare: v.nullable(str),
  settings: ChatSettingsSchema,
});
type SavedChat = Output<typeof SavedChatSchema>;

/** Where a chat is kept between sessions; load() may return anything (it is checked). */
export interface ChatMemory {
  load(): unknown;
  save(chat: SavedChat): void;
}

/** Turns kept across a reload: the newest ones. */
const KEEP_TURNS = 50;

export class DashboardChat {
  private turns: ChatTurn[] = [];
  private nextTurnId = 1;
  private checkpoint: string | null = null;
  private compare: string | null = null;
  private settings: ChatSettings;
  private readonly running = new Map<ChatAnswer, Generation>();
  private wantFocus = false;
  private sentList = '';

  /**
   * `post` returns false when the webview could not take the message (hidden or loading);
   * `memory` keeps the conversation across a window reload (a restored panel picks it up).
   */
  constructor(
    private readonly hub: ChatHub,
    private readonly list: () => ChatCheckpoint[],
    private readonly post: Post,
    private readonly memory?: ChatMemory,
  ) {
    // A new panel starts from the settings the last chat used, or from what this panel kept.
    this.settings = hub.last?.settings ?? DEFAULT_CHAT_SETTINGS;
    const saved = parseOrUndefined(SavedChatSchema, memory?.load());
    if (saved !== undefined) this.restore(saved);
  }

  private restore(saved: SavedChat): void {
    // An answer still streaming when the window went away was cut off there.
    for (const answer of saved.turns.flatMap((t) => t.answers)) {
      if (answer.status === 'streaming')
        Object.assign(answer, { status: 'stopped', note: 'interrupted by a window reload' });
    }
    this.turns = saved.turns;
    this.nextTurnId = Math.max(0, ...saved.turns.map((t) => t.id)) + 1;
    this.checkpoint = saved.checkpoint;
    this.compare = saved.compare;
    this.settings = saved.settings;
  }

  /** Keeps the conversation (the newest turns) for a reload. */
  private remember(): void {
    this.memory?.save({
      turns: this.turns.slice(-KEEP_TURNS),
      checkpoint: this.checkpoint,
      compare: this.compare,
      settings: this.settings,
    });
  }

  get busy(): boolean {
    return this.running.size > 0;
  }

  /** The whole chat for a webview that just said "ready" (or after a change of many parts). */
  snapshot(): HostMessage<'chatSnapshot'> {
    const checkpoints = this.list();
    this.reconcile(checkpoints);
    this.sentList = JSON.stringify(checkpoints);
    return {
      type: 'chatSnapshot',
      checkpoints,
      checkpoint: this.checkpoint,
      compare: this.compare,
      settings: this.settings,
      turns: this.turns,
      focus: this.wantFocus,
    };
  }

  /** Shows the Chat tab with `dir` chosen (when it is one of this panel's checkpoints). */
  focus(dir?: string): void {
    const list = this.list();
    if (dir !== undefined && list.some((c) => c.dir === dir)) {
      this.checkpoint = dir;
      if (this.compare === dir) this.compare = null;
    }
    this.wantFocus = true;
    this.resend();
  }

  /** The runs changed: a new or pruned checkpoint reaches the selects. */
  checkpointsChanged(): void {
    if (JSON.stringify(this.list()) !== this.sentList) this.resend();
  }

  handle(m: ChatWebviewMessage): void {
    switch (m.type) {
      case 'chatSelect':
        return this.select(m.checkpoint, m.compare, m.settings);
      case 'chatSend':
        this.select(m.checkpoint, m.compare, m.settings);
        return this.ask(m.prompt);
      case 'chatRegenerate':
        this.select(m.checkpoint, m.compare, m.settings);
        return this.regenerate();
      case 'chatStop':
        return this.stop();
      case 'chatClear':
        this.stop();
        this.turns = [];
        this.remember();
        return this.resend();
    }
  }

  dispose(): void {
    this.stop();
  }

  /** Posts the whole chat (a webview said "ready", or the turns changed). */
  resend(): void {
    if (this.post(this.snapshot())) this.wantFocus = false;
  }

  /** Keeps the choice within the list; falls back to the best checkpoint, then the newest. */
  private reconcile(list: ChatCheckpoint[]): void {
    const known = (dir: string | null) => dir !== null && list.some((c) => c.dir === dir);
    if (!known(this.checkpoint)) this.checkpoint = (list.find((c) => c.best) ?? list[0])?.dir ?? null;
    if (!known(this.compare) || this.compare === this.checkpoint) this.compare = null;
  }

  private select(checkpoint: string | null, compare: string | null, settings: ChatSettings): void {
    this.checkpoint = checkpoint;
    this.compare = compare;
    this.settings = settings;
    this.reconcile(this.list());
    this.remember();
  }

  private refuse(message: string): void {
    this.post({ type: 'chatError', message });
  }

  /** The answers a new request gets: lane 0 and, when comparing, lane 1; undefined after refusing. */
  private newAnswers(): ChatAnswer[] | undefined {
    const list = this.list();
    const chosen = [this.checkpoint, this.compare]
      .map((dir) => list.find((c) => c.dir === dir))
      .filter((c) => c !== undefined);
    const refusal = this.busy
      ? 'An answer is still being written: wait for it or press Stop.'
      : chosen.length === 0
        ? 'There is no complete checkpoint to chat with yet.'
        : undefined;
    if (refusal !== undefined) {
      this.refuse(refusal);
      return undefined;
    }
    this.hub.last = { checkpoint: chosen[0], settings: this.settings };
    return chosen.map((c) => ({ checkpoint: c.dir, label: c.label, text: '', status: 'streaming', note: '' }));
  }

  private ask(prompt: string): void {
    if (prompt.trim() === '') return;
    const answers = this.newAnswers();
    if (!answers) return;
    const turn: ChatTurn = { id: this.nextTurnId++, prompt, answers };
    this.turns.push(turn);
    this.startAll(turn);
  }

  private regenerate(): void {
    const turn = this.turns.at(-1);
    if (!turn) return this.refuse('Nothing to regenerate yet: send a prompt first.');
    const answers = this.newAnswers();
    if (!answers) return;
    turn.answers = answers;
    this.startAll(turn);
  }

  private startAll(turn: ChatTurn): void {
    this.remember();
    this.resend();
    turn.answers.forEach((answer, lane) => this.start(turn, lane, answer));
  }

  private stop(): void {
    for (const generation of this.running.values()) generation.cancel();
  }

  /** Still shown: a Clear or a Regenerate since may have replaced it. */
  private current(turn: ChatTurn, lane: number, answer: ChatAnswer): boolean {
    return this.turns.includes(turn) && turn.answers[lane] === answer;
  }

  private start(turn: ChatTurn, lane: number, answer: ChatAnswer): void {
    const params = generateParams(this.settings, laneHistory(this.turns, turn, lane));
    const generation = this.hub.generate(answer.checkpoint, params, (token) => {
      if (!this.current(turn, lane, answer)) return;
      answer.text += token;
      this.post({ type: 'chatToken', turn: turn.id, lane, token });
    });
    this.running.set(answer, generation);
    const finish = (patch: Pick<ChatAnswer, 'status' | 'note'> & { text?: string }) => {
      this.running.delete(answer);
      if (!this.current(turn, lane, answer)) return;
      Object.assign(answer, patch);
      this.post({ type: 'chatDone', turn: turn.id, lane, answer });
      this.remember();
    };
    generation.done.then(
      async (d) =>
        finish({
          status: d.reason === 'cancelled' ? 'stopped' : 'done',
          note: doneNote(d, await generation.template),
          text: d.text,
        }),
      (err: unknown) => finish({ status: 'error', note: err instanceof Error ? err.message : String(err) }),
    );
  }
}
