// Runs on an SSH host. The bundled CLI (dist/cli.js, its .wasm files, dist/corpus/) is copied to
// ~/.steelscope/<version>/ once per version, checked by sha256 against a manifest there; trainers
// are started detached (setsid nohup, stdio to a log, so they outlive the connection and the
// editor); everything else is read back from the run folder over SFTP, and a RemoteFollower
// streams a run's records. Every argument of every remote command goes through shQuote.
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createWriteStream, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { encodeFollowOffsets, type FollowOffsets } from '../../shared/follow-protocol';
import { checkpointDirName, isRunInfo, type RunInfo } from '../../shared/run';
import { slugify } from '../runs/localTarget';
import type { ServeProcess } from '../chat/serveClient';
import type { RunTarget, StartRequest } from '../runs/types';
import { SshError, type SshConnection } from './connection';
import { RemoteFollower, type ConnectionState, type RemoteFollowerOptions } from './remoteFollower';
import { shCommand, shQuote } from './quote';
import { createExclusive, fastPut, readdirNames, readRemoteFile, realpath, renameOver, statOrUndefined, unlink, writeRemoteFile } from './sftp';

export interface RemoteTargetOptions {
  /** The host's alias (~/.ssh/config Host, or user@host). */
  alias: string;
  /** Opens a new authenticated connection (config, prompts and known_hosts are its business). */
  connect: () => Promise<SshConnection>;
  /** Local folder holding cli.js, the .wasm files and corpus/. */
  distDir: string;
  /** Extension version: the deploy folder's name. */
  version: string;
  /** Deploy root on the host. Default `~/.steelscope`. */
  remoteRoot?: string;
  /** Runs root on the host. Default `<remoteRoot>/runs`. */
  runsRoot?: string;
  /** The host's node (20+). Default `node` from the login shell's PATH. */
  nodePath?: string;
  /** Extra environment of remote trainers (STEELSCOPE_CACHE, say). */
  env?: Record<string, string>;
  /** How long start()/resume() wait for the trainer. Default 120 s. */
  startTimeoutMs?: number;
  follower?: RemoteFollowerOptions;
}

export interface FetchProgress {
  file: string;
  bytes: number;
  totalBytes: number;
}

interface ManifestFile {
  name: string;
  sha256: string;
  bytes: number;
}

const ACTIVE = new Set(['starting', 'running', 'stopping']);
const LOG_NAME = 'trainer.log';
const MIN_NODE = 20;
/** The inner script of a detached start: prints its own pid (the trainer's, after exec) on fd 3 = the channel. */
const DETACH_SCRIPT = 'echo $$ >&3; exec "$@" 3>&-';

