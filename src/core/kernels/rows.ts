// Stock wasm kernels replaced where the training step meets them in a slow shape:
// - GatherV2 on axis 0 (the embedding lookup): one row copy per index instead of the stock
//   kernel's per-element index arithmetic (5 ms for 1,024 rows of 128 against ~0.05 ms);
// - Sum over every axis but the last (the gradient of a bias add), which the stock kernel does by
//   transposing first (~0.5 ms for [1024, 128]; 12 of them a tiny step), with our column sums;
// - Add of float32 tensors of one shape, or of a row to every row (a bias), split over our helper
//   threads by rows (41 adds a tiny step: residuals, biases and the sums of gradients).
// Every other case goes to the stock kernel.

import * as tf from '@tensorflow/tfjs-core';
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { steelKernels } from './steel';
import { onThreads } from './threads';
import { asWasmBackend, input, tensorData, type KernelArgs } from './wasm-backend';

const stock = new Map<string, KernelConfig>();

function callStock(name: string, args: KernelArgs): TensorInfo | TensorInfo[] {
  const config = stock.get(name);
  if (config === undefined) throw new Error(`steelscope: stock wasm ${name} kernel missing`);
  return config.kernelFunc(args as Parameters<KernelFunc>[0]);
}

/** Rows of x (axis 0) picked by int32 indices of any shape: out is [...indices.shape, ...x.shape[1:]]. */
function rowGather(args: KernelArgs): TensorInfo | TensorInfo[] {
  const x = input(args, 'x');
  const indices = input(args, 'indices');
  const axis = Number(args.attrs?.axis ?? 0);
  const batchDims = Number(args.attrs?.batchDims ?? 0);
  const plain = (axis === 0 || axis === -x.shape.length) && batchDims === 0 && x.shape.length >= 1;
  const backend = asWasmBackend(args.backend);
  const enabled = steelKernels(backend.wasm.asm?.memory) !== null; // off with the rest of ours (benches compare)
  if (!enabled || !plain || indices.dtype !== 'int32' || (x.dtype !== 'float32' && x.dtype !== 'int32'))
    return callStock(tf.GatherV2, args);
  const out = backend.makeOutput([...indices.shape, ...x.shape.slice(1)], x.dtype);
  const src = backend.typedArrayFromHeap(x); // views after the allocation (heap growth detaches)
  const ids = backend.typedArrayFromHeap(indices);
  const dst = backend.typedArrayFromHeap(out);
  const rows = x.shape[0];
  const width = rows === 0 ? 0 : src.length / rows;
  for (let i = 0; i < ids.length; i++) {
    const row = ids[i];
    if (row < 0 || row >= rows) {
      backend.disposeData(out.dataId);
      throw new Error(`GatherV2: the index value ${row} is not in [0, ${rows - 1}]`);
    }
    dst.set(src.subarray(row * width, row * width + width), i * width);
  }
  return out;
}

/** The reduced axes of a Sum as a sorted list of non-negative axes (none given: all of them). */
function sumAxes(args: KernelArgs, rank: number): number[] {
  const raw = args.attrs?.axis;
  if (raw === null || raw === undefined) return Array.from({ length: rank }, (_, i) => i);
  const list = Array.isArray(raw) ? raw.map(Number) : [Number(raw)];
  return [...new Set(list.map((a) => (a < 0 ? a + rank : a)))].sort((a, b) => a - b);
}

function columnSum(args: KernelArgs): TensorInfo | TensorInfo[] {
  const x = input(args, 'x');
  const rank = x.shape.length;
  const axes = sumAxes(args, rank);
  const leading = rank >= 2 && axes.length === rank - 1 && axes.every((a, i) => a === i);
  const backend = asWasmBackend(args.backend);
  const steel = steelKernels(backend.wasm.asm?.memory);
  if (!leading || x.dtype !== 'float32' || steel === null) return callStock(tf.Sum, args);
  const cols = x.shape[rank - 1];
  const keepDims = args.attrs?.keepDims === true;
  const out = backend.makeOutput(keepDims ? [...x.shape.slice(0, -1).map(() => 1), cols] : [cols], 'float32');
  const rows = cols === 0 ? 0 : tf.util.sizeFromShape(x.shape) / cols;
  steel.steel_colsum(tensorData(backend, x).memoryOffset, tensorData(backend, out).memoryOffset, rows, cols);
  return out;
}

/** a + b by rows where b has a's shape or is one row (its last axis) broadcast over a's rows. */
function rowAdd(args: KernelArgs): TensorInfo | TensorInfo[] {
  const a = input(args, 'a');
  const b = input(args, 'b');
  const backend = asWasmBackend(args.backend);
  const steel = steelKernels(backend.wasm.asm?.memory);
  const cols = a.shape[a.shape.length - 1] ?? 1;
  const same = a.shape.join() === b.shape.join();
  const bias =
    b.shape.length >= 1 &&
    b.shape.length <= a.shape.length &&
    tf.util.sizeFromShape(b.shape) === cols &&
    b.shape[b.shape.length - 1] === cols;
  if (steel === null || a.dtype !== 'float32' || b.dtype !== 'float32' || a.shape.length === 0 || !(same || bias))
    return callStock(tf.Add, args);
  const out = backend.makeOutput(a.shape, 'float32');
  const [pa, pb, po] = [a, b, out].map((t) => tensorData(backend, t).memoryOffset);
  const rows = cols === 0 ? 0 : tf.util.sizeFromShape(a.shape) / cols;
  const bStep = same ? 4 * cols : 0;
  const call = (r: number, n: number): number[] => [
    pa + 4 * r * cols,
    pb + r * bStep,
    po + 4 * r * cols,
    n,
    cols,
    same ? 1 : 0,
  ];
  // Adds are memory-bound: below ~256k floats a second thread gained nothing (tiny's [1024, 128]).
  if (rows * cols < 1 << 18) steel.steel_add(...call(0, rows));
  else onThreads(backend.wasm.asm?.memory, 'steel_add', rows, call, (a) => steel.steel_add(...a));
  return out;
}

const OVERRIDES: Record<string, KernelFunc> = {
  [tf.GatherV2]: rowGather as KernelFunc,
  [tf.Sum]: columnSum as KernelFunc,
  [tf.Add]: rowAdd as KernelFunc,
};

/** Registers our GatherV2, Sum and Add on wasm (idempotent), keeping the stock ones as the fallback. */
export function registerRowKernels(): void {
  for (const [kernelName, kernelFunc] of Object.entries(OVERRIDES)) {
    const current = tf.getKernel(kernelName, 'wasm');
    if (current === undefined)
      throw new Error(`steelscope: import @tensorflow/tfjs-backend-wasm before registering ${kernelName}`);
    if (current.kernelFunc === kernelFunc) continue;
    stock.set(kernelName, current);
    tf.unregisterKernel(kernelName, 'wasm');
    // The stock setup hook binds the stock kernel's C function, which our fallback calls.
    tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc, setupFunc: current.setupFunc });
  }
}
