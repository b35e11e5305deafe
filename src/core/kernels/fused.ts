// Fused ops of the training step on our wasm SIMD kernels (c/fused.c): RMSNorm, SwiGLU, rotary
// positions and softmax cross-entropy, each a forward and a backward kernel wrapped in
// tf.customGrad. On wasm a chain of tfjs ops costs one pass over memory, one allocation and,
// under autodiff, a saved copy per op; these make one or two passes in all.
// Each fused*() returns null where the fused op cannot run (another backend, our module not
// built, a shape the kernel does not cover): the caller then composes the same math from tfjs ops.

import * as tf from '@tensorflow/tfjs-core';
import type { KernelConfig, TensorInfo } from '@tensorflow/tfjs-core';
import { steelKernels, type SteelExports } from './steel';
import { maxParts, onThreads, type ThreadKernel } from './threads';
import { asWasmBackend, input, tensorData, type KernelArgs, type WasmBackend } from './wasm-backend';

interface Ctx {
  backend: WasmBackend;
  steel: SteelExports;
  ptr: (t: TensorInfo) => number;
}

function ctx(args: KernelArgs): Ctx {
  const backend = asWasmBackend(args.backend);
  const steel = steelKernels(backend.wasm.asm?.memory);
  if (steel === null) throw new Error('steelscope fused kernel: steel-kernels.wasm is not loaded');
  return { backend, steel, ptr: (t) => tensorData(backend, t).memoryOffset };
}

const cols = (t: TensorInfo): number => t.shape[t.shape.length - 1];
const rows = (t: TensorInfo): number => tf.util.sizeFromShape(t.shape) / cols(t);

function rmsNormKernel(args: KernelArgs): TensorInfo[] {
  const { backend, steel, ptr } = ctx(args);
  const x = input(args, 'x');
  const y = backend.makeOutput(x.shape, 'float32');
  const rinv = backend.makeOutput([rows(x)], 'float32');
  steel.steel_rmsnorm_fwd(
    ptr(x),
    ptr(input(args, 'weight')),
    ptr(y),
    ptr(rinv),
    rows(x),
    cols(x),
    Number(args.attrs?.eps),
  );
  return [y, rinv];
}

function rmsNormGradKernel(args: KernelArgs): TensorInfo[] {
  const { backend, steel, ptr } = ctx(args);
  const x = input(args, 'x');
  const weight = input(args, 'weight');
  const dx = backend.makeOutput(x.shape, 'float32');
  const dw = backend.makeOutput(weight.shape, 'float32');
  steel.steel_rmsnorm_bwd(
    ptr(x),
    ptr(weight),
    ptr(input(args, 'rinv')),
    ptr(input(args, 'dy')),
    ptr(dx),
    ptr(dw),
    rows(x),
    cols(x),
  );
  return [dx, dw];
}

/** onThreads (threads.ts) with this kernel call's heap and exports: items split over our helper threads. */
function onItems(
  c: Ctx,
  kernel: ThreadKernel,
  count: number,
  args: (start: number, n: number, slot: number) => number[],
): void {
  onThreads(c.backend.wasm.asm?.memory, kernel, count, args, (a) => c.steel[kernel](...a));
}

function swiGluKernel(args: KernelArgs): TensorInfo {
  const c = ctx(args);
  const gate = input(args, 'gate');
  const out = c.backend.makeOutput(gate.shape, 'float32');
  const [pg, pu, po] = [gate, input(args, 'up'), out].map(c.ptr);
  const width = cols(gate);
  onItems(c, 'steel_swiglu_fwd', rows(gate), (r, n) => [
    pg + 4 * r * width,
    pu + 4 * r * width,
    po + 4 * r * width,
    n * width,
  ]);
  return out;
}

