// Incremental decoding for SteelLM: a per-layer key/value cache, so each new token costs one
// row of work instead of a forward pass over the whole context. Built from the model's `params`
// map and the exported layer helpers, so it follows the same weights and the same maths as
// SteelLM.forward (which stays the reference; tests compare the two).
//
// Layout: per layer, K and V are [B=1, n_kv_head, S, hd] with rotary positions already applied
// to K, S = positions held. A forward of n new ids runs them at positions S..S+n-1 and appends
// their K/V along axis 2. Grouped-query attention folds the query heads that share a kv head into
// rows ([nkv, rep*n, hd]) instead of tiling K/V, so the cache is stored once per kv head.

import * as tf from '@tensorflow/tfjs-core';
import { headDim, type TrainConfig } from '../../shared/config';
import type { SteelLM } from './gpt';
import { applyRotary, linear, matrixParam, rmsNorm, rotaryTables, vectorParam } from './layers';

// A type alias, not an interface: tf.tidy returns it inside a TensorContainer.
type LayerKv = {
  k: tf.Tensor4D; // [1, nkv, S, hd], rotary applied
  v: tf.Tensor4D; // [1, nkv, S, hd]
};

/**
 * Additive mask [rep*n, S] for n new queries at positions past..past+n-1 over S = past+n keys,
 * repeated for the rep query heads folded into each kv head (row r*n + t is query t).
 */
function offsetCausalMask(rep: number, n: number, past: number): tf.Tensor2D {
  const S = past + n;
  const m = new Float32Array(rep * n * S);
  for (let r = 0; r < rep; r++) {
    for (let t = 0; t < n; t++) {
      const row = (r * n + t) * S;
      for (let j = past + t + 1; j < S; j++) m[row + j] = -1e9; // same constant as causalMask
    }
  }
  return tf.tensor2d(m, [rep * n, S]);
}

export class KvCache {
  private readonly model: SteelLM;
  private readonly config: TrainConfig;
  private layers: LayerKv[] = [];
  private held = 0;

  constructor(model: SteelLM) {
    this.model = model;
    this.config = model.config;
  }

  /** Positions held (the next id fed goes to this position). */
  get length(): number {
    return this.held;
  }

  /** Room left before the cache reaches seq_len positions. */
  get free(): number {
    return this.config.seq_len - this.held;
  }

  /**
   * Runs ids at positions length..length+n-1, appends their K/V, and returns the logits [V] of the
   * last one. The cache never holds more than seq_len positions (the longest context the model
   * was trained on): crop and rebuild with reset() + forward(lastIds) before that.
   */
  forward(ids: readonly number[]): Float32Array {
    const n = ids.length;
    if (n === 0) throw new Error('KvCache.forward: no ids.');
    if (n > this.free)
      throw new RangeError(`KvCache.forward: ${this.held} + ${n} positions exceed seq_len ${this.config.seq_len}.`);
    const past = this.held;
    const result = tf.tidy(() => this.run(ids, past));
    for (const layer of this.layers) tf.dispose([layer.k, layer.v]);
    this.layers = result.kv;
    this.held = past + n;
    const logits = Float32Array.from(result.logits.dataSync() as Float32Array);
    result.logits.dispose();
    return logits;
  }

  /** Forgets every position (frees the tensors); the cache can be filled again. */
  reset(): void {
    for (const layer of this.layers) tf.dispose([layer.k, layer.v]);
    this.layers = [];
    this.held = 0;
  }

  dispose(): void {
    this.reset();
  }

  private vector(name: string): tf.Tensor1D {
    return vectorParam(this.model.params, name);
  }

  private matrix(name: string): tf.Tensor2D {
    return matrixParam(this.model.params, name);
  }

