// Our matmul on more than one core. tfjs-backend-wasm runs one thread in Node (its threaded
// build cannot start its workers there) and its heap is not shared memory, so a worker_thread
// cannot read it. Each big product is therefore split by rows of C (or by batch item): the main
// thread computes the first share in place on tfjs's heap, while the helpers' shares of the
// operands are copied into one shared WebAssembly.Memory, computed there by the same kernel
// (steel-kernels-mt.wasm) and copied back.
// Determinism: every element of C is computed by the same instructions in the same order
// whichever thread computes it, so results are bit-identical for any thread count; the split is a
// fixed function of the shape, never of timing.

import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { WA, steelSharedModule, type SharedWasmMemory } from './steel';

/** One product as steel_matmul takes it: pointers are byte offsets, strides in elements. */
export interface MatmulCall {
  c: number;
  a: number;
  b: number;
  pack: number;
  batch: number;
  m: number;
  n: number;
  k: number;
  sam: number;
  sak: number;
  sbk: number;
  sbn: number;
  bsa: number;
  bsb: number;
}

const ARG_ORDER: readonly (keyof MatmulCall)[] = ['c', 'a', 'b', 'pack', 'batch', 'm', 'n', 'k', 'sam', 'sak', 'sbk', 'sbn', 'bsa', 'bsb'];

// Control block of one helper: Int32 slots in the shared memory, below the module's own
// layout (wasm-ld places nothing under 1024 bytes).
const CTL_INTS = 32;
const REQ = 0; // 1: work posted, 2: quit; the helper resets it to 0 before DONE
const DONE = 1;
const READY = 2;
const ERR = 3;
const SPIN_US = 4; // how long the helper spins for the next request before sleeping (see HELPER_SPIN_US)
const ARGS = 8;
const MAX_HELPERS = 7; // 8 control blocks of 128 bytes fit under 1024
const PACK_BASE = 1 << 20; // clear of the module's (unused) stack
const PAGE = 65536;
const MAX_PAGES = 32768; // 2 GiB, as declared by steel-kernels-mt.wasm (scripts/build.mjs)
/**
 * How long a helper spins for the next request, and the main thread for a helper's result, before
 * sleeping: a futex wake-up costs about as much as a small product's share, but a spinning
 * thread takes a core from whatever else runs on the machine.
 */
const HELPER_SPIN_US = 0;
const MAIN_SPIN_MS = 0.3;
/** Products below this many multiply-adds stay on one thread: the hand-off costs ~0.1 ms. */
const DEFAULT_MIN_MACS = 1 << 22;

