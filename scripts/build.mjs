// Build: esbuild bundles the extension host, the CLI (model core inside) and, later, the webviews;
// the wasm backend's .wasm files are copied beside the CLI bundle; the default corpus is derived
// from the chinese-poetry package (see build-corpus.mjs) unless it is already up to date.
import * as esbuild from 'esbuild';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, existsSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildCorpus } from './build-corpus.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
mkdirSync(dist, { recursive: true });

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: true,
  logLevel: 'warning',
  // Native backends are found at run time where they were installed; never bundled.
  external: ['vscode', '@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu', '*.node'],
};

await Promise.all([
  esbuild.build({ ...common, entryPoints: [join(root, 'src/extension.ts')], outfile: join(dist, 'extension.js') }),
  esbuild.build({ ...common, entryPoints: [join(root, 'src/cli/main.ts')], outfile: join(dist, 'cli.js') }),
]);

// Webviews: browser bundles (chart.js inside), written to dist/webview with their stylesheet, the
// only folder besides media/ that a panel may load from (localResourceRoots).
const webviewDist = join(dist, 'webview');
mkdirSync(webviewDist, { recursive: true });
await esbuild.build({
  entryPoints: [join(root, 'webview/dashboard/main.ts')],
  outfile: join(webviewDist, 'dashboard.js'),
  bundle: true,
  platform: 'browser',
  format: 'iife',
  target: 'chrome114',
  minify: true,
  sourcemap: true,
  logLevel: 'warning',
});
copyFileSync(join(root, 'media/dashboard.css'), join(webviewDist, 'dashboard.css'));

const wasmDir = join(root, 'node_modules/@tensorflow/tfjs-backend-wasm/dist');
for (const f of ['tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm', 'tfjs-backend-wasm-threaded-simd.wasm']) {
  copyFileSync(join(wasmDir, f), join(dist, f));
}

buildSteelKernels();

if (!existsSync(join(dist, 'corpus', 'poetry.jsonl.gz')) || process.argv.includes('--corpus')) {
  await buildCorpus(join(dist, 'corpus'));
}

/**
 * Our wasm SIMD kernels (src/core/kernels/c/*.c) need clang with the wasm32 target and lld
 * (Debian: apt-get install clang lld). Without them the build goes on, and the wasm backend
 * uses tfjs's own kernels and says so.
 */
function buildSteelKernels() {
  // Every module holds every kernel: the -mt ones serve the main thread too where tfjs's heap is shared.
  const sources = ['matmul.c', 'fused.c', 'attention.c'].map((name) => join(root, 'src/core/kernels/c', name));
  // The module uses tfjs's heap: import its memory, keep no data or stack of our own.
  const common = ['--target=wasm32', '-O3', '-msimd128', '-ffp-contract=off', '-nostdlib', '-fno-builtin', '-Wl,--no-entry', '-Wl,--import-memory', '-Wl,--strip-all'];
  // The same kernels for a shared memory (-mt): tfjs's heap on its threaded-simd build, which the
  // main thread and our helper threads (threads.ts) compute on in place. A module that
  // imports a shared memory must be built for one (atomics, bulk memory, a declared maximum) whose
  // maximum is at least that memory's: tfjs's is 4 GiB.
  const shared = ['-matomics', '-mbulk-memory', '-Wl,--shared-memory', '-Wl,--max-memory=4294967296'];
  const clang = process.env.CLANG ?? 'clang';
  buildWasm(clang, 'steel-kernels.wasm', [...common, ...sources]);
  buildWasm(clang, 'steel-kernels-mt.wasm', [...common, ...shared, ...sources]);
  // The same with relaxed SIMD's fused multiply-add (clang 16 or later; Debian: clang-16 lld-16).
  // steel.ts prefers these where the engine runs relaxed SIMD (Node 20 behind a V8 flag it sets).
  const fma = ['-mrelaxed-simd', '-DSTEEL_FMA'];
  const relaxedClang = findRelaxedClang(clang);
  if (relaxedClang === null) {
    for (const name of ['steel-kernels-fma.wasm', 'steel-kernels-mt-fma.wasm']) rmSync(join(dist, name), { force: true });
    console.warn('build: no clang 16 or later found (set CLANG_RELAXED, or apt-get install clang-16 lld-16): the wasm matmul runs without fused multiply-add (about 15% slower).');
    return;
  }
  buildWasm(relaxedClang, 'steel-kernels-fma.wasm', [...common, ...fma, ...sources]);
  buildWasm(relaxedClang, 'steel-kernels-mt-fma.wasm', [...common, ...fma, ...shared, ...sources]);
}

/** A clang that knows relaxed SIMD (16+), with a wasm-ld beside it, or null. */
function findRelaxedClang(clang) {
  const candidates = [process.env.CLANG_RELAXED, clang, 'clang-19', 'clang-18', 'clang-17', 'clang-16'].filter(Boolean);
  for (const candidate of candidates) {
    const r = spawnSync(candidate, ['--version'], { encoding: 'utf8' });
    const major = Number(/clang version (\d+)/.exec(r.stdout ?? '')?.[1] ?? 0);
    if (!r.error && r.status === 0 && major >= 16) return candidate;
  }
  return null;
}

function buildWasm(clang, name, args) {
  const out = join(dist, name);
  const r = spawnSync(clang, [...args, '-o', out], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    rmSync(out, { force: true }); // never leave a stale module that no longer matches the source
    const why = r.error ? r.error.message : r.stderr.trim().split('\n').slice(0, 3).join(' | ');
    console.warn(`build: ${name} not built (${why}); the wasm backend will use tfjs's kernels (or one thread). Install clang and lld to build it.`);
  }
}
