// Our matmul on more than one core. tfjs-backend-wasm runs one thread in Node (its threaded
// build cannot start its workers there) and its heap is not shared memory, so a worker_thread
// cannot read it. Each big product is therefore split by rows of C (or by batch item): the main
// thread computes an even share in place on tfjs's heap; the rest is cut into a few chunks whose
// operands are copied into one shared WebAssembly.Memory (each chunk opened as soon as its own are
// in), where helper threads compute them with the same kernel (steel-kernels-mt.wasm) for the main
// thread to copy back. A chunk that no
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
const GEN = 0; // bumped as each product starts (before its operands are copied in); -1 tells the helpers to quit
const NCHUNK = 1;
const POSTED = 2; // the GEN whose chunks are open
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
const PENDING = 5; // announced, operands still being copied in
const MAX_HELPERS = 7;
const CHUNKS_PER_HELPER = 4;
const CTL_INTS = CHUNKS + MAX_HELPERS * CHUNKS_PER_HELPER * CHUNK_INTS;
const PACK_BASE = 1 << 20;
const PAGE = 65536;
const MAX_PAGES = 32768; // 2 GiB, as declared by steel-kernels-mt.wasm (scripts/build.mjs)
/** How long the main thread spins for a helper's chunk before sleeping (a futex wake-up costs ~0.1 ms). */
const MAIN_SPIN_MS = 0.3;
/** How long a woken helper spins while the main thread copies the operands in, before sleeping. */
const HELPER_SPIN_MS = 1;
/** Products below this many multiply-adds stay on one thread: the hand-off costs ~0.1 ms. */
const DEFAULT_MIN_MACS = 1 << 22;

