// `steelscope install-backend [--gpu] [--dir DIR] [--timeout SECONDS]`: installs TensorFlow's
// native backend (@tensorflow/tfjs-node, or -gpu) with npm into the folder the trainer searches
// (nativeSearchDirs in src/core/backend.ts), streaming npm's output, then checks that it loads
// and computes. Where it cannot (typically: the package's install script downloads libtensorflow
// from storage.googleapis.com, which an offline machine cannot reach), it says why and that
// training goes on with WebAssembly, and exits 1.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { userBackendDir } from '../../core/backend';
import { numberFlag, parseArgs, stringFlag, UsageError } from '../args';
import * as v from 'valibot';
import { parseAs, parseJson } from '../../shared/schema';

export const INSTALL_BACKEND_USAGE =
  'steelscope install-backend [--gpu] [--dir DIR (default ~/.steelscope/backends)] [--timeout SECONDS (default 900)]';

const TFJS_VERSION = '4.22.0';
const FALLBACK = 'Training continues on WebAssembly (the wasm backend), as before.';

type Out = (line: string) => void;

/** npm beside the running node (as installers lay them out), else whatever PATH finds. */
function npmCommand(): string {
  const win = process.platform === 'win32';
  const beside = join(dirname(process.execPath), win ? 'npm.cmd' : 'npm');
  return existsSync(beside) ? beside : win ? 'npm.cmd' : 'npm';
}

function hasNvidiaGpu(): boolean {
  const r = spawnSync('nvidia-smi', ['-L'], { encoding: 'utf8', timeout: 10_000 });
  return r.status === 0 && /GPU \d/.test(r.stdout);
}

/** What we read of the backends folder's package.json; the rest is kept as it is. */
const PackageJsonSchema = v.looseObject(
  {
    allowScripts: v.optional(v.record(v.string(), v.boolean(), 'expected an object of package names to true or false')),
  },
  'expected a JSON object',
);

/**
 * A package.json for the backends folder that allows the package's install script (npm 11 runs
 * unreviewed install scripts only with a notice, and refuses --allow-scripts for a folder that has
 * a package.json); an existing one is kept and extended.
 */
function allowInstallScript(dir: string, pkg: string): void {
  const file = join(dir, 'package.json');
  const fresh = {
    name: 'steelscope-backends',
    private: true,
    description: 'Native TensorFlow backends installed by `steelscope install-backend`.',
  };
  const existing = existsSync(file) ? parseJson(readFileSync(file, 'utf8')) : fresh;
  const parsed = parseAs(PackageJsonSchema, existing, file);
  // Not ours to repair: a broken one is the user's to see.
  if (!parsed.ok) throw new UsageError(`${parsed.error}. Fix or remove ${file}, then run install-backend again.`);
  const json = parsed.value;
  json.allowScripts = { ...json.allowScripts, [pkg]: true };
  writeFileSync(file, JSON.stringify(json, null, 2) + '\n');
}

/** Runs npm, streaming its output to ours; its exit code (null when killed at the deadline) and its output. */
function runNpm(args: string[], timeoutS: number): Promise<{ code: number | null; output: string; timedOut: boolean }> {
  return new Promise((done) => {
    const child = spawn(npmCommand(), args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: process.platform !== 'win32',
      shell: process.platform === 'win32',
    });
    let output = '';
    let timedOut = false;
    const keep = (chunk: Buffer, to: NodeJS.WriteStream): void => {
      to.write(chunk);
      output = (output + chunk.toString('utf8')).slice(-20_000); // enough to tell why it failed
    };
    child.stdout.on('data', (c: Buffer) => keep(c, process.stdout));
    child.stderr.on('data', (c: Buffer) => keep(c, process.stderr));
    // The install script's download has no timeout of its own: a network that drops packets would hang it.
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(process.platform === 'win32' ? (child.pid ?? 0) : -(child.pid ?? 0), 'SIGKILL'); // npm and its scripts
      } catch {
        child.kill('SIGKILL');
      }
    }, timeoutS * 1000);
    child.on('error', (err) => {
      clearTimeout(timer);
      done({ code: null, output: `${output}\n${err.message}`, timedOut });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ code, output, timedOut });
    });
  });
}

