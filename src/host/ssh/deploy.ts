// The bundled CLI on an SSH host: dist/cli.js, its .wasm files and dist/corpus/ are copied to
// <root>/<version>/ once per version, checked by sha256 against a manifest there, and every
// command run there (train, resume, follow, serve) is `node <that cli.js> …` with every argument
// quoted. Also the optional GPU backend (tfjs-node-gpu) installed beside it.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, posix, sep } from 'node:path';
import { shCommand, shQuote } from './quote';
import type { RemoteHost } from './remoteHost';
import { fastPut, readRemoteFile, renameOver, statOrUndefined, writeRemoteFile } from './sftp';

export interface RemoteCliOptions {
  /** Local folder holding cli.js, the .wasm files and corpus/. */
  distDir: string;
  /** Extension version: the deploy folder's name. */
  version: string;
  /** Deploy root on the host. Default `~/.steelscope`. */
  remoteRoot?: string;
  /** The host's node (20+). Default `node` from the login shell's PATH. */
  nodePath?: string;
  /** Extra environment of remote trainers (STEELSCOPE_CACHE, say). */
  env?: Record<string, string>;
}

const MIN_NODE = 20;

function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** Files under `dir`, in its sub-folders too (relative to distDir, prefixed `dir/`); none when it is missing. */
function filesUnder(distDir: string, dir: string): string[] {
  try {
    return readdirSync(join(distDir, dir), { recursive: true, encoding: 'utf8' })
      .map((n) => n.split(sep).join('/'))
      .filter((n) => !n.split('/').some((part) => part.startsWith('.')))
      .filter((n) => statSync(join(distDir, dir, n)).isFile())
      .map((n) => `${dir}/${n}`)
      .sort();
  } catch {
    return [];
  }
}

/**
 * The files a host needs: cli.js, the wasm binaries beside it, corpus/* (without it remote runs
 * need --data), the shipped eval tasks (tasks/poetry-mc/…), the shipped instruction set
 * (sft/poetry-sft.jsonl: `sft --data poetry-sft`) and the PyTorch engine's
 * engines/torch/*.py; names relative to distDir.
 */
export function deployFiles(distDir: string): string[] {
  const files = readdirSync(distDir).filter((n) => n === 'cli.js' || n.endsWith('.wasm'));
  if (!files.includes('cli.js'))
    throw new Error(`${join(distDir, 'cli.js')} is missing: build the extension first (npm run build).`);
  const engine = filesUnder(distDir, 'engines/torch').filter((n) => n.endsWith('.py'));
  const shipped = ['corpus', 'tasks', 'sft'].flatMap((folder) => filesUnder(distDir, folder));
  return [...files.sort(), ...shipped, ...engine];
}

/** What an earlier deploy wrote: file name → sha256; empty when there is none or it is unreadable. */
function parseManifest(text: string): Record<string, string> {
  try {
    const value: unknown = JSON.parse(text);
    const files = typeof value === 'object' && value !== null && 'files' in value ? value.files : undefined;
    if (typeof files !== 'object' || files === null) return {};
    return Object.fromEntries(Object.entries(files).filter((e): e is [string, string] => typeof e[1] === 'string'));
  } catch {
    return {};
  }
}

export class RemoteCli {
  private deployed: Promise<string> | undefined;

  constructor(
    private readonly host: RemoteHost,
    private readonly options: RemoteCliOptions,
  ) {}

  get nodePath(): string {
    return this.options.nodePath ?? 'node';
  }

  /** The deploy root on the host, absolute. */
  rootDir(): Promise<string> {
    return this.host.remotePath(this.options.remoteRoot ?? '~/.steelscope');
  }