// The helper's whole program: instantiate the kernel on the shared memory, then, for each posted
// product, claim open chunks in order and compute them with its own packing scratch. It is woken
// as a product starts, so its wake-up overlaps the copying in; it spins only while that lasts (at
// most HELPER_SPIN_MS), as a spinning thread takes a core from whatever else runs on the machine.
// Where it gives up waiting, the main thread computes the chunks itself.
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
  const until = performance.now() + ${HELPER_SPIN_MS};
  while (Atomics.load(ctl, ${POSTED}) !== seen && performance.now() < until);
  const posted = Atomics.load(ctl, ${POSTED});
  if (posted !== seen) Atomics.wait(ctl, ${POSTED}, posted, 100);
  if (Atomics.load(ctl, ${POSTED}) !== seen) continue;
  const count = Atomics.load(ctl, ${NCHUNK});
  for (let i = 0; i < count; i++) {
    const at = ${CHUNKS} + i * ${CHUNK_INTS};
    const spinUntil = performance.now() + ${HELPER_SPIN_MS};
    while (Atomics.load(ctl, at) === ${PENDING} && performance.now() < spinUntil);
    while (Atomics.load(ctl, at) === ${PENDING}) Atomics.wait(ctl, at, ${PENDING}, 100);
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

/** Floats copied between tfjs's heap (byte offset src) and the shared memory (byte offset dst into the operand area). */
interface Copy {
  src: number;
  dst: number;
  floats: number;
}

/** One chunk: the call on tfjs's heap (for the main thread) and on the copies (for a helper). */
interface Chunk {
  heap: MatmulCall;
  shared: MatmulCall; // a, b, c as offsets into the operand area
  copies: Copy[]; // its own operands, copied in just before it opens
  result: Copy; // copied back where a helper computed it
}

/** How one product is shared out: the main thread's part, and chunks over copied operands. */
interface Split {
  main: MatmulCall;
  bytes: number; // of the operand area
  upfront: Copy[]; // operands every chunk reads
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
  const first = Math.floor(call.batch / (helpers + 1)); // an even share (a smaller one measured no faster)
  const rest = call.batch - first;
  const aBytes = align(4 * (bsa === 0 ? m * k : rest * bsa), 64);
  const bBytes = align(4 * (bsb === 0 ? k * n : rest * bsb), 64);
  const upfront = [...(bsa === 0 ? [{ src: call.a, dst: 0, floats: m * k }] : []), ...(bsb === 0 ? [{ src: call.b, dst: aBytes, floats: k * n }] : [])];
  const at = cuts(first, call.batch, helpers * CHUNKS_PER_HELPER, 1);
  const chunks = at.slice(0, -1).map((start, i): Chunk => {
    const [items, o] = [at[i + 1] - start, start - first];
    const heap = { ...call, batch: items, a: call.a + 4 * start * bsa, b: call.b + 4 * start * bsb, c: call.c + 4 * start * m * n };
    const shared = { ...call, batch: items, a: 4 * o * bsa, b: aBytes + 4 * o * bsb, c: aBytes + bBytes + 4 * o * m * n };
    const copies = [
      ...(bsa === 0 ? [] : [{ src: heap.a, dst: shared.a, floats: items * bsa }]),
      ...(bsb === 0 ? [] : [{ src: heap.b, dst: shared.b, floats: items * bsb }]),
    ];
    return { heap, shared, copies, result: { src: heap.c, dst: shared.c, floats: items * m * n } };
  });
  return { main: { ...call, batch: first }, bytes: aBytes + bBytes + 4 * rest * m * n, upfront, chunks };
}

/**
 * Single products: rows of C per chunk, whole 8-row tiles. Rows of a row-major A are copied
 * chunk by chunk; a transposed A (rows strided) is copied whole, as one block copies faster than k short runs.
 */
function splitRows(call: MatmulCall, helpers: number): Split {
  const { m, n, k, sam, sak } = call;
  const first = Math.floor(m / (helpers + 1) / 8) * 8;
  const rowMajor = sak === 1;
  const aBytes = align(4 * (rowMajor ? (m - first) * sam : k * sak), 64);
  const bBytes = align(4 * k * n, 64);
  const upfront = [{ src: call.b, dst: aBytes, floats: k * n }, ...(rowMajor ? [] : [{ src: call.a, dst: 0, floats: k * sak }])];
  const at = cuts(first, m, Math.min(helpers * CHUNKS_PER_HELPER, Math.ceil((m - first) / 8)), 8);
  const chunks = at.slice(0, -1).map((start, i): Chunk => {
    const rows = at[i + 1] - start;
    const heap = { ...call, m: rows, a: call.a + 4 * start * sam, c: call.c + 4 * start * n };
    const shared = { ...call, m: rows, a: rowMajor ? 4 * (start - first) * sam : 4 * start, b: aBytes, c: aBytes + bBytes + 4 * (start - first) * n };
    const copies = rowMajor ? [{ src: heap.a, dst: shared.a, floats: rows * sam }] : [];
    return { heap, shared, copies, result: { src: heap.c, dst: shared.c, floats: rows * n } };
  });
  return { main: { ...call, m: first }, bytes: aBytes + bBytes + 4 * (m - first) * n, upfront, chunks };
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

/** Wakes the helpers, so that their wake-up overlaps the copying in; the GEN that post() will open. */
function wake(p: Pool): number {
  if (!wakeHelpers) return Atomics.load(p.ctl, GEN);
  const gen = Atomics.add(p.ctl, GEN, 1) + 1;
  Atomics.notify(p.ctl, GEN);
  return gen;
}

function copy(from: Float32Array, fromAt: number, to: Float32Array, toAt: number, floats: number): void {
  to.set(from.subarray(fromAt / 4, fromAt / 4 + floats), toAt / 4);
}

/**
 * Announces the chunks (PENDING), then copies the shared operands in and opens each chunk as soon
 * as its own operands are in (arguments first, state last), so a helper starts on the first chunk
 * while the main thread copies the next.
 */
function post(p: Pool, heap: Float32Array, split: Split, gen: number): void {
  const shared = new Float32Array(p.memory.buffer);
  const state = (i: number): number => CHUNKS + i * CHUNK_INTS;
  split.chunks.forEach((_, i) => Atomics.store(p.ctl, state(i), PENDING));
  Atomics.store(p.ctl, NCHUNK, split.chunks.length);
  Atomics.store(p.ctl, POSTED, gen);
  Atomics.notify(p.ctl, POSTED);
  for (const c of split.upfront) copy(heap, c.src, shared, p.dataBase + c.dst, c.floats);
  split.chunks.forEach((ch, i) => {
    for (const c of ch.copies) copy(heap, c.src, shared, p.dataBase + c.dst, c.floats);
    const base = p.dataBase;
    p.ctl.set(callArgs({ ...ch.shared, a: base + ch.shared.a, b: base + ch.shared.b, c: base + ch.shared.c }), state(i) + 1);
    Atomics.store(p.ctl, state(i), OPEN);
    Atomics.notify(p.ctl, state(i));
  });
}

/** Closes every chunk not claimed yet (see OPEN), waking a helper that waits on a pending one. */
function closeAll(p: Pool, count: number): void {
  for (let i = 0; i < count; i++) {
    const at = CHUNKS + i * CHUNK_INTS;
    if (Atomics.compareExchange(p.ctl, at, OPEN, TAKEN) === OPEN || Atomics.compareExchange(p.ctl, at, PENDING, TAKEN) === PENDING) {
      Atomics.notify(p.ctl, at);
    }
  }
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

/** Copies back the helpers' results, those already done first (overlapping the helpers' last chunks); false if one failed. */
function collect(p: Pool, heap: Float32Array, split: Split): boolean {
  const shared = new Float32Array(p.memory.buffer);
  const later: number[] = [];
  let ok = true;
  const take = (i: number, state: number): void => {
    if (state === FAILED) ok = false;
    if (state !== DONE) return;
    const r = split.chunks[i].result;
    copy(shared, p.dataBase + r.dst, heap, r.src, r.floats);
    stats.helperChunks++;
  };
  split.chunks.forEach((_, i) => {
    const state = Atomics.load(p.ctl, CHUNKS + i * CHUNK_INTS);
    if (state === CLAIMED) later.push(i);
    else take(i, state);
  });
  for (const i of later) take(i, settle(p, i));
  return ok;
}

/**
 * Runs one product, on the helper threads as well where it is big enough and they are up;
 * `main` runs a call on the calling thread against tfjs's heap `heap` (the memory's current
 * buffer, taken after every allocation). The result is the same either way, bit for bit.
 */
export function matmulOnThreads(heap: ArrayBufferLike, call: MatmulCall, main: (call: MatmulCall) => void): void {
  const split = planSplit(call);
  const p = split === null ? null : readyPool();
  if (split === null || p === null || !reserve(p, split.bytes)) {
    main(call);
    return;
  }
  stats.split++;
  const floats = new Float32Array(heap);
  let finished = false;
  try {
    post(p, floats, split, wake(p));
    main(split.main);
    // Chunks no helper has claimed yet, from the last one back (helpers claim from the first).
    for (let i = split.chunks.length - 1; i >= 0; i--) {
      if (Atomics.compareExchange(p.ctl, CHUNKS + i * CHUNK_INTS, OPEN, TAKEN) !== OPEN) continue;
      main(split.chunks[i].heap);
      stats.mainChunks++;
    }
    finished = true;
  } finally {
    closeAll(p, split.chunks.length);
    // Never leave a helper writing into memory we reuse.
    if (!finished) split.chunks.forEach((_, i) => settle(p, i));
  }
  if (!collect(p, floats, split)) throw new Error('steelscope: the matmul failed on a helper thread');
}
