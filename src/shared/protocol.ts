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
import * as v from 'valibot';
import { arr, bool, int, intRange, num, obj, oneOf, pair, parseAs, range, str, type Output } from './schema';
import { NON_FINITE, X_AXES } from './series';
import { AlertRulesSchema } from './alertRules';

// ---- payload types --------------------------------------------------------------------------

export const XAxisSchema = oneOf(X_AXES);
export const MAX_SMOOTHING = 0.999;

export const ViewStateSchema = obj({
  xAxis: XAxisSchema,
  smoothing: range(0, MAX_SMOOTHING),
  logX: bool,
  logY: bool,
  /** Zoomed x-range in the current axis' units, or null for everything. */
  range: v.nullable(pair(num)),
});
export type ViewState = Output<typeof ViewStateSchema>;

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
  smooth: v.nullable(PointsSchema),
  markers: MarkersSchema,
});
export type SeriesChunk = Output<typeof SeriesChunkSchema>;

export const RunHeaderSchema = obj({
  key: str,
  name: str,
  status: str,
  /** Index into the theme palette. */
  color: int,
  gradClip: v.nullable(num),
  lastStep: v.nullable(num),
  malformed: obj({ metrics: int, samples: int, events: int, system: v.optional(int), evals: v.optional(int) }),
  /** Its records carry a time: false leaves the run off the wall and relative time axes (the legend says so). */
  timed: bool,
  /** How it computes ("PyTorch · cuda · bf16 · 8 processes", run.ts describeEngine); null when run.json does not say. */
  engine: v.nullable(str),
  /** The run's checkpoints, oldest first (the dashboard's Checkpoints table). */
  checkpoints: arr(obj({ step: int, evalLoss: v.nullable(num), best: bool, complete: bool })),
});
export type RunHeader = Output<typeof RunHeaderSchema>;

/** x is null where the event has no place on this axis (no token count known): kept so indices line up. */
export const EventMarkSchema = obj({ x: v.nullable(num), step: num, kind: str, level: str, message: str });
export type EventMark = Output<typeof EventMarkSchema>;

export const SampleItemSchema = obj({
  step: num,
  t: v.nullable(num),
  prompt: str,
  text: str,
  /** Settings as display text ("T 0.8 · top-k 40 …"), made by the host. */
  settings: str,
});
export type SampleItem = Output<typeof SampleItemSchema>;

/** One evals.jsonl record (src/shared/eval.ts) as the Evals section needs it; a missing value is null. */
export const EvalItemSchema = obj({
  step: int,
  /**
   * Its place on the view's x axis: the step, or the token count and time of the train record at that
   * step (the host's stepX); null where the run has none (off the chart on that axis, as an event).
   */
  x: v.nullable(num),
  task: str,
  subject: str,
  n: int,
  acc: v.nullable(num),
  accNorm: v.nullable(num),
  stderr: v.nullable(num),
  ppl: v.nullable(num),
});
export type EvalItem = Output<typeof EvalItemSchema>;

export const RunSnapshotSchema = obj({
  header: RunHeaderSchema,
  series: arr(SeriesChunkSchema),
  events: arr(EventMarkSchema),
  samples: arr(SampleItemSchema),
  /** evals.jsonl in file order (a later record of the same step, task and subject supersedes). */
  evals: arr(EvalItemSchema),
});
export type RunSnapshot = Output<typeof RunSnapshotSchema>;

/** Items from index `from` on replace what the webview holds (appends and rewrites alike). */
const tail = <S extends v.GenericSchema>(item: S) => v.nullable(obj({ from: int, items: arr(item) }));

export const RunDeltaSchema = obj({
  key: str,
  header: v.nullable(RunHeaderSchema),
  series: arr(SeriesChunkSchema),
  events: tail(EventMarkSchema),
  samples: tail(SampleItemSchema),
  evals: tail(EvalItemSchema),
});
export type RunDelta = Output<typeof RunDeltaSchema>;

