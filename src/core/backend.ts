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
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { steelKernelStatus } from './kernels/steel';
import { setSteelThreads, startSteelThreads, steelThreads } from './kernels/threads';
import { registerCpuKernels, registerWasmKernels } from './kernels/wasm';
import { startWasm, wasmHeapStatus, wasmModule } from './kernels/wasm-start';

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
  const heap = wasmHeapStatus() === '' ? '' : ` (${wasmHeapStatus()})`;
  const status = steelKernelStatus(wasmModule().asm?.memory);
  if (!status.available) return `tfjs kernels only (${status.reason})${heap}`;
  const threads = steelThreads();
  const oneOnly = startSteelThreads();
  const simd = status.fma
    ? 'steelscope wasm SIMD kernels with FMA'
    : `steelscope wasm SIMD kernels (${status.fmaNote})`;
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

/** Registers our kernels and points tfjs at its .wasm files; the folder holding them. */
function prepareWasm(): string {
  registerWasmKernels();
  if (wasmDir !== undefined) return wasmDir;
  const dir = wasmSearchDirs().find((d) => WASM_FILES.every((f) => existsSync(join(d, f))));
  if (dir === undefined) {
    throw new Error(`wasm binaries not found (looked for ${WASM_FILES.join(', ')} in ${wasmSearchDirs().join(', ')})`);
  }
  setWasmPaths(dir.endsWith('/') ? dir : `${dir}/`);
  wasmDir = dir;
  return dir;
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
    const dir = prepareWasm();
    await startWasm(dir, () => setBackendOrThrow('wasm'));
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
export async function selectBackend(
  preference: BackendName | 'auto' = 'auto',
  options: BackendOptions = {},
): Promise<BackendChoice> {
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
