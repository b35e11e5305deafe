// AdamW with decoupled weight decay, written out so the global gradient norm before clipping is
// known at every step and the state can be saved bit-exactly. Follows torch.optim.AdamW's order
// of operations so a PyTorch reference computes the same numbers.
import * as tf from '@tensorflow/tfjs-core';
import type { TrainConfig } from '../../shared/config';
import { fusedAdamW, fusedSumOfSquares } from '../kernels/fused';

export type AdamWHyper = Pick<TrainConfig, 'beta1' | 'beta2' | 'adam_eps' | 'weight_decay' | 'grad_clip'>;

export interface AdamWSlot {
  m: tf.Variable; // first moment, shape of the parameter
  v: tf.Variable; // second moment
}

export class AdamW {
  /** Optimizer updates applied so far (bias corrections use step after increment). */
  step = 0;
  readonly slots = new Map<string, AdamWSlot>();

  constructor(
    private readonly params: ReadonlyMap<string, tf.Variable>,
    private readonly hyper: AdamWHyper,
  ) {
    for (const [name, p] of params) {
      this.slots.set(
        name,
        tf.tidy(() => ({ m: tf.variable(tf.zerosLike(p), false), v: tf.variable(tf.zerosLike(p), false) })),
      );
    }
  }

  /** Decay only matrices (embeddings and projections), never norms or biases. */
  static decays(shape: readonly number[]): boolean {
    return shape.length >= 2;
  }

  /**
   * Clips `grads` to a global norm of grad_clip and applies one update at learning rate `lr`.
   * `gradNorm` is the pre-clip global norm, computed by the caller (globalNorm below) so a
   * non-finite value can skip the update before this is called.
   */
  apply(grads: ReadonlyMap<string, tf.Tensor>, gradNorm: number, lr: number): void {
    const { beta1, beta2, adam_eps, weight_decay, grad_clip } = this.hyper;
    this.step += 1;
    const clipCoef = grad_clip > 0 ? Math.min(1, grad_clip / (gradNorm + 1e-6)) : 1;
    const bc1 = 1 - beta1 ** this.step;
    const bc2Sqrt = Math.sqrt(1 - beta2 ** this.step);
    for (const [name, p] of this.params) {
      const g0 = grads.get(name);
      const slot = this.slots.get(name);
      if (!g0 || !slot) throw new Error(`AdamW: no gradient or state for parameter ${name}`);
      tf.tidy(() => {
        const decay = AdamW.decays(p.shape) ? 1 - lr * weight_decay : 1;
        // On wasm one kernel does the whole update below, op for op in float32 (c/fused.c).
        const scalars = {
          clip: clipCoef < 1,
          clipCoef,
          decays: decay !== 1,
          decay,
          beta1,
          beta2,
          bc2Sqrt,
          eps: adam_eps,
          stepSize: lr / bc1,
        };
        const fused = fusedAdamW(p, g0, slot.m, slot.v, scalars);
        if (fused !== null) {
          slot.m.assign(fused[1]);
          slot.v.assign(fused[2]);
          p.assign(fused[0]);
          return;
        }
        const g = clipCoef < 1 ? tf.mul(g0, clipCoef) : g0;
        const decayed = decay !== 1 ? tf.mul(p, decay) : p;
        const m = tf.add(tf.mul(slot.m, beta1), tf.mul(g, 1 - beta1));
        const v = tf.add(tf.mul(slot.v, beta2), tf.mul(tf.mul(g, g), 1 - beta2));
        const denom = tf.add(tf.div(tf.sqrt(v), bc2Sqrt), adam_eps);
        slot.m.assign(m);
        slot.v.assign(v);
        p.assign(tf.sub(decayed, tf.mul(tf.div(m, denom), lr / bc1)));
      });
    }
  }

  /** Restores moments saved as m.<param> / v.<param> (see checkpoint.ts) and the update count. */
  load(state: ReadonlyMap<string, { shape: readonly number[]; data: Float32Array }>, step: number): void {
    for (const [name, slot] of this.slots) {
      for (const [moment, variable] of [
        ['m', slot.m],
        ['v', slot.v],
      ] as const) {
        const saved = state.get(`${moment}.${name}`);
        if (!saved || saved.data.length !== variable.size) {
          throw new Error(`optimizer state ${moment}.${name} is missing or has the wrong size in the checkpoint`);
        }
        tf.tidy(() => variable.assign(tf.tensor(saved.data, variable.shape, 'float32')));
      }
    }
    this.step = step;
  }

  dispose(): void {
    for (const { m, v } of this.slots.values()) {
      m.dispose();
      v.dispose();
    }
    this.slots.clear();
  }
}

/**
 * sqrt of the sum of squares of every gradient element, summed in float64: wasm's Sum
 * accumulates in float32, which over a 262k-element embedding gradient drifts by ~1e-4 relative
 * (too much for a norm that decides clipping and must match a PyTorch reference). On wasm our
 * kernel reads each gradient in place; elsewhere squares are summed per row on the device, then
 * the row sums here.
 */
export function globalNorm(grads: ReadonlyMap<string, tf.Tensor>): number {
  let sumSq = 0;
  const rest: tf.Tensor[] = [];
  for (const g of grads.values()) {
    const fused = fusedSumOfSquares(g);
    if (fused === null) rest.push(g);
    else sumSq += fused;
  }
  const partials = tf.tidy(() => rest.map((g) => (g.rank >= 2 ? tf.sum(tf.square(g), -1) : tf.square(g))));
  for (const p of partials) {
    for (const v of p.dataSync()) sumSq += v;
    p.dispose();
  }
  return Math.sqrt(sumSq);
}