function swiGluGradKernel(args: KernelArgs): TensorInfo[] {
  const c = ctx(args);
  const gate = input(args, 'gate');
  const dg = c.backend.makeOutput(gate.shape, 'float32');
  const du = c.backend.makeOutput(gate.shape, 'float32');
  const ptrs = [gate, input(args, 'up'), input(args, 'dy'), dg, du].map(c.ptr);
  const width = cols(gate);
  onItems(c, 'steel_swiglu_bwd', rows(gate), (r, n) => [...ptrs.map((p) => p + 4 * r * width), n * width]);
  return [dg, du];
}

function rotaryKernel(args: KernelArgs): TensorInfo {
  const { backend, steel, ptr } = ctx(args);
  const x = input(args, 'x');
  const cos = input(args, 'cos');
  const [t, hd] = cos.shape; // x is [..., heads * hd], its rows at positions row % t
  const y = backend.makeOutput(x.shape, 'float32');
  steel.steel_rotary(
    ptr(x),
    ptr(cos),
    ptr(input(args, 'sin')),
    ptr(y),
    rows(x),
    t,
    hd,
    cols(x) / hd,
    args.attrs?.backward === true ? 1 : 0,
  );
  return y;
}

/** Attention shape attributes: batch, seq, heads, kv heads, head size. */
function attnShape(args: KernelArgs): { batch: number; t: number; nh: number; nkv: number; hd: number } {
  const a = args.attrs ?? {};
  return { batch: Number(a.batch), t: Number(a.t), nh: Number(a.nh), nkv: Number(a.nkv), hd: Number(a.hd) };
}

function attentionKernel(args: KernelArgs): TensorInfo[] {
  const c = ctx(args);
  const { backend, steel, ptr } = c;
  const q = input(args, 'q');
  const { batch, t, nh, nkv, hd } = attnShape(args);
  const pack = backend.makeOutput([steel.steel_pack_floats()], 'float32'); // the main thread's; helpers have their own
  const y = backend.makeOutput(q.shape, 'float32');
  const probs = backend.makeOutput([batch * nh, t, t], 'float32');
  const [pq, pk, pv, py, pp] = [q, input(args, 'k'), input(args, 'v'), y, probs].map(ptr);
  const [qItem, kvItem, pItem] = [4 * t * nh * hd, 4 * t * nkv * hd, 4 * nh * t * t]; // bytes per batch item
  onItems(c, 'steel_attn_fwd', batch, (b, n) => [
    pq + b * qItem,
    pk + b * kvItem,
    pv + b * kvItem,
    py + b * qItem,
    pp + b * pItem,
    ptr(pack),
    n,
    t,
    nh,
    nkv,
    hd,
  ]);
  backend.disposeData(pack.dataId);
  return [y, probs];
}

function attentionGradKernel(args: KernelArgs): TensorInfo[] {
  const c = ctx(args);
  const { backend, steel, ptr } = c;
  const [q, k, v] = ['q', 'k', 'v'].map((name) => input(args, name));
  const { batch, t, nh, nkv, hd } = attnShape(args);
  const pack = backend.makeOutput([steel.steel_pack_floats()], 'float32');
  const ds = backend.makeOutput([maxParts(batch), t, t], 'float32'); // one [t, t] scratch per part
  const [dq, dk, dv] = [q, k, v].map((x) => backend.makeOutput(x.shape, 'float32'));
  const [pq, pk, pv, pp, pdy, pdq, pdk, pdv] = [q, k, v, input(args, 'probs'), input(args, 'dy'), dq, dk, dv].map(ptr);
  const [qItem, kvItem, pItem] = [4 * t * nh * hd, 4 * t * nkv * hd, 4 * nh * t * t];
  onItems(c, 'steel_attn_bwd', batch, (b, n, slot) => [
    pq + b * qItem,
    pk + b * kvItem,
    pv + b * kvItem,
    pp + b * pItem,
    pdy + b * qItem,
    pdq + b * qItem,
    pdk + b * kvItem,
    pdv + b * kvItem,
    ptr(ds) + slot * 4 * t * t,
    ptr(pack),
    n,
    t,
    nh,
    nkv,
    hd,
  ]);
  backend.disposeData(pack.dataId);
  backend.disposeData(ds.dataId);
  return [dq, dk, dv];
}

