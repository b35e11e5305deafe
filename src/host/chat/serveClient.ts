// The extension's end of `steelscope serve` (src/shared/serve-protocol.ts), without vscode: one
// `node dist/cli.js serve <checkpoint>` child per checkpoint, loaded once and reused for every
// generation, ended when disposed or idle. Every stdout line is validated before use; the model
// never loads in the extension host (DESIGN.md).
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { parseServeMessage, type DoneMessage, type GenerateParams, type ReadyMessage, type RequestId, type ServeMessage, type ServeRequest } from '../../shared/serve-protocol';

export interface ServeOptions {
  /** The node binary (see resolveNodePath); asked at each spawn so a changed setting applies. May throw. */
  nodePath: () => string;
  /** The bundled dist/cli.js. */
  cliPath: string;
  env?: NodeJS.ProcessEnv;
  /** Extra `serve` flags, e.g. ['--backend', 'cpu']. */
  args?: readonly string[];
  /** A process with no generation for this long is ended (default 5 minutes). */
  idleMs?: number;
  /** Hears about stdout lines that are no protocol message (they are skipped). */
  onWarning?: (message: string) => void;
}

export interface Generation {
  /** Asks the server to stop; `done` then resolves with reason "cancelled" (or how it ended first). */
  cancel(): void;
  done: Promise<DoneMessage>;
}

interface Pending {
  onToken: (token: string) => void;
  resolve: (done: DoneMessage) => void;
  reject: (err: Error) => void;
}

/** Marks a rejection as expected: a caller that only cancels need not await `done`. */
function handled<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => {});
  return promise;
}

const DEFAULT_IDLE_MS = 5 * 60_000;
const KILL_AFTER_MS = 2_000;
const STDERR_KEEP = 2_000;

/** One serve process for one checkpoint. */
export class ServeClient {
  readonly ready: Promise<ReadyMessage>;
  private child: ChildProcessWithoutNullStreams | undefined;
  private nextId = 1;
  private readonly pending = new Map<RequestId, Pending>();
  private failure: Error | undefined;
  private stderrTail = '';
  private idleTimer: NodeJS.Timeout | undefined;
  private markReady: (ready: ReadyMessage) => void = () => {};
  private markFailed: (err: Error) => void = () => {};

  constructor(readonly checkpoint: string, private readonly options: ServeOptions, private readonly onClosed: (client: ServeClient) => void = () => {}) {
    this.ready = new Promise<ReadyMessage>((ok, fail) => { this.markReady = ok; this.markFailed = fail; });
    handled(this.ready); // a failure also reaches every generation; nobody must await ready
    try {
      this.start();
    } catch (err) {
      this.close(new Error(`Could not start the serve process: ${err instanceof Error ? err.message : String(err)}`));
    }
  }

  /** True once the process has ended or failed; the pool then starts a fresh one. */
  get closed(): boolean {
    return this.failure !== undefined;
  }

  /** The process id while it runs (for tests and diagnostics). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** True while a generation is queued or running. */
  get busy(): boolean {
    return this.pending.size > 0;
  }

  private start(): void {
    const args = [this.options.cliPath, 'serve', this.checkpoint, ...(this.options.args ?? [])];
    const child = spawn(this.options.nodePath(), args, { env: this.options.env ?? process.env, stdio: 'pipe', windowsHide: true });
    this.child = child;
    child.once('error', (err) => this.close(new Error(`Could not run the serve process: ${err.message}. Check steelscope.nodePath.`)));
    // 'close', not 'exit': by then stdout is read to its end, so a load error line came first.
    child.once('close', (code, signal) => this.close(this.exitError(code, signal)));
    child.stdin.on('error', () => {}); // EPIPE after an exit: the exit handler reports it
    child.stderr.on('data', (chunk: Buffer) => { this.stderrTail = (this.stderrTail + chunk.toString('utf8')).slice(-STDERR_KEEP); });
    createInterface({ input: child.stdout, crlfDelay: Infinity }).on('line', (line) => this.receive(line));
    this.armIdle();
  }

  private exitError(code: number | null, signal: NodeJS.Signals | null): Error {
    const how = code !== null ? `with code ${code}` : `on ${signal}`;
    const tail = this.stderrTail.trim().split('\n').slice(-5).join('\n');
    return new Error(`The serve process for ${this.checkpoint} exited ${how}.${tail ? `\n${tail}` : ''}`);
  }

