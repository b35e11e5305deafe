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
import * as v from 'valibot';
import { TrainConfigSchema } from './config';
import {
  bool,
  describeIssue,
  int,
  intRange,
  num,
  oneOf,
  parseJson,
  parseOrUndefined,
  str,
  type Output,
} from './schema';

export const SERVE_PROTOCOL = 'steelscope.serve/1';

const RequestIdSchema = v.union([num, str], 'expected a number or a string');
export type RequestId = Output<typeof RequestIdSchema>;
export const CHAT_ROLES = ['system', 'user', 'assistant'] as const;
export type ChatRole = (typeof CHAT_ROLES)[number];
export const CHAT_TEMPLATES = ['chatml', 'plain'] as const;
export type ChatTemplate = (typeof CHAT_TEMPLATES)[number];

export const ChatMessageSchema = v.strictObject({ role: oneOf(CHAT_ROLES), content: str }, 'expected {role, content}');
export type ChatMessage = Output<typeof ChatMessageSchema>;

export const GENERATE_DEFAULTS = {
  max_tokens: 256,
  temperature: 0.8,
  top_k: 40,
  top_p: 0.95,
  repetition_penalty: 1,
} as const;
export const MAX_STOP_STRINGS = 16;

const atLeast = (min: number, expected: string) => v.pipe(num, v.minValue(min, expected));
const above = (min: number, expected: string) => v.pipe(num, v.gtValue(min, expected));

/** Exactly one of prompt (raw text; ChatML specials in it are honoured) and messages. */
const GenerateParamsSchema = v.strictObject(
  {
    prompt: v.optional(str),
    messages: v.optional(
      v.pipe(v.array(ChatMessageSchema, 'expected an array'), v.nonEmpty('expected a non-empty array')),
    ),
    /** Tokens to generate at most (default 256). */
    max_tokens: v.optional(intRange(1, 1_000_000)),
    /** 0 = greedy (default 0.8). */
    temperature: v.optional(atLeast(0, 'expected a number >= 0')),
    /** 0 = off (default 40). */
    top_k: v.optional(v.pipe(int, v.minValue(0, 'expected an integer >= 0'))),
    /** In (0, 1]; 1 = off (default 0.95). */
    top_p: v.optional(v.pipe(above(0, 'expected a number in (0, 1]'), v.maxValue(1, 'expected a number in (0, 1]'))),
    /** > 0; 1 = off (default 1), as in Hugging Face. */
    repetition_penalty: v.optional(above(0, 'expected a number > 0')),
    /** Unsigned 32-bit seed; omitted: a random one, reported in the done message. */
    seed: v.optional(intRange(0, 0xffffffff)),
    /** Sample only tokens that keep the text valid UTF-8 (default: the server's --valid-utf8). */
    valid_utf8: v.optional(bool),
    /** Text that ends generation (reason "stop"); the text returned stops before it. */
    stop: v.optional(
      v.pipe(
        v.array(
          v.pipe(v.string('expected a non-empty string'), v.nonEmpty('expected a non-empty string')),
          'expected an array',
        ),
        v.maxLength(MAX_STOP_STRINGS, `expected at most ${MAX_STOP_STRINGS} strings`),
      ),
    ),
  },
  'expected an object',
);
export type GenerateParams = Output<typeof GenerateParamsSchema>;

/** Checked before the fields, so that "both" or "neither" is said as such. */
const GenerateParamsCheck = v.pipe(
  v.looseObject({}, '"params" must be an object.'),
  v.check(
    (params) => 'prompt' in params !== 'messages' in params,
    'generate needs exactly one of params.prompt and params.messages.',
  ),
  GenerateParamsSchema,
);

const CancelParamsSchema = v.strictObject({ target: RequestIdSchema }, 'expected an object');

const REQUESTS = {
  generate: v.object({ id: RequestIdSchema, method: v.literal('generate'), params: GenerateParamsCheck }),
  cancel: v.object({ id: RequestIdSchema, method: v.literal('cancel'), params: CancelParamsSchema }),
};
export type GenerateRequest = Output<typeof REQUESTS.generate>;
export type CancelRequest = Output<typeof REQUESTS.cancel>;
export type ServeRequest = GenerateRequest | CancelRequest;

export const FINISH_REASONS = ['length', 'stop', 'eos', 'cancelled'] as const;
/** The end-of-sequence tokens a generation stops at (reason "eos"). */
export const EOS_TOKENS = ['<|im_end|>', '<|endoftext|>'] as const;
export type FinishReason = (typeof FINISH_REASONS)[number];

