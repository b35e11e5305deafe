// Our kernels on more than one core, in place on tfjs's heap. tfjs-backend-wasm runs on its
// threaded-simd build (wasm-start.ts), whose heap is a shared WebAssembly.Memory, but starts no
// threads of its own in Node; so our helper threads (worker_threads) instantiate our kernels
// (steel-kernels-mt*.wasm) on that same memory and compute parts of a call straight from its
// operands into its result: nothing is copied. Each big product is split by rows or columns of C
// (or by batch item; split.ts): the main thread computes an even share; the rest is cut into a
// few chunks that the helpers claim. A chunk that no helper has claimed when the main thread is done with its share,
// the main thread computes itself: a helper that the OS has put aside (the machine is busy) costs
// no waiting. Where tfjs's heap is not shared (its simd build), products run on one thread.
// Determinism: the chunks are a fixed function of the shape, and every element of C is computed
// by the same instructions in the same order whichever thread computes it, so results are
// bit-identical for any thread count and any timing.
// Heap growth: only tfjs's malloc, on the main thread, grows the memory; helpers never do, and
// hold no view of it but their control block, which lies below any later growth.
// Attention (by batch items), softmax cross-entropy and SwiGLU (by rows) are shared out the same
// way (onThreads).

import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { callArgs, CHUNKS_PER_HELPER, planSplit, shareItems, type MatmulCall, type Split } from './split';
import { WA, steelSharedModule, type SharedWasmMemory, type WasmMemory } from './steel';

/**
 * The exports of steel-kernels-mt.wasm a helper may run (all of their arguments integers), and
 * which argument is the packing scratch that each thread replaces with its own (-1: none).
 */
const THREAD_KERNELS = [
  { name: 'steel_matmul', packArg: 3 },
  { name: 'steel_attn_fwd', packArg: 5 },
  { name: 'steel_attn_bwd', packArg: 9 },
  { name: 'steel_xent_fwd', packArg: -1 },
  { name: 'steel_xent_bwd', packArg: -1 },
  { name: 'steel_swiglu_fwd', packArg: -1 },
  { name: 'steel_swiglu_bwd', packArg: -1 },
  { name: 'steel_add', packArg: -1 },
] as const;
export type ThreadKernel = (typeof THREAD_KERNELS)[number]['name'];

/** One call of a kernel: its export and its arguments (byte offsets and integers). */
export interface Task {
  kernel: ThreadKernel;
  args: number[];
}

/** tfjs's heap where it is shared memory, with its allocator (what we take from it is never freed). */
export interface SharedHeap {
  memory: SharedWasmMemory;
  malloc(bytes: number): number;
}

// The control block: Int32 slots in tfjs's heap (one block per pool of helpers).
const GEN = 0; // bumped as each product is posted; -1 tells the helpers to quit
const NCHUNK = 1;
const READY = 8; // READY + i: helper i is up
const CHUNKS = 16; // chunk i: CHUNKS + i * CHUNK_INTS: a state, the kernel's index, its argument count, its arguments
const CHUNK_INTS = 20;
// Chunk states. Every chunk of a finished product is TAKEN, DONE or FAILED, never OPEN, so a
// helper still scanning an older product can only claim (and then read) chunks of a newer one.
const OPEN = 0;
const CLAIMED = 1; // by a helper, computing
const TAKEN = 2; // by the main thread
const DONE = 3; // by a helper
const FAILED = 4;
const MAX_HELPERS = 7;
const CTL_INTS = CHUNKS + MAX_HELPERS * CHUNKS_PER_HELPER * CHUNK_INTS;
const LINE = 64; // the control block and each helper's scratch on cache lines of their own
/** How long the main thread spins for a helper's chunk before sleeping (a futex wake-up costs ~0.1 ms). */
const MAIN_SPIN_MS = 0.3;
/**
 * How long a helper that finished its chunks watches for the next call before sleeping: in a
 * training step calls follow each other within microseconds, and waking a sleeping thread costs
 * ~0.05-0.1 ms each time. Short, as a spinning thread takes a core from whatever else runs.
 */
const HELPER_SPIN_MS = 0.2;
/** Products below this many multiply-adds stay on one thread: the hand-off costs ~0.1 ms. */
const DEFAULT_MIN_MACS = 1 << 22;

