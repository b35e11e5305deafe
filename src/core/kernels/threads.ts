// Our matmul on more than one core. tfjs-backend-wasm runs one thread in Node (its threaded
// build cannot start its workers there) and its heap is not shared memory, so a worker_thread
// cannot read it. Each big product is therefore split by rows of C (or by batch item): the main
// thread computes the first share in place on tfjs's heap; the rest is cut into a few chunks whose
// operands are copied into one shared WebAssembly.Memory, where helper threads compute them with
// the same kernel (steel-kernels-mt.wasm) for the main thread to copy back. A chunk that no
// helper has started when the main thread is done with its share, the main thread computes
// itself, in place: a helper that the OS has put aside (the machine is busy) costs no waiting.
// Determinism: the chunks are a fixed function of the shape, and every element of C is computed
// by the same instructions in the same order whichever thread computes it, so results are
// bit-identical for any thread count and any timing.

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

// The control block: Int32 slots in the shared memory, clear of the module's own (unused) stack.
const CTL_BASE = 1 << 19;
const GEN = 0; // bumped for each posted product; -1 tells the helpers to quit
const NCHUNK = 1;
const READY = 8; // READY + i: helper i is up
const CHUNKS = 32; // chunk i: CHUNKS + i * CHUNK_INTS, a state then the call's arguments
const CHUNK_INTS = 16;
// Chunk states. Every chunk of a finished product is TAKEN, DONE or FAILED, never OPEN, so a
// helper still scanning an older product can only claim (and then read) chunks of a newer one.
const OPEN = 0;
const CLAIMED = 1; // by a helper, computing
const TAKEN = 2; // by the main thread
const DONE = 3; // by a helper, result in shared memory
const FAILED = 4;
const MAX_HELPERS = 7;
const CHUNKS_PER_HELPER = 4;
/**
 * The main thread's own share, as a fraction of an even split: it also copies the operands in and
 * the results out, and takes back any chunk a helper has not started, so a smaller fixed share
 * balances itself.
 */
const MAIN_SHARE = Number(process.env.STEEL_MAIN_SHARE ?? 0.75);
const CTL_INTS = CHUNKS + MAX_HELPERS * CHUNKS_PER_HELPER * CHUNK_INTS;
const PACK_BASE = 1 << 20;
const PAGE = 65536;
const MAX_PAGES = 32768; // 2 GiB, as declared by steel-kernels-mt.wasm (scripts/build.mjs)
/** How long the main thread spins for a helper's chunk before sleeping (a futex wake-up costs ~0.1 ms). */
const MAIN_SPIN_MS = 0.3;
/** Products below this many multiply-adds stay on one thread: the hand-off costs ~0.1 ms. */
const DEFAULT_MIN_MACS = 1 << 22;

