// Loader for steelscope's own wasm SIMD kernels (src/core/kernels/c/*.c, built by
// scripts/build.mjs into dist/steel-kernels.wasm). The module imports tfjs-backend-wasm's own
// linear memory, so it reads operands and writes results in place: no copies in or out.
// Where the file is missing (no clang at build time) or cannot be instantiated, callers fall
// back to the tfjs kernels and steelKernelStatus() says why.

import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export const STEEL_WASM = 'steel-kernels.wasm';
export const STEEL_MT_WASM = 'steel-kernels-mt.wasm';

type Fn = (...args: number[]) => number;

// The WebAssembly global, typed by hand: src/core compiles without DOM types, where it lives.
/** A WebAssembly.Memory, opaque here: only handed back to the engine as an import. */
export type WasmMemory = object;
/** A WebAssembly.Memory created with shared: true (its buffer a SharedArrayBuffer). */
export interface SharedWasmMemory {
  readonly buffer: SharedArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Memory: new (desc: { initial: number; maximum: number; shared: true }) => SharedWasmMemory;
  Instance: new (module: object, imports: Record<string, Record<string, unknown>>) => { exports: Record<string, unknown> };
}
export const WA = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

/** The exports of steel.c; every pointer is a byte offset into tfjs's heap. */
export interface SteelExports {
  steel_matmul: Fn;
  steel_pack_floats: Fn;
  steel_xent_fwd: Fn;
  steel_xent_bwd: Fn;
  steel_rmsnorm_fwd: Fn;
  steel_rmsnorm_bwd: Fn;
  steel_swiglu_fwd: Fn;
  steel_swiglu_bwd: Fn;
  steel_rotary: Fn;
  steel_adamw: Fn;
}

const EXPORTS: readonly (keyof SteelExports)[] = [
  'steel_matmul',
  'steel_pack_floats',
  'steel_xent_fwd',
  'steel_xent_bwd',
  'steel_rmsnorm_fwd',
  'steel_rmsnorm_bwd',
  'steel_swiglu_fwd',
  'steel_swiglu_bwd',
  'steel_rotary',
  'steel_adamw',
];

// __filename is src/core/kernels/steel.ts under tsx and dist/cli.js (or similar) when bundled.
const here = typeof __filename === 'string' ? __filename : join(process.cwd(), 'steelscope.js');

/** Where the compiled module may be: beside the bundle, or the repository's dist/ under tsx. */
export function steelSearchDirs(): string[] {
  return [dirname(here), join(dirname(here), '..', '..', '..', 'dist')];
}

const compiled = new Map<string, object | null>();
const failures = new Map<string, string>();

/** The compiled module `file` (cached), or null with the reason in failures. */
function compileFile(file: string): object | null {
  const known = compiled.get(file);
  if (known !== undefined) return known;
  let mod: object | null = null;
  const dir = steelSearchDirs().find((d) => existsSync(join(d, file)));
  if (dir === undefined) {
    failures.set(file, `${file} not found in ${steelSearchDirs().join(', ')} (built only where clang with the wasm32 target is installed)`);
  } else {
    try {
      mod = new WA.Module(readFileSync(join(dir, file)));
    } catch (err) {
      failures.set(file, `${file} did not compile: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  compiled.set(file, mod);
  return mod;
}

let failure = '';

function compile(): object | null {
  const mod = compileFile(STEEL_WASM);
  if (mod === null) failure = failures.get(STEEL_WASM) ?? failure;
  return mod;
}

/**
 * The matmul built for a shared memory (steel-kernels-mt.wasm), which the helper thread of
 * threads.ts instantiates; null with the reason where it is missing.
 */
export function steelSharedModule(): { module: object | null; reason: string } {
  const module = compileFile(STEEL_MT_WASM);
  return { module, reason: failures.get(STEEL_MT_WASM) ?? '' };
}

const instances = new WeakMap<WasmMemory, SteelExports | null>();

function isExports(x: Record<string, unknown>): x is Record<string, unknown> & SteelExports {
  return EXPORTS.every((name) => typeof x[name] === 'function');
}

let enabled = true;

/** Turns our kernels off (or back on) so benches and tests can compare against tfjs's own. */
export function setSteelKernelsEnabled(on: boolean): void {
  enabled = on;
}

/** The kernels bound to this wasm heap, or null (see steelKernelStatus) where they cannot run. */
export function steelKernels(memory: WasmMemory | undefined): SteelExports | null {
  if (!enabled) return null;
  if (memory === undefined) {
    failure = 'the tfjs wasm module does not export its memory';
    return null;
  }
  const known = instances.get(memory);
  if (known !== undefined) return known;
  const mod = compile();
  let result: SteelExports | null = null;
  if (mod !== null) {
    try {
      const exports = new WA.Instance(mod, { env: { memory } }).exports;
      if (isExports(exports)) result = exports;
      else failure = `${STEEL_WASM} lacks one of ${EXPORTS.join(', ')}`;
    } catch (err) {
      failure = `${STEEL_WASM} did not instantiate: ${err instanceof Error ? err.message : String(err)}`;
    }
  }
  instances.set(memory, result);
  return result;
}

/** Whether our SIMD kernels were found, and if not, why (for the backend report). */
export function steelKernelStatus(): { available: boolean; reason: string } {
  const mod = compile();
  return mod === null ? { available: false, reason: failure } : { available: true, reason: failure };
}
