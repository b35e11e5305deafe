import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../src/core/backend';
import { setSteelThreads } from '../src/core/kernels/threads';
async function main() {
  await selectBackend('wasm');
  setSteelThreads(2, { minMacs: 1 });
  tf.matMul(tf.ones([64, 64]), tf.ones([64, 64])).dataSync();
  await new Promise((r) => setTimeout(r, 300));
  const cases: [number[], number[], boolean, boolean][] = [[[1024,128],[128,128],false,false],[[1024,128],[128,352],false,false],[[1024,352],[128,352],false,true],[[1024,128],[1024,352],true,false],[[32,128,128],[32,128,32],false,false],[[32,128,32],[32,128,32],false,true],[[1024,128],[2048,128],false,true]];
  for (const [sa, sb, tA, tB] of cases) {
    const a = tf.randomNormal(sa, 0, 1, 'float32', 1), b = tf.randomNormal(sb, 0, 1, 'float32', 2);
    const best: Record<number, number> = { 1: Infinity, 2: Infinity };
    for (let r = 0; r < 15; r++) for (const t of [1, 2]) {
      setSteelThreads(t, { minMacs: 1 });
      const t0 = performance.now();
      for (let i = 0; i < 5; i++) tf.matMul(a, b, tA, tB).dispose();
      best[t] = Math.min(best[t], (performance.now() - t0) / 5);
    }
    console.log(JSON.stringify(sa), JSON.stringify(sb), tA, tB, '1t', best[1].toFixed(3), '2t', best[2].toFixed(3), 'x', (best[1] / best[2]).toFixed(2));
    a.dispose(); b.dispose();
  }
  process.exit(0);
}
void main();
