// The protocol of `steelscope serve`: one JSON object per line on stdin (requests) and on stdout
// (messages). Declared once here for both ends (the CLI and the extension's chat), each direction
// with a runtime validator, because a line on a pipe is only text until it is checked.
//
// Requests (stdin):
//   {"id":1,"method":"generate","params":{"prompt":"…" | "messages":[{"role","content"}…], …}}
//   {"id":2,"method":"cancel","params":{"target":1}}
// Messages (stdout):
//   {"ready":true,"protocol":"steelscope.serve/1","checkpoint":…,"step":…,"config":…,"backend":…}  once, first
//   {"id":1,"token":"…"}          a piece of text (whole characters only), any number of times
//   {"id":1,"done":true,"text":"…","reason":"length"|"stop"|"eos"|"cancelled",…}   ends a generate
//   {"id":2,"result":{"target":1,"cancelled":true}}   answers a cancel (false: nothing to cancel)
//   {"id":…|null,"error":{"message":"…"}}   a request that could not be served (id null when the
//                 line had no readable id; also the single line of a server that could not start)
// Requests run one at a time in arrival order; a cancel acts at once on the running or a queued
// generate (a queued one is answered with done/cancelled and never runs).
import { validateConfig, type TrainConfig } from './config';

export const SERVE_PROTOCOL = 'steelscope.serve/1';

export type RequestId = number | string;
export type ChatRole = 'system' | 'user' | 'assistant';
export const CHAT_ROLES: readonly ChatRole[] = ['system', 'user', 'assistant'];

export interface ChatMessage {
  role: ChatRole;
  content: string;
}

/** Exactly one of prompt (raw text; ChatML specials in it are honoured) and messages. */
export interface GenerateParams {
  prompt?: string;
  messages?: ChatMessage[];
  /** Tokens to generate at most (default 256). */
  max_tokens?: number;
  /** 0 = greedy (default 0.8). */
  temperature?: number;
  /** 0 = off (default 40). */
  top_k?: number;
  /** In (0, 1]; 1 = off (default 0.95). */
  top_p?: number;
  /** > 0; 1 = off (default 1), as in Hugging Face. */
  repetition_penalty?: number;
  /** Unsigned 32-bit seed; omitted: a random one, reported in the done message. */
  seed?: number;
  /** Text that ends generation (reason "stop"); the text returned stops before it. */
  stop?: string[];
}

export interface GenerateRequest {
  id: RequestId;
  method: 'generate';
  params: GenerateParams;
}

export interface CancelRequest {
  id: RequestId;
  method: 'cancel';
  params: { target: RequestId };
}

export type ServeRequest = GenerateRequest | CancelRequest;

export const GENERATE_DEFAULTS = { max_tokens: 256, temperature: 0.8, top_k: 40, top_p: 0.95, repetition_penalty: 1 } as const;
export const MAX_STOP_STRINGS = 16;

export interface ReadyMessage {
  ready: true;
  protocol: typeof SERVE_PROTOCOL;
  /** The checkpoint folder that was loaded. */
  checkpoint: string;
  step: number;
  config: TrainConfig;
  backend: string;
}

export interface TokenMessage {
  id: RequestId;
  token: string;
}

export type FinishReason = 'length' | 'stop' | 'eos' | 'cancelled';
export const FINISH_REASONS: readonly FinishReason[] = ['length', 'stop', 'eos', 'cancelled'];

export interface DoneMessage {
  id: RequestId;
  done: true;
  /** Everything generated (the concatenation of the token messages), stop string excluded. */
  text: string;
  reason: FinishReason;
  /** Ids of the rendered prompt. */
  prompt_tokens: number;
  /** Ids sampled, including an end-of-sequence id or the ids of a stop string. */
  completion_tokens: number;
  /** The seed that was used: the request's, or the random one drawn for it. */
  seed: number;
}

export interface CancelResult {
  id: RequestId;
  result: { target: RequestId; cancelled: boolean };
}

export interface ErrorMessage {
  id: RequestId | null;
  error: { message: string };
}

export type ServeMessage = ReadyMessage | TokenMessage | DoneMessage | CancelResult | ErrorMessage;

export type ParsedRequest = { ok: true; request: ServeRequest } | { ok: false; id: RequestId | null; message: string };

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function isRequestId(value: unknown): value is RequestId {
  return (typeof value === 'number' && Number.isFinite(value)) || typeof value === 'string';
}

class RequestError extends Error {}

function fail(message: string): never {
  throw new RequestError(message);
}

function optionalNumber(params: Json, key: string, ok: (n: number) => boolean, what: string): void {
  const value = params[key];
  if (value === undefined) return;
  if (typeof value !== 'number' || !Number.isFinite(value) || !ok(value)) fail(`params.${key} must be ${what}, got ${JSON.stringify(value)}.`);
}

function checkMessages(value: unknown): void {
  if (!Array.isArray(value) || value.length === 0) fail('params.messages must be a non-empty array of {role, content}.');
  value.forEach((m: unknown, i) => {
    if (!isObject(m) || !CHAT_ROLES.includes(m.role as ChatRole) || typeof m.content !== 'string') {
      fail(`params.messages[${i}] must be {"role": ${CHAT_ROLES.map((r) => `"${r}"`).join('|')}, "content": string}.`);
    }
    const extra = Object.keys(m).find((k) => k !== 'role' && k !== 'content');
    if (extra !== undefined) fail(`params.messages[${i}] has an unknown key "${extra}".`);
  });
}

