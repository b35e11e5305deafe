// The request loop of `steelscope serve`, independent of stdin/stdout: lines in, messages out.
// Generate requests run one at a time in arrival order. Between two tokens a generation yields
// to the event loop (setImmediate), so a cancel line is read and acted on while it runs; a cancel
// is never queued. Protocol: src/shared/serve-protocol.ts.
import {
  EOS_TOKENS,
  GENERATE_DEFAULTS,
  parseServeRequest,
  type DoneMessage,
  type FinishReason,
  type GenerateRequest,
  type RequestId,
  type ServeMessage,
  type ChatTemplate,
} from '../../shared/serve-protocol';
import type { SteelLM } from '../model/gpt';
import { Rng } from '../rng';
import { tokenStream, type SampleOptions } from '../sample/generate';
import { Utf8Constraint } from '../sample/utf8';
import type { BpeTokenizer } from '../tokenizer';
import { chatSpecials, renderChatML } from './chat';
import { StreamingText } from './text';

export interface ServeSessionOptions {
  /**
   * Ids kept when a full KV cache is rebuilt (see generate.ts). Default 3/4 of seq_len: one
   * prefill per seq_len/4 tokens once a chat outgrows the context, instead of one per token.
   */
  cropTo?: number;
  /** How messages are rendered (default chatml): plain continues the last message's text (a base checkpoint). */
  template?: ChatTemplate;
  /** Seed of a request that names none (default: random). */
  drawSeed?: () => number;
  /** Whether a request that does not say samples only tokens that keep the text valid UTF-8 (default false). */
  validUtf8?: boolean;
}

