// Our wasm SIMD kernels (src/core/kernels/c/*.c) → dist/steel-kernels{,-mt}{,-fma}.wasm.
// The compiler is @yowasp/clang (Clang + LLD compiled to WebAssembly, a pinned devDependency), so
// `npm ci && npm run build` makes them on any machine with Node and nothing else. A system clang
// (16 or later, with wasm-ld) is used instead only when CLANG names it; either way the same
// sources and flags give modules that pass the same kernel tests (test/unit/kernels, fused, threads).
// A build that cannot make all four modules fails: the run-time fallback to tfjs's kernels is for
// a broken install, never a silent outcome of `npm run build`.
// Every engineer's build runs this on two shared cores, so a rebuild whose sources, flags and
// compiler are unchanged reuses the modules: dist/steel-kernels.hash records what made them.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const SOURCES = ['matmul.c', 'fused.c', 'attention.c'];

// The module uses tfjs's heap: import its memory, keep no data or stack of our own.
const COMMON = [
  '--target=wasm32',
  '-O3',
  '-msimd128',
  '-ffp-contract=off',
  '-nostdlib',
  '-fno-builtin',
  '-Wl,--no-entry',
  '-Wl,--import-memory',
  '-Wl,--strip-all',
];
// The same kernels for a shared memory (-mt): tfjs's heap on its threaded-simd build, which the
// main thread and our helper threads (threads.ts) compute on in place. A module that imports a
// shared memory must be built for one (atomics, bulk memory, a declared maximum) whose maximum is
// at least that memory's: tfjs's is 4 GiB.
const SHARED = ['-matomics', '-mbulk-memory', '-Wl,--shared-memory', '-Wl,--max-memory=4294967296'];
// Relaxed SIMD's fused multiply-add in the matmul; steel.ts prefers these where the engine runs
// relaxed SIMD (Node 20 behind a V8 flag it sets).
const FMA = ['-mrelaxed-simd', '-DSTEEL_FMA'];

/** Every module holds every kernel: the -mt ones serve the main thread too where tfjs's heap is shared. */
const MODULES = {
  'steel-kernels.wasm': COMMON,
  'steel-kernels-mt.wasm': [...COMMON, ...SHARED],
  'steel-kernels-fma.wasm': [...COMMON, ...FMA],
  'steel-kernels-mt-fma.wasm': [...COMMON, ...FMA, ...SHARED],
};

const HASH_FILE = 'steel-kernels.hash';

export class KernelBuildError extends Error {}

/**
 * Builds the four modules into `dist` unless dist/steel-kernels.hash says these sources, flags and
 * compiler made the modules there; returns what it did, for the build's log. `clang`: a system
 * clang to use instead of @yowasp/clang (env CLANG).
 */
export async function buildSteelKernels(root, dist, clang = process.env.CLANG) {
  const cDir = join(root, 'src/core/kernels/c');
  const files = Object.fromEntries(
    readdirSync(cDir)
      .filter((name) => /\.[ch]$/.test(name))
      .sort()
      .map((name) => [name, readFileSync(join(cDir, name))]),
  );
  const compiler = clang ? systemClang(clang) : yowaspClang(root);
  const key = buildKey(files, compiler.identity);
  if (upToDate(dist, key)) return `kernels up to date (${compiler.identity})`;
  rmSync(join(dist, HASH_FILE), { force: true });
  const started = performance.now();
  const built = {};
  for (const [name, flags] of Object.entries(MODULES)) {
    try {
      const bytes = await compiler.compile([...flags, ...SOURCES], files, name);
      writeFileSync(join(dist, name), bytes);
      built[name] = sha256(bytes);
    } catch (err) {
      for (const stale of Object.keys(MODULES)) rmSync(join(dist, stale), { force: true });
      const why = err instanceof Error ? err.message : String(err);
      throw new KernelBuildError(`build: ${name} could not be built with ${compiler.identity}: ${why}`);
    }
  }
  writeFileSync(join(dist, HASH_FILE), JSON.stringify({ key, modules: built }, null, 1) + '\n');
  return `kernels built with ${compiler.identity} in ${((performance.now() - started) / 1000).toFixed(1)} s`;
}

