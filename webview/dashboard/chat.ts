// The Chat tab: a checkpoint to talk to (and one to compare with), sampling settings, a transcript
// that grows as tokens stream in, and Send, Stop, Regenerate, Clear. The host owns the history
// (src/host/chat/dashboardChat.ts): this view draws its snapshots and appends its tokens. Model
// text is only ever set with textContent — a model can emit anything, and it must stay text.
import {
  ChatSettingsSchema,
  type ChatAnswer,
  type ChatCheckpoint,
  type ChatHostMessage,
  type ChatSettings,
  type ChatTurn,
  type HostMessage,
  type WebviewToHost,
} from '../../src/shared/protocol';
import { parseAs } from '../../src/shared/schema';
import { el } from '../common/messenger';
import { button, checkbox, dropdown, textArea, textField, type TextInput } from '../common/ui';

interface Field {
  key: Exclude<keyof ChatSettings, 'valid_utf8'>;
  label: string;
  placeholder?: string;
}

// Text fields (the toolkit's has no number type): the schema checks what is typed, on send.
const FIELDS: Field[] = [
  { key: 'temperature', label: 'Temperature' },
  { key: 'top_k', label: 'Top-k' },
  { key: 'top_p', label: 'Top-p' },
  { key: 'max_tokens', label: 'Max tokens' },
  { key: 'repetition_penalty', label: 'Repetition penalty' },
  { key: 'seed', label: 'Seed', placeholder: 'random' },
];

interface AnswerView {
  box: HTMLElement;
  text: HTMLElement;
  note: HTMLElement;
}

export class ChatView {
  readonly root = el('section', { class: 'chat', 'aria-label': 'Chat' });
  private readonly checkpoint = dropdown('Checkpoint');
  private readonly compare = dropdown('Compare with');
  private readonly inputs = new Map<Field['key'], TextInput>();
  private readonly validUtf8 = checkbox('Valid UTF-8 only');
  private readonly transcript = el('div', { class: 'chat-transcript' });
  private readonly prompt = textArea('Prompt', {
    class: 'chat-input',
    rows: '3',
    placeholder: 'Type a prompt. Enter sends; Shift+Enter starts a new line.',
  });
  private readonly sendButton = button('Send', { primary: true });
  private readonly stopButton = button('Stop');
  private readonly regenerateButton = button('Regenerate');
  private readonly clearButton = button('Clear');
  private readonly notice = el('div', { class: 'chat-notice', role: 'status' });
  private checkpoints: ChatCheckpoint[] = [];
  private turns: ChatTurn[] = [];
  private readonly answers = new Map<string, AnswerView>();

  /** `focus` is called when the host asks for the Chat tab (Steelscope: Chat with Checkpoint). */
  constructor(
    private readonly post: (m: WebviewToHost) => void,
    private readonly focus: () => void,
  ) {
    this.root.append(this.selectors(), this.settingsRow(), this.transcript, this.composer(), this.notice);
    this.checkpoint.onChange(() => {
      this.fillCompare();
      this.select();
    });
    this.compare.onChange(() => this.select());
    this.sendButton.onClick(() => this.send());
    this.stopButton.onClick(() => this.post({ type: 'chatStop' }));
    this.regenerateButton.onClick(() => this.request((s) => ({ type: 'chatRegenerate', ...s })));
    this.clearButton.onClick(() => this.post({ type: 'chatClear' }));
    this.prompt.root.addEventListener('keydown', (e) => {
      // isComposing: Enter also confirms a word in an input method (Chinese, Japanese…).
      if (e.key !== 'Enter' || e.shiftKey || e.isComposing) return;
      e.preventDefault();
      this.send();
    });
    this.updateButtons();
  }

  private selectors(): HTMLElement {
    const bar = el('div', { class: 'chat-bar' });
    const label = (text: string, control: HTMLElement) => {
      const l = el('label', {}, text);
      l.append(control);
      return l;
    };
    bar.append(label('Checkpoint ', this.checkpoint.root), label('Compare with ', this.compare.root));
    return bar;
  }