  /** Checks node on the host: its major version, or an error that says what to install. */
  async checkNode(): Promise<number> {
    const r = await (await this.host.connection()).run(`${shQuote(this.nodePath)} --version`, { timeoutMs: 30_000 });
    const m = /^v(\d+)\./.exec(r.stdout.trim());
    if (r.code === 127 || !m) {
      throw new Error(
        `Node.js was not found on ${this.host.label} ("${this.nodePath}" is not on the PATH of a non-interactive login). ` +
          `Install Node.js ${MIN_NODE} or newer there, or set the host's node path.`,
      );
    }
    const major = Number(m[1]);
    if (major < MIN_NODE)
      throw new Error(
        `Node.js ${r.stdout.trim()} on ${this.host.label} is too old: Steelscope needs ${MIN_NODE} or newer.`,
      );
    return major;
  }

  /** Copies the CLI where it differs (once per host); resolves with the remote cli.js. */
  deploy(): Promise<string> {
    this.deployed ??= this.deployNow().catch((err: unknown) => {
      this.deployed = undefined;
      throw err;
    });
    return this.deployed;
  }

  /** The quoted command `[env K=V…] node <cli.js> <args>` (deploying first where needed). */
  async command(args: string[]): Promise<string[]> {
    const cli = await this.deploy();
    const env = Object.entries(this.options.env ?? {}).map(([k, v]) => `${k}=${v}`);
    return [...(env.length ? ['env', ...env] : []), this.nodePath, cli, ...args];
  }

  private async deployNow(): Promise<string> {
    await this.checkNode();
    const { distDir, version } = this.options;
    const dir = posix.join(await this.rootDir(), version);
    const names = deployFiles(distDir);
    const subfolders = new Set(names.map((n) => posix.dirname(n)).filter((d) => d !== '.'));
    const folders = [...subfolders].map((sub) => shQuote(posix.join(dir, sub)));
    await this.host.sh(`mkdir -p -- ${folders.join(' ')}`, 'Creating the deploy folder');
    const sftp = await this.host.sftp();
    const manifestPath = posix.join(dir, 'manifest.json');
    const remote = parseManifest(
      (await readRemoteFile(sftp, manifestPath).catch(() => Buffer.alloc(0))).toString('utf8'),
    );
    const files: Record<string, string> = {};
    for (const name of names) {
      const local = join(distDir, name);
      const sha = sha256File(local);
      files[name] = sha;
      const target = posix.join(dir, name);
      const there = await statOrUndefined(sftp, target);
      if (remote[name] === sha && there?.size === statSync(local).size) continue;
      const part = `${target}.part-${process.pid}`;
      await fastPut(sftp, local, part);
      await renameOver(sftp, part, target);
    }
    // Written last: a copy that stopped halfway is found wanting by the next deploy.
    await writeRemoteFile(sftp, manifestPath, JSON.stringify({ version, files }, null, 2) + '\n');
    return posix.join(dir, 'cli.js');
  }

  /**
   * Installs @tensorflow/tfjs-node-gpu into `~/.steelscope/backends` (where the CLI looks for
   * native backends, whatever remoteRoot says) on a host with an NVIDIA driver. Resolves with
   * npm's last lines.
   */
  async installGpuBackend(): Promise<string> {
    const { label } = this.host;
    const probe = await (
      await this.host.connection()
    ).run('command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L', { timeoutMs: 30_000 });
    if (probe.code !== 0)
      throw new Error(
        `${label} has no NVIDIA GPU driver (nvidia-smi not found): the GPU backend cannot be used there.`,
      );
    const dir = await this.host.remotePath('~/.steelscope/backends');
    const npm = this.options.nodePath ? posix.join(posix.dirname(this.options.nodePath), 'npm') : 'npm';
    const npmInstall = shCommand([npm, 'install', '--no-audit', '--no-fund', '@tensorflow/tfjs-node-gpu@4.22.0']);
    const install = `mkdir -p -- ${shQuote(dir)} && cd ${shQuote(dir)} && ${npmInstall}`;
    const r = await (await this.host.connection()).run(install, { timeoutMs: 15 * 60_000 });
    const tail = (r.stderr || r.stdout).trim().split('\n').slice(-8).join('\n');
    if (r.code !== 0) {
      throw new Error(
        `Installing @tensorflow/tfjs-node-gpu on ${label} failed (exit ${r.code}); Steelscope falls back to its CPU backends there.\n${tail}`,
      );
    }
    return tail;
  }
}