/** Per-row loss logsumexp(x) - x[target] (log taken here in float64; 0 for an out-of-range target) and the softmax, saved for backward. */
function xentKernel(args: KernelArgs): TensorInfo[] {
  const c = ctx(args);
  const { backend, ptr } = c;
  const logits = input(args, 'logits');
  const targets = input(args, 'targets');
  const [n, v] = logits.shape;
  const probs = backend.makeOutput(logits.shape, 'float32');
  const stats = backend.makeOutput([n, 2], 'float32');
  const loss = backend.makeOutput([n], 'float32');
  const [px, pp, ps] = [logits, probs, stats].map(ptr);
  onItems(c, 'steel_xent_fwd', n, (r, rowsHere) => [px + 4 * r * v, pp + 4 * r * v, ps + 8 * r, rowsHere, v]);
  // Views after every allocation: a heap growth detaches older ones.
  const [x, t, st, out] = [logits, targets, stats, loss].map((info) => backend.typedArrayFromHeap(info));
  for (let i = 0; i < n; i++) {
    const target = t[i];
    // An out-of-range id one-hots to zeros, so the composed loss of its row is 0 (and so is its gradient).
    out[i] = target >= 0 && target < v ? st[2 * i] + Math.log(st[2 * i + 1]) - x[i * v + target] : 0;
  }
  backend.disposeData(stats.dataId);
  return [loss, probs];
}

function xentGradKernel(args: KernelArgs): TensorInfo {
  const c = ctx(args);
  const probs = input(args, 'probs');
  const [n, v] = probs.shape;
  const dx = c.backend.makeOutput(probs.shape, 'float32');
  const [pp, pt, pdy, pdx] = [probs, input(args, 'targets'), input(args, 'dy'), dx].map(c.ptr);
  onItems(c, 'steel_xent_bwd', n, (r, rowsHere) => [
    pp + 4 * r * v,
    pt + 4 * r,
    pdy + 4 * r,
    pdx + 4 * r * v,
    rowsHere,
    v,
  ]);
  return dx;
}

/** Scalars of one AdamW update, as adamw.ts computes them (flags say whether to clip and decay). */
export interface AdamWScalars {
  clip: boolean;
  clipCoef: number;
  decays: boolean;
  decay: number;
  beta1: number;
  beta2: number;
  bc2Sqrt: number;
  eps: number;
  stepSize: number; // lr / bc1
}

function adamWKernel(args: KernelArgs): TensorInfo[] {
  const { backend, steel, ptr } = ctx(args);
  const p = input(args, 'p');
  const a = args.attrs ?? {};
  const num = (key: string): number => Number(a[key]);
  const outs = [0, 1, 2].map(() => backend.makeOutput(p.shape, 'float32'));
  const [po, mo, vo] = outs.map(ptr);
  // 1 - beta is formed in float64 and rounded once on the way in, as tfjs rounds a JS scalar.
  steel.steel_adamw(
    ptr(p),
    ptr(input(args, 'g')),
    ptr(input(args, 'm')),
    ptr(input(args, 'v')),
    po,
    mo,
    vo,
    tf.util.sizeFromShape(p.shape),
    a.clip === true ? 1 : 0,
    num('clipCoef'),
    a.decays === true ? 1 : 0,
    num('decay'),
    num('beta1'),
    1 - num('beta1'),
    num('beta2'),
    1 - num('beta2'),
    num('bc2Sqrt'),
    num('eps'),
    num('stepSize'),
  );
  return outs;
}

const KERNELS: Record<string, (args: KernelArgs) => TensorInfo | TensorInfo[]> = {
  SteelRmsNorm: rmsNormKernel,
  SteelRmsNormGrad: rmsNormGradKernel,
  SteelSwiGlu: swiGluKernel,
  SteelSwiGluGrad: swiGluGradKernel,
  SteelRotary: rotaryKernel,
  SteelAttention: attentionKernel,
  SteelAttentionGrad: attentionGradKernel,
  SteelXent: xentKernel,
  SteelXentGrad: xentGradKernel,
  SteelAdamW: adamWKernel,
};