  private settingsRow(): HTMLElement {
    const row = el('div', { class: 'chat-settings' });
    for (const f of FIELDS) {
      const input = textField(f.label, {
        'data-setting': f.key,
        size: '6',
        ...(f.placeholder ? { placeholder: f.placeholder } : {}),
      });
      input.root.addEventListener('change', () => this.select());
      this.inputs.set(f.key, input);
      row.append(input.root);
    }
    this.validUtf8.root.setAttribute('data-setting', 'valid_utf8');
    this.validUtf8.root.title = 'Sample only tokens that keep the text valid UTF-8 (no U+FFFD in the answer)';
    this.validUtf8.onChange(() => this.select());
    row.append(this.validUtf8.root);
    return row;
  }

  private composer(): HTMLElement {
    const box = el('div', { class: 'chat-composer' });
    const buttons = el('div', { class: 'chat-buttons' });
    buttons.append(this.sendButton.root, this.stopButton.root, this.regenerateButton.root, this.clearButton.root);
    box.append(this.prompt.root, buttons);
    return box;
  }

  receive(m: ChatHostMessage): void {
    switch (m.type) {
      case 'chatSnapshot':
        return this.snapshot(m);
      case 'chatToken':
        return this.token(m.turn, m.lane, m.token);
      case 'chatDone':
        return this.done(m.turn, m.lane, m.answer);
      case 'chatError':
        this.notice.textContent = m.message;
        return;
    }
  }

  private snapshot(m: HostMessage<'chatSnapshot'>): void {
    this.checkpoints = m.checkpoints;
    this.turns = m.turns;
    this.checkpoint.setOptions(
      m.checkpoints.map((c) => ({ value: c.dir, label: c.label })),
      m.checkpoint ?? undefined,
    );
    this.fillCompare(m.compare);
    this.showSettings(m.settings);
    this.drawTranscript();
    this.notice.textContent =
      m.checkpoints.length === 0
        ? 'No complete checkpoint to chat with yet (chat needs a run on this machine that has saved one).'
        : '';
    if (m.focus) {
      this.focus();
      this.prompt.focus();
    }
  }

  /** "None" and every checkpoint but the chosen one. */
  private fillCompare(value: string | null = this.compare.value || null): void {
    const others = this.checkpoints.filter((c) => c.dir !== this.checkpoint.value);
    this.compare.setOptions(
      [{ value: '', label: 'None' }, ...others.map((c) => ({ value: c.dir, label: c.label }))],
      value ?? '',
    );
  }

  private showSettings(s: ChatSettings): void {
    for (const [key, input] of this.inputs) {
      if (input.focused) continue; // never overwrite what is being typed
      const v = s[key];
      input.value = v === null ? '' : String(v);
    }
    this.validUtf8.checked = s.valid_utf8;
  }

  /** The settings as typed, or undefined (with the reason shown) when one is out of range. */
  private settings(): ChatSettings | undefined {
    const value = (key: Field['key']) => {
      const text = this.inputs.get(key)?.value.trim() ?? '';
      return text === '' && key === 'seed' ? null : Number(text === '' ? NaN : text);
    };
    const s = { ...Object.fromEntries(FIELDS.map((f) => [f.key, value(f.key)])), valid_utf8: this.validUtf8.checked };
    const parsed = parseAs(ChatSettingsSchema, s, 'settings');
    if (parsed.ok) return parsed.value;
    const error = parsed.error;
    const field = FIELDS.find((f) => error.startsWith(`settings.${f.key}`));
    this.notice.textContent = `${field?.label ?? 'A setting'} is out of range (${error.replace(/^settings\.\w+: /, '')}).`;
    return undefined;
  }

