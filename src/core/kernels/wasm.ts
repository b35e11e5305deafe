// Kernels of our own (see /work/shared/notes/tfjs-on-this-machine.md):
// - wasm UnsortedSegmentSum, which wasm lacks, so the gradient of tf.gather (embedding lookup) works;
// - wasm BatchMatMul, re-registered so every product reaches XNNPACK. The stock kernel uses XNNPACK
//   only for un-transposed, un-batched operands and otherwise runs a ~1 GFLOP/s scalar loop, which
//   is where every backward product and every attention product lands;
// - cpu UnsortedSegmentSum: the stock one costs O(numSegments * size), most of a cpu training step.

import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm'; // registers the stock wasm kernels we replace and delegate to
import type { DataId, DataType, KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { registerFusedKernels } from './fused';
import { registerRowKernels } from './rows';
import { steelKernels, type SteelExports } from './steel';
import { callArgs } from './split';
import { matmulOnThreads } from './threads';
import {
  asWasmBackend,
  input,
  tensorData,
  type CFunction,
  type KernelArgs,
  type WasmBackend,
  type WasmTensorData,
} from './wasm-backend';

// --- UnsortedSegmentSum ---

type NumericArray = Float32Array | Int32Array | Uint8Array;

/** out[segmentIds[i], ...] += x[i, ...] over a zeroed out; ids outside [0, numSegments) are dropped, as on cpu. */
function segmentSumInto(xs: NumericArray, ids: NumericArray, out: NumericArray, numSegments: number): void {
  const n = ids.length;
  const inner = n === 0 ? 0 : xs.length / n;
  for (let i = 0; i < n; i++) {
    const s = ids[i];
    if (s < 0 || s >= numSegments) continue;
    const src = i * inner;
    const dst = s * inner;
    for (let j = 0; j < inner; j++) out[dst + j] += xs[src + j];
  }
}

function segmentSumShape(args: KernelArgs): {
  x: TensorInfo;
  segmentIds: TensorInfo;
  numSegments: number;
  outShape: number[];
} {
  const x = input(args, 'x');
  const segmentIds = input(args, 'segmentIds');
  const numSegments = Number(args.attrs?.numSegments);
  if (x.dtype !== 'float32' && x.dtype !== 'int32') throw new Error(`UnsortedSegmentSum: unsupported dtype ${x.dtype}`);
  return { x, segmentIds, numSegments, outShape: [numSegments, ...x.shape.slice(segmentIds.shape.length)] };
}

function unsortedSegmentSum(args: KernelArgs): TensorInfo {
  const { x, segmentIds, numSegments, outShape } = segmentSumShape(args);
  const wasm = asWasmBackend(args.backend);
  const out = wasm.makeOutput(outShape, x.dtype);
  // Views are taken after the allocation: a malloc that grows the heap detaches older views.
  const os = wasm.typedArrayFromHeap(out);
  os.fill(0); // malloc'd memory is not zeroed
  segmentSumInto(wasm.typedArrayFromHeap(x), wasm.typedArrayFromHeap(segmentIds), os, numSegments);
  return out;
}

interface CpuBackend {
  data: { get(dataId: DataId): { values?: unknown } | undefined };
  makeTensorInfo(shape: number[], dtype: DataType, values: NumericArray): TensorInfo;
}

/**
 * The same kernel for the plain-JS cpu backend, whose stock one loops over every segment
 * (O(numSegments * size)): 34 s of a 45 s tiny-preset training step, against ~10 ms here.
 */
function cpuUnsortedSegmentSum(args: KernelArgs): TensorInfo {
  const { x, segmentIds, numSegments, outShape } = segmentSumShape(args);
  const cpu = args.backend as CpuBackend;
  const values = (t: TensorInfo): NumericArray => {
    const v = cpu.data.get(t.dataId)?.values;
    if (!(v instanceof Float32Array || v instanceof Int32Array))
      throw new Error('UnsortedSegmentSum (cpu): unexpected tensor storage');
    return v;
  };
  const size = tf.util.sizeFromShape(outShape);
  const out = x.dtype === 'int32' ? new Int32Array(size) : new Float32Array(size);
  segmentSumInto(values(x), values(segmentIds), out, numSegments);
  return cpu.makeTensorInfo(outShape, x.dtype, out);
}

// --- BatchMatMul ---

let stockBatchMatMul: KernelConfig | undefined;
const cBatchMatMulByModule = new WeakMap<object, CFunction>();

/** The exported C entry of the stock kernel; cwrapped lazily per wasm module instance. */
function cBatchMatMul(backend: WasmBackend): CFunction {
  let fn = cBatchMatMulByModule.get(backend.wasm);
  if (fn === undefined) {
    const argTypes = ['number', 'array', 'number', 'number', 'array', 'number', 'number', 'number', 'number'];
    fn = backend.wasm.cwrap(tf.BatchMatMul, null, argTypes);
    cBatchMatMulByModule.set(backend.wasm, fn);
  }
  return fn;
}

function shapeBytes(shape: number[]): Uint8Array {
  return new Uint8Array(new Int32Array(shape).buffer);
}

/**
 * One product [M,K]x[K,N] on the XNNPACK path, operands and output given by tensor ids.
 * XNNPACK packs b as "weights" and caches the packed copy until b's id is disposed.
 */
function xnnMatMul(
  backend: WasmBackend,
  aId: number,
  bId: number,
  outId: number,
  m: number,
  k: number,
  n: number,
): void {
  cBatchMatMul(backend)(aId, shapeBytes([1, m, k]), 3, bId, shapeBytes([1, k, n]), 3, false, false, outId);
}

/**
 * A tensor id that aliases part of another tensor's heap memory (no copy), so one slice of a
 * batched operand can be handed to the 2-D XNNPACK path. Released with releaseView, never with
 * disposeData, which would free() an interior pointer.
 */
function makeView(backend: WasmBackend, base: WasmTensorData, elementOffset: number, shape: number[]): TensorInfo {
  return backend.makeOutput(shape, 'float32', base.memoryOffset + 4 * elementOffset);
}

function releaseView(backend: WasmBackend, view: TensorInfo): void {
  const data = tensorData(backend, view);
  backend.wasm.tfjs.disposeData(data.id); // also drops any XNNPACK operator cached on this id
  backend.dataIdMap.delete(view.dataId);
}

/** Explicit [batch, r, c] -> [batch, c, r] through the wasm Transpose kernel (a new tensor we own). */
function transposeLast2(backend: WasmBackend, x: TensorInfo, batch: number, rows: number, cols: number): TensorInfo {
  const transpose = tf.getKernel(tf.Transpose, 'wasm').kernelFunc;
  const x3: TensorInfo = { dataId: x.dataId, shape: [batch, rows, cols], dtype: x.dtype };
  return transpose({ inputs: { x: x3 }, backend, attrs: { perm: [0, 2, 1] } }) as TensorInfo;
}

interface Plan {
  batchA: number;
  batchB: number;
  m: number;
  k: number;
  n: number;
  outShape: number[];
}

/** Shapes of the product, or null where we leave it to the stock kernel (general broadcasting, empty). */
function planProduct(a: TensorInfo, b: TensorInfo, transposeA: boolean, transposeB: boolean): Plan | null {
  const ra = a.shape.length;
  const rb = b.shape.length;
  const m = transposeA ? a.shape[ra - 1] : a.shape[ra - 2];
  const k = transposeA ? a.shape[ra - 2] : a.shape[ra - 1];
  const kb = transposeB ? b.shape[rb - 1] : b.shape[rb - 2];
  const n = transposeB ? b.shape[rb - 2] : b.shape[rb - 1];
  if (k !== kb) return null; // the stock kernel throws tfjs's own error message
  const outOuter = tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  const batchA = tf.util.sizeFromShape(a.shape.slice(0, -2));
  const batchB = tf.util.sizeFromShape(b.shape.slice(0, -2));
  const batch = tf.util.sizeFromShape(outOuter);
  if (m * k * n === 0) return null;
  // Supported: b unbatched (fold a's batch into M), a unbatched, or both batched alike.
  if (!(batchB === 1 || batchA === 1 || (batchA === batch && batchB === batch))) return null;
  return { batchA, batchB, m, k, n, outShape: [...outOuter, m, n] };
}

/** Runs the planned product on operands already laid out [batch, M, K] and [batch, K, N]. */
function runPlan(backend: WasmBackend, plan: Plan, a: TensorInfo, b: TensorInfo): TensorInfo {
  const { batchA, batchB, m, k, n } = plan;
  const out = backend.makeOutput(plan.outShape, 'float32');
  const aData = tensorData(backend, a);
  const bData = tensorData(backend, b);
  const outData = tensorData(backend, out);
  if (batchB === 1) {
    xnnMatMul(backend, aData.id, bData.id, outData.id, batchA * m, k, n); // [batchA*M, K] x [K, N]
    return out;
  }
  const batch = Math.max(batchA, batchB);
  for (let i = 0; i < batch; i++) {
    const aView = batchA === 1 ? null : makeView(backend, aData, i * m * k, [m, k]);
    const bView = makeView(backend, bData, i * k * n, [k, n]);
    const oView = makeView(backend, outData, i * m * n, [m, n]);
    const aId = aView === null ? aData.id : tensorData(backend, aView).id;
    xnnMatMul(backend, aId, tensorData(backend, bView).id, tensorData(backend, oView).id, m, k, n);
    if (aView !== null) releaseView(backend, aView);
    releaseView(backend, bView);
    releaseView(backend, oView);
  }
  return out;
}

/** A scratch block in tfjs's heap for the packed operands of our matmul, one per wasm module; never freed. */
const packOffsetByModule = new WeakMap<object, number>();

function packOffset(backend: WasmBackend, steel: SteelExports): number {
  let offset = packOffsetByModule.get(backend.wasm);
  if (offset === undefined) {
    offset = tensorData(backend, backend.makeOutput([steel.steel_pack_floats()], 'float32')).memoryOffset;
    packOffsetByModule.set(backend.wasm, offset);
  }
  return offset;
}

/**
 * The product on our SIMD kernel (c/steel.c), which reads transposed operands through strides and
 * loops over the batch itself: no transposes, no per-slice views.
 */
function steelMatMul(
  backend: WasmBackend,
  steel: SteelExports,
  plan: Plan,
  a: TensorInfo,
  b: TensorInfo,
  tA: boolean,
  tB: boolean,
): TensorInfo {
  const { batchA, batchB, m, k, n } = plan;
  const pack = packOffset(backend, steel); // before makeOutput is fine: offsets survive heap growth
  const out = backend.makeOutput(plan.outShape, 'float32');
  const [sam, sak] = tA ? [1, m] : [k, 1]; // a is [.., M, K], or [.., K, M] when transposed
  const [sbk, sbn] = tB ? [1, k] : [n, 1]; // b is [.., K, N], or [.., N, K] when transposed
  const fold = batchB === 1 && !tA; // [batchA*M, K] x [K, N] in one product
  const batch = fold ? 1 : Math.max(batchA, batchB);
  const rows = fold ? batchA * m : m;
  const bsa = batchA === 1 ? 0 : m * k;
  const bsb = batchB === 1 ? 0 : k * n;
  const ptr = (t: TensorInfo): number => tensorData(backend, t).memoryOffset;
  const call = {
    c: ptr(out),
    a: ptr(a),
    b: ptr(b),
    pack,
    batch,
    m: rows,
    n,
    k,
    sam,
    sak,
    sbk,
    sbn,
    bsa,
    bsb,
    ldc: n,
    bsc: rows * n,
  };
  matmulOnThreads(backend.wasm.asm?.memory, call, (part) => steel.steel_matmul(...callArgs(part)));
  return out;
}

function fastBatchMatMul(args: KernelArgs): TensorInfo | TensorInfo[] {
  const a = input(args, 'a');
  const b = input(args, 'b');
  const transposeA = args.attrs?.transposeA === true;
  const transposeB = args.attrs?.transposeB === true;
  const plan = a.dtype === 'float32' && b.dtype === 'float32' ? planProduct(a, b, transposeA, transposeB) : null;
  if (stockBatchMatMul === undefined) throw new Error('steelscope: stock wasm BatchMatMul kernel missing');
  if (plan === null) return stockBatchMatMul.kernelFunc(args as Parameters<KernelFunc>[0]);
  const backend = asWasmBackend(args.backend);
  const steel = steelKernels(backend.wasm.asm?.memory);
  if (steel !== null) return steelMatMul(backend, steel, plan, a, b, transposeA, transposeB);
  const { batchA, batchB, m, k, n } = plan;
  // Transposing costs O(size); the scalar loop it avoids costs O(M*K*N) at ~1 GFLOP/s.
  const aT = transposeA ? transposeLast2(backend, a, batchA, k, m) : null;
  const bT = transposeB ? transposeLast2(backend, b, batchB, n, k) : null;
  try {
    return runPlan(backend, plan, aT ?? a, bT ?? b);
  } finally {
    if (aT !== null) backend.disposeData(aT.dataId);
    if (bT !== null) backend.disposeData(bT.dataId);
  }
}

// --- registration ---

const unsortedSegmentSumConfig: KernelConfig = {
  kernelName: tf.UnsortedSegmentSum,
  backendName: 'wasm',
  kernelFunc: unsortedSegmentSum as KernelFunc,
};

const batchMatMulConfig: KernelConfig = {
  kernelName: tf.BatchMatMul,
  backendName: 'wasm',
  kernelFunc: fastBatchMatMul as KernelFunc,
  // Registered before the backend initialises, ours replaces the stock setup hook, which the
  // stock kernel (our fallback) needs to bind its C function.
  setupFunc: (backend) => stockBatchMatMul?.setupFunc?.(backend),
};

/**
 * Identity that shares the input's data (as the cpu backend's does) instead of copying it: autodiff
 * clones every tensor it saves for the backward pass, and on stock wasm each clone is a full copy
 * (341 copies per tiny step). Safe because tfjs tensors are immutable and the wasm backend counts
 * references per data id.
 */
let stockIdentity: KernelConfig | undefined;

function sharedIdentity(args: KernelArgs): TensorInfo | TensorInfo[] {
  const x = input(args, 'x');
  if (x.dtype === 'string' && stockIdentity !== undefined)
    return stockIdentity.kernelFunc(args as Parameters<KernelFunc>[0]);
  const backend = asWasmBackend(args.backend);
  backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

const identityConfig: KernelConfig = {
  kernelName: tf.Identity,
  backendName: 'wasm',
  kernelFunc: sharedIdentity as KernelFunc,
};

// --- Tile ---

let stockTile: KernelConfig | undefined;

/**
 * Tile by whole rows when the last axis is not repeated: each output row (last axis) is a copy of
 * one input row, so it is one typed-array copy instead of the stock kernel's per-element index
 * arithmetic (22 ms for one GQA key/value repeat of the small preset). Other cases go to the stock kernel.
 */
function rowTile(args: KernelArgs): TensorInfo | TensorInfo[] {
  const x = input(args, 'x');
  const reps = (args.attrs?.reps ?? []) as number[];
  const rank = x.shape.length;
  const byRows =
    rank >= 1 && reps.length === rank && reps[rank - 1] === 1 && (x.dtype === 'float32' || x.dtype === 'int32');
  if (!byRows || stockTile === undefined) {
    if (stockTile === undefined) throw new Error('steelscope: stock wasm Tile kernel missing');
    return stockTile.kernelFunc(args as Parameters<KernelFunc>[0]);
  }
  const backend = asWasmBackend(args.backend);
  const outShape = x.shape.map((d, i) => d * reps[i]);
  const out = backend.makeOutput(outShape, x.dtype);
  const src = backend.typedArrayFromHeap(x); // views after the allocation (heap growth detaches)
  const dst = backend.typedArrayFromHeap(out);
  const row = x.shape[rank - 1];
  const outRows = row === 0 ? 0 : dst.length / row;
  const idx = new Array<number>(rank - 1).fill(0); // output row index over axes 0..rank-2
  for (let r = 0; r < outRows; r++) {
    let srcRow = 0;
    for (let a = 0; a < rank - 1; a++) srcRow = srcRow * x.shape[a] + (idx[a] % x.shape[a]);
    dst.set(src.subarray(srcRow * row, srcRow * row + row), r * row);
    for (let a = rank - 2; a >= 0 && ++idx[a] === outShape[a]; a--) idx[a] = 0;
  }
  return out;
}

const tileConfig: KernelConfig = {
  kernelName: tf.Tile,
  backendName: 'wasm',
  kernelFunc: rowTile as KernelFunc,
  setupFunc: (backend) => stockTile?.setupFunc?.(backend), // binds the stock kernel's C function (our fallback)
};

const cpuUnsortedSegmentSumConfig: KernelConfig = {
  kernelName: tf.UnsortedSegmentSum,
  backendName: 'cpu',
  kernelFunc: cpuUnsortedSegmentSum as KernelFunc,
};

function replaceKernel(config: KernelConfig): void {
  if (tf.getKernel(config.kernelName, config.backendName) !== undefined) {
    tf.unregisterKernel(config.kernelName, config.backendName);
  }
  tf.registerKernel(config);
}

/**
 * Registers our wasm kernels (idempotent). Must run after '@tensorflow/tfjs-backend-wasm' is
 * imported (it registers the stock kernels on import) and before wasm does real work; it works
 * even after the backend initialised, as our kernels need no setup hook.
 */
export function registerWasmKernels(options: { batchMatMul?: boolean; sharedIdentity?: boolean } = {}): void {
  const current = tf.getKernel(tf.BatchMatMul, 'wasm');
  if (current === undefined) throw new Error('registerWasmKernels: import @tensorflow/tfjs-backend-wasm first');
  if (current.kernelFunc !== batchMatMulConfig.kernelFunc) stockBatchMatMul = current;
  if (tf.getKernel(tf.UnsortedSegmentSum, 'wasm')?.kernelFunc !== unsortedSegmentSumConfig.kernelFunc) {
    replaceKernel(unsortedSegmentSumConfig);
  }
  const identity = tf.getKernel(tf.Identity, 'wasm');
  if (identity?.kernelFunc !== identityConfig.kernelFunc) stockIdentity = identity;
  const wantShared = options.sharedIdentity ?? true;
  if (wantShared && identity?.kernelFunc !== identityConfig.kernelFunc) replaceKernel(identityConfig);
  if (!wantShared && identity?.kernelFunc === identityConfig.kernelFunc && stockIdentity !== undefined)
    replaceKernel(stockIdentity);
  const tile = tf.getKernel(tf.Tile, 'wasm');
  if (tile?.kernelFunc !== tileConfig.kernelFunc) {
    stockTile = tile;
    replaceKernel(tileConfig);
  }
  registerFusedKernels();
  registerRowKernels();
  const wantFast = options.batchMatMul ?? true;
  if (wantFast && current.kernelFunc !== batchMatMulConfig.kernelFunc) replaceKernel(batchMatMulConfig);
  if (!wantFast && current.kernelFunc === batchMatMulConfig.kernelFunc && stockBatchMatMul !== undefined) {
    replaceKernel(stockBatchMatMul);
  }
}

/** Replaces the cpu backend's UnsortedSegmentSum (the embedding gradient) with ours (idempotent). */
export function registerCpuKernels(): void {
  if (tf.getKernel(tf.UnsortedSegmentSum, 'cpu')?.kernelFunc !== cpuUnsortedSegmentSumConfig.kernelFunc) {
    replaceKernel(cpuUnsortedSegmentSumConfig);
  }
}