/** Registers the fused kernels on the wasm backend (idempotent); they run only where steel-kernels.wasm loads. */
export function registerFusedKernels(): void {
  for (const [kernelName, fn] of Object.entries(KERNELS)) {
    if (tf.getKernel(kernelName, 'wasm') !== undefined) continue;
    const config: KernelConfig = { kernelName, backendName: 'wasm', kernelFunc: fn };
    tf.registerKernel(config);
  }
}

/** True where the active backend is wasm with our module loaded. */
export function fusedOpsActive(): boolean {
  if (tf.getBackend() !== 'wasm') return false;
  return steelKernels(asWasmBackend(tf.backend()).wasm.asm?.memory) !== null;
}

function run(
  name: string,
  inputs: Record<string, tf.Tensor>,
  attrs: Record<string, number | boolean> = {},
): tf.Tensor[] {
  const out = tf.engine().runKernel(name, inputs, attrs);
  return Array.isArray(out) ? out : [out];
}

type Forward = (
  inputs: tf.Tensor[],
  save: tf.GradSaveFunc,
) => { value: tf.Tensor; gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor | tf.Tensor[] };

/** tf.customGrad with its variadic (tensors..., save) arguments unpacked and typed. */
function customOp(forward: Forward, ...inputs: tf.Tensor[]): tf.Tensor {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args[args.length - 1];
    if (typeof save !== 'function') throw new Error('steelscope fused op: tf.customGrad passed no save function');
    return forward(
      args.slice(0, -1).filter((a): a is tf.Tensor => a instanceof tf.Tensor),
      save,
    );
  });
  return op(...inputs);
}

const f32 = (...ts: tf.Tensor[]): boolean => ts.every((t) => t.dtype === 'float32');

/** rmsNorm (layers.ts) fused; x [N, d] with d % 4 == 0. */
export function fusedRmsNorm(x: tf.Tensor2D, weight: tf.Tensor1D, eps: number): tf.Tensor2D | null {
  if (!fusedOpsActive() || x.shape[1] % 4 !== 0 || !f32(x, weight)) return null;
  const forward: Forward = ([xs, w], save) => {
    const [y, rinv] = run('SteelRmsNorm', { x: xs, weight: w }, { eps });
    save([xs, w, rinv]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        run('SteelRmsNormGrad', { x: saved[0], weight: saved[1], rinv: saved[2], dy }),
    };
  };
  return customOp(forward, x, weight) as tf.Tensor2D;
}

/** silu(gate) * up fused; any shape whose size is a multiple of 4. */
export function fusedSwiGlu(gate: tf.Tensor2D, up: tf.Tensor2D): tf.Tensor2D | null {
  if (!fusedOpsActive() || gate.size % 4 !== 0 || !f32(gate, up) || gate.shape.join() !== up.shape.join()) return null;
  const forward: Forward = ([g, u], save) => {
    save([g, u]);
    return {
      value: run('SteelSwiGlu', { gate: g, up: u })[0],
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => run('SteelSwiGluGrad', { gate: saved[0], up: saved[1], dy }),
    };
  };
  return customOp(forward, gate, up) as tf.Tensor2D;
}

/**
 * applyRotary (layers.ts) fused, tables [T, hd] (constants: no gradient), hd % 8 == 0, on x either
 * [BH, T, hd] or [B*T, heads*hd] (a projection's output: each row's heads at position row % T).
 */
