// Chooses the compute backend once at start and says which one runs and why the others did not.
// Native backends (tfjs-node-gpu, tfjs-node) are optional packages that are looked for at run time
// (never bundled); wasm needs its .wasm binaries on disk; plain-JS cpu always works.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
// A named import: the package's "sideEffects" list omits its node entry, so esbuild drops a bare
// `import '@tensorflow/tfjs-backend-cpu'` and the bundled CLI would have no cpu backend.
import { version_cpu } from '@tensorflow/tfjs-backend-cpu';
import { setThreadsCount, setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { steelKernelStatus, type SharedWasmMemory, type WasmMemory } from './kernels/steel';
import { setSteelHeap, setSteelThreads, startSteelThreads, steelThreads } from './kernels/threads';
import { registerCpuKernels, registerWasmKernels } from './kernels/wasm';
import { asWasmBackend, type WasmBackend } from './kernels/wasm-backend';

export type BackendName = 'tfjs-node-gpu' | 'tfjs-node' | 'wasm' | 'cpu';

export interface BackendChoice {
  name: BackendName;
  skipped: { name: BackendName; reason: string }[];
  /**
   * wasm only: whether our SIMD kernels (steel-kernels.wasm) run, on how many threads, and if not,
   * why; and why tfjs's heap is not shared memory, where it is not (its threaded-simd build did not start).
   */
  kernels?: string;
}

export interface BackendOptions {
  /** Threads of our wasm matmul, the main one included (default: STEELSCOPE_THREADS, else 2 where the machine has 2 cores). */
  threads?: number;
}

function kernelNote(name: BackendName): string | undefined {
  if (name !== 'wasm') return undefined;
  const heap = wasmHeapNote === '' ? '' : ` (${wasmHeapNote})`;
  const status = steelKernelStatus(wasmModule().asm?.memory);
  if (!status.available) return `tfjs kernels only (${status.reason})${heap}`;
  const threads = steelThreads();
  const oneOnly = startSteelThreads();
  const simd = status.fma ? 'steelscope wasm SIMD kernels with FMA' : `steelscope wasm SIMD kernels (${status.fmaNote})`;
  if (threads === 1) return `${simd}, 1 thread${heap}`;
  return oneOnly === '' ? `${simd}, ${threads} threads` : `${simd}, 1 thread (${oneOnly})`;
}

export const AUTO_ORDER: readonly BackendName[] = ['tfjs-node-gpu', 'tfjs-node', 'wasm', 'cpu'];

const NATIVE_PACKAGE: Record<'tfjs-node-gpu' | 'tfjs-node', string> = {
  'tfjs-node-gpu': '@tensorflow/tfjs-node-gpu',
  'tfjs-node': '@tensorflow/tfjs-node',
};

/** The name tfjs registers each backend under (both native packages register "tensorflow"). */
const TF_NAME: Record<BackendName, string> = {
  'tfjs-node-gpu': 'tensorflow',
  'tfjs-node': 'tensorflow',
  wasm: 'wasm',
  cpu: 'cpu',
};

const WASM_FILES = ['tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm'];
/** The build whose heap is shared memory (see startThreadedWasm); build.mjs copies it beside the bundle too. */
const WASM_THREADED = 'tfjs-backend-wasm-threaded-simd.wasm';

// __filename exists both under tsx (the package is CommonJS) and in the esbuild CJS bundle.
const here = typeof __filename === 'string' ? __filename : join(process.cwd(), 'steelscope.js');
// A require that esbuild cannot see, so the optional native packages are resolved at run time.
const runtimeRequire = createRequire(here);

/** The folder `steelscope install-backend` installs native backends into by default. */
export function userBackendDir(): string {
  return join(homedir(), '.steelscope', 'backends');
}

/** Where optional native backends are looked for, in order: STEELSCOPE_BACKEND_DIR where set, beside the bundle, userBackendDir(). */
export function nativeSearchDirs(): string[] {
  const extra = process.env.STEELSCOPE_BACKEND_DIR;
  return [...(extra ? [extra] : []), dirname(here), userBackendDir()];
}

/** Directories that may hold the wasm binaries: beside the bundle (dist/), then the installed package. */
export function wasmSearchDirs(): string[] {
  const dirs = [dirname(here)];
  try {
    dirs.push(dirname(runtimeRequire.resolve('@tensorflow/tfjs-backend-wasm')));
  } catch {
    // Not resolvable from here (bundled CLI copied to a host without node_modules): dist/ only.
  }
  return dirs;
}

function firstLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.split('\n')[0];
}