// ---- chat (the dashboard's Chat tab; the host keeps the history, see src/host/chat) ----------

/** Sampling settings of the chat; bounds a little inside what `steelscope serve` accepts. */
export const ChatSettingsSchema = obj({
  temperature: range(0, 5),
  top_k: intRange(0, 1_000_000),
  top_p: range(0.01, 1),
  max_tokens: intRange(1, 8192),
  repetition_penalty: range(0.01, 10),
  /** null: a fresh random seed per answer (the answer's note says which). */
  seed: v.nullable(intRange(0, 0xffffffff)),
  /** Sample only tokens that keep the text valid UTF-8 (serve's valid_utf8); absent in older saved state: off. */
  valid_utf8: v.optional(bool, false),
});
export type ChatSettings = Output<typeof ChatSettingsSchema>;
export const DEFAULT_CHAT_SETTINGS: ChatSettings = {
  temperature: 0.8,
  top_k: 40,
  top_p: 0.95,
  max_tokens: 128,
  repetition_penalty: 1.1,
  seed: null,
  valid_utf8: false,
};

/** A complete checkpoint the chat can load; `dir` identifies it in every message. */
export const ChatCheckpointSchema = obj({ dir: str, label: str, step: int, best: bool });
export type ChatCheckpoint = Output<typeof ChatCheckpointSchema>;

export const CHAT_ANSWER_STATUSES = ['streaming', 'done', 'stopped', 'error'] as const;
/** One checkpoint's answer to a prompt; `note` is display text (how it ended, or the error). */
export const ChatAnswerSchema = obj({
  checkpoint: str,
  label: str,
  text: str,
  status: oneOf(CHAT_ANSWER_STATUSES),
  note: str,
});
export type ChatAnswer = Output<typeof ChatAnswerSchema>;

/** A prompt and its answers: lane 0 from the chosen checkpoint, lane 1 from "Compare with". */
export const ChatTurnSchema = obj({ id: int, prompt: str, answers: arr(ChatAnswerSchema) });
export type ChatTurn = Output<typeof ChatTurnSchema>;

// ---- the messages ---------------------------------------------------------------------------

/** One message: its `type` and exactly these fields. */
const message = <K extends string, E extends v.ObjectEntries>(type: K, entries: E) =>
  obj({ type: v.literal(type), ...entries });

const chatSelection = { checkpoint: str, compare: v.nullable(str), settings: ChatSettingsSchema };

const unknownType = (issue: v.BaseIssue<unknown>) =>
  issue.path ? `unknown type ${issue.received}` : 'expected an object with a string type';

export const HostToWebviewSchema = v.variant(
  'type',
  [
    /** `keys`: the runs this panel shows, which the webview keeps (vscode.setState) so a window reload can restore the panel. */
    message('snapshot', {
      seq: int,
      view: ViewStateSchema,
      maxPoints: int,
      keys: arr(str),
      runs: arr(RunSnapshotSchema),
    }),
    message('delta', { seq: int, runs: arr(RunDeltaSchema) }),
    /** The whole chat; `focus`: show the Chat tab (Steelscope: Chat with Checkpoint). */
    message('chatSnapshot', {
      checkpoints: arr(ChatCheckpointSchema),
      checkpoint: v.nullable(str),
      compare: v.nullable(str),
      settings: ChatSettingsSchema,
      turns: arr(ChatTurnSchema),
      focus: bool,
    }),
    /** A piece of an answer's text, appended to turn `turn`, lane `lane`. */
    message('chatToken', { turn: int, lane: int, token: str }),
    /** An answer ended (done, stopped or failed); `answer` replaces what the webview holds. */
    message('chatDone', { turn: int, lane: int, answer: ChatAnswerSchema }),
    /** A request that could not be served at all (no checkpoint, still busy…). */
    message('chatError', { message: str }),
    /** The alert rules of this panel's runs (sent after "ready" and after each change). */
    message('alertRules', { rules: AlertRulesSchema }),
  ],
  unknownType,
);