// The helper's whole program: instantiate the kernels on tfjs's memory, then, for each posted
// call, claim open chunks in order and compute them with its own packing scratch. Between calls
// it watches for HELPER_SPIN_MS, then sleeps.
const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { module, memory, ctlAt, index, pack } = workerData;
const exports = new WebAssembly.Instance(module, { env: { memory } }).exports;
const kernels = ${JSON.stringify(THREAD_KERNELS)}.map((k) => ({ fn: exports[k.name], packArg: k.packArg }));
const ctl = new Int32Array(memory.buffer, ctlAt, ${CTL_INTS});
Atomics.store(ctl, ${READY} + index, 1);
let seen = 0;
for (;;) {
  const spinUntil = performance.now() + ${HELPER_SPIN_MS};
  while (Atomics.load(ctl, ${GEN}) === seen && performance.now() < spinUntil);
  Atomics.wait(ctl, ${GEN}, seen);
  seen = Atomics.load(ctl, ${GEN});
  if (seen < 0) break;
  const count = Atomics.load(ctl, ${NCHUNK});
  for (let i = 0; i < count; i++) {
    const at = ${CHUNKS} + i * ${CHUNK_INTS};
    if (Atomics.compareExchange(ctl, at, ${OPEN}, ${CLAIMED}) !== ${OPEN}) continue;
    const kernel = kernels[ctl[at + 1]];
    const args = Array.from(ctl.subarray(at + 3, at + 3 + ctl[at + 2]));
    if (kernel.packArg >= 0) args[kernel.packArg] = pack;
    let state = ${DONE};
    try {
      kernel.fn(...args);
    } catch (err) {
      state = ${FAILED};
    }
    Atomics.store(ctl, at, state);
    Atomics.notify(ctl, at);
  }
}
`;

function envThreads(): number | undefined {
  const raw = process.env.STEELSCOPE_THREADS;
  if (raw === undefined || raw.trim() === '') return undefined;
  const n = Number(raw);
  return Number.isInteger(n) && n >= 1 ? n : undefined;
}

let threads = Math.min(1 + MAX_HELPERS, envThreads() ?? (availableParallelism() >= 2 ? 2 : 1));
let minMacs = DEFAULT_MIN_MACS;
let wakeHelpers = true;

interface Pool {
  memory: SharedWasmMemory;
  ctl: Int32Array;
  workers: Worker[];
  failed: string;
}

let heap: SharedHeap | null = null;
let heapNote = 'the wasm backend has not started';
let pool: Pool | null = null;
let poolFailure = '';
const stats = { split: 0, helperChunks: 0, mainChunks: 0 };

/**
 * Where tfjs's heap is shared memory (set by backend.ts once tfjs wasm is up): helpers compute on
 * it. null, with why, where it is not: products then run on one thread.
 */
export function setSteelHeap(next: SharedHeap | null, why: string): void {
  if (next?.memory !== heap?.memory) stopHelpers();
  heap = next;
  heapNote = next === null ? why || "tfjs's wasm heap is not shared memory" : '';
  poolFailure = '';
}

/** Threads our matmul uses (the main thread included), as set by STEELSCOPE_THREADS or setSteelThreads. */
export function steelThreads(): number {
  return threads;
}

/**
 * Sets the thread count (1 runs everything on the main thread; at most 8). Helpers already
 * started are kept for a lower count. For tests: minMacs, the smallest product that is split;
 * wakeHelpers false posts chunks without waking the helpers, so the main thread computes them
 * all itself (what happens when the OS has put the helpers aside).
 */
export function setSteelThreads(count: number, options: { minMacs?: number; wakeHelpers?: boolean } = {}): void {
  const next = Math.max(1, Math.min(1 + MAX_HELPERS, Math.floor(count)));
  if (pool !== null && pool.workers.length < next - 1) stopHelpers();
  threads = next;
  minMacs = options.minMacs ?? DEFAULT_MIN_MACS;
  wakeHelpers = options.wakeHelpers ?? true;
}

/** Stops the helper threads (they start again with the next big product). */
export function stopHelpers(): void {
  if (pool === null) return;
  Atomics.store(pool.ctl, GEN, -1);
  Atomics.notify(pool.ctl, GEN);
  for (const w of pool.workers) void w.terminate();
  pool = null;
}

/**
 * Products split so far, and how many of their chunks the helpers and the main thread computed;
 * inPlace: whether helpers compute on tfjs's own heap (for tests and benches).
 */
export function steelThreadsStats(): { split: number; helperChunks: number; mainChunks: number; inPlace: boolean } {
  return { ...stats, inPlace: pool !== null && pool.memory === heap?.memory };
}

/**
 * Starts the helpers now (they are otherwise started by the first big product) and says why
 * products will run on one thread although more were asked for ('' when they will not).
 */
export function startSteelThreads(): string {
  if (threads === 1) return '';
  if (heap === null) return heapNote;
  const { module, reason } = steelSharedModule();
  if (module === null) return reason;
  if (pool === null && poolFailure === '') pool = startPool(heap, module, threads - 1);
  return pool?.failed || poolFailure;
}

/**
 * Resolves true once the helpers are up (false after timeoutMs, or at once where they cannot
 * start). Products never wait for them: until then the main thread computes them alone.
 */
export async function steelThreadsReady(timeoutMs = 5000): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (readyPool() === null) {
    if (threads === 1 || startSteelThreads() !== '' || Date.now() > until) return false;
    await new Promise((r) => setTimeout(r, 5));
  }
  return true;
}

function startPool(h: SharedHeap, module: object, helpers: number): Pool | null {
  try {
    // Instantiated here too, to fail early (an import mismatch) and to learn the scratch size.
    const exports = new WA.Instance(module, { env: { memory: h.memory } }).exports;
    const probe = exports.steel_pack_floats;
    if (typeof probe !== 'function') throw new Error('steel-kernels-mt.wasm lacks steel_pack_floats');
    const missing = THREAD_KERNELS.find((k) => typeof exports[k.name] !== 'function');
    if (missing !== undefined) throw new Error(`steel-kernels-mt.wasm lacks ${missing.name}`);
    const ctlBytes = align(4 * CTL_INTS, LINE);
    const packBytes = align(4 * Number(probe()), LINE);
    // The control block, then each helper's packing scratch. Never freed: a stopped helper may
    // still be reading its block, and pools are started once or twice per process.
    const raw = h.malloc(ctlBytes + helpers * packBytes + LINE);
    if (raw === 0) throw new Error("out of memory in tfjs's heap");
    const base = align(raw, LINE);
    const ctl = new Int32Array(h.memory.buffer, base, CTL_INTS); // the buffer after malloc's growth
    ctl.fill(0); // malloc'd memory is not zeroed
    for (let i = 0; i < MAX_HELPERS * CHUNKS_PER_HELPER; i++) ctl[CHUNKS + i * CHUNK_INTS] = TAKEN; // none open
    const p: Pool = { memory: h.memory, ctl, workers: [], failed: '' };
    for (let i = 0; i < helpers; i++) {
      const workerData = { module, memory: h.memory, ctlAt: base, index: i, pack: base + ctlBytes + i * packBytes };
      const worker = new Worker(WORKER_SOURCE, { eval: true, workerData });
      worker.unref(); // never keeps the process alive
      worker.on('error', (err) => {
        p.failed = `helper thread failed: ${err.message}`;
      });
      p.workers.push(worker);
    }
    return p;
  } catch (err) {
    poolFailure = `helper threads did not start: ${err instanceof Error ? err.message : String(err)}`;
    return null;
  }
}

/** The pool, started on first use; null while a helper is still starting or where none can run. */
function readyPool(): Pool | null {
  const p = startSteelThreads() === '' ? pool : null;
  if (p === null || p.workers.some((w) => w.threadId === -1)) return null; // none, or a helper exited
  return p.workers.every((_, i) => Atomics.load(p.ctl, READY + i) === 1) ? p : null;
}

function align(x: number, to: number): number {
  return Math.ceil(x / to) * to;
}

const matmulTask = (call: MatmulCall): Task => ({ kernel: 'steel_matmul', args: callArgs(call) });

/** Opens the chunks (arguments first, state last) and wakes the helpers. */
function post(p: Pool, chunks: readonly Task[]): void {
  chunks.forEach((task, i) => {
    const at = CHUNKS + i * CHUNK_INTS;
    if (task.args.length > CHUNK_INTS - 3)
      throw new Error(`steelscope: ${task.kernel} takes more arguments than a chunk holds`);
    p.ctl[at + 1] = THREAD_KERNELS.findIndex((k) => k.name === task.kernel);
    p.ctl[at + 2] = task.args.length;
    p.ctl.set(task.args, at + 3);
    Atomics.store(p.ctl, at, OPEN);
  });
  Atomics.store(p.ctl, NCHUNK, chunks.length);
  if (!wakeHelpers) return;
  Atomics.add(p.ctl, GEN, 1);
  Atomics.notify(p.ctl, GEN);
}

/** Waits until chunk i is no longer being computed by a helper (closing it first, if still open); its final state. */
function settle(p: Pool, i: number): number {
  const at = CHUNKS + i * CHUNK_INTS;
  Atomics.compareExchange(p.ctl, at, OPEN, TAKEN);
  const until = performance.now() + MAIN_SPIN_MS;
  while (Atomics.load(p.ctl, at) === CLAIMED && performance.now() < until);
  while (Atomics.load(p.ctl, at) === CLAIMED) {
    // The timeout only lets us notice a helper that died (its exit event cannot reach a blocked thread).
    if (Atomics.wait(p.ctl, at, CLAIMED, 1000) === 'timed-out' && p.workers.some((w) => w.threadId === -1)) {
      throw new Error('steelscope: a kernel helper thread exited');
    }
  }
  return Atomics.load(p.ctl, at);
}

/**
 * Runs the main thread's share, then the chunks no helper claimed, then waits for the helpers;
 * `task` gives the helpers' form of a part, `main` runs a part on this thread.
 */
function runSplit<T>(p: Pool, split: Split<T>, task: (part: T) => Task, main: (part: T) => void): void {
  stats.split++;
  const failed: number[] = [];
  post(p, split.chunks.map(task));
  try {
    main(split.main);
    // Chunks no helper has claimed yet, from the last one back (helpers claim from the first).
    for (let i = split.chunks.length - 1; i >= 0; i--) {
      if (Atomics.compareExchange(p.ctl, CHUNKS + i * CHUNK_INTS, OPEN, TAKEN) !== OPEN) continue;
      main(split.chunks[i]);
      stats.mainChunks++;
    }
  } finally {
    // Also where main threw: no helper may still write into memory that tfjs reuses.
    split.chunks.forEach((_, i) => {
      const state = settle(p, i);
      if (state === DONE) stats.helperChunks++;
      if (state === FAILED) failed.push(i);
    });
  }
  // A chunk that trapped on a helper is computed again here (the same bits); later calls stay on one thread.
  for (const i of failed) main(split.chunks[i]);
  if (failed.length > 0) p.failed = 'a kernel failed on a helper thread';
}

/** The pool where `memory` (tfjs's heap, which a call's pointers are into) is the one it shares. */
function poolFor(memory: WasmMemory | undefined): Pool | null {
  return heap === null || memory !== heap.memory ? null : readyPool();
}

/**
 * Runs one product, on the helper threads as well where it is big enough and they are up;
 * `memory` is tfjs's heap, which the call's pointers are into, and `main` runs a call on the
 * calling thread. The result is the same either way, bit for bit.
 */
export function matmulOnThreads(
  memory: WasmMemory | undefined,
  call: MatmulCall,
  main: (call: MatmulCall) => void,
): void {
  const split = heap === null || memory !== heap.memory ? null : planSplit(call, threads - 1, minMacs);
  const p = split === null ? null : poolFor(memory);
  if (split === null || p === null) {
    main(call);
    return;
  }
  runSplit(p, split, matmulTask, main);
}

/**
 * Runs `kernel` over `count` independent items (rows, or batch items) on the helper threads as
 * well, where they are up and there are at least two items: `args(start, n, slot)` gives its
 * arguments for n items from start (slot: which of at most maxParts(count) parts it is, for
 * per-part scratch), `run` calls it on the calling thread. Deterministic as long as each item's
 * result does not depend on which part computes it.
 */
export function onThreads(
  memory: WasmMemory | undefined,
  kernel: ThreadKernel,
  count: number,
  args: (start: number, n: number, slot: number) => number[],
  run: (args: number[]) => void,
): void {
  const part = ([start, end]: [number, number], slot: number): Task => ({
    kernel,
    args: args(start, end - start, slot),
  });
  const helpers = Math.min(threads - 1, count - 1);
  const p = helpers < 1 ? null : poolFor(memory);
  if (p === null) {
    run(part([0, count], 0).args);
    return;
  }
  const items = shareItems(count, helpers);
  runSplit(
    p,
    { main: part(items.main, 0), chunks: items.chunks.map((range, i) => part(range, i + 1)) },
    (t) => t,
    (t) => run(t.args),
  );
}

/** The most parts onThreads cuts `count` items into (the main thread's and the chunks). */
export function maxParts(count: number): number {
  const helpers = Math.min(threads - 1, count - 1);
  return helpers < 1 ? 1 : 1 + Math.min(count, helpers * CHUNKS_PER_HELPER);
}
