// Building blocks of the Qwen2 / Steel-LLM block, written to match Hugging Face's Qwen2 code:
// RMSNorm, rotary positions ("rotate_half", non-interleaved), the causal mask, linear layers.
// Callers run these inside tf.tidy.

import * as tf from '@tensorflow/tfjs-core';
import { fusedRmsNorm, fusedRotary } from '../kernels/fused';

const isVector = (t: tf.Tensor): t is tf.Tensor1D => t.rank === 1;
const isMatrix = (t: tf.Tensor): t is tf.Tensor2D => t.rank === 2;

function param<T extends tf.Tensor>(
  params: ReadonlyMap<string, tf.Tensor>,
  name: string,
  fits: (t: tf.Tensor) => t is T,
  rank: number,
): T {
  const t = params.get(name);
  if (t === undefined) throw new Error(`The model has no parameter "${name}".`);
  if (!fits(t)) throw new Error(`The model's parameter "${name}" has rank ${t.rank}, not ${rank}.`);
  return t;
}

/** A norm weight or a bias, its rank checked (tfjs types a stored variable by no rank). */
export function vectorParam(params: ReadonlyMap<string, tf.Tensor>, name: string): tf.Tensor1D {
  return param(params, name, isVector, 1);
}

/** A weight matrix or an embedding, its rank checked. */
export function matrixParam(params: ReadonlyMap<string, tf.Tensor>, name: string): tf.Tensor2D {
  return param(params, name, isMatrix, 2);
}

/** y = x * rsqrt(mean(x^2, last axis) + eps) * weight. */
export function rmsNorm(x: tf.Tensor2D, weight: tf.Tensor1D, eps: number): tf.Tensor2D {
  const fused = fusedRmsNorm(x, weight, eps); // one kernel each way on wasm; null elsewhere
  if (fused !== null) return fused;
  const variance = tf.mean(tf.square(x), -1, true); // [N, 1]
  return tf.mul(tf.mul(x, tf.rsqrt(tf.add(variance, eps))), weight);
}

/** y = x·W (+ b); W is stored [in, out]. Kept 2-D so wasm sends it to XNNPACK in one product. */
export function linear(x: tf.Tensor2D, weight: tf.Tensor2D, bias?: tf.Tensor1D): tf.Tensor2D {
  const y = tf.matMul(x, weight) as tf.Tensor2D; // [N, out]
  return bias === undefined ? y : (tf.add(y, bias) as tf.Tensor2D);
}

/**
 * cos/sin tables [T, hd] for positions offset..offset+T-1, computed in float32 steps like HF:
 * inv_freq[j] = theta^(-2j/hd), angle = t*inv_freq[j], both halves of the last axis repeat.
 */
export function rotaryTables(
  seqLen: number,
  headDim: number,
  theta: number,
  offset: number,
): { cos: Float32Array; sin: Float32Array } {
  const half = headDim / 2;
  const invFreq = new Float32Array(half);
  for (let j = 0; j < half; j++) invFreq[j] = 1 / Math.fround(Math.pow(theta, Math.fround((2 * j) / headDim)));
  const cos = new Float32Array(seqLen * headDim);
  const sin = new Float32Array(seqLen * headDim);
  for (let t = 0; t < seqLen; t++) {
    for (let j = 0; j < half; j++) {
      const angle = Math.fround((offset + t) * invFreq[j]);
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      const row = t * headDim;
      cos[row + j] = c;
      cos[row + j + half] = c;
      sin[row + j] = s;
      sin[row + j + half] = s;
    }
  }
  return { cos, sin };
}

/** x' = x*cos + rotate_half(x)*sin with rotate_half(x) = concat(-x2, x1); x is [..., T, hd]. */
export function applyRotary(x: tf.Tensor3D, cos: tf.Tensor2D, sin: tf.Tensor2D): tf.Tensor3D {
  const fused = fusedRotary(x, cos, sin); // one kernel each way on wasm; null elsewhere
  if (fused !== null) return fused;
  const half = x.shape[2] / 2;
  const [x1, x2] = tf.split(x, [half, half], -1); // 2 x [BH, T, hd/2]
  const rotated = tf.concat([tf.neg(x2), x1], -1); // [BH, T, hd]
  return tf.add(tf.mul(x, cos), tf.mul(rotated, sin));
}

/** Additive causal mask [T, T]: 0 where key <= query, a large negative number where key is in the future. */
export function causalMask(seqLen: number): tf.Tensor2D {
  const m = new Float32Array(seqLen * seqLen);
  for (let i = 0; i < seqLen; i++) {
    for (let j = i + 1; j < seqLen; j++) m[i * seqLen + j] = -1e9; // finite: -inf would give NaN gradients
  }
  return tf.tensor2d(m, [seqLen, seqLen]);
}