const MESSAGES = {
  ready: v.object({
    ready: v.literal(true),
    protocol: v.literal(SERVE_PROTOCOL),
    /** The checkpoint folder that was loaded. */
    checkpoint: str,
    step: int,
    config: TrainConfigSchema,
    backend: str,
    /**
     * How a messages request is rendered: "chatml" (a fine-tuned checkpoint: the whole history in
     * ChatML) or "plain" (a base checkpoint: the last message continued as plain text). Optional:
     * servers before it rendered ChatML always.
     */
    template: v.optional(oneOf(CHAT_TEMPLATES)),
  }),
  token: v.object({ id: RequestIdSchema, token: str }),
  done: v.object({
    id: RequestIdSchema,
    done: v.literal(true),
    /** Everything generated (the concatenation of the token messages), stop string excluded. */
    text: str,
    reason: oneOf(FINISH_REASONS),
    /** With reason "eos": which end token was sampled (a fine-tuned model ends its turn with <|im_end|>). */
    eos: v.optional(oneOf(EOS_TOKENS)),
    /** Ids of the rendered prompt. */
    prompt_tokens: int,
    /** Ids sampled, including an end-of-sequence id or the ids of a stop string. */
    completion_tokens: int,
    /** The seed that was used: the request's, or the random one drawn for it. */
    seed: int,
  }),
  result: v.object({ id: RequestIdSchema, result: v.object({ target: RequestIdSchema, cancelled: v.boolean() }) }),
  error: v.object({ id: v.nullable(RequestIdSchema), error: v.object({ message: str }) }),
};
export type ReadyMessage = Output<typeof MESSAGES.ready>;
export type TokenMessage = Output<typeof MESSAGES.token>;
export type DoneMessage = Output<typeof MESSAGES.done>;
export type CancelResult = Output<typeof MESSAGES.result>;
export type ErrorMessage = Output<typeof MESSAGES.error>;
export type ServeMessage = ReadyMessage | TokenMessage | DoneMessage | CancelResult | ErrorMessage;

export type ParsedRequest = { ok: true; request: ServeRequest } | { ok: false; id: RequestId | null; message: string };

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function isRequestId(value: unknown): value is RequestId {
  return v.is(RequestIdSchema, value);
}

/** The first problem of a request, in words a client can act on. */
function checkRequest(value: unknown): ParsedRequest {
  if (!isObject(value)) return { ok: false, id: null, message: 'A request must be a JSON object.' };
  if (!isRequestId(value.id)) return { ok: false, id: null, message: 'A request needs an "id" (number or string).' };
  const id = value.id;
  const method = value.method;
  if (method !== 'generate' && method !== 'cancel') {
    return {
      ok: false,
      id,
      message: `Unknown method ${JSON.stringify(method)}; the methods are "generate" and "cancel".`,
    };
  }
  const result = v.safeParse(REQUESTS[method], { ...value, params: value.params ?? {} }, { abortEarly: true });
  if (result.success) return { ok: true, request: result.output };
  const issue = result.issues[0];
  return {
    ok: false,
    id,
    message: issue.type === 'check' || issue.type === 'loose_object' ? issue.message : describeIssue(issue, 'request'),
  };
}

/** Parses and checks one request line; a failure keeps the id when one could be read. */
export function parseServeRequest(line: string): ParsedRequest {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (err) {
    return { ok: false, id: null, message: `Not valid JSON: ${(err as Error).message}` };
  }
  return checkRequest(value);
}

/** The schema a parsed line must fit, chosen by the key that tells the messages apart. */
function schemaFor(value: Json) {
  if (value.ready === true) return MESSAGES.ready;
  if ('error' in value) return MESSAGES.error;
  if ('token' in value) return MESSAGES.token;
  if (value.done === true) return MESSAGES.done;
  if ('result' in value) return MESSAGES.result;
  return undefined;
}

/** Checks a parsed stdout line of the server; undefined when it is no message of this protocol. */
export function asServeMessage(value: unknown): ServeMessage | undefined {
  if (!isObject(value)) return undefined;
  const schema = schemaFor(value);
  return schema && parseOrUndefined(schema, value);
}

/** parse + asServeMessage for one stdout line. */
export function parseServeMessage(line: string): ServeMessage | undefined {
  return asServeMessage(parseJson(line));
}