function loadNative(name: 'tfjs-node-gpu' | 'tfjs-node'): void {
  const pkg = NATIVE_PACKAGE[name];
  let resolved: string;
  try {
    resolved = runtimeRequire.resolve(pkg, { paths: nativeSearchDirs() });
  } catch (err) {
    throw new Error(`not installed: ${firstLine(err)}`);
  }
  runtimeRequire(resolved); // registers the "tensorflow" backend with the shared tfjs engine
}

let wasmDir: string | undefined;

function prepareWasm(): void {
  registerWasmKernels();
  if (wasmDir !== undefined) return;
  const dir = wasmSearchDirs().find((d) => WASM_FILES.every((f) => existsSync(join(d, f))));
  if (dir === undefined) {
    throw new Error(`wasm binaries not found (looked for ${WASM_FILES.join(', ')} in ${wasmSearchDirs().join(', ')})`);
  }
  setWasmPaths(dir.endsWith('/') ? dir : `${dir}/`);
  wasmDir = dir;
}

// --- tfjs wasm on a shared heap ---

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
async function startThreadedWasm(): Promise<string> {
  if (process.env.STEELSCOPE_SHARED_HEAP === '0') return 'STEELSCOPE_SHARED_HEAP=0';
  if (wasmDir === undefined || !existsSync(join(wasmDir, WASM_THREADED))) return `${WASM_THREADED} not found beside the other wasm binaries`;
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
    return `the threaded-simd build did not initialise: ${firstLine(err)}`;
  } finally {
    if (previous === undefined) delete (globalThis as { Worker?: unknown }).Worker;
    else Object.defineProperty(globalThis, 'Worker', previous);
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false); // a retry (or a later init) takes the simd build
  }
}

function wasmModule(): WasmBackend['wasm'] & ThreadedModule {
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

/** Starts the wasm backend: the threaded-simd build where it runs, else the simd build (once; later calls only select it). */
async function startWasm(): Promise<void> {
  if (!wasmStarted) {
    const why = await startThreadedWasm();
    if (why !== '') wasmHeapNote = `tfjs heap not shared: ${why}`;
  }
  await setBackendOrThrow('wasm');
  if (!wasmStarted) shareWasmHeap();
  wasmStarted = true;
}

async function setBackendOrThrow(tfName: string): Promise<void> {
  let ok: boolean;
  try {
    ok = await tf.setBackend(tfName);
  } catch (err) {
    throw new Error(`failed to initialise: ${firstLine(err)}`);
  }
  // setBackend returns false (and tfjs quietly keeps another backend) when initialisation fails.
  if (!ok || tf.getBackend() !== tfName) {
    throw new Error(`tf.setBackend('${tfName}') did not take effect (running: ${tf.getBackend()})`);
  }
  await tf.ready();
}

async function activate(name: BackendName): Promise<void> {
  if (name === 'tfjs-node-gpu' || name === 'tfjs-node') loadNative(name);
  if (name === 'wasm') {
    prepareWasm();
    await startWasm();
    return;
  }
  if (name === 'cpu') {
    if (typeof version_cpu !== 'string') throw new Error('@tensorflow/tfjs-backend-cpu did not load');
    registerCpuKernels();
  }
  await setBackendOrThrow(TF_NAME[name]);
}

/**
 * 'auto' tries tfjs-node-gpu, tfjs-node, wasm, cpu in that order and records why each earlier one
 * was skipped; an explicit name tries only that backend and throws if it cannot run.
 * Calling it again is cheap: packages load once and setBackend is a no-op for the active backend.
 */
export async function selectBackend(preference: BackendName | 'auto' = 'auto', options: BackendOptions = {}): Promise<BackendChoice> {
  if (options.threads !== undefined) setSteelThreads(options.threads);
  if (preference !== 'auto') {
    try {
      await activate(preference);
    } catch (err) {
      throw new Error(`Backend '${preference}' is not usable: ${firstLine(err)}`);
    }
    return { name: preference, skipped: [], kernels: kernelNote(preference) };
  }
  const skipped: BackendChoice['skipped'] = [];
  for (const name of AUTO_ORDER) {
    try {
      await activate(name);
      return { name, skipped, kernels: kernelNote(name) };
    } catch (err) {
      skipped.push({ name, reason: firstLine(err) });
    }
  }
  throw new Error(`No backend could start: ${skipped.map((s) => `${s.name}: ${s.reason}`).join('; ')}`);
}
