// The kernel build (scripts/build-kernels.mjs): it fails when it cannot make all four modules,
// and skips the compile when sources, flags and compiler are unchanged. A stand-in compiler
// (CLANG) stands for clang here, so the test needs no toolchain and takes no time; that the real
// @yowasp/clang modules pass the kernel tests is what kernels/fused/threads.test.ts check on dist/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildSteelKernels, KernelBuildError } from '../../scripts/build-kernels.mjs';

const MODULES = ['steel-kernels.wasm', 'steel-kernels-mt.wasm', 'steel-kernels-fma.wasm', 'steel-kernels-mt-fma.wasm'];

/** A project folder with kernel sources, a dist/ and a fake clang that logs each compile. */
function fixture(t: { after(fn: () => void): void }, opts: { version?: string; fail?: boolean } = {}) {
  const root = mkdtempSync(join(tmpdir(), 'steelscope-kernels-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const cDir = join(root, 'src/core/kernels/c');
  mkdirSync(cDir, { recursive: true });
  for (const name of ['matmul.c', 'fused.c', 'attention.c', 'simd.h']) writeFileSync(join(cDir, name), `// ${name}\n`);
  const dist = join(root, 'dist');
  mkdirSync(dist);
  const log = join(root, 'compiles.log');
  const clang = join(root, 'fake-clang');
  const compile = opts.fail
    ? 'echo "matmul.c:1:1: error: no wasm today" >&2; exit 1'
    : 'while [ $# -gt 0 ]; do [ "$1" = -o ] && printf "wasm:%s" "$2" > "$2"; shift; done';
  writeFileSync(
    clang,
    `#!/bin/sh\nif [ "$1" = --version ]; then echo "clang version ${opts.version ?? '17.0.6'}"; exit 0; fi\n` +
      `echo "$*" >> ${log}\n${compile}\n`,
  );
  chmodSync(clang, 0o755);
  const compiles = (): string[] => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : []);
  return { root, dist, cDir, clang, compiles };
}

test('builds the four modules (FMA ones with relaxed SIMD), then skips the compile while nothing changed', async (t) => {
  const f = fixture(t);
  assert.match(await buildSteelKernels(f.root, f.dist, f.clang), /kernels built with .*fake-clang 17\.0\.6/);
  for (const name of MODULES) assert.ok(existsSync(join(f.dist, name)), name);
  const fma = f.compiles().filter((line) => line.includes('-mrelaxed-simd') && line.includes('-DSTEEL_FMA'));
  assert.equal(f.compiles().length, 4);
  assert.equal(fma.length, 2);
  assert.match(await buildSteelKernels(f.root, f.dist, f.clang), /up to date/);
  assert.equal(f.compiles().length, 4, 'an unchanged rebuild compiles nothing');
});

test('a changed header, a changed or missing module on disk rebuilds', async (t) => {
  const f = fixture(t);
  await buildSteelKernels(f.root, f.dist, f.clang);
  writeFileSync(join(f.cDir, 'simd.h'), '// changed\n');
  assert.match(await buildSteelKernels(f.root, f.dist, f.clang), /built/);
  assert.equal(f.compiles().length, 8);
  writeFileSync(join(f.dist, 'steel-kernels-mt.wasm'), 'tampered');
  assert.match(await buildSteelKernels(f.root, f.dist, f.clang), /built/);
  assert.equal(f.compiles().length, 12);
  rmSync(join(f.dist, 'steel-kernels-fma.wasm'));
  assert.match(await buildSteelKernels(f.root, f.dist, f.clang), /built/);
  assert.equal(f.compiles().length, 16);
});

test('a compiler that fails fails the build, names the module and the error, and leaves no module', async (t) => {
  const f = fixture(t, { fail: true });
  // Modules a previous build left must not survive a failed one (they would not match the sources).
  for (const name of MODULES) writeFileSync(join(f.dist, name), 'old');
  await assert.rejects(buildSteelKernels(f.root, f.dist, f.clang), (err: Error) => {
    assert.ok(err instanceof KernelBuildError);
    assert.match(err.message, /steel-kernels\.wasm could not be built .*no wasm today/);
    return true;
  });
  for (const name of MODULES) assert.ok(!existsSync(join(f.dist, name)), name);
  assert.ok(!existsSync(join(f.dist, 'steel-kernels.hash')));
});

test('a system clang older than 16 (no relaxed SIMD) or not a clang is refused with what to do', async (t) => {
  const old = fixture(t, { version: '14.0.6' });
  await assert.rejects(
    buildSteelKernels(old.root, old.dist, old.clang),
    /clang 14\.0\.6; the FMA kernels need 16 or later\. Unset CLANG/,
  );
  const f = fixture(t);
  await assert.rejects(
    buildSteelKernels(f.root, f.dist, join(f.root, 'no-such-clang')),
    /does not run as clang; unset CLANG/,
  );
});
