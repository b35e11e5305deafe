// Steel-LLM / Qwen1.5 decoder in nanoGPT-style code: token embedding, n_layer pre-norm blocks
// (RMSNorm, grouped-query attention with rotary positions and q/k/v biases, SwiGLU), final norm,
// output head (tied to the embedding or not). Matrices are stored [in, out] so y = x·W; names and
// layouts are the checkpoint format and must match the PyTorch reference exactly.

import * as tf from '@tensorflow/tfjs-core';
// tfjs-core's node bundle registers no gradients (the @tensorflow/tfjs union package does it);
// the model must be trainable wherever it is imported.
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { headDim, type TrainConfig } from '../../shared/config';
import { Rng } from '../rng';
import { fusedCausalAttention, fusedCrossEntropy, fusedRotary, fusedSwiGlu } from '../kernels/fused';
import { applyRotary, causalMask, linear, matrixParam, rmsNorm, rotaryTables, vectorParam } from './layers';

/** Rotary tables [T, hd] for the positions of one forward pass. */
interface Rope {
  cos: tf.Tensor2D;
  sin: tf.Tensor2D;
}

/** Every parameter's name and shape, in canonical order (the order of init and of checkpoints). */
export function paramShapes(config: TrainConfig): Map<string, number[]> {
  const d = config.n_embd;
  const hd = headDim(config);
  const q = config.n_head * hd;
  const kv = config.n_kv_head * hd;
  const ff = config.intermediate_size;
  const shapes = new Map<string, number[]>([['wte', [config.vocab_size, d]]]);
  for (let i = 0; i < config.n_layer; i++) {
    const p = `h.${i}.`;
    shapes.set(`${p}ln_1.weight`, [d]);
    shapes.set(`${p}attn.q.weight`, [d, q]).set(`${p}attn.q.bias`, [q]);
    shapes.set(`${p}attn.k.weight`, [d, kv]).set(`${p}attn.k.bias`, [kv]);
    shapes.set(`${p}attn.v.weight`, [d, kv]).set(`${p}attn.v.bias`, [kv]);
    shapes.set(`${p}attn.o.weight`, [q, d]);
    shapes.set(`${p}ln_2.weight`, [d]);
    shapes.set(`${p}mlp.gate.weight`, [d, ff]).set(`${p}mlp.up.weight`, [d, ff]).set(`${p}mlp.down.weight`, [ff, d]);
  }
  shapes.set('ln_f.weight', [d]);
  if (!config.tie_embeddings) shapes.set('lm_head.weight', [d, config.vocab_size]);
  return shapes;
}

/** Initial values: N(0, init_std) matrices, residual projections scaled by 1/sqrt(2*n_layer), biases 0, norms 1. */
function initialValue(name: string, size: number, config: TrainConfig, rng: Rng): Float32Array {
  const values = new Float32Array(size);
  if (name.endsWith('.bias')) return values;
  if (name.startsWith('ln_') || name.includes('.ln_')) return values.fill(1);
  const residual = name.endsWith('attn.o.weight') || name.endsWith('mlp.down.weight');
  const std = residual ? config.init_std / Math.sqrt(2 * config.n_layer) : config.init_std;
  for (let i = 0; i < size; i++) values[i] = rng.normal() * std;
  return values;
}

let modelCount = 0;

export class SteelLM {
  readonly config: TrainConfig;
  readonly params: Map<string, tf.Variable>;

  private constructor(config: TrainConfig, values: ReadonlyMap<string, Float32Array>) {
    this.config = { ...config };
    this.params = new Map();
    const id = modelCount++;
    for (const [name, shape] of paramShapes(config)) {
      const data = values.get(name) as Float32Array; // presence and size checked by the callers
      // Copied: the cpu backend would otherwise keep the caller's array as the tensor's storage.
      const initial = tf.tensor(data.slice(), shape, 'float32');
      // A unique variable name: the engine registers names globally and several models may coexist.
      this.params.set(name, tf.variable(initial, true, `steel${id}/${name}`));
      initial.dispose(); // the variable holds its own reference to the data
    }
  }

  /** Fresh weights drawn from Rng(seed) in canonical parameter order: identical on every backend. */
  static init(config: TrainConfig, seed: number): SteelLM {
    const rng = new Rng(seed);
    const values = new Map<string, Float32Array>();
    for (const [name, shape] of paramShapes(config)) {
      values.set(name, initialValue(name, tf.util.sizeFromShape(shape), config, rng));
    }
    return new SteelLM(config, values);
  }