interface Job {
  request: GenerateRequest;
  seed: number;
  cancelled: boolean;
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export class ServeSession {
  private readonly queue: Job[] = [];
  private running: Job | undefined;
  private pumping: Promise<void> | undefined;
  /** The end-of-sequence ids, each with its token. */
  private readonly eos: Map<number, (typeof EOS_TOKENS)[number]>;
  private utf8: Utf8Constraint | undefined; // the vocabulary's masks, built on the first request that asks

  constructor(
    private readonly model: SteelLM,
    private readonly tokenizer: BpeTokenizer,
    private readonly send: (message: ServeMessage) => void,
    private readonly options: ServeSessionOptions = {},
  ) {
    const specials = chatSpecials(tokenizer);
    this.eos = new Map([
      [specials.imEnd, '<|im_end|>'],
      [specials.endOfText, '<|endoftext|>'],
    ]);
  }

  /** One line of input; never throws (a bad line is answered with an error message). */
  handleLine(line: string): void {
    if (line.trim() === '') return;
    const parsed = parseServeRequest(line);
    if (!parsed.ok) {
      this.send({ id: parsed.id, error: { message: parsed.message } });
      return;
    }
    const request = parsed.request;
    if (request.method === 'cancel') {
      this.send({
        id: request.id,
        result: { target: request.params.target, cancelled: this.cancel(request.params.target) },
      });
      return;
    }
    if (this.pending(request.id) !== undefined) {
      this.send({
        id: request.id,
        error: { message: `id ${JSON.stringify(request.id)} is already used by a pending request.` },
      });
      return;
    }
    const seed = request.params.seed ?? (this.options.drawSeed ?? (() => Math.floor(Math.random() * 0x100000000)))();
    this.queue.push({ request, seed, cancelled: false });
    this.pumping ??= this.pump();
  }

  /** Resolves once every accepted request has been answered. */
  async drain(): Promise<void> {
    while (this.pumping !== undefined) await this.pumping;
  }

  /** Cancels the running and every queued generation (each still gets its done message). */
  cancelAll(): void {
    for (const job of [...(this.running ? [this.running] : []), ...this.queue]) this.cancel(job.request.id);
  }

  private pending(id: RequestId): Job | undefined {
    return this.running?.request.id === id ? this.running : this.queue.find((j) => j.request.id === id);
  }

  /** True when the target was running or queued; a queued one is answered at once and dropped. */
  private cancel(target: RequestId): boolean {
    if (this.running?.request.id === target) {
      this.running.cancelled = true;
      return true;
    }
    const index = this.queue.findIndex((j) => j.request.id === target);
    if (index < 0) return false;
    const [job] = this.queue.splice(index, 1);
    this.send(this.done(job, '', 'cancelled', 0, 0));
    return true;
  }

  private async pump(): Promise<void> {
    for (let job = this.queue.shift(); job !== undefined; job = this.queue.shift()) {
      this.running = job;
      try {
        await this.run(job);
      } catch (err) {
        this.send({
          id: job.request.id,
          error: { message: `generation failed: ${err instanceof Error ? err.message : String(err)}` },
        });
      }
      this.running = undefined;
    }
    this.pumping = undefined;
  }

  private promptIds(request: GenerateRequest): number[] {
    const { prompt, messages } = request.params;
    if (messages !== undefined && this.options.template !== 'plain') return renderChatML(this.tokenizer, messages);
    // A base model was never taught turns: it continues the last message as text.
    const text = messages !== undefined ? messages[messages.length - 1].content : (prompt ?? '');
    const ids = this.tokenizer.encode(text, { allowSpecial: messages === undefined });
    // An empty prompt starts a fresh document, as the training stream does after <|endoftext|>.
    return ids.length > 0 ? ids : [this.tokenizer.eotId];
  }

  private sampleOptions(job: Job): SampleOptions {
    const p = { ...GENERATE_DEFAULTS, ...job.request.params };
    return {
      maxTokens: p.max_tokens,
      temperature: p.temperature,
      topK: p.top_k,
      topP: p.top_p,
      repetitionPenalty: p.repetition_penalty,
      rng: new Rng(job.seed),
      cropTo: this.options.cropTo ?? Math.max(1, Math.floor((this.model.config.seq_len * 3) / 4)),
      utf8: (p.valid_utf8 ?? this.options.validUtf8) ? this.utf8Constraint() : undefined,
    };
  }

  private utf8Constraint(): Utf8Constraint {
    this.utf8 ??= Utf8Constraint.forTokenizer(this.tokenizer);
    return this.utf8.fresh();
  }

  /** Streams one generation; yields to the event loop before every token. */
  private async run(job: Job): Promise<void> {
    const promptIds = this.promptIds(job.request);
    const text = new StreamingText(job.request.params.stop);
    const stream = tokenStream(this.model, promptIds, this.sampleOptions(job));
    const id = job.request.id;
    let reason: FinishReason = 'length';
    let eos: (typeof EOS_TOKENS)[number] | undefined;
    let sampled = 0;
    try {
      for (;;) {
        await nextTurn();
        if (job.cancelled) {
          reason = 'cancelled';
          break;
        }
        const step = stream.next();
        if (step.done === true) break;
        sampled++;
        eos = this.eos.get(step.value);
        if (eos !== undefined) {
          reason = 'eos';
          break;
        }
        const { piece, stopped } = text.push(this.tokenizer.decodeBytes([step.value]));
        if (piece !== '') this.send({ id, token: piece });
        if (stopped) {
          reason = 'stop';
          break;
        }
      }
    } finally {
      stream.return(); // frees the KV cache
    }
    const rest = text.flush();
    if (rest !== '') this.send({ id, token: rest });
    this.send({ ...this.done(job, text.value, reason, promptIds.length, sampled), ...(eos ? { eos } : {}) });
  }

  private done(job: Job, text: string, reason: FinishReason, promptTokens: number, sampled: number): DoneMessage {
    return {
      id: job.request.id,
      done: true,
      text,
      reason,
      prompt_tokens: promptTokens,
      completion_tokens: sampled,
      seed: job.seed,
    };
  }
}
