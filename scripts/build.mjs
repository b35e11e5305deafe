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
  const c = (name) => join(root, 'src/core/kernels/c', name);
  // The module uses tfjs's heap: import its memory, keep no data or stack of our own.
  const common = ['--target=wasm32', '-O3', '-msimd128', '-nostdlib', '-fno-builtin', '-Wl,--no-entry', '-Wl,--import-memory', '-Wl,--strip-all'];
  buildWasm('steel-kernels.wasm', [...common, c('matmul.c'), c('fused.c')]);
  // The matmul alone over a shared memory, for the helper thread (threads.ts): a module that
  // imports a shared memory must be built for one (atomics, bulk memory, a declared maximum).
  buildWasm('steel-kernels-mt.wasm', [...common, '-matomics', '-mbulk-memory', '-Wl,--shared-memory', '-Wl,--max-memory=2147483648', c('matmul.c')]);
}

function buildWasm(name, args) {
  const out = join(dist, name);
  const clang = process.env.CLANG ?? 'clang';
  const r = spawnSync(clang, [...args, '-o', out], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    rmSync(out, { force: true }); // never leave a stale module that no longer matches the source
    const why = r.error ? r.error.message : r.stderr.trim().split('\n').slice(0, 3).join(' | ');
    console.warn(`build: ${name} not built (${why}); the wasm backend will use tfjs's kernels (or one thread). Install clang and lld to build it.`);
  }
}
