// Scoring by log-likelihood, as lm-evaluation-harness does for multiple choice: the model reads
// the prompt, and each choice's continuation is scored by the sum of its tokens' log-probabilities
// (natural log). A prompt longer than the context keeps its last tokens (left truncation).
import * as tf from '@tensorflow/tfjs-core';
import type { SteelLM } from '../model';

/** Log-softmax rows of the model's logits for `input` (one sequence), as [T][V] flat rows. */
function logProbRows(model: SteelLM, input: readonly number[]): { rows: Float32Array; vocab: number } {
  const vocab = model.config.vocab_size;
  const rows = tf.tidy(() => {
    const logits = model.forward(tf.tensor2d([Array.from(input)], [1, input.length], 'int32')); // [1, T, V]
    return tf.logSoftmax(tf.reshape(logits, [input.length, vocab])); // [T, V]
  });
  try {
    return { rows: rows.dataSync() as Float32Array, vocab };
  } finally {
    rows.dispose();
  }
}

/** Sum of log p(continuation | context), the context cut from the left to fit seq_len. */
export function continuationLogLikelihood(
  model: SteelLM,
  context: readonly number[],
  continuation: readonly number[],
): number {
  if (continuation.length === 0) return 0;
  const all = [...context, ...continuation];
  const window = all.slice(-(model.config.seq_len + 1));
  const input = window.slice(0, -1);
  const { rows, vocab } = logProbRows(model, input);
  let sum = 0;
  const first = window.length - continuation.length; // index in window of the first continuation token
  for (let j = first; j < window.length; j++) sum += rows[(j - 1) * vocab + window[j]];
  return sum;
}

/**
 * Log-likelihood of each choice. When every choice is one token (the letters A-D), one forward
 * pass of the context gives them all, the same numbers as scoring each choice on its own.
 */
export function choiceLogLikelihoods(
  model: SteelLM,
  context: readonly number[],
  choices: readonly (readonly number[])[],
): number[] {
  if (context.length > 0 && choices.every((c) => c.length === 1)) {
    const input = context.slice(-model.config.seq_len);
    const { rows, vocab } = logProbRows(model, input);
    const last = (input.length - 1) * vocab;
    return choices.map((c) => rows[last + c[0]]);
  }
  return choices.map((c) => continuationLogLikelihood(model, context, c));
}

/** Mean next-token loss (nats) over a token stream, in non-overlapping windows of seq_len. */
export function streamLoss(
  model: SteelLM,
  ids: readonly number[],
  onWindow?: (done: number, total: number) => void,
): { loss: number; tokens: number } {
  const T = model.config.seq_len;
  let sum = 0;
  let tokens = 0;
  const windows = Math.max(0, Math.ceil((ids.length - 1) / T));
  for (let w = 0; w < windows; w++) {
    const window = ids.slice(w * T, w * T + T + 1);
    const { rows, vocab } = logProbRows(model, window.slice(0, -1));
    for (let j = 1; j < window.length; j++) sum -= rows[(j - 1) * vocab + window[j]];
    tokens += window.length - 1;
    onWindow?.(w + 1, windows);
  }
  return { loss: tokens > 0 ? sum / tokens : NaN, tokens };
}

/** Index of the largest value (the first on ties), as the harness's argmax. */
export function argmaxIndex(values: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

/** Sample standard error of a mean of 0/1 outcomes (the harness's stderr for acc). */
export function meanStderr(outcomes: readonly number[]): number {
  const n = outcomes.length;
  if (n < 2) return NaN;
  const mean = outcomes.reduce((s, x) => s + x, 0) / n;
  const variance = outcomes.reduce((s, x) => s + (x - mean) ** 2, 0) / (n - 1);
  return Math.sqrt(variance / n);
}