function sha256(bytes) {
  return createHash('sha256').update(bytes).digest('hex');
}

/** What made the modules: every .c/.h file, every module's flags, the compiler's identity. */
function buildKey(files, identity) {
  const hash = createHash('sha256');
  hash.update(JSON.stringify({ identity, modules: MODULES, sources: SOURCES }));
  for (const [name, bytes] of Object.entries(files)) hash.update(`\0${name}\0`).update(bytes);
  return hash.digest('hex');
}

/** Whether the hash file matches `key` and every module on disk is the one it recorded. */
function upToDate(dist, key) {
  let recorded;
  try {
    recorded = JSON.parse(readFileSync(join(dist, HASH_FILE), 'utf8'));
  } catch {
    return false;
  }
  if (recorded?.key !== key) return false;
  return Object.keys(MODULES).every((name) => {
    const path = join(dist, name);
    return existsSync(path) && recorded.modules?.[name] === sha256(readFileSync(path));
  });
}

/** @yowasp/clang, loaded only when something must be compiled (its first call loads a 105 MB module). */
function yowaspClang(root) {
  let version;
  try {
    version = JSON.parse(readFileSync(join(root, 'node_modules/@yowasp/clang/package.json'), 'utf8')).version;
  } catch {
    throw new KernelBuildError(
      'build: @yowasp/clang is not installed (a devDependency that compiles our wasm kernels): run `npm ci`.',
    );
  }
  return {
    identity: `@yowasp/clang ${version}`,
    async compile(args, files, out) {
      const { runClang } = await import('@yowasp/clang');
      // Load the toolchain first, quietly: runClang's first step would log the load in steps.
      await runClang(null, {}, { fetchProgress: () => {} });
      let stderr = '';
      const decoder = new TextDecoder();
      const options = {
        stdout: () => {},
        stderr: (bytes) => {
          if (bytes) stderr += decoder.decode(bytes, { stream: true });
        },
      };
      let tree;
      try {
        tree = await runClang(['clang', ...args, '-o', out], { ...files }, options);
      } catch (err) {
        throw new Error(firstLines(stderr) || (err instanceof Error ? err.message : String(err)));
      }
      const bytes = tree?.[out];
      if (!(bytes instanceof Uint8Array)) throw new Error(firstLines(stderr) || `no ${out} came out`);
      return bytes;
    },
  };
}

/** The clang that CLANG names: 16 or later (relaxed SIMD), with wasm-ld on PATH. */
function systemClang(clang) {
  const r = spawnSync(clang, ['--version'], { encoding: 'utf8' });
  const version = /clang version (\S+)/.exec(r.stdout ?? '')?.[1];
  if (r.error || r.status !== 0 || version === undefined) {
    throw new KernelBuildError(`build: CLANG=${clang} does not run as clang; unset CLANG to use @yowasp/clang.`);
  }
  if (Number(version.split('.')[0]) < 16) {
    throw new KernelBuildError(
      `build: CLANG=${clang} is clang ${version}; the FMA kernels need 16 or later. Unset CLANG to use @yowasp/clang.`,
    );
  }
  return {
    identity: `${clang} ${version}`,
    async compile(args, files, out) {
      // The sources as yowasp sees them (plain names, headers beside them), in a folder of our own.
      const dir = mkdtempSync(join(tmpdir(), 'steel-kernels-'));
      try {
        for (const [name, bytes] of Object.entries(files)) writeFileSync(join(dir, name), bytes);
        const r = spawnSync(clang, [...args, '-o', out], { cwd: dir, encoding: 'utf8' });
        if (r.error) throw r.error;
        if (r.status !== 0) throw new Error(firstLines(r.stderr));
        return readFileSync(join(dir, out));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

function firstLines(text) {
  return text.trim().split('\n').slice(0, 3).join(' | ');
}
