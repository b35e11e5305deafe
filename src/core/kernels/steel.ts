// Loader for steelscope's own wasm SIMD kernels (src/core/kernels/c/*.c, built by
// scripts/build.mjs into dist/steel-kernels.wasm, and steel-kernels-mt.wasm for tfjs's shared heap).
// The module imports tfjs-backend-wasm's own linear memory, so it reads operands and writes results
// in place: no copies in or out.
// Where the file is missing (a build that failed or never ran) or cannot be instantiated, callers
// fall back to the tfjs kernels and steelKernelStatus() says why.

import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setFlagsFromString } from 'node:v8';

/** plain: wasm SIMD; fma: the same plus relaxed SIMD's fused multiply-add in the matmul (c/matmul.c). */
export type SteelVariant = 'plain' | 'fma';
const FILES: Record<SteelVariant, { main: string; shared: string }> = {
  plain: { main: 'steel-kernels.wasm', shared: 'steel-kernels-mt.wasm' },
  fma: { main: 'steel-kernels-fma.wasm', shared: 'steel-kernels-mt-fma.wasm' },
};

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
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Memory: new (desc: { initial: number; maximum: number; shared: true }) => SharedWasmMemory;
  Instance: new (
    module: object,
    imports: Record<string, Record<string, unknown>>,
  ) => { exports: Record<string, unknown> };
}
function hasWebAssembly(scope: object): scope is { WebAssembly: WasmApi } {
  return 'WebAssembly' in scope;
}
const scope: object = globalThis;
if (!hasWebAssembly(scope))
  throw new Error('This JavaScript engine has no WebAssembly; steelscope needs Node 20 or later.');
export const WA = scope.WebAssembly;

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
  steel_attn_fwd: Fn;
  steel_attn_bwd: Fn;
  steel_sumsq: Fn;
  steel_colsum: Fn;
  steel_add: Fn;
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
  'steel_attn_fwd',
  'steel_attn_bwd',
  'steel_sumsq',
  'steel_colsum',
  'steel_add',
];

// __filename is src/core/kernels/steel.ts under tsx and dist/cli.js (or similar) when bundled.
const here = typeof __filename === 'string' ? __filename : join(process.cwd(), 'steelscope.js');

/** Where the compiled module may be: beside the bundle, or the repository's dist/ under tsx. */
export function steelSearchDirs(): string[] {
  return [dirname(here), join(dirname(here), '..', '..', '..', 'dist')];
}

/** The path of `file` in the first search folder that has it, or undefined. */
function findFile(file: string): string | undefined {
  const dir = steelSearchDirs().find((d) => existsSync(join(d, file)));
  return dir === undefined ? undefined : join(dir, file);
}

/**
 * Whether this engine runs relaxed SIMD: Node 22+ does by default; Node 20 (V8 11.3) has it
 * behind --experimental-wasm-relaxed-simd, which V8 honours when set at run time (the flag is
 * process-wide, so worker threads get it too).
 */
function relaxedSimdRuns(bytes: Uint8Array): boolean {
  if (WA.validate(bytes)) return true;
  try {
    setFlagsFromString('--experimental-wasm-relaxed-simd');
  } catch {
    return false;
  }
  return WA.validate(bytes);
}

let variant: SteelVariant | undefined;
let variantNote = '';

/**
 * The build every thread of this process uses, chosen once (mixing them would break the
 * bit-identity of results across thread counts): fma where it is built and the engine runs it,
 * unless STEELSCOPE_FMA=0.
 */
export function steelVariant(): SteelVariant {
  if (variant !== undefined) return variant;
  variant = 'plain';
  const main = findFile(FILES.fma.main);
  if (process.env.STEELSCOPE_FMA === '0') variantNote = 'fused multiply-add off (STEELSCOPE_FMA=0)';
  else if (main === undefined || findFile(FILES.fma.shared) === undefined)
    variantNote = `no fused multiply-add (${FILES.fma.main} not built: run npm run build)`;
  else if (!relaxedSimdRuns(readFileSync(main)))
    variantNote = 'no fused multiply-add (this engine has no relaxed SIMD)';
  else variant = 'fma';
  return variant;
}

const compiled = new Map<string, object | null>();
const failures = new Map<string, string>();

/** The compiled module `file` (cached), or null with the reason in failures. */
function compileFile(file: string): object | null {
  const known = compiled.get(file);
  if (known !== undefined) return known;
  let mod: object | null = null;
  const path = findFile(file);
  if (path === undefined) {
    failures.set(file, `${file} not found in ${steelSearchDirs().join(', ')} (npm run build makes it)`);
  } else {
    try {
      mod = new WA.Module(readFileSync(path));
    } catch (err) {
      failures.set(file, `${file} did not compile: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  compiled.set(file, mod);
  return mod;
}

let failure = '';
/** Whether tfjs's heap, as last seen by steelKernels, is shared memory (its threaded-simd build). */
let heapShared = false;

/** A module must be built for a shared memory to import one, and can then import only those. */
function isShared(memory: WasmMemory): boolean {
  return (memory as { buffer?: unknown }).buffer instanceof SharedArrayBuffer;
}

/** The module for tfjs's heap: the -mt build (the same kernels, for a shared memory) where it is shared. */
function fileFor(shared: boolean): string {
  return FILES[steelVariant()][shared ? 'shared' : 'main'];
}

function compile(shared = heapShared): object | null {
  const file = fileFor(shared);
  const mod = compileFile(file);
  if (mod === null) failure = failures.get(file) ?? failure;
  return mod;
}

/**
 * The kernels built for a shared memory (steel-kernels-mt*.wasm), which the helper threads of
 * threads.ts instantiate on tfjs's heap; null with the reason where it is missing.
 */
export function steelSharedModule(): { module: object | null; reason: string } {
  const file = FILES[steelVariant()].shared;
  const module = compileFile(file);
  return { module, reason: failures.get(file) ?? '' };
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
  heapShared = isShared(memory);
  const known = instances.get(memory);
  if (known !== undefined) return known;
  const mod = compile();
  const file = fileFor(heapShared);
  let result: SteelExports | null = null;
  if (mod !== null) {
    try {
      const exports = new WA.Instance(mod, { env: { memory } }).exports;
      if (isExports(exports)) result = exports;
      else failure = `${file} lacks one of ${EXPORTS.join(', ')}`;
    } catch (err) {
      failure = `${file} did not instantiate: ${err instanceof Error ? err.message : String(err)}`;
    }
  }
  instances.set(memory, result);
  return result;
}

/**
 * Whether our SIMD kernels were found, and if not, why (for the backend report); fma: whether they
 * use fused multiply-add. `memory`: tfjs's heap, which decides the build (else the last one seen).
 */
export function steelKernelStatus(memory?: WasmMemory): {
  available: boolean;
  reason: string;
  fma: boolean;
  fmaNote: string;
} {
  const mod = compile(memory === undefined ? heapShared : isShared(memory));
  return { available: mod !== null, reason: failure, fma: variant === 'fma', fmaNote: variantNote };
}