const GENERATE_KEYS = ['prompt', 'messages', 'max_tokens', 'temperature', 'top_k', 'top_p', 'repetition_penalty', 'seed', 'stop'];

function checkGenerateParams(params: Json): GenerateParams {
  const unknown = Object.keys(params).find((k) => !GENERATE_KEYS.includes(k));
  if (unknown !== undefined) fail(`Unknown generate parameter "${unknown}". Allowed: ${GENERATE_KEYS.join(', ')}.`);
  if ((params.prompt === undefined) === (params.messages === undefined)) fail('generate needs exactly one of params.prompt and params.messages.');
  if (params.prompt !== undefined && typeof params.prompt !== 'string') fail('params.prompt must be a string.');
  if (params.messages !== undefined) checkMessages(params.messages);
  const int = Number.isInteger;
  optionalNumber(params, 'max_tokens', (n) => int(n) && n >= 1 && n <= 1_000_000, 'an integer in 1..1000000');
  optionalNumber(params, 'temperature', (n) => n >= 0, 'a number >= 0');
  optionalNumber(params, 'top_k', (n) => int(n) && n >= 0, 'an integer >= 0');
  optionalNumber(params, 'top_p', (n) => n > 0 && n <= 1, 'a number in (0, 1]');
  optionalNumber(params, 'repetition_penalty', (n) => n > 0, 'a number > 0');
  optionalNumber(params, 'seed', (n) => int(n) && n >= 0 && n <= 0xffffffff, 'an integer in 0..4294967295');
  const stop = params.stop;
  if (stop !== undefined) {
    const ok = Array.isArray(stop) && stop.length <= MAX_STOP_STRINGS && stop.every((s) => typeof s === 'string' && s.length > 0);
    if (!ok) fail(`params.stop must be an array of at most ${MAX_STOP_STRINGS} non-empty strings.`);
  }
  return params as GenerateParams;
}

function checkRequest(value: unknown): ServeRequest {
  if (!isObject(value)) fail('A request must be a JSON object.');
  if (!isRequestId(value.id)) fail('A request needs an "id" (number or string).');
  const params = value.params ?? {};
  if (!isObject(params)) fail('"params" must be an object.');
  if (value.method === 'generate') return { id: value.id, method: 'generate', params: checkGenerateParams(params) };
  if (value.method === 'cancel') {
    if (!isRequestId(params.target)) fail('cancel needs params.target, the id of the request to stop.');
    return { id: value.id, method: 'cancel', params: { target: params.target } };
  }
  return fail(`Unknown method ${JSON.stringify(value.method)}; the methods are "generate" and "cancel".`);
}

/** Parses and checks one request line; a failure keeps the id when one could be read. */
export function parseServeRequest(line: string): ParsedRequest {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (err) {
    return { ok: false, id: null, message: `Not valid JSON: ${(err as Error).message}` };
  }
  try {
    return { ok: true, request: checkRequest(value) };
  } catch (err) {
    if (!(err instanceof RequestError)) throw err;
    const id = isObject(value) && isRequestId(value.id) ? value.id : null;
    return { ok: false, id, message: err.message };
  }
}

function isConfig(value: unknown): value is TrainConfig {
  if (!isObject(value)) return false;
  try {
    validateConfig(value as unknown as TrainConfig);
    return true;
  } catch {
    return false;
  }
}

/** Checks a parsed stdout line of the server; undefined when it is no message of this protocol. */
export function asServeMessage(value: unknown): ServeMessage | undefined {
  if (!isObject(value)) return undefined;
  if (value.ready === true) {
    const ok = value.protocol === SERVE_PROTOCOL && typeof value.checkpoint === 'string' && Number.isInteger(value.step) && isConfig(value.config) && typeof value.backend === 'string';
    return ok ? (value as unknown as ReadyMessage) : undefined;
  }
  if (isObject(value.error)) {
    return (value.id === null || isRequestId(value.id)) && typeof value.error.message === 'string' ? (value as unknown as ErrorMessage) : undefined;
  }
  if (!isRequestId(value.id)) return undefined;
  if (typeof value.token === 'string') return value as unknown as TokenMessage;
  if (value.done === true) {
    const ok = typeof value.text === 'string' && FINISH_REASONS.includes(value.reason as FinishReason) && [value.prompt_tokens, value.completion_tokens, value.seed].every(Number.isInteger);
    return ok ? (value as unknown as DoneMessage) : undefined;
  }
  if (isObject(value.result)) {
    return isRequestId(value.result.target) && typeof value.result.cancelled === 'boolean' ? (value as unknown as CancelResult) : undefined;
  }
  return undefined;
}

/** parse + asServeMessage for one stdout line. */
export function parseServeMessage(line: string): ServeMessage | undefined {
  try {
    return asServeMessage(JSON.parse(line));
  } catch {
    return undefined;
  }
}
