// Build: esbuild bundles the extension host, the CLI (model core inside) and, later, the webviews;
// the wasm backend's .wasm files are copied beside the CLI bundle; the default corpus is derived
// from the chinese-poetry package (see build-corpus.mjs) unless it is already up to date.
import * as esbuild from 'esbuild';
import { copyFileSync, mkdirSync, existsSync } from 'node:fs';
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

const wasmDir = join(root, 'node_modules/@tensorflow/tfjs-backend-wasm/dist');
for (const f of ['tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm', 'tfjs-backend-wasm-threaded-simd.wasm']) {
  copyFileSync(join(wasmDir, f), join(dist, f));
}

if (!existsSync(join(dist, 'corpus', 'poetry.jsonl.gz')) || process.argv.includes('--corpus')) {
  await buildCorpus(join(dist, 'corpus'));
}