/** A chart picture: a PNG data URL, at most 32 MiB of base64 (a 4K canvas is a few MB). */
export const PNG_DATA_URL_PREFIX = 'data:image/png;base64,';
const PngDataUrlSchema = v.pipe(
  str,
  v.startsWith(PNG_DATA_URL_PREFIX, `expected a ${PNG_DATA_URL_PREFIX}… URL`),
  v.maxLength(32 * 2 ** 20, 'expected at most 32 MiB'),
);

export const WebviewToHostSchema = v.variant(
  'type',
  [
    /** `view`: what the webview remembered (vscode.getState) across a reload of this panel. */
    message('ready', { view: v.nullable(ViewStateSchema) }),
    message('requestSnapshot', { reason: str }),
    message('setSmoothing', { weight: range(0, MAX_SMOOTHING) }),
    message('setXAxis', { axis: XAxisSchema }),
    message('setScale', { axis: oneOf(['x', 'y'] as const), log: bool }),
    message('zoom', { range: v.nullable(pair(num)) }),
    /** One chart as a PNG (chart.js toBase64Image) for the user to save; `chart` is its key (loss, lr…). */
    message('savePng', { chart: str, dataUrl: PngDataUrlSchema }),
    /** A new prompt for the chosen checkpoint (and the compared one). */
    message('chatSend', { prompt: str, ...chatSelection }),
    /** Answer the last prompt again, replacing its answers. */
    message('chatRegenerate', chatSelection),
    /** Cancels every answer still streaming. */
    message('chatStop', {}),
    message('chatClear', {}),
    /** Remembers the selection and settings in the host (they outlive the webview). */
    message('chatSelect', { ...chatSelection, checkpoint: v.nullable(str) }),
    /** Replaces the alert rules of this panel's runs. */
    message('setAlertRules', { rules: AlertRulesSchema }),
  ],
  unknownType,
);

export type HostToWebview = Output<typeof HostToWebviewSchema>;
export type WebviewToHost = Output<typeof WebviewToHostSchema>;
export type HostMessage<K extends HostToWebview['type']> = Extract<HostToWebview, { type: K }>;
export type WebviewMessage<K extends WebviewToHost['type']> = Extract<WebviewToHost, { type: K }>;

export type ChatHostMessage = Extract<HostToWebview, { type: `chat${string}` }>;
export type ChatWebviewMessage = Extract<WebviewToHost, { type: `chat${string}` }>;
export const isChatHostMessage = (m: HostToWebview): m is ChatHostMessage => m.type.startsWith('chat');
export const isChatWebviewMessage = (m: WebviewToHost): m is ChatWebviewMessage => m.type.startsWith('chat');

export type Checked<T> = { ok: true; message: T } | { ok: false; error: string };

type MessageSchema = typeof HostToWebviewSchema | typeof WebviewToHostSchema;

/** Failures are named from the message's type ("setXAxis.axis: …"), or "message" when it has none we know. */
function checkMessage<S extends MessageSchema>(schema: S, value: unknown): Checked<Output<S>> {
  const type = typeof value === 'object' && value !== null && 'type' in value ? value.type : undefined;
  const known = schema.options.some((option) => option.entries.type.literal === type);
  const parsed = parseAs(schema, value, known && typeof type === 'string' ? type : 'message');
  return parsed.ok ? { ok: true, message: parsed.value } : parsed;
}

export function checkHostMessage(value: unknown): Checked<HostToWebview> {
  return checkMessage(HostToWebviewSchema, value);
}

export function checkWebviewMessage(value: unknown): Checked<WebviewToHost> {
  return checkMessage(WebviewToHostSchema, value);
}

export const DEFAULT_VIEW: ViewState = { xAxis: 'step', smoothing: 0.6, logX: false, logY: false, range: null };
