// The extension <-> webview protocol of the dashboard. Every message is declared once, here, as a
// runtime schema; its TypeScript type is inferred from the schema, so the type and the check
// cannot drift apart (the style of rust-analyzer's lsp_ext.ts, with the check added). Both sides
// check every message on receipt: the webview is untrusted from the host's point of view, and a
// stale webview bundle must fail loudly rather than draw garbage.
//
// The host owns the state. On `ready` it sends a `snapshot`; afterwards numbered `delta`s
// (seq = previous + 1). A webview that sees a gap asks for a fresh snapshot (`requestSnapshot`).
// Messages are plain JSON: no NaN/Infinity (non-finite values travel as marker strings), no
// functions, no HTML.
import { NON_FINITE, X_AXES } from './series';

// ---- a tiny schema language -----------------------------------------------------------------

/** Returns undefined if `value` fits, else a message naming the path of the first misfit. */
export interface Schema<T> {
  check(value: unknown, path: string): string | undefined;
  /** Phantom: carries T for `Infer`. */
  readonly _type?: T;
}
export type Infer<S> = S extends Schema<infer T> ? T : never;

function schema<T>(check: (value: unknown, path: string) => string | undefined): Schema<T> {
  return { check };
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export const num = schema<number>((v, p) => (typeof v === 'number' && Number.isFinite(v) ? undefined : `${p}: expected a finite number`));
export const int = schema<number>((v, p) => (Number.isSafeInteger(v) ? undefined : `${p}: expected an integer`));
export const str = schema<string>((v, p) => (typeof v === 'string' ? undefined : `${p}: expected a string`));
export const bool = schema<boolean>((v, p) => (typeof v === 'boolean' ? undefined : `${p}: expected a boolean`));

export function oneOf<const L extends readonly string[]>(values: L): Schema<L[number]> {
  return schema((v, p) => (typeof v === 'string' && values.includes(v) ? undefined : `${p}: expected one of ${values.join(', ')}`));
}

export function range(min: number, max: number): Schema<number> {
  return schema((v, p) => (typeof v === 'number' && v >= min && v <= max ? undefined : `${p}: expected a number in [${min}, ${max}]`));
}

export function nullable<T>(s: Schema<T>): Schema<T | null> {
  return schema((v, p) => (v === null ? undefined : s.check(v, p)));
}

export function arr<T>(s: Schema<T>): Schema<T[]> {
  return schema((v, p) => {
    if (!Array.isArray(v)) return `${p}: expected an array`;
    for (let i = 0; i < v.length; i++) {
      const e = s.check(v[i], `${p}[${i}]`);
      if (e) return e;
    }
    return undefined;
  });
}

export function tuple2<T>(s: Schema<T>): Schema<[T, T]> {
  return schema((v, p) => (Array.isArray(v) && v.length === 2 ? (s.check(v[0], `${p}[0]`) ?? s.check(v[1], `${p}[1]`)) : `${p}: expected a pair`));
}

type Shape = Record<string, Schema<unknown>>;
type FromShape<S extends Shape> = { [K in keyof S]: Infer<S[K]> };

/** An object with exactly these keys (an unknown key is an error: it means the sides disagree). */
export function obj<S extends Shape>(shape: S, allow: readonly string[] = []): Schema<FromShape<S>> {
  return schema((v, p) => {
    if (!isObj(v)) return `${p}: expected an object`;
    for (const k of Object.keys(v)) if (!(k in shape) && !allow.includes(k)) return `${p}.${k}: unknown field`;
    for (const [k, s] of Object.entries(shape)) {
      if (!(k in v)) return `${p}.${k}: missing`;
      const e = s.check(v[k], `${p}.${k}`);
      if (e) return e;
    }
    return undefined;
  });
}

// ---- payload types --------------------------------------------------------------------------

export const XAxisSchema = oneOf(X_AXES);
export const MAX_SMOOTHING = 0.999;

export const ViewStateSchema = obj({
  xAxis: XAxisSchema,
  smoothing: range(0, MAX_SMOOTHING),
  logX: bool,
  logY: bool,
  /** Zoomed x-range in the current axis' units, or null for everything. */
  range: nullable(tuple2(num)),
});
export type ViewState = Infer<typeof ViewStateSchema>;

const PointsSchema = obj({ x: arr(num), y: arr(num), n: arr(int) });
const MarkersSchema = obj({ x: arr(num), step: arr(num), v: arr(oneOf(NON_FINITE)), n: arr(int) });

/** One series (kind/field) of one run: buckets from `from` on replace what the webview holds. */
export const SeriesChunkSchema = obj({
  kind: str,
  field: str,
  /** Rows of the view at full resolution. */
  total: int,
  stride: int,
  from: int,
  raw: PointsSchema,
  /** Null when smoothing is off: the raw line is then the line. */
  smooth: nullable(PointsSchema),
  markers: MarkersSchema,
});
export type SeriesChunk = Infer<typeof SeriesChunkSchema>;

export const RunHeaderSchema = obj({
  key: str,
  name: str,
  status: str,
  /** Index into the theme palette. */
  color: int,
  gradClip: nullable(num),
  lastStep: nullable(num),
  malformed: obj({ metrics: int, samples: int, events: int }),
});
export type RunHeader = Infer<typeof RunHeaderSchema>;

/** x is null where the event has no place on this axis (no token count known): kept so indices line up. */
export const EventMarkSchema = obj({ x: nullable(num), step: num, kind: str, level: str, message: str });
export type EventMark = Infer<typeof EventMarkSchema>;

export const SampleItemSchema = obj({
  step: num,
  t: nullable(num),
  prompt: str,
  text: str,
  /** Settings as display text ("T 0.8 · top-k 40 …"), made by the host. */
  settings: str,
});
export type SampleItem = Infer<typeof SampleItemSchema>;

export const RunSnapshotSchema = obj({
  header: RunHeaderSchema,
  series: arr(SeriesChunkSchema),
  events: arr(EventMarkSchema),
  samples: arr(SampleItemSchema),
});
export type RunSnapshot = Infer<typeof RunSnapshotSchema>;

/** Items from index `from` on replace what the webview holds (appends and rewrites alike). */
const tail = <T>(item: Schema<T>) => nullable(obj({ from: int, items: arr(item) }));

export const RunDeltaSchema = obj({
  key: str,
  header: nullable(RunHeaderSchema),
  series: arr(SeriesChunkSchema),
  events: tail(EventMarkSchema),
  samples: tail(SampleItemSchema),
});
export type RunDelta = Infer<typeof RunDeltaSchema>;

// ---- chat (the dashboard's Chat tab; the host keeps the history, see src/host/chat) ----------

export function intRange(min: number, max: number): Schema<number> {
  return schema((v, p) => (Number.isSafeInteger(v) && (v as number) >= min && (v as number) <= max ? undefined : `${p}: expected an integer in [${min}, ${max}]`));
}

/** Sampling settings of the chat; bounds a little inside what `steelscope serve` accepts. */
export const ChatSettingsSchema = obj({
  temperature: range(0, 5),
  top_k: intRange(0, 1_000_000),
  top_p: range(0.01, 1),
  max_tokens: intRange(1, 8192),
  repetition_penalty: range(0.01, 10),
  /** null: a fresh random seed per answer (the answer's note says which). */
  seed: nullable(intRange(0, 0xffffffff)),
});
export type ChatSettings = Infer<typeof ChatSettingsSchema>;
export const DEFAULT_CHAT_SETTINGS: ChatSettings = { temperature: 0.8, top_k: 40, top_p: 0.95, max_tokens: 128, repetition_penalty: 1.1, seed: null };

/** A complete checkpoint the chat can load; `dir` identifies it in every message. */
export const ChatCheckpointSchema = obj({ dir: str, label: str, step: int, best: bool });
export type ChatCheckpoint = Infer<typeof ChatCheckpointSchema>;

export const CHAT_ANSWER_STATUSES = ['streaming', 'done', 'stopped', 'error'] as const;
/** One checkpoint's answer to a prompt; `note` is display text (how it ended, or the error). */
export const ChatAnswerSchema = obj({ checkpoint: str, label: str, text: str, status: oneOf(CHAT_ANSWER_STATUSES), note: str });
export type ChatAnswer = Infer<typeof ChatAnswerSchema>;

/** A prompt and its answers: lane 0 from the chosen checkpoint, lane 1 from "Compare with". */
export const ChatTurnSchema = obj({ id: int, prompt: str, answers: arr(ChatAnswerSchema) });
export type ChatTurn = Infer<typeof ChatTurnSchema>;

const chatSelection = { checkpoint: str, compare: nullable(str), settings: ChatSettingsSchema };

// ---- the messages ---------------------------------------------------------------------------

export const hostToWebview = {
  /** `keys`: the runs this panel shows, which the webview keeps (vscode.setState) so a window reload can restore the panel. */
  snapshot: obj({ seq: int, view: ViewStateSchema, maxPoints: int, keys: arr(str), runs: arr(RunSnapshotSchema) }, ['type']),
  delta: obj({ seq: int, runs: arr(RunDeltaSchema) }, ['type']),
  /** The whole chat; `focus`: show the Chat tab (Steelscope: Chat with Checkpoint). */
  chatSnapshot: obj({ checkpoints: arr(ChatCheckpointSchema), checkpoint: nullable(str), compare: nullable(str), settings: ChatSettingsSchema, turns: arr(ChatTurnSchema), focus: bool }, ['type']),
  /** A piece of an answer's text, appended to turn `turn`, lane `lane`. */
  chatToken: obj({ turn: int, lane: int, token: str }, ['type']),
  /** An answer ended (done, stopped or failed); `answer` replaces what the webview holds. */
  chatDone: obj({ turn: int, lane: int, answer: ChatAnswerSchema }, ['type']),
  /** A request that could not be served at all (no checkpoint, still busy…). */
  chatError: obj({ message: str }, ['type']),
};

export const webviewToHost = {
  /** `view`: what the webview remembered (vscode.getState) across a reload of this panel. */
  ready: obj({ view: nullable(ViewStateSchema) }, ['type']),
  requestSnapshot: obj({ reason: str }, ['type']),
  setSmoothing: obj({ weight: range(0, MAX_SMOOTHING) }, ['type']),
  setXAxis: obj({ axis: XAxisSchema }, ['type']),
  setScale: obj({ axis: oneOf(['x', 'y'] as const), log: bool }, ['type']),
  zoom: obj({ range: nullable(tuple2(num)) }, ['type']),
  /** A new prompt for the chosen checkpoint (and the compared one). */
  chatSend: obj({ prompt: str, ...chatSelection }, ['type']),
  /** Answer the last prompt again, replacing its answers. */
  chatRegenerate: obj(chatSelection, ['type']),
  /** Cancels every answer still streaming. */
  chatStop: obj({}, ['type']),
  chatClear: obj({}, ['type']),
  /** Remembers the selection and settings in the host (they outlive the webview). */
  chatSelect: obj({ ...chatSelection, checkpoint: nullable(str) }, ['type']),
};

type Messages<M extends Record<string, Schema<unknown>>> = { [K in keyof M]: { type: K } & Infer<M[K]> }[keyof M];
export type HostToWebview = Messages<typeof hostToWebview>;
export type WebviewToHost = Messages<typeof webviewToHost>;
export type HostMessage<K extends HostToWebview['type']> = Extract<HostToWebview, { type: K }>;
export type WebviewMessage<K extends WebviewToHost['type']> = Extract<WebviewToHost, { type: K }>;

export type ChatHostMessage = Extract<HostToWebview, { type: `chat${string}` }>;
export type ChatWebviewMessage = Extract<WebviewToHost, { type: `chat${string}` }>;
export const isChatHostMessage = (m: HostToWebview): m is ChatHostMessage => m.type.startsWith('chat');
export const isChatWebviewMessage = (m: WebviewToHost): m is ChatWebviewMessage => m.type.startsWith('chat');

export type Checked<T> = { ok: true; message: T } | { ok: false; error: string };

function checkMessage<T>(table: Record<string, Schema<unknown>>, value: unknown): Checked<T> {
  if (!isObj(value) || typeof value.type !== 'string') return { ok: false, error: 'message: expected an object with a string type' };
  if (!Object.prototype.hasOwnProperty.call(table, value.type)) return { ok: false, error: `message: unknown type ${JSON.stringify(value.type)}` };
  const error = table[value.type].check(value, value.type);
  return error ? { ok: false, error } : { ok: true, message: value as T };
}

export function checkHostMessage(value: unknown): Checked<HostToWebview> {
  return checkMessage<HostToWebview>(hostToWebview, value);
}

export function checkWebviewMessage(value: unknown): Checked<WebviewToHost> {
  return checkMessage<WebviewToHost>(webviewToHost, value);
}

export const DEFAULT_VIEW: ViewState = { xAxis: 'step', smoothing: 0.6, logX: false, logY: false, range: null };