export function fusedRotary<R extends tf.Rank.R2 | tf.Rank.R3>(
  x: tf.Tensor<R>,
  cos: tf.Tensor2D,
  sin: tf.Tensor2D,
): tf.Tensor<R> | null {
  const [t, hd] = cos.shape;
  const width = x.shape[x.rank - 1];
  const rowsAtPositions = x.rank === 3 ? x.shape[1] === t : x.shape[0] % t === 0;
  const tablesFit = sin.shape.join() === cos.shape.join() && width % hd === 0 && rowsAtPositions;
  if (!fusedOpsActive() || hd % 8 !== 0 || !tablesFit || !f32(x, cos, sin)) return null;
  const forward: Forward = ([xs], save) => {
    // Saved, not captured: backward runs after the caller's tidy has disposed its temporaries.
    save([cos, sin]);
    return {
      value: run('SteelRotary', { x: xs, cos, sin }, { backward: false })[0],
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        run('SteelRotary', { x: dy, cos: saved[0], sin: saved[1] }, { backward: true })[0],
    };
  };
  return customOp(forward, x) as tf.Tensor<R>;
}

/**
 * Causal grouped-query attention softmax(q k^T * scale + mask) v in one kernel each way
 * (c/attention.c), on the projections' own layout: q [B*T, nh*hd], k and v [B*T, nkv*hd] →
 * y [B*T, nh*hd]. Query head h reads key/value head h / (nh / nkv).
 */
export function fusedCausalAttention(
  q: tf.Tensor2D,
  k: tf.Tensor2D,
  v: tf.Tensor2D,
  heads: { batch: number; nh: number; nkv: number; hd: number },
): tf.Tensor2D | null {
  const { batch, nh, nkv, hd } = heads;
  const t = q.shape[0] / batch;
  const fits =
    Number.isInteger(t) &&
    q.shape[1] === nh * hd &&
    k.shape.join() === v.shape.join() &&
    k.shape.join() === `${q.shape[0]},${nkv * hd}` &&
    nh % nkv === 0;
  if (!fusedOpsActive() || !fits || !f32(q, k, v)) return null;
  const attrs = { batch, t, nh, nkv, hd };
  const forward: Forward = ([qs, ks, vs], save) => {
    const [y, probs] = run('SteelAttention', { q: qs, k: ks, v: vs }, attrs);
    save([qs, ks, vs, probs]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        run('SteelAttentionGrad', { q: saved[0], k: saved[1], v: saved[2], probs: saved[3], dy }, attrs),
    };
  };
  return customOp(forward, q, k, v) as tf.Tensor2D;
}

/** Per-row softmax cross-entropy [N] of logits [N, V] (V % 4 == 0) against int32 targets [N]. */
export function fusedCrossEntropy(logits: tf.Tensor2D, targets: tf.Tensor1D): tf.Tensor1D | null {
  if (!fusedOpsActive() || logits.shape[1] % 4 !== 0 || logits.dtype !== 'float32' || targets.dtype !== 'int32')
    return null;
  const forward: Forward = ([x], save) => {
    const [loss, probs] = run('SteelXent', { logits: x, targets });
    save([probs, targets]); // saved, not captured (see fusedRotary)
    return {
      value: loss,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        run('SteelXentGrad', { probs: saved[0], targets: saved[1], dy })[0],
    };
  };
  return customOp(forward, logits) as tf.Tensor1D;
}

/** One AdamW update as new [param, m, v] tensors (size % 4 == 0), or null where it cannot run fused. */
export function fusedAdamW(
  p: tf.Tensor,
  g: tf.Tensor,
  m: tf.Tensor,
  v: tf.Tensor,
  s: AdamWScalars,
): tf.Tensor[] | null {
  if (!fusedOpsActive() || p.size % 4 !== 0 || !f32(p, g, m, v)) return null;
  return run('SteelAdamW', { p, g, m, v }, { ...s });
}

/**
 * Sum of squares of a float32 tensor's elements, in float64, read in place on wasm (no kernel,
 * no new tensor); null where our kernels do not run.
 */
export function fusedSumOfSquares(x: tf.Tensor): number | null {
  if (!fusedOpsActive() || x.dtype !== 'float32') return null;
  const backend = asWasmBackend(tf.backend());
  const steel = steelKernels(backend.wasm.asm?.memory);
  if (steel === null) return null;
  return steel.steel_sumsq(tensorData(backend, x).memoryOffset, x.size);
}
