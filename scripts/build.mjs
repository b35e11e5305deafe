// Build: esbuild bundles the extension host, the CLI (model core inside) and the webviews;
// the wasm backend's .wasm files are copied beside the CLI bundle, our own wasm kernels compiled
// (build-kernels.mjs, with @yowasp/clang; a build without them fails); the default corpus is derived
// from the chinese-poetry package (see build-corpus.mjs) unless it is already up to date.
import * as esbuild from 'esbuild';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildCorpus } from './build-corpus.mjs';
import { buildEvalTasks } from './build-eval-tasks.mjs';
import { buildSftSet } from './build-sft-set.mjs';
import { buildSteelKernels, KernelBuildError } from './build-kernels.mjs';

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
// The same bundle with the test hooks (webview/dashboard/testHooks.ts) goes to dist-test/webview,
// which the render tests and the dashboard bench load; the shipped one is built without them.
// Split ESM: dashboard.js (chart.js and our views: it draws the charts) and chunks/, among them
// the UI toolkit's, which webview/common/ui.ts imports after the first chart paint. The page loads
// dashboard.js as a module script; its chunks come from the same folder (the CSP allows the
// webview's resource origin, src/host/panels/dashboardHtml.ts).
const webviewDist = join(dist, 'webview');
const webviewTestDist = join(root, 'dist-test', 'webview');
const webview = (outdir, testHooks) =>
  esbuild.build({
    entryPoints: [join(root, 'webview/dashboard/main.ts')],
    entryNames: 'dashboard',
    chunkNames: 'chunks/[name]-[hash]',
    outdir,
    splitting: true,
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: 'chrome114',
    minify: true,
    sourcemap: true,
    logLevel: 'warning',
    define: { STEELSCOPE_TEST_HOOKS: String(testHooks) },
  });
for (const dir of [webviewDist, webviewTestDist]) rmSync(join(dir, 'chunks'), { recursive: true, force: true });
await Promise.all([webview(webviewDist, false), webview(webviewTestDist, true)]);
for (const dir of [webviewDist, webviewTestDist])
  copyFileSync(join(root, 'media/dashboard.css'), join(dir, 'dashboard.css'));

const wasmDir = join(root, 'node_modules/@tensorflow/tfjs-backend-wasm/dist');
for (const f of ['tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm', 'tfjs-backend-wasm-threaded-simd.wasm']) {
  copyFileSync(join(wasmDir, f), join(dist, f));
}

// The PyTorch engine ships as its Python sources beside the CLI, which starts it under torchrun.
const torchEngine = join(dist, 'engines', 'torch');
rmSync(torchEngine, { recursive: true, force: true });
mkdirSync(torchEngine, { recursive: true });
for (const f of readdirSync(join(root, 'src/engines/torch')).filter((name) => name.endsWith('.py'))) {
  copyFileSync(join(root, 'src/engines/torch', f), join(torchEngine, f));
}

try {
  console.log(`build: ${await buildSteelKernels(root, dist)}`);
} catch (err) {
  if (!(err instanceof KernelBuildError)) throw err;
  console.error(err.message);
  process.exit(1);
}

if (!existsSync(join(dist, 'corpus', 'poetry.jsonl.gz')) || process.argv.includes('--corpus')) {
  await buildCorpus(join(dist, 'corpus'));
}
// Rebuilt when its generator changed since (the stamp is the scripts' hash), so a changed task
// never lingers in an older dist/.
const tasksStamp = join(dist, 'tasks', 'poetry-mc', '.source-sha256');
const tasksSource = createHash('sha256')
  .update(readFileSync(join(root, 'scripts', 'build-eval-tasks.mjs')))
  .update(readFileSync(join(root, 'scripts', 'build-corpus.mjs')))
  .digest('hex');
if (!existsSync(tasksStamp) || readFileSync(tasksStamp, 'utf8') !== tasksSource || process.argv.includes('--corpus')) {
  rmSync(join(dist, 'tasks', 'poetry-mc'), { recursive: true, force: true });
  buildEvalTasks(join(dist, 'tasks', 'poetry-mc'));
  writeFileSync(tasksStamp, tasksSource);
}
if (!existsSync(join(dist, 'sft', 'poetry-sft.jsonl')) || process.argv.includes('--corpus')) {
  buildSftSet(join(dist, 'sft', 'poetry-sft.jsonl'));
}