  private selection(): { checkpoint: string; compare: string | null; settings: ChatSettings } | undefined {
    const settings = this.settings();
    if (!settings) return undefined;
    return { checkpoint: this.checkpoint.value, compare: this.compare.value || null, settings };
  }

  private select(): void {
    const s = this.selection();
    if (s) this.post({ type: 'chatSelect', ...s, checkpoint: s.checkpoint || null });
  }

  private request(make: (s: NonNullable<ReturnType<ChatView['selection']>>) => WebviewToHost): boolean {
    const s = this.selection();
    if (!s) return false;
    if (s.checkpoint === '') {
      this.notice.textContent = 'There is no checkpoint to chat with yet.';
      return false;
    }
    this.notice.textContent = '';
    this.post(make(s));
    return true;
  }

  private send(): void {
    const prompt = this.prompt.value;
    if (prompt.trim() === '' || this.busy) return;
    if (this.request((s) => ({ type: 'chatSend', prompt, ...s }))) this.prompt.value = '';
  }

  private get busy(): boolean {
    return this.turns.some((t) => t.answers.some((a) => a.status === 'streaming'));
  }

  private updateButtons(): void {
    const busy = this.busy;
    this.sendButton.disabled = busy;
    this.stopButton.disabled = !busy;
    this.regenerateButton.disabled = busy || this.turns.length === 0;
    this.clearButton.disabled = this.turns.length === 0;
  }

  private drawTranscript(): void {
    this.answers.clear();
    this.transcript.replaceChildren(...this.turns.map((t) => this.turnView(t)));
    this.transcript.hidden = this.turns.length === 0;
    this.transcript.scrollTop = this.transcript.scrollHeight;
    this.updateButtons();
  }

  private turnView(turn: ChatTurn): HTMLElement {
    const box = el('article', { class: 'chat-turn' });
    const user = el('div', { class: 'chat-user' });
    user.append(el('span', { class: 'who' }, 'You'), el('pre', { class: 'chat-prompt-text' }, turn.prompt));
    const answers = el('div', { class: `chat-answers${turn.answers.length > 1 ? ' compare' : ''}` });
    turn.answers.forEach((a, lane) => answers.append(this.answerView(turn.id, lane, a)));
    box.append(user, answers);
    return box;
  }

  private answerView(turn: number, lane: number, a: ChatAnswer): HTMLElement {
    const view: AnswerView = {
      box: el('div', { class: 'chat-answer' }),
      text: el('pre', { class: 'chat-answer-text' }),
      note: el('div', { class: 'chat-answer-note' }),
    };
    view.box.append(el('div', { class: 'chat-answer-head' }, a.label), view.text, view.note);
    this.answers.set(`${turn}:${lane}`, view);
    this.fill(view, a);
    return view.box;
  }

  private fill(view: AnswerView, a: ChatAnswer): void {
    view.box.dataset.status = a.status;
    view.text.textContent = a.text;
    view.note.textContent = a.status === 'streaming' ? 'writing…' : a.note;
  }

  /** Appends to the answer the host streams; a token for an answer not drawn yet is in the next snapshot. */
  private token(turn: number, lane: number, token: string): void {
    const answer = this.turns.find((t) => t.id === turn)?.answers[lane];
    const view = this.answers.get(`${turn}:${lane}`);
    if (!answer || !view) return;
    answer.text += token;
    const follow = this.transcript.scrollTop + this.transcript.clientHeight >= this.transcript.scrollHeight - 24;
    view.text.append(token);
    if (follow) this.transcript.scrollTop = this.transcript.scrollHeight;
  }

  private done(turn: number, lane: number, answer: ChatAnswer): void {
    const t = this.turns.find((x) => x.id === turn);
    const view = this.answers.get(`${turn}:${lane}`);
    if (!t || !view) return;
    t.answers[lane] = answer;
    this.fill(view, answer);
    this.updateButtons();
  }
}