  private receive(line: string): void {
    if (line.trim() === '') return;
    const message = parseServeMessage(line);
    if (!message) {
      this.options.onWarning?.(`steelscope serve: skipped a line that is no protocol message: ${line.slice(0, 200)}`);
      return;
    }
    this.dispatch(message);
  }

  private dispatch(m: ServeMessage): void {
    if ('ready' in m) return this.markReady(m);
    if ('error' in m) {
      // id null before ready: the server could not load the checkpoint and exits 2.
      if (m.id === null) return this.close(new Error(`Could not load ${this.checkpoint}: ${m.error.message}`));
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      p?.reject(new Error(m.error.message));
      return this.armIdle();
    }
    if ('token' in m) return this.pending.get(m.id)?.onToken(m.token);
    if ('done' in m) {
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      p?.resolve(m);
      return this.armIdle();
    }
    // A cancel's result: the generation's own done message says how it ended.
  }

  generate(params: GenerateParams, onToken: (token: string) => void): Generation {
    if (this.failure) return { cancel: () => {}, done: handled(Promise.reject(this.failure)) };
    const id = this.nextId++;
    const done = handled(new Promise<DoneMessage>((ok, fail) => this.pending.set(id, { onToken, resolve: ok, reject: fail })));
    this.disarmIdle();
    this.send({ id, method: 'generate', params });
    const cancel = () => { if (this.pending.has(id)) this.send({ id: this.nextId++, method: 'cancel', params: { target: id } }); };
    return { cancel, done };
  }

  private send(request: ServeRequest): void {
    // Lines written before "ready" wait in the pipe: the server reads stdin once it has loaded.
    this.child?.stdin.write(JSON.stringify(request) + '\n');
  }

  private armIdle(): void {
    this.disarmIdle();
    if (this.busy || this.closed) return;
    this.idleTimer = setTimeout(() => this.dispose(), this.options.idleMs ?? DEFAULT_IDLE_MS);
    this.idleTimer.unref();
  }

  private disarmIdle(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  /** Marks the client failed (first reason wins), fails what waits, and tells the pool. */
  private close(reason: Error): void {
    this.disarmIdle();
    if (this.failure) return;
    this.failure = reason;
    this.markFailed(reason);
    for (const p of this.pending.values()) p.reject(reason);
    this.pending.clear();
    this.onClosed(this);
  }

  /** Ends the process: SIGTERM cancels what runs (the server's first-signal path), SIGKILL if it lingers. */
  dispose(): void {
    const child = this.child;
    this.close(new Error(`The serve process for ${this.checkpoint} was closed.`));
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.stdin.end();
    child.kill('SIGTERM');
    const timer = setTimeout(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); }, KILL_AFTER_MS);
    timer.unref();
  }
}

/** Serve processes by checkpoint: one each, reused; at most `maxProcesses` idle ones are kept. */
export class ServePool {
  private readonly clients = new Map<string, ServeClient>();

  constructor(private readonly options: ServeOptions & { maxProcesses?: number }) {}

  /** The live client of this checkpoint, or a new one (a failed one is replaced). */
  client(checkpoint: string): ServeClient {
    const key = resolve(checkpoint);
    const existing = this.clients.get(key);
    if (existing && !existing.closed) {
      this.clients.delete(key); // re-insert: Map order is the least-recently-used order
      this.clients.set(key, existing);
      return existing;
    }
    this.evictIdle(Math.max(1, this.options.maxProcesses ?? 4) - 1);
    const created = new ServeClient(key, this.options, (closed) => {
      if (this.clients.get(key) === closed) this.clients.delete(key);
    });
    if (!created.closed) this.clients.set(key, created);
    return created;
  }

  generate(checkpoint: string, params: GenerateParams, onToken: (token: string) => void): Generation {
    return this.client(checkpoint).generate(params, onToken);
  }

  /** Checkpoints with a live process (for tests and diagnostics). */
  get live(): string[] {
    return [...this.clients.keys()];
  }

  /** Ends least-recently-used idle processes until at most `keep` remain; busy ones are never ended. */
  private evictIdle(keep: number): void {
    for (const [key, client] of [...this.clients]) {
      if (this.clients.size <= keep) return;
      if (client.busy) continue;
      this.clients.delete(key);
      client.dispose();
    }
  }

  dispose(): void {
    for (const client of [...this.clients.values()]) client.dispose();
    this.clients.clear();
  }
}