  /** Loads weights (e.g. from a checkpoint); every expected tensor must be present with the exact size. */
  static fromWeights(config: TrainConfig, weights: ReadonlyMap<string, Float32Array>): SteelLM {
    const shapes = paramShapes(config);
    for (const [name, shape] of shapes) {
      const data = weights.get(name);
      const size = tf.util.sizeFromShape(shape);
      if (data === undefined) throw new Error(`Weights are missing tensor "${name}" (shape [${shape.join(', ')}]).`);
      if (data.length !== size) {
        throw new Error(`Tensor "${name}" has ${data.length} values; shape [${shape.join(', ')}] needs ${size}.`);
      }
    }
    for (const name of weights.keys()) {
      if (!shapes.has(name)) throw new Error(`Unexpected tensor "${name}" in weights for this config.`);
    }
    return new SteelLM(config, weights);
  }

  paramShapes(): Map<string, number[]> {
    return paramShapes(this.config);
  }

  private vector(name: string): tf.Tensor1D {
    return vectorParam(this.params, name);
  }

  private matrix(name: string): tf.Tensor2D {
    return matrixParam(this.params, name);
  }

  /** Logits [B, T, V] for token ids [B, T]; positions start at positionOffset (0 without a KV cache). */
  forward(idx: tf.Tensor2D, positionOffset = 0): tf.Tensor3D {
    const [B, T] = idx.shape;
    return tf.tidy(() => tf.reshape(this.logits2d(idx, positionOffset), [B, T, this.config.vocab_size])); // [B, T, V]
  }

  /**
   * Mean next-token cross-entropy (natural log) over all B*T positions, or, with a mask (1 counts,
   * 0 ignored; fine-tuning's assistant tokens), over the masked-in positions only.
   */
  loss(idx: tf.Tensor2D, targets: tf.Tensor2D, mask?: tf.Tensor2D): tf.Scalar {
    return tf.tidy(() => {
      const V = this.config.vocab_size;
      const logits = this.logits2d(idx, 0); // [N, V]
      let rowLoss: tf.Tensor | null = fusedCrossEntropy(logits, tf.reshape(targets, [-1])); // [N] on wasm; null elsewhere
      if (rowLoss === null) {
        const logProbs = tf.logSoftmax(logits); // [N, V]
        // oneHot is int32 and cast: on wasm a float32 oneHot holds int bits (reads as ~1e-45).
        const picked = tf.cast(tf.oneHot(tf.reshape(targets, [-1]), V), 'float32'); // [N, V]
        rowLoss = tf.neg(tf.sum(tf.mul(logProbs, picked), -1)); // [N]
      }
      if (!mask) return tf.mean(rowLoss) as tf.Scalar; // scalar
      const weights = tf.reshape(mask, [-1]); // [N]
      // At least 1 in the denominator: a batch with no assistant token gives 0, not NaN.
      return tf.div(tf.sum(tf.mul(rowLoss, weights)), tf.maximum(tf.sum(weights), 1)) as tf.Scalar; // scalar
    });
  }

  /** Copies of every parameter's values, in canonical order (for checkpoints). */
  readWeights(): Map<string, Float32Array> {
    const out = new Map<string, Float32Array>();
    // dataSync on cpu returns the backing store itself, so copy it.
    for (const [name, v] of this.params) out.set(name, Float32Array.from(v.dataSync() as Float32Array));
    return out;
  }

  dispose(): void {
    for (const v of this.params.values()) v.dispose();
    this.params.clear();
  }

  /** The whole network on a flattened [B*T, d] residual stream; returns logits [B*T, V]. */
  private logits2d(idx: tf.Tensor2D, positionOffset: number): tf.Tensor2D {
    const c = this.config;
    const [B, T] = idx.shape;
    const hd = headDim(c);
    const { cos, sin } = rotaryTables(T, hd, c.rope_theta, positionOffset);
    const rope: Rope = { cos: tf.tensor2d(cos, [T, hd]), sin: tf.tensor2d(sin, [T, hd]) };
    let x = tf.gather(this.matrix('wte'), tf.reshape(idx, [-1])); // [N, d], N = B*T
    for (let i = 0; i < c.n_layer; i++) {
      const h = `h.${i}.`;
      x = tf.add(x, this.attention(rmsNorm(x, this.vector(`${h}ln_1.weight`), c.norm_eps), i, B, T, rope)); // [N, d]
      x = tf.add(x, this.mlp(rmsNorm(x, this.vector(`${h}ln_2.weight`), c.norm_eps), i)); // [N, d]
    }
    x = rmsNorm(x, this.vector('ln_f.weight'), c.norm_eps);
    return c.tie_embeddings
      ? tf.matMul(x, this.matrix('wte'), false, true) // [N, V]
      : tf.matMul(x, this.matrix('lm_head.weight')); // [N, V]
  }