  /** The network on n new rows; returns the last row's logits and every layer's grown K/V. */
  private run(ids: readonly number[], past: number): { logits: tf.Tensor1D; kv: LayerKv[] } {
    const c = this.config;
    const n = ids.length;
    const hd = headDim(c);
    const rep = c.n_head / c.n_kv_head;
    const { cos, sin } = rotaryTables(n, hd, c.rope_theta, past);
    const rope = {
      cos: tf.tensor2d(cos, [n, hd]),
      sin: tf.tensor2d(sin, [n, hd]),
      mask: offsetCausalMask(rep, n, past),
    };
    let x = tf.gather(this.matrix('wte'), tf.tensor1d(Int32Array.from(ids), 'int32')); // [n, d]
    const kv: LayerKv[] = [];
    for (let i = 0; i < c.n_layer; i++) {
      const h = `h.${i}.`;
      const attn = this.attention(rmsNorm(x, this.vector(`${h}ln_1.weight`), c.norm_eps), i, rope);
      kv.push(attn.kv);
      x = tf.add(x, attn.y); // [n, d]
      x = tf.add(x, this.mlp(rmsNorm(x, this.vector(`${h}ln_2.weight`), c.norm_eps), i)); // [n, d]
    }
    const last = rmsNorm(tf.slice(x, [n - 1, 0], [1, c.n_embd]), this.vector('ln_f.weight'), c.norm_eps); // [1, d]
    const logits = c.tie_embeddings
      ? tf.matMul(last, this.matrix('wte'), false, true) // [1, V]
      : tf.matMul(last, this.matrix('lm_head.weight')); // [1, V]
    return { logits: tf.reshape(logits, [c.vocab_size]), kv }; // [V]
  }

  /** Grouped-query attention of n new rows x [n, d] over the cached and the new positions. */
  private attention(
    x: tf.Tensor2D,
    layer: number,
    rope: { cos: tf.Tensor2D; sin: tf.Tensor2D; mask: tf.Tensor2D },
  ): { y: tf.Tensor2D; kv: LayerKv } {
    const c = this.config;
    const a = `h.${layer}.attn.`;
    const n = x.shape[0];
    const hd = headDim(c);
    const nkv = c.n_kv_head;
    const rep = c.n_head / nkv;
    const heads = (t: tf.Tensor2D, count: number): tf.Tensor3D =>
      tf.transpose(tf.reshape(t, [n, count, hd]), [1, 0, 2]); // [count, n, hd]
    const q = heads(linear(x, this.matrix(`${a}q.weight`), this.vector(`${a}q.bias`)), c.n_head); // [nh, n, hd]
    const kNew = applyRotary(
      heads(linear(x, this.matrix(`${a}k.weight`), this.vector(`${a}k.bias`)), nkv),
      rope.cos,
      rope.sin,
    ); // [nkv, n, hd]
    const vNew = heads(linear(x, this.matrix(`${a}v.weight`), this.vector(`${a}v.bias`)), nkv); // [nkv, n, hd]
    const k = this.append(layer, 'k', tf.reshape(kNew, [1, nkv, n, hd])); // [1, nkv, S, hd]
    const v = this.append(layer, 'v', tf.reshape(vNew, [1, nkv, n, hd])); // [1, nkv, S, hd]
    const S = k.shape[2];
    // Query head g*rep + r reads kv head g: fold the rep heads of a group into its rows.
    const qr = tf.reshape(tf.mul(applyRotary(q, rope.cos, rope.sin), 1 / Math.sqrt(hd)), [nkv, rep * n, hd]); // [nkv, rep*n, hd], pre-scaled
    const k3 = tf.reshape(k, [nkv, S, hd]); // [nkv, S, hd]
    const v3 = tf.reshape(v, [nkv, S, hd]); // [nkv, S, hd]
    const scores = tf.add(tf.matMul(qr, k3, false, true), rope.mask); // [nkv, rep*n, S]
    const y = tf.matMul(tf.softmax(scores), v3); // [nkv, rep*n, hd]
    const merged = tf.reshape(tf.transpose(tf.reshape(y, [c.n_head, n, hd]), [1, 0, 2]), [n, c.n_head * hd]); // [n, nh*hd]
    return { y: linear(merged as tf.Tensor2D, this.matrix(`${a}o.weight`)), kv: { k, v } }; // [n, d]
  }

  /** The layer's cached K or V with the new positions appended along the time axis. */
  private append(layer: number, which: 'k' | 'v', fresh: tf.Tensor4D): tf.Tensor4D {
    const held = this.layers[layer]?.[which];
    return held === undefined ? fresh : tf.concat([held, fresh], 2); // [1, nkv, S, hd]
  }

  /** SwiGLU, as in SteelLM: down(silu(gate(x)) * up(x)); x is [n, d]. */
  private mlp(x: tf.Tensor2D, layer: number): tf.Tensor2D {
    const m = `h.${layer}.mlp.`;
    const gate = linear(x, this.matrix(`${m}gate.weight`)); // [n, ff]
    const up = linear(x, this.matrix(`${m}up.weight`)); // [n, ff]
    const act = tf.mul(tf.mul(gate, tf.sigmoid(gate)), up) as tf.Tensor2D; // [n, ff]
    return linear(act, this.matrix(`${m}down.weight`)); // [n, d]
  }
}