/** Why the install failed, in a sentence, from npm's output. */
export function failureReason(output: string, code: number | null, timedOut: boolean, timeoutS: number): string {
  if (timedOut) return `npm did not finish within ${timeoutS} s (a network that does not answer?), so it was stopped`;
  if (/ENOENT/.test(output) && code === null) return 'npm was not found (it is installed with Node.js; is it on PATH?)';
  if (/libtensorflow|storage\.googleapis\.com/i.test(output)) {
    return "the package's install script must download libtensorflow from storage.googleapis.com, and this machine cannot reach it (offline, or blocked by a proxy or firewall)";
  }
  if (/E404|ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ETIMEDOUT|network/i.test(output))
    return 'npm could not reach the npm registry';
  return `npm exited with code ${code}`;
}

/** Loads the installed package in a child process (a broken native library cannot take us down) and computes a sum. */
function verify(dir: string, pkg: string): { ok: boolean; detail: string } {
  let entry: string;
  try {
    entry = createRequire(join(dir, 'package.json')).resolve(pkg);
  } catch (err) {
    return {
      ok: false,
      detail: `${pkg} is not in ${dir} after npm finished (${err instanceof Error ? err.message.split('\n')[0] : String(err)})`,
    };
  }
  const code = `const tf = require(${JSON.stringify(entry)}); const s = tf.tensor([1, 2, 3]).sum().dataSync()[0]; console.log(tf.getBackend() + ' ' + s);`;
  const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8', timeout: 120_000 });
  const got = r.stdout.trim().split('\n').pop() ?? '';
  if (r.status === 0 && got === 'tensorflow 6') return { ok: true, detail: got };
  const why =
    (r.stderr || r.stdout)
      .trim()
      .split('\n')
      .find((l) => /Error/.test(l)) ?? `exit code ${r.status}`;
  return { ok: false, detail: `${pkg} did not load and compute: ${why}` };
}

export async function installBackendCommand(argv: readonly string[], out: Out): Promise<number> {
  const p = parseArgs(
    argv,
    { gpu: { kind: 'bool' }, dir: { kind: 'string' }, timeout: { kind: 'int' } },
    'install-backend',
  );
  if (p.positional.length !== 0) throw new UsageError(`Usage: ${INSTALL_BACKEND_USAGE}`);
  const gpu = p.flags.get('gpu') === true;
  const dir = resolve(stringFlag(p, 'dir') ?? userBackendDir());
  const timeoutS = numberFlag(p, 'timeout') ?? 900;
  if (timeoutS < 1) throw new UsageError('--timeout must be at least 1 second.');
  const pkg = gpu ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node';
  if (gpu && !hasNvidiaGpu()) {
    out('steelscope: --gpu needs an NVIDIA GPU and its driver, and nvidia-smi does not find one here.');
    out(`Install the CPU build instead with \`steelscope install-backend\`. ${FALLBACK}`);
    return 1;
  }
  mkdirSync(dir, { recursive: true });
  allowInstallScript(dir, pkg);
  out(`Installing ${pkg}@${TFJS_VERSION} into ${dir} (npm's output follows)…`);
  const npmArgs = [
    'install',
    '--prefix',
    dir,
    `${pkg}@${TFJS_VERSION}`,
    '--no-audit',
    '--no-fund',
    '--foreground-scripts',
    '--fetch-retries',
    '2',
    '--fetch-timeout',
    '60000',
  ];
  const npm = await runNpm(npmArgs, timeoutS);
  if (npm.code !== 0) {
    out(
      `\nsteelscope: the fast backend was not installed: ${failureReason(npm.output, npm.code, npm.timedOut, timeoutS)}.`,
    );
    out(FALLBACK);
    return 1;
  }
  const check = verify(dir, pkg);
  if (!check.ok) {
    out(`\nsteelscope: the fast backend was installed but does not work: ${check.detail}.`);
    out(FALLBACK);
    return 1;
  }
  out(`\n${pkg} ${TFJS_VERSION} works (${check.detail}).`);
  out(
    dir === resolve(userBackendDir())
      ? 'Training picks it up with --backend auto (the default).'
      : `Training finds it when STEELSCOPE_BACKEND_DIR=${dir} is set.`,
  );
  return 0;
}
