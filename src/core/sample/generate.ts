// Autoregressive sampling: the model's last-position logits are read into JS and sampled there
// with our seeded Rng, so a seed gives the same text on every backend. By default the keys and
// values of earlier positions are kept in a KvCache, so a token costs one row of work; without
// it every token recomputes the forward pass over the last seq_len ids.
//
// Context longer than seq_len: without the cache the window slides by one id per token. With
// the cache, once it is full it is cropped to the last `cropTo` ids and rebuilt by one prefill
// from position 0. cropTo = seq_len (the default) rebuilds on every token once full, which is
// exactly the sliding window (same ids as without the cache); a smaller cropTo rebuilds once
// every seq_len - cropTo + 1 tokens, faster, at the price of a shorter context after a rebuild.

import * as tf from '@tensorflow/tfjs-core';
import type { SteelLM } from '../model/gpt';
import { KvCache } from '../model/kvcache';
import type { Rng } from '../rng';
import type { Utf8Constraint } from './utf8';

export interface SampleOptions {
  maxTokens: number;
  /** 0 = greedy (argmax, lowest id on ties). */
  temperature: number;
  /** 0 = off. */
  topK: number;
  /** 1 = off. */
  topP: number;
  rng: Rng;
  /** Generation stops when one of these is sampled; the stop id is NOT included in the result. */
  stopIds?: readonly number[];
  /** Hugging Face's repetition penalty over every id of the sequence so far; 1 (default) = off. */
  repetitionPenalty?: number;
  /** Keep keys/values of earlier positions (default true); false recomputes the context per token. */
  useCache?: boolean;
  /** With the cache: ids kept when a full cache is rebuilt, 1..seq_len (default seq_len). */
  cropTo?: number;
  /** Only ids that keep the generated text valid UTF-8 (a fresh one per generation: it holds the pending bytes). */
  utf8?: Utf8Constraint;
}

type DrawOptions = Pick<SampleOptions, 'temperature' | 'topK' | 'topP' | 'rng'>;

/** Lowest id among the largest logits. */
export function argmax(logits: Float32Array): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

/**
 * Draws one id: temperature, then top-k, then top-p (nucleus) over the survivors, then a draw with
 * rng.next(). Candidates are ordered by logit, ties by lower id, so the result is deterministic.
 */
export function sampleFromLogits(logits: Float32Array, opts: DrawOptions): number {
  if (opts.temperature <= 0) return argmax(logits);
  const order = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a] || a - b);
  const k = opts.topK > 0 ? Math.min(opts.topK, order.length) : order.length;
  const top = order.slice(0, k);
  const maxLogit = logits[top[0]];
  const weights = top.map((id) => Math.exp((logits[id] - maxLogit) / opts.temperature));
  const total = weights.reduce((s, w) => s + w, 0);
  let keep = top.length;
  if (opts.topP < 1) {
    // Smallest prefix whose probability reaches topP (at least one candidate).
    let cum = 0;
    for (let i = 0; i < top.length; i++) {
      cum += weights[i] / total;
      if (cum >= opts.topP) {
        keep = i + 1;
        break;
      }
    }
  }
  const kept = weights.slice(0, keep);
  const keptTotal = kept.reduce((s, w) => s + w, 0);
  let r = opts.rng.next() * keptTotal;
  for (let i = 0; i < keep; i++) {
    r -= kept[i];
    if (r < 0) return top[i];
  }
  return top[keep - 1]; // rounding left r at ~0
}

/**
 * Hugging Face's RepetitionPenaltyLogitsProcessor, in place: the logit of every id in `seen` is
 * divided by penalty when positive and multiplied by it when negative (penalty > 1 discourages).
 */
export function applyRepetitionPenalty(logits: Float32Array, seen: Iterable<number>, penalty: number): void {
  if (penalty === 1) return;
  for (const id of seen) {
    const l = logits[id];
    logits[id] = l > 0 ? l / penalty : l * penalty;
  }
}

/** Logits [V] of the last position for a context of ids (every tensor disposed). */
function lastLogits(model: SteelLM, context: readonly number[]): Float32Array {
  const V = model.config.vocab_size;
  const L = context.length;
  const last = tf.tidy(() => {
    const idx = tf.tensor2d(Int32Array.from(context), [1, L], 'int32'); // [1, L]
    return tf.reshape(tf.slice(model.forward(idx), [0, L - 1, 0], [1, 1, V]), [V]); // [V]
  });
  const values = Float32Array.from(last.dataSync() as Float32Array);
  last.dispose();
  return values;
}

/** Next-token logits for the whole sequence so far (ids only ever grow between calls). */
interface LogitSource {
  next(ids: readonly number[]): Float32Array;
  dispose(): void;
}

function recomputeSource(model: SteelLM): LogitSource {
  return { next: (ids) => lastLogits(model, ids.slice(-model.config.seq_len)), dispose: () => undefined };
}

function cachedSource(model: SteelLM, cropTo: number): LogitSource {
  const cache = new KvCache(model);
  let fed = 0; // ids of the sequence already in the cache (or dropped from it by a crop)
  return {
    next(ids) {
      const fresh = ids.slice(fed);
      fed = ids.length;
      if (cache.length === 0) return cache.forward(ids.slice(-model.config.seq_len)); // the prompt
      if (fresh.length <= cache.free) return cache.forward(fresh);
      cache.reset();
      return cache.forward(ids.slice(-cropTo));
    },
    dispose: () => cache.dispose(),
  };
}

/**
 * The sampled ids one at a time, up to maxTokens (stopIds are not looked at: the caller decides
 * when to stop). Stopping early with return() — or `break` in a for-of — frees the cache.
 */
export function tokenStream(
  model: SteelLM,
  promptIds: readonly number[],
  opts: SampleOptions,
): Generator<number, void, undefined> {
  if (promptIds.length === 0) throw new Error('generate: the prompt must hold at least one id.');
  const seqLen = model.config.seq_len;
  const cropTo = opts.cropTo ?? seqLen;
  if (!Number.isInteger(cropTo) || cropTo < 1 || cropTo > seqLen)
    throw new RangeError(`generate: cropTo must be an integer in 1..${seqLen}, got ${cropTo}.`);
  const penalty = opts.repetitionPenalty ?? 1;
  if (!(penalty > 0)) throw new RangeError(`generate: repetitionPenalty must be > 0, got ${penalty}.`);
  return stream(
    promptIds,
    opts,
    opts.useCache === false ? recomputeSource(model) : cachedSource(model, cropTo),
    penalty,
  );
}

function* stream(
  promptIds: readonly number[],
  opts: SampleOptions,
  source: LogitSource,
  penalty: number,
): Generator<number, void, undefined> {
  const ids = [...promptIds];
  const seen = new Set(ids);
  try {
    for (let i = 0; i < opts.maxTokens; i++) {
      const logits = source.next(ids);
      applyRepetitionPenalty(logits, seen, penalty);
      opts.utf8?.mask(logits);
      const next = sampleFromLogits(logits, opts);
      opts.utf8?.accept(next);
      ids.push(next);
      seen.add(next);
      yield next;
    }
  } finally {
    source.dispose();
  }
}

/** Returns only the new ids; a sampled stop id ends generation and is not returned. */
export function generate(model: SteelLM, promptIds: readonly number[], opts: SampleOptions): number[] {
  const out: number[] = [];
  const stops = new Set(opts.stopIds ?? []);
  for (const next of tokenStream(model, promptIds, opts)) {
    if (stops.has(next)) break;
    out.push(next);
  }
  return out;
}