// The helper's whole program: instantiate the kernel on the shared memory, then serve requests.
const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { module, memory, ctlOffset, args } = workerData;
const matmul = new WebAssembly.Instance(module, { env: { memory } }).exports.steel_matmul;
const ctl = new Int32Array(memory.buffer, ctlOffset, ${CTL_INTS});
Atomics.store(ctl, ${READY}, 1);
for (;;) {
  // Products come in bursts (a layer's forward or backward): spin a little before sleeping, as a
  // futex wake-up costs about as much as a small product's share.
  const until = performance.now() + ctl[${SPIN_US}] / 1000;
  while (Atomics.load(ctl, ${REQ}) === 0) {
    if (performance.now() > until) Atomics.wait(ctl, ${REQ}, 0);
  }
  if (Atomics.load(ctl, ${REQ}) === 2) break;
  try {
    matmul(...Array.from(ctl.subarray(${ARGS}, ${ARGS} + args)));
    ctl[${ERR}] = 0;
  } catch (err) {
    ctl[${ERR}] = 1;
  }
  Atomics.store(ctl, ${REQ}, 0);
  Atomics.store(ctl, ${DONE}, 1);
  Atomics.notify(ctl, ${DONE});
}
`;

function envThreads(): number | undefined {
  const raw = process.env.STEELSCOPE_THREADS;
  if (raw === undefined || raw.trim() === '') return undefined;
  const n = Number(raw);
  return Number.isInteger(n) && n >= 1 ? n : undefined;
}

let threads = envThreads() ?? (availableParallelism() >= 2 ? 2 : 1);
let minMacs = DEFAULT_MIN_MACS;
let helperSpinUs = HELPER_SPIN_US;

interface Pool {
  memory: SharedWasmMemory;
  workers: Worker[];
  ctl: Int32Array[];
  packBytes: number;
  dataBase: number;
  failed: string;
}

let pool: Pool | null = null;
let poolFailure = '';

/** Threads our matmul uses (the main thread included), as set by STEELSCOPE_THREADS or setSteelThreads. */
export function steelThreads(): number {
  return threads;
}

/**
 * Sets the thread count (1 runs everything on the main thread; at most 1 + 7 helpers) and,
 * for tests, the smallest product that is split. Helpers already started are kept for a lower count.
 */
export function setSteelThreads(count: number, options: { minMacs?: number; helperSpinUs?: number } = {}): void {
  const next = Math.max(1, Math.min(1 + MAX_HELPERS, Math.floor(count)));
  if (pool !== null && pool.workers.length < next - 1) stopHelpers(); // fewer are used from a bigger pool
  threads = next;
  minMacs = options.minMacs ?? DEFAULT_MIN_MACS;
  helperSpinUs = options.helperSpinUs ?? HELPER_SPIN_US;
  pool?.ctl.forEach((c) => Atomics.store(c, SPIN_US, helperSpinUs));
}

/** Stops the helper threads (they restart on the next big product). */
export function stopHelpers(): void {
  if (pool === null) return;
  for (const c of pool.ctl) {
    Atomics.store(c, REQ, 2);
    Atomics.notify(c, REQ);
  }
  for (const w of pool.workers) void w.terminate();
  pool = null;
}

/**
 * Starts the helpers now (they are otherwise started by the first big product) and says why
 * products will run on one thread although more were asked for ('' when they will not).
 */
export function startSteelThreads(): string {
  if (threads === 1) return '';
  const { module, reason } = steelSharedModule();
  if (module === null) return reason;
  if (pool === null && poolFailure === '') pool = startPool(module, threads - 1);
  return pool?.failed || poolFailure;
}

function startPool(module: object, helpers: number): Pool | null {
  try {
    const memory = new WA.Memory({ initial: PACK_BASE / PAGE + 1, maximum: MAX_PAGES, shared: true });
    // Instantiated here too, to fail early (an import mismatch) and to learn the scratch size.
    const probe = new WA.Instance(module, { env: { memory } }).exports.steel_pack_floats;
    if (typeof probe !== 'function') throw new Error('steel-kernels-mt.wasm lacks steel_pack_floats');
    const packBytes = 4 * Number(probe());
    const p: Pool = { memory, workers: [], ctl: [], packBytes, dataBase: align(PACK_BASE + helpers * packBytes, 64), failed: '' };
    for (let i = 0; i < helpers; i++) p.workers.push(startHelper(p, module, i));
    return p;
  } catch (err) {
    poolFailure = `helper threads did not start: ${err instanceof Error ? err.message : String(err)}`;
    return null;
  }
}

function startHelper(p: Pool, module: object, index: number): Worker {
  const ctlOffset = index * CTL_INTS * 4;
  const ctl = new Int32Array(p.memory.buffer, ctlOffset, CTL_INTS);
  ctl[SPIN_US] = helperSpinUs;
  p.ctl.push(ctl);
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { module, memory: p.memory, ctlOffset, args: ARG_ORDER.length } });
  worker.unref(); // never keeps the process alive
  worker.on('error', (err) => {
    p.failed = `helper thread failed: ${err.message}`;
  });
  return worker;
}

/**
 * Resolves true once the helpers are up (false after timeoutMs, or at once where they cannot
 * start). Products never wait for them: until then they run on the main thread alone.
 */
export async function steelThreadsReady(timeoutMs = 5000): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  if (startSteelThreads() !== '') return false;
  while (readyPool() === null) {
    if (threads === 1 || pool === null || pool.failed !== '' || Date.now() > until) return false;
    await new Promise((r) => setTimeout(r, 5));
  }
  return true;
}

let splits = 0;

/** How many products have been split over threads so far (for tests and benches). */
export function steelThreadsSplits(): number {
  return splits;
}

function align(x: number, to: number): number {
  return Math.ceil(x / to) * to;
}

/** The pool, started on first use; null while a helper is still starting or where none can run. */
function readyPool(): Pool | null {
  if (startSteelThreads() !== '' || pool === null) return null;
  if (pool.workers.some((w) => w.threadId === -1)) return null; // a helper exited
  return pool.ctl.every((c) => Atomics.load(c, READY) === 1) ? pool : null;
}

/** A block of floats copied from tfjs's heap into the shared memory (byte offsets). */
interface Region {
  src: number;
  floats: number;
}

/** How one product is shared out: the main thread's call, and the helpers' calls over copied regions. */
interface Split {
  main: MatmulCall;
  a: Region;
  b: Region;
  c: Region; // copied back after the helpers finish
  /** Helper i's call, with a, b, c as byte offsets into the copied regions and no pack yet. */
  helpers: MatmulCall[];
}

/** Part boundaries of `count` items over `parts` threads; row splits keep whole 8-row tiles. */
function bounds(count: number, parts: number, quantum: number): number[] {
  const out = [0];
  for (let i = 1; i < parts; i++) out.push(Math.floor((count * i) / parts / quantum) * quantum);
  out.push(count);
  return out;
}

/** Batched products: whole items per thread; an unbatched operand (stride 0) is copied once, whole. */
function splitBatch(call: MatmulCall, parts: number): Split {
  const { m, n, k, bsa, bsb } = call;
  const at = bounds(call.batch, parts, 1);
  const first = at[1];
  const rest = call.batch - first;
  const a = { src: call.a + 4 * first * bsa, floats: bsa === 0 ? m * k : rest * bsa };
  const b = { src: call.b + 4 * first * bsb, floats: bsb === 0 ? k * n : rest * bsb };
  const c = { src: call.c + 4 * first * m * n, floats: rest * m * n };
  const helpers = at.slice(1, -1).map((start, i) => ({
    ...call,
    batch: at[i + 2] - start,
    a: 4 * (start - first) * bsa,
    b: 4 * (start - first) * bsb,
    c: 4 * (start - first) * m * n,
  }));
  return { main: { ...call, batch: first }, a, b, c, helpers };
}

/**
 * Single products: rows of C per thread. Rows of a row-major A are copied for the helpers only;
 * a transposed A (rows strided) is copied whole, as one block copies faster than k short runs.
 */
function splitRows(call: MatmulCall, parts: number): Split {
  const { m, n, k, sam, sak } = call;
  const at = bounds(m, parts, 8);
  const first = at[1];
  const rowMajor = sak === 1;
  const a = rowMajor ? { src: call.a + 4 * first * sam, floats: (m - first) * sam } : { src: call.a, floats: k * sak };
  const b = { src: call.b, floats: k * n };
  const c = { src: call.c + 4 * first * n, floats: (m - first) * n };
  const helpers = at.slice(1, -1).map((start, i) => ({
    ...call,
    m: at[i + 2] - start,
    a: rowMajor ? 4 * (start - first) * sam : 4 * start,
    b: 0,
    c: 4 * (start - first) * n,
  }));
  return { main: { ...call, m: first }, a, b, c, helpers };
}

/** The split of this product over `parts` threads, or null where it is not worth one. */
function planSplit(call: MatmulCall, parts: number): Split | null {
  if (parts < 2 || call.batch * call.m * call.n * call.k < minMacs) return null;
  if (call.batch >= 2) return splitBatch(call, Math.min(parts, call.batch));
  if (call.m < 16) return null;
  return splitRows(call, Math.min(parts, Math.floor(call.m / 8)));
}

export function callArgs(call: MatmulCall): number[] {
  return ARG_ORDER.map((key) => call[key]);
}

/** Grows the shared memory to hold `bytes` past the data base; false where it would pass the maximum. */
function reserve(p: Pool, bytes: number): boolean {
  const need = Math.ceil((p.dataBase + bytes) / PAGE);
  const have = p.memory.buffer.byteLength / PAGE;
  if (need > MAX_PAGES) return false;
  if (need > have) p.memory.grow(need - have);
  return true;
}

function post(ctl: Int32Array, call: MatmulCall): void {
  ctl.set(callArgs(call), ARGS);
  Atomics.store(ctl, DONE, 0);
  Atomics.store(ctl, REQ, 1);
  Atomics.notify(ctl, REQ);
}

function waitFor(p: Pool, index: number): void {
  const ctl = p.ctl[index];
  const until = performance.now() + MAIN_SPIN_MS;
  while (Atomics.load(ctl, DONE) === 0 && performance.now() < until);
  while (Atomics.load(ctl, DONE) === 0) {
    // The timeout only lets us notice a helper that died (its exit event cannot reach a blocked thread).
    if (Atomics.wait(ctl, DONE, 0, 1000) === 'timed-out' && p.workers[index].threadId === -1) {
      throw new Error('steelscope: a matmul helper thread exited');
    }
  }
  if (ctl[ERR] !== 0) throw new Error('steelscope: the matmul failed on a helper thread');
}

/**
 * Runs one product, on the helper threads as well where it is big enough and they are up;
 * `main` runs a call on the calling thread against tfjs's heap `heap` (the memory's current
 * buffer, taken after every allocation). The result is the same either way, bit for bit.
 */
export function matmulOnThreads(heap: ArrayBufferLike, call: MatmulCall, main: (call: MatmulCall) => void): void {
  const split = planSplit(call, threads);
  const p = split === null ? null : readyPool();
  const [aBytes, bBytes] = split === null ? [0, 0] : [align(4 * split.a.floats, 64), align(4 * split.b.floats, 64)];
  if (split === null || p === null || !reserve(p, aBytes + bBytes + 4 * split.c.floats)) {
    main(call);
    return;
  }
  splits++;
  const shared = new Float32Array(p.memory.buffer);
  const src = new Float32Array(heap);
  const [aAt, bAt, cAt] = [p.dataBase, p.dataBase + aBytes, p.dataBase + aBytes + bBytes];
  shared.set(src.subarray(split.a.src / 4, split.a.src / 4 + split.a.floats), aAt / 4);
  shared.set(src.subarray(split.b.src / 4, split.b.src / 4 + split.b.floats), bAt / 4);
  split.helpers.forEach((h, i) => {
    const pack = PACK_BASE + i * p.packBytes;
    post(p.ctl[i], { ...h, a: aAt + h.a, b: bAt + h.b, c: cAt + h.c, pack });
  });
  try {
    main(split.main);
  } finally {
    split.helpers.forEach((_, i) => waitFor(p, i)); // never leave a helper writing into memory we reuse
  }
  src.set(shared.subarray(cAt / 4, cAt / 4 + split.c.floats), split.c.src / 4);
}