  /** Causal grouped-query self-attention; x is [B*T, d]. */
  private attention(x: tf.Tensor2D, layer: number, B: number, T: number, rope: Rope): tf.Tensor2D {
    const a = `h.${layer}.attn.`;
    const q = linear(x, this.matrix(`${a}q.weight`), this.vector(`${a}q.bias`)); // [N, nh*hd]
    const k = linear(x, this.matrix(`${a}k.weight`), this.vector(`${a}k.bias`)); // [N, nkv*hd]
    const v = linear(x, this.matrix(`${a}v.weight`), this.vector(`${a}v.bias`)); // [N, nkv*hd]
    const merged = this.fusedAttention(q, k, v, B, rope) ?? this.composedAttention(q, k, v, B, T, rope); // [N, nh*hd]
    return linear(merged, this.matrix(`${a}o.weight`)); // [N, d]
  }

  /** The attention core in one kernel each way (wasm with our kernels), on the projections' layout; null elsewhere. */
  private fusedAttention(q: tf.Tensor2D, k: tf.Tensor2D, v: tf.Tensor2D, B: number, rope: Rope): tf.Tensor2D | null {
    const c = this.config;
    const qr = fusedRotary(q, rope.cos, rope.sin); // [N, nh*hd]
    const kr = qr === null ? null : fusedRotary(k, rope.cos, rope.sin); // [N, nkv*hd]
    if (qr === null || kr === null) return null;
    return fusedCausalAttention(qr, kr, v, { batch: B, nh: c.n_head, nkv: c.n_kv_head, hd: headDim(c) }); // [N, nh*hd]
  }

  /** The same from tfjs ops: heads split out, mask added, softmax, heads merged back. */
  private composedAttention(
    q2: tf.Tensor2D,
    k2: tf.Tensor2D,
    v2: tf.Tensor2D,
    B: number,
    T: number,
    rope: Rope,
  ): tf.Tensor2D {
    const c = this.config;
    const hd = headDim(c);
    const heads = (t: tf.Tensor2D, n: number): tf.Tensor3D =>
      tf.reshape(tf.transpose(tf.reshape(t, [B, T, n, hd]), [0, 2, 1, 3]), [B * n, T, hd]); // [B*n, T, hd]
    const q = heads(q2, c.n_head); // [B*nh, T, hd]
    let k = heads(k2, c.n_kv_head); // [B*nkv, T, hd]
    let v = heads(v2, c.n_kv_head); // [B*nkv, T, hd]
    const qr = tf.mul(applyRotary(q, rope.cos, rope.sin), 1 / Math.sqrt(hd)); // [B*nh, T, hd], pre-scaled
    k = applyRotary(k, rope.cos, rope.sin);
    if (c.n_kv_head !== c.n_head) {
      k = this.repeatKv(k, B, T); // [B*nh, T, hd]
      v = this.repeatKv(v, B, T); // [B*nh, T, hd]
    }
    const scores = tf.add(tf.matMul(qr, k, false, true), causalMask(T)); // [B*nh, T, T]
    const y = tf.matMul(tf.softmax(scores), v); // [B*nh, T, hd]
    return tf.reshape(tf.transpose(tf.reshape(y, [B, c.n_head, T, hd]), [0, 2, 1, 3]), [B * T, c.n_head * hd]); // [N, nh*hd]
  }

  /** Query head h reads kv head floor(h / (n_head / n_kv_head)): repeat each kv head that many times. */
  private repeatKv(t: tf.Tensor3D, B: number, T: number): tf.Tensor3D {
    const c = this.config;
    const hd = headDim(c);
    const rep = c.n_head / c.n_kv_head;
    // Rank 3: tfjs has no Tile gradient above rank 4.
    const expanded = tf.reshape(t, [B * c.n_kv_head, 1, T * hd]); // [B*nkv, 1, T*hd]
    const tiled = tf.tile(expanded, [1, rep, 1]); // [B*nkv, rep, T*hd]
    return tf.reshape(tiled, [B * c.n_head, T, hd]); // [B*nh, T, hd]
  }

  /** SwiGLU: down(silu(gate(x)) * up(x)); x is [B*T, d]. */
  private mlp(x: tf.Tensor2D, layer: number): tf.Tensor2D {
    const m = `h.${layer}.mlp.`;
    const gate = linear(x, this.matrix(`${m}gate.weight`)); // [N, ff]
    const up = linear(x, this.matrix(`${m}up.weight`)); // [N, ff]
    const act = fusedSwiGlu(gate, up) ?? (tf.mul(tf.mul(gate, tf.sigmoid(gate)), up) as tf.Tensor2D); // [N, ff]
    return linear(act, this.matrix(`${m}down.weight`)); // [N, d]
  }
}