function timestamp(date: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${date.getFullYear()}${p(date.getMonth() + 1)}${p(date.getDate())}-${p(date.getHours())}${p(date.getMinutes())}${p(date.getSeconds())}`;
}

function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** The files a host needs: cli.js, the wasm binaries beside it, corpus/*; names relative to distDir. */
export function deployFiles(distDir: string): string[] {
  const files = readdirSync(distDir).filter((n) => n === 'cli.js' || n.endsWith('.wasm'));
  if (!files.includes('cli.js')) throw new Error(`${join(distDir, 'cli.js')} is missing: build the extension first (npm run build).`);
  let corpus: string[] = [];
  try {
    corpus = readdirSync(join(distDir, 'corpus')).map((n) => `corpus/${n}`);
  } catch {
    // no corpus: remote runs then need --data
  }
  return [...files.sort(), ...corpus.sort()];
}

export class RemoteTarget extends EventEmitter implements RunTarget {
  readonly id: string;
  readonly label: string;
  private current: SshConnection | undefined;
  private connecting: Promise<SshConnection> | undefined;
  private stateNow: ConnectionState = 'disconnected';
  private home: string | undefined;
  private deployed: Promise<string> | undefined;
  private readonly stopsSent = new Set<number>();
  private readonly followers = new Set<RemoteFollower>();
  /**
   * A refused host key or login: not retried by background work (followers, pid checks), which
   * would otherwise ask for a password every few seconds; reconnect() clears it.
   */
  private refusal: SshError | undefined;
  /** Why the last connection attempt failed. */
  lastError: string | undefined;

  constructor(private readonly options: RemoteTargetOptions) {
    super();
    this.id = `ssh:${options.alias}`;
    this.label = options.alias;
  }

  get state(): ConnectionState {
    return this.stateNow;
  }

  onState(listener: (state: ConnectionState) => void): { dispose(): void } {
    this.on('state', listener);
    return { dispose: () => this.off('state', listener) };
  }

  private setState(state: ConnectionState): void {
    if (state === this.stateNow) return;
    this.stateNow = state;
    this.emit('state', state);
  }

  /** The live connection, opened (once, however many callers wait) if there is none. */
  connection(): Promise<SshConnection> {
    if (this.current && !this.current.closed) return Promise.resolve(this.current);
    if (this.refusal) return Promise.reject(this.refusal);
    this.connecting ??= this.openConnection().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  private async openConnection(): Promise<SshConnection> {
    this.setState('connecting');
    try {
      const connection = await this.options.connect();
      this.current = connection;
      this.lastError = undefined;
      this.setState('connected');
      connection.onClose(() => {
        if (this.current === connection) this.setState('disconnected');
      });
      return connection;
    } catch (err) {
      this.lastError = err instanceof Error ? err.message : String(err);
      if (err instanceof SshError && ['host-key-changed', 'host-key-rejected', 'auth'].includes(err.reason)) this.refusal = err;
      this.setState('disconnected');
      throw err;
    }
  }

  /** Tries again after a refusal (the user fixed known_hosts, or wants to type the password again); wakes the followers. */
  async reconnect(): Promise<SshConnection> {
    this.refusal = undefined;
    this.disconnect();
    const connection = await this.connection();
    for (const follower of this.followers) follower.reconnect();
    return connection;
  }

  /** Closes the connection; the next call opens a new one. */
  disconnect(): void {
    this.current?.close();
    this.current = undefined;
    this.setState('disconnected');
  }

  private async sftp() {
    return (await this.connection()).sftp();
  }

  /** `~/x` on the host as an absolute path (SFTP and quoted arguments never expand ~). */
  async remotePath(path: string): Promise<string> {
    if (path !== '~' && !path.startsWith('~/')) return path;
    this.home ??= await realpath(await this.sftp(), '.');
    return path === '~' ? this.home : posix.join(this.home, path.slice(2));
  }

  private rootDir(): Promise<string> {
    return this.remotePath(this.options.remoteRoot ?? '~/.steelscope');
  }

  async runsRoot(): Promise<string> {
    return this.options.runsRoot ? this.remotePath(this.options.runsRoot) : posix.join(await this.rootDir(), 'runs');
  }

  /** Runs a command (already quoted); throws with its stderr unless it exits 0. */
  private async sh(command: string, what: string, timeoutMs = 60_000): Promise<string> {
    const r = await (await this.connection()).run(command, { timeoutMs });
    if (r.code !== 0) throw new Error(`${what} failed on ${this.label} (exit ${r.code ?? r.signal}): ${(r.stderr || r.stdout).trim().split('\n').slice(-5).join('\n')}`);
    return r.stdout;
  }

  /** Checks node on the host: its major version, or an error that says what to install. */
  async checkNode(): Promise<number> {
    const node = this.options.nodePath ?? 'node';
    const r = await (await this.connection()).run(`${shQuote(node)} --version`, { timeoutMs: 30_000 });
    const m = /^v(\d+)\./.exec(r.stdout.trim());
    if (r.code === 127 || !m) {
      throw new Error(`Node.js was not found on ${this.label} ("${node}" is not on the PATH of a non-interactive login). Install Node.js ${MIN_NODE} or newer there, or set the host's node path.`);
    }
    const major = Number(m[1]);
    if (major < MIN_NODE) throw new Error(`Node.js ${r.stdout.trim()} on ${this.label} is too old: Steelscope needs ${MIN_NODE} or newer.`);
    return major;
  }

  /** Copies the CLI to `<root>/<version>/` where it differs (once per target); resolves with the remote cli.js. */
  deploy(): Promise<string> {
    this.deployed ??= this.deployNow().catch((err: unknown) => {
      this.deployed = undefined;
      throw err;
    });
    return this.deployed;
  }

  private async deployNow(): Promise<string> {
    await this.checkNode();
    const dir = posix.join(await this.rootDir(), this.options.version);
    await this.sh(`mkdir -p -- ${shQuote(posix.join(dir, 'corpus'))}`, 'Creating the deploy folder');
    const sftp = await this.sftp();
    const manifestPath = posix.join(dir, 'manifest.json');
    let remote: Record<string, string> = {};
    try {
      remote = (JSON.parse((await readRemoteFile(sftp, manifestPath)).toString('utf8')) as { files?: Record<string, string> }).files ?? {};
    } catch {
      // first deploy, or an unreadable manifest: everything is copied
    }
    const files: Record<string, string> = {};
    for (const name of deployFiles(this.options.distDir)) {
      const local = join(this.options.distDir, name);
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
    await writeRemoteFile(sftp, manifestPath, JSON.stringify({ version: this.options.version, files }, null, 2) + '\n');
    return posix.join(dir, 'cli.js');
  }

  /** The detached start of `node cli.js <args>`: prints the trainer's pid; all args quoted. */
  private detachedCommand(cwd: string, cli: string, args: string[], log: string, append: boolean): string {
    const env = Object.entries(this.options.env ?? {}).map(([k, v]) => `${k}=${v}`);
    const program = [...(env.length ? ['env', ...env] : []), this.options.nodePath ?? 'node', cli, ...args];
    const inner = shCommand(['sh', '-c', DETACH_SCRIPT, 'steelscope-trainer', ...program]);
    return (
      `cd ${shQuote(cwd)} || exit 1; if command -v setsid >/dev/null 2>&1; then S=setsid; else S=; fi; ` +
      `$S nohup ${inner} 3>&1 ${append ? '>>' : '>'} ${shQuote(log)} 2>&1 < /dev/null &`
    );
  }

  /** Starts a detached trainer; resolves with the trainer's pid as it printed it. */
  private async launch(cwd: string, args: string[], log: string, append: boolean): Promise<number> {
    const cli = await this.deploy();
    const out = await this.sh(this.detachedCommand(cwd, cli, args, log, append), 'Starting the trainer', 30_000);
    const pid = Number(out.trim().split('\n')[0]);
    if (!Number.isInteger(pid) || pid <= 0) throw new Error(`Starting the trainer on ${this.label} printed no pid: ${out.trim()}`);
    return pid;
  }

  async listRunDirs(): Promise<string[]> {
    const root = await this.runsRoot();
    const sftp = await this.sftp();
    let entries: { name: string; isDirectory: boolean }[];
    try {
      entries = await readdirNames(sftp, root);
    } catch {
      return [];
    }
    const dirs: string[] = [];
    for (const e of entries) {
      if (!e.isDirectory) continue;
      const dir = posix.join(root, e.name);
      if ((await statOrUndefined(sftp, posix.join(dir, 'run.json'))) || (await statOrUndefined(sftp, posix.join(dir, 'metrics.jsonl')))) dirs.push(dir);
    }
    return dirs.sort();
  }

  async start(request: StartRequest): Promise<string> {
    await this.deploy();
    const root = await this.runsRoot();
    await this.sh(`mkdir -p -- ${shQuote(root)}`, 'Creating the runs folder');
    const { runDir, pendingLog } = await this.reserveRunDir(root, request.name ?? request.preset);
    const args = ['train', '--preset', request.preset, '--data', request.data, '--run-dir', runDir, '--steps', String(request.steps)];
    for (const setting of request.sets ?? []) args.push('--set', setting);
    if (request.name) args.push('--name', request.name);
    try {
      const pid = await this.launch(root, args, pendingLog, false);
      await this.waitFor(pid, pendingLog, 0, async (sftp) => (await statOrUndefined(sftp, posix.join(runDir, 'run.json'))) !== undefined, 'before the run started');
    } finally {
      await this.settleLog(runDir, pendingLog);
    }
    return runDir;
  }

  /** SIGTERM once: the trainer checkpoints and exits (a second one would skip the checkpoint). */
  async stop(runDir: string): Promise<void> {
    const info = await this.readInfo(runDir);
    if (!ACTIVE.has(info.status) || !(await this.isAlive(info.pid))) throw new Error(`Run ${info.name} is not running (status ${info.status}).`);
    if (this.stopsSent.has(info.pid)) throw new Error(`Stop was already requested for run ${info.name}; it is saving a checkpoint.`);
    this.stopsSent.add(info.pid);
    await this.sh(`kill -TERM ${shQuote(String(info.pid))}`, `Stopping run ${info.name}`);
  }

  async resume(runDir: string, opts: { steps?: number; checkpoint?: string } = {}): Promise<void> {
    const info = await this.readInfo(runDir);
    if (ACTIVE.has(info.status) && (await this.isAlive(info.pid))) throw new Error(`Run ${info.name} is still running (pid ${info.pid}). Stop it first.`);
    const args = ['resume', runDir];
    if (opts.steps !== undefined) args.push('--steps', String(opts.steps));
    if (opts.checkpoint !== undefined) args.push('--checkpoint', opts.checkpoint);
    const log = posix.join(runDir, LOG_NAME);
    const logStart = (await statOrUndefined(await this.sftp(), log))?.size ?? 0;
    const pid = await this.launch(await this.runsRoot(), args, log, true);
    const tookOver = async () => (await this.readInfo(runDir).catch(() => undefined))?.pid === pid;
    await this.waitFor(pid, log, logStart, tookOver, 'before the run resumed');
  }

  async delete(runDir: string): Promise<void> {
    const info = await this.readInfo(runDir).catch(() => undefined);
    if (info && ACTIVE.has(info.status) && (await this.isAlive(info.pid))) throw new Error(`Run ${info.name} is still running (pid ${info.pid}). Stop it before deleting it.`);
    if (!info && !(await statOrUndefined(await this.sftp(), posix.join(runDir, 'metrics.jsonl')))) {
      throw new Error(`${runDir} on ${this.label} is not a run folder (no run.json or metrics.jsonl); not deleting it.`);
    }
    await this.sh(`rm -rf -- ${shQuote(runDir)}`, `Deleting ${runDir}`);
  }

  async isAlive(pid: number): Promise<boolean> {
    if (!Number.isInteger(pid) || pid <= 0) return false;
    const r = await (await this.connection()).run(`kill -0 ${shQuote(String(pid))} 2>/dev/null`, { timeoutMs: 30_000 });
    return r.code === 0;
  }

  /** A follower of one run, to hand to RunStore.addRemoteRun. */
  createFollower(runDir: string): RemoteFollower {
    const follower = new RemoteFollower({ connection: () => this.connection(), followCommand: (dir, from) => this.followCommand(dir, from) }, runDir, this.options.follower);
    this.followers.add(follower);
    follower.once('disposed', () => this.followers.delete(follower));
    return follower;
  }

  /**
   * `steelscope serve <checkpoint>` on this host over an exec channel, for the chat: the same JSON
   * lines as a local serve process. stop() ends its input and closes the channel, which ends it.
   */
  async serve(checkpoint: string): Promise<ServeProcess> {
    const cli = await this.deploy();
    const env = Object.entries(this.options.env ?? {}).map(([k, v]) => `${k}=${v}`);
    const command = shCommand([...(env.length ? ['env', ...env] : []), this.options.nodePath ?? 'node', cli, 'serve', checkpoint]);
    const proc = await (await this.connection()).exec(command);
    const stop = (): void => {
      proc.stdin.end();
      proc.close();
    };
    return { stdin: proc.stdin, stdout: proc.stdout, stderr: proc.stderr, exit: proc.exit, stop };
  }

  async followCommand(runDir: string, from: FollowOffsets): Promise<string> {
    const cli = await this.deploy();
    return shCommand([this.options.nodePath ?? 'node', cli, 'follow', runDir, '--from', encodeFollowOffsets(from)]);
  }

  async readInfo(runDir: string): Promise<RunInfo> {
    const path = posix.join(runDir, 'run.json');
    let value: unknown;
    try {
      value = JSON.parse((await readRemoteFile(await this.sftp(), path)).toString('utf8'));
    } catch (err) {
      throw new Error(`${path} on ${this.label} is missing or unreadable (${(err as Error).message}).`);
    }
    if (!isRunInfo(value)) throw new Error(`${path} on ${this.label} is not a steelscope run file.`);
    return value;
  }

  /** A new run folder name (slug-stamp, -2, -3… if taken) and its pending log, created exclusively. */
  private async reserveRunDir(root: string, name: string): Promise<{ runDir: string; pendingLog: string }> {
    const sftp = await this.sftp();
    const base = `${slugify(name)}-${timestamp(new Date())}`;
    for (let n = 1; ; n++) {
      const runDir = posix.join(root, n === 1 ? base : `${base}-${n}`);
      const pendingLog = posix.join(root, `.${posix.basename(runDir)}.${LOG_NAME}`);
      if (await statOrUndefined(sftp, runDir)) continue;
      if (await createExclusive(sftp, pendingLog)) return { runDir, pendingLog };
    }
  }

  /** Polls `ready` (SFTP) until true; rejects with the log's last lines if the trainer dies first. */
  private async waitFor(pid: number, log: string, logStart: number, ready: (sftp: Awaited<ReturnType<SshConnection['sftp']>>) => Promise<boolean>, what: string): Promise<void> {
    const timeoutMs = this.options.startTimeoutMs ?? 120_000;
    const deadline = Date.now() + timeoutMs;
    for (let i = 0; ; i++) {
      const sftp = await this.sftp();
      if (await ready(sftp)) return;
      if (i % 4 === 3 && !(await this.isAlive(pid))) {
        if (await ready(sftp)) return; // it finished in between
        const tail = await this.logTail(log, logStart);
        throw new Error(`The trainer on ${this.label} exited ${what}.${tail ? `\n${tail}` : ''}`);
      }
      if (Date.now() > deadline) throw new Error(`The trainer on ${this.label} (pid ${pid}) did not get going within ${timeoutMs / 1000} s; see ${log} there.`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  private async logTail(log: string, from: number, lines = 20): Promise<string> {
    try {
      const text = (await readRemoteFile(await this.sftp(), log)).subarray(from).toString('utf8');
      return text.trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  private async settleLog(runDir: string, pendingLog: string): Promise<void> {
    try {
      const sftp = await this.sftp();
      if (await statOrUndefined(sftp, posix.join(runDir, 'run.json'))) await renameOver(sftp, pendingLog, posix.join(runDir, LOG_NAME));
      else if (!(await statOrUndefined(sftp, runDir))) await unlink(sftp, pendingLog);
    } catch {
      // A log that cannot move stays beside the folder; the run itself is unaffected.
    }
  }

  /**
   * Downloads checkpoint `step` of `runDir` into `localDir` (created): every file of its manifest,
   * each checked against its sha256, then manifest.json, then DONE last, so an interrupted copy is
   * never taken for a checkpoint. Resolves with localDir.
   */
  async fetchCheckpoint(runDir: string, step: number, localDir: string, onProgress?: (p: FetchProgress) => void): Promise<string> {
    const sftp = await this.sftp();
    const remoteDir = posix.join(runDir, 'checkpoints', checkpointDirName(step));
    if (!(await statOrUndefined(sftp, posix.join(remoteDir, 'DONE')))) throw new Error(`Checkpoint ${step} of ${runDir} on ${this.label} is not complete (no DONE).`);
    const manifestText = await readRemoteFile(sftp, posix.join(remoteDir, 'manifest.json'));
    const files = (JSON.parse(manifestText.toString('utf8')) as { files?: ManifestFile[] }).files;
    if (!Array.isArray(files)) throw new Error(`The manifest of checkpoint ${step} on ${this.label} lists no files.`);
    mkdirSync(localDir, { recursive: true });
    rmSync(join(localDir, 'DONE'), { force: true });
    const totalBytes = files.reduce((sum, f) => sum + f.bytes, 0);
    let done = 0;
    for (const f of files) {
      if (posix.basename(f.name) !== f.name || f.name.startsWith('.')) throw new Error(`The manifest names an unexpected file "${f.name}"; not fetching it.`);
      const sha = await this.download(sftp, posix.join(remoteDir, f.name), join(localDir, f.name), (n) => onProgress?.({ file: f.name, bytes: done + n, totalBytes }));
      if (sha !== f.sha256) {
        rmSync(join(localDir, f.name), { force: true });
        throw new Error(`${f.name} of checkpoint ${step} does not match its sha256 after the download (expected ${f.sha256.slice(0, 12)}…, got ${sha.slice(0, 12)}…).`);
      }
      done += f.bytes;
    }
    writeFileSync(join(localDir, 'manifest.json'), manifestText);
    writeFileSync(join(localDir, 'DONE'), '');
    return localDir;
  }

  /** Streams one file down, hashing as it goes; resolves with its sha256. */
  private async download(sftp: Awaited<ReturnType<SshConnection['sftp']>>, remote: string, local: string, onBytes: (n: number) => void): Promise<string> {
    const hash = createHash('sha256');
    let bytes = 0;
    const tap = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        bytes += chunk.length;
        onBytes(bytes);
        cb(null, chunk);
      },
    });
    await pipeline(sftp.createReadStream(remote), tap, createWriteStream(local));
    return hash.digest('hex');
  }

  /**
   * Installs @tensorflow/tfjs-node-gpu into `~/.steelscope/backends` (where the CLI looks for
   * native backends, whatever remoteRoot says) on a host with an NVIDIA driver. Resolves with
   * npm's last lines.
   */
  async installGpuBackend(): Promise<string> {
    const probe = await (await this.connection()).run('command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L', { timeoutMs: 30_000 });
    if (probe.code !== 0) throw new Error(`${this.label} has no NVIDIA GPU driver (nvidia-smi not found): the GPU backend cannot be used there.`);
    const dir = await this.remotePath('~/.steelscope/backends');
    const npm = this.options.nodePath ? posix.join(posix.dirname(this.options.nodePath), 'npm') : 'npm';
    const install = `mkdir -p -- ${shQuote(dir)} && cd ${shQuote(dir)} && ${shCommand([npm, 'install', '--no-audit', '--no-fund', '@tensorflow/tfjs-node-gpu@4.22.0'])}`;
    const r = await (await this.connection()).run(install, { timeoutMs: 15 * 60_000 });
    const tail = (r.stderr || r.stdout).trim().split('\n').slice(-8).join('\n');
    if (r.code !== 0) throw new Error(`Installing @tensorflow/tfjs-node-gpu on ${this.label} failed (exit ${r.code}); Steelscope falls back to its CPU backends there.\n${tail}`);
    return tail;
  }
}
