// tfjs-backend-wasm started on its threaded-simd build, whose heap is a shared WebAssembly.Memory,
// without the pthreads that build would start (they cannot start in Node, and our kernels bring
// their own helper threads): threads.ts then computes on tfjs's heap from several threads in place.
// Where that build does not start, the ordinary simd build runs and everything stays on one thread.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { setThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import type { SharedWasmMemory, WasmMemory } from './steel';
import { setSteelHeap } from './threads';
import { asWasmBackend, type WasmBackend } from './wasm-backend';

/** The build whose heap is shared memory; build.mjs copies it beside the bundle with the others. */
const WASM_THREADED = 'tfjs-backend-wasm-threaded-simd.wasm';

/** The parts of tfjs's emscripten module that only its threaded build has. */
interface ThreadedModule {
  wasmMemory?: SharedWasmMemory;
  _malloc?: (bytes: number) => number;
}

/** Why tfjs's heap is not shared memory ('' where it is), for the kernels note. */
let wasmHeapNote = '';
let wasmStarted = false;

type Listener = (data: unknown) => void;

/**
 * What the threaded glue gets for each of the 8 pthread workers it makes at start (a fixed pool
 * size): one that answers the 'load' handshake and runs nothing. No pthread is ever started, as
 * XNNPACK is given one thread (setThreadsCount(1)); without that, the main thread could wait forever
 * for a pthread that never runs.
 */
class NoPthreadWorker {
  private readonly listeners = new Map<string, Listener[]>();

  on(event: string, fn: Listener): this {
    this.listeners.set(event, [...(this.listeners.get(event) ?? []), fn]);
    return this;
  }

  postMessage(message: unknown): void {
    if ((message as { cmd?: unknown } | null)?.cmd !== 'load') return;
    setImmediate(() => this.listeners.get('message')?.forEach((fn) => fn({ cmd: 'loaded' })));
  }

  unref(): void {}
  ref(): void {}
  terminate(): Promise<number> {
    return Promise.resolve(0);
  }
}

/**
 * Starts tfjs wasm on its threaded-simd build, whose heap is a shared WebAssembly.Memory: the helper
 * threads of our matmul (threads.ts) compute on it in place. tfjs never picks that build in Node
 * (it reports no thread support there), and its glue would start pthread workers from a blob URL:
 * we claim the support and hand the glue stand-in workers (NoPthreadWorker). Ordinary ops run as
 * fast as on the simd build. '' where it started, else why not (the caller then starts the simd build).
 */
async function startThreadedWasm(wasmDir: string): Promise<string> {
  if (process.env.STEELSCOPE_SHARED_HEAP === '0') return 'STEELSCOPE_SHARED_HEAP=0';
  if (!existsSync(join(wasmDir, WASM_THREADED))) return `${WASM_THREADED} not found beside the other wasm binaries`;
  if (!(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'))) return 'no wasm SIMD';
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  setThreadsCount(1);
  // The glue assigns globalThis.Worker = worker_threads.Worker before using it: ignore that.
  const previous = Object.getOwnPropertyDescriptor(globalThis, 'Worker');
  Object.defineProperty(globalThis, 'Worker', { configurable: true, get: () => NoPthreadWorker, set: () => {} });
  try {
    if (await tf.setBackend('wasm')) return '';
    return 'the threaded-simd build did not initialise';
  } catch (err) {
    return `the threaded-simd build did not initialise: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`;
  } finally {
    if (previous === undefined) delete (globalThis as { Worker?: unknown }).Worker;
    else Object.defineProperty(globalThis, 'Worker', previous);
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false); // a retry (or a later init) takes the simd build
  }
}

/** tfjs's emscripten module of the wasm backend (once it started). */
export function wasmModule(): WasmBackend['wasm'] & ThreadedModule {
  return asWasmBackend(tf.findBackend('wasm')).wasm;
}

/**
 * Hands tfjs's heap to our kernels and helper threads. Our kernels look for it where the simd
 * build exports it (Module.asm.memory); the threaded build imports it instead, so Module.asm (the
 * instance's exports, frozen) is replaced by a copy with the memory added: emscripten's wrappers
 * look their function up in Module.asm on first call, and find the same one there.
 */
function shareWasmHeap(): void {
  const wasm = wasmModule();
  const memory = wasm.wasmMemory;
  const malloc = wasm._malloc;
  if (memory === undefined || !(memory.buffer instanceof SharedArrayBuffer) || malloc === undefined) {
    wasmHeapNote ||= "tfjs's wasm heap is not shared memory";
    setSteelHeap(null, wasmHeapNote);
    return;
  }
  if (wasm.asm !== undefined && wasm.asm.memory === undefined) wasm.asm = { ...wasm.asm, memory: memory as WasmMemory };
  setSteelHeap({ memory, malloc: (bytes) => malloc(bytes) }, '');
}

/**
 * Starts the wasm backend from the binaries in wasmDir: the threaded-simd build where it runs,
 * else the simd build, which `select` (tf.setBackend, checked) then takes. Once; later calls only select it.
 */
export async function startWasm(wasmDir: string, select: () => Promise<void>): Promise<void> {
  if (!wasmStarted) {
    const why = await startThreadedWasm(wasmDir);
    if (why !== '') wasmHeapNote = `tfjs heap not shared: ${why}`;
  }
  await select();
  if (!wasmStarted) shareWasmHeap();
  wasmStarted = true;
}

/** Why tfjs's heap is not shared memory, '' where it is (for the backend's kernels note). */
export function wasmHeapStatus(): string {
  return wasmHeapNote;
}
