// The PyTorch engine against the golden fixtures of the independent reference (test/golden):
// its own init from the seed gives the very weights, and its trainer's steps (forward, backward,
// global pre-clip norm, clip, torch AdamW with our decay groups) the reference's loss and grad
// norm within 1e-5 at every step.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireTorch, TORCH_SKIP } from '../torch';

const TOL = 1e-5;
const GOLDEN_DIR = join(__dirname, '..', 'golden');
const CASES = readdirSync(GOLDEN_DIR)
  .filter((f) => f.endsWith('.json'))
  .map((f) => ({ name: f.slice(0, -'.json'.length) }));

interface Step {
  step: number;
  loss: number;
  grad_norm: number;
}

const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-12);

for (const c of CASES) {
  test(
    `torch engine matches golden fixture "${c.name}" (loss and grad norm, every step)`,
    { skip: TORCH_SKIP },
    (t) => {
      const python = requireTorch().executable;
      const fixturePath = join(GOLDEN_DIR, `${c.name}.json`);
      const fixture = JSON.parse(readFileSync(fixturePath, 'utf8')) as {
        weights_sha256: string;
        reference: { steps: Step[] };
      };
      const r = spawnSync(python, [join(GOLDEN_DIR, 'torch-engine.py'), fixturePath], {
        encoding: 'utf8',
        timeout: 300_000,
      });
      assert.equal(r.status, 0, r.stderr);
      const out = JSON.parse(r.stdout) as { weights_sha256: string; steps: Step[] };
      assert.equal(out.weights_sha256, fixture.weights_sha256, 'the engine initialises the same weights from the seed');
      const ref = fixture.reference.steps;
      assert.equal(out.steps.length, ref.length);
      let worst = 0;
      ref.forEach((expected, i) => {
        const actual = out.steps[i];
        worst = Math.max(worst, rel(actual.loss, expected.loss), rel(actual.grad_norm, expected.grad_norm));
        assert.ok(rel(actual.loss, expected.loss) <= TOL, `step ${i} loss ${actual.loss} vs ${expected.loss}`);
        assert.ok(
          rel(actual.grad_norm, expected.grad_norm) <= TOL,
          `step ${i} grad norm ${actual.grad_norm} vs ${expected.grad_norm}`,
        );
      });
      t.diagnostic(`largest relative difference over ${ref.length} steps: ${worst.toExponential(2)}`);
    },
  );
}