// The helper's whole program: instantiate the kernel on the shared memory, then, for each posted
// product, claim open chunks in order and compute them with its own packing scratch. It never
// spins: a spinning thread takes a core from whatever else runs on the machine.
const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { module, memory, index, pack } = workerData;
const matmul = new WebAssembly.Instance(module, { env: { memory } }).exports.steel_matmul;
const ctl = new Int32Array(memory.buffer, ${CTL_BASE}, ${CTL_INTS});
Atomics.store(ctl, ${READY} + index, 1);
let seen = 0;
for (;;) {
  Atomics.wait(ctl, ${GEN}, seen);
  seen = Atomics.load(ctl, ${GEN});
  if (seen < 0) break;
  const count = Atomics.load(ctl, ${NCHUNK});
  for (let i = 0; i < count; i++) {
    const at = ${CHUNKS} + i * ${CHUNK_INTS};
    if (Atomics.compareExchange(ctl, at, ${OPEN}, ${CLAIMED}) !== ${OPEN}) continue;
    const args = Array.from(ctl.subarray(at + 1, at + 1 + ${ARG_ORDER.length}));
    args[3] = pack;
    let state = ${DONE};
    try {
      matmul(...args);
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
  dataBase: number;
  failed: string;
}

let pool: Pool | null = null;
let poolFailure = '';
const stats = { split: 0, helperChunks: 0, mainChunks: 0 };

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

/** Products split so far, and how many of their chunks the helpers and the main thread computed (for tests and benches). */
export function steelThreadsStats(): { split: number; helperChunks: number; mainChunks: number } {
  return { ...stats };
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

function startPool(module: object, helpers: number): Pool | null {
  try {
    const memory = new WA.Memory({ initial: PACK_BASE / PAGE + 1, maximum: MAX_PAGES, shared: true });
    // Instantiated here too, to fail early (an import mismatch) and to learn the scratch size.
    const probe = new WA.Instance(module, { env: { memory } }).exports.steel_pack_floats;
    if (typeof probe !== 'function') throw new Error('steel-kernels-mt.wasm lacks steel_pack_floats');
    const packBytes = 4 * Number(probe());
    const ctl = new Int32Array(memory.buffer, CTL_BASE, CTL_INTS);
    for (let i = 0; i < MAX_HELPERS * CHUNKS_PER_HELPER; i++) ctl[CHUNKS + i * CHUNK_INTS] = TAKEN; // none open
    const p: Pool = { memory, ctl, workers: [], dataBase: align(PACK_BASE + helpers * packBytes, 64), failed: '' };
    for (let i = 0; i < helpers; i++) {
      const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { module, memory, index: i, pack: PACK_BASE + i * packBytes } });
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

/** A range of floats of tfjs's heap (byte offset src) that the helpers' chunks read or write. */
interface Region {
  src: number;
  floats: number;
}

/** One chunk: the call on tfjs's heap (for the main thread) and on the copies (for a helper). */
interface Chunk {
  heap: MatmulCall;
  shared: MatmulCall; // a, b, c relative to the copied regions
  cOffset: number; // floats from the start of region c
  cFloats: number;
}

/** How one product is shared out: the main thread's part, and chunks over copied regions. */
interface Split {
  main: MatmulCall;
  a: Region;
  b: Region;
  c: Region;
  chunks: Chunk[];
}

/** Boundaries cutting [from, to) into `parts`, multiples of `quantum` past from. */
function cuts(from: number, to: number, parts: number, quantum: number): number[] {
  const out = [from];
  for (let i = 1; i < parts; i++) out.push(from + Math.floor(((to - from) * i) / parts / quantum) * quantum);
  out.push(to);
  return out.filter((x, i) => i === 0 || x > out[i - 1]);
}

/** Batched products: whole items per chunk; an unbatched operand (stride 0) is copied once, whole. */
function splitBatch(call: MatmulCall, helpers: number): Split {
  const { m, n, k, bsa, bsb } = call;
  const first = Math.max(1, Math.floor((MAIN_SHARE * call.batch) / (helpers + 1)));
  const a = { src: call.a + 4 * first * bsa, floats: bsa === 0 ? m * k : (call.batch - first) * bsa };
  const b = { src: call.b + 4 * first * bsb, floats: bsb === 0 ? k * n : (call.batch - first) * bsb };
  const c = { src: call.c + 4 * first * m * n, floats: (call.batch - first) * m * n };
  const at = cuts(first, call.batch, helpers * CHUNKS_PER_HELPER, 1);
  const chunks = at.slice(0, -1).map((start, i) => {
    const batch = at[i + 1] - start;
    const heap = { ...call, batch, a: call.a + 4 * start * bsa, b: call.b + 4 * start * bsb, c: call.c + 4 * start * m * n };
    const shared = { ...call, batch, a: 4 * (start - first) * bsa, b: 4 * (start - first) * bsb, c: 4 * (start - first) * m * n };
    return { heap, shared, cOffset: (start - first) * m * n, cFloats: batch * m * n };
  });
  return { main: { ...call, batch: first }, a, b, c, chunks };
}

/**
 * Single products: rows of C per chunk, whole 8-row tiles. Rows of a row-major A are copied for
 * the helpers only; a transposed A (rows strided) is copied whole, as one block copies faster than k short runs.
 */
function splitRows(call: MatmulCall, helpers: number): Split {
  const { m, n, k, sam, sak } = call;
  const first = Math.max(8, Math.floor((MAIN_SHARE * m) / (helpers + 1) / 8) * 8);
  const rowMajor = sak === 1;
  const a = rowMajor ? { src: call.a + 4 * first * sam, floats: (m - first) * sam } : { src: call.a, floats: k * sak };
  const b = { src: call.b, floats: k * n };
  const c = { src: call.c + 4 * first * n, floats: (m - first) * n };
  const at = cuts(first, m, Math.min(helpers * CHUNKS_PER_HELPER, Math.ceil((m - first) / 8)), 8);
  const chunks = at.slice(0, -1).map((start, i) => {
    const rows = at[i + 1] - start;
    const heap = { ...call, m: rows, a: call.a + 4 * start * sam, c: call.c + 4 * start * n };
    const shared = { ...call, m: rows, a: rowMajor ? 4 * (start - first) * sam : 4 * start, b: 0, c: 4 * (start - first) * n };
    return { heap, shared, cOffset: (start - first) * n, cFloats: rows * n };
  });
  return { main: { ...call, m: first }, a, b, c, chunks };
}

/** The split of this product, or null where it is not worth one. */
function planSplit(call: MatmulCall): Split | null {
  const helpers = threads - 1;
  if (helpers < 1 || call.batch * call.m * call.n * call.k < minMacs) return null;
  if (call.batch >= 2) return splitBatch(call, Math.min(helpers, call.batch - 1));
  if (call.m < 16) return null;
  return splitRows(call, Math.min(helpers, Math.floor(call.m / 8) - 1));
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

/** Copies the operands in, then opens the chunks (arguments first, states last) and wakes the helpers. */
function post(p: Pool, heap: ArrayBufferLike, split: Split, at: { a: number; b: number; c: number }): void {
  const shared = new Float32Array(p.memory.buffer);
  const src = new Float32Array(heap);
  shared.set(src.subarray(split.a.src / 4, split.a.src / 4 + split.a.floats), at.a / 4);
  shared.set(src.subarray(split.b.src / 4, split.b.src / 4 + split.b.floats), at.b / 4);
  split.chunks.forEach((ch, i) => {
    const call = { ...ch.shared, a: at.a + ch.shared.a, b: at.b + ch.shared.b, c: at.c + ch.shared.c };
    p.ctl.set(callArgs(call), CHUNKS + i * CHUNK_INTS + 1);
  });
  split.chunks.forEach((_, i) => Atomics.store(p.ctl, CHUNKS + i * CHUNK_INTS, OPEN));
  Atomics.store(p.ctl, NCHUNK, split.chunks.length);
  if (!wakeHelpers) return;
  Atomics.add(p.ctl, GEN, 1);
  Atomics.notify(p.ctl, GEN);
}

/** Waits until chunk i is no longer being computed by a helper; its final state. */
function settle(p: Pool, i: number): number {
  const at = CHUNKS + i * CHUNK_INTS;
  const until = performance.now() + MAIN_SPIN_MS;
  while (Atomics.load(p.ctl, at) === CLAIMED && performance.now() < until);
  while (Atomics.load(p.ctl, at) === CLAIMED) {
    // The timeout only lets us notice a helper that died (its exit event cannot reach a blocked thread).
    if (Atomics.wait(p.ctl, at, CLAIMED, 1000) === 'timed-out' && p.workers.some((w) => w.threadId === -1)) {
      throw new Error('steelscope: a matmul helper thread exited');
    }
  }
  return Atomics.load(p.ctl, at);
}

/**
 * Runs one product, on the helper threads as well where it is big enough and they are up;
 * `main` runs a call on the calling thread against tfjs's heap `heap` (the memory's current
 * buffer, taken after every allocation). The result is the same either way, bit for bit.
 */
export function matmulOnThreads(heap: ArrayBufferLike, call: MatmulCall, main: (call: MatmulCall) => void): void {
  const split = planSplit(call);
  const p = split === null ? null : readyPool();
  const [aBytes, bBytes] = split === null ? [0, 0] : [align(4 * split.a.floats, 64), align(4 * split.b.floats, 64)];
  if (split === null || p === null || !reserve(p, aBytes + bBytes + 4 * split.c.floats)) {
    main(call);
    return;
  }
  stats.split++;
  const at = { a: p.dataBase, b: p.dataBase + aBytes, c: p.dataBase + aBytes + bBytes };
  post(p, heap, split, at);
  let states: number[] = [];
  try {
    main(split.main);
    // Chunks no helper has claimed yet, from the last one back (helpers claim from the first).
    for (let i = split.chunks.length - 1; i >= 0; i--) {
      if (Atomics.compareExchange(p.ctl, CHUNKS + i * CHUNK_INTS, OPEN, TAKEN) !== OPEN) continue;
      main(split.chunks[i].heap);
      stats.mainChunks++;
    }
  } finally {
    // No chunk may stay open (see OPEN), nor a helper be left writing into memory we reuse.
    split.chunks.forEach((_, i) => Atomics.compareExchange(p.ctl, CHUNKS + i * CHUNK_INTS, OPEN, TAKEN));
    states = split.chunks.map((_, i) => settle(p, i));
  }
  if (states.includes(FAILED)) throw new Error('steelscope: the matmul failed on a helper thread');
  const shared = new Float32Array(p.memory.buffer);
  const dst = new Float32Array(heap);
  split.chunks.forEach((ch, i) => {
    if (states[i] !== DONE) return;
    stats.helperChunks++;
    const from = at.c / 4 + ch.cOffset;
    dst.set(shared.subarray(from, from + ch.cFloats), split.c.src / 4 + ch.cOffset);
  });
}
