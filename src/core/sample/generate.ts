// Autoregressive sampling: the model's last-position logits are read into JS and sampled there
// with our seeded Rng, so a seed gives the same text on every backend. Full recompute per token
// over the last seq_len ids (a KV cache comes later).

import * as tf from '@tensorflow/tfjs-core';
import type { SteelLM } from '../model/gpt';
import type { Rng } from '../rng';

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
}

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
export function sampleFromLogits(logits: Float32Array, opts: Omit<SampleOptions, 'maxTokens' | 'stopIds'>): number {
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

/** Returns only the new ids; a sampled stop id ends generation and is not returned. */
export function generate(model: SteelLM, promptIds: readonly number[], opts: SampleOptions): number[] {
  if (promptIds.length === 0) throw new Error('generate: the prompt must hold at least one id.');
  const ids = [...promptIds];
  const out: number[] = [];
  const stops = new Set(opts.stopIds ?? []);
  for (let i = 0; i < opts.maxTokens; i++) {
    const context = ids.slice(-model.config.seq_len);
    const next = sampleFromLogits(lastLogits(model, context), opts);
    if (stops.has(next)) break;
    out.push(next);
    ids.push(next);
  }
  return out;
}
