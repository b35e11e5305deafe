// The extension's end of `steelscope serve` (src/shared/serve-protocol.ts), without vscode: one
// `node dist/cli.js serve <checkpoint>` per checkpoint (a child process here, or an exec channel
// on the SSH host that holds the checkpoint), loaded once and reused for every generation, ended
// when disposed or idle. Every stdout line is validated before use; the model never loads in the
// extension host (DESIGN.md).
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import {
  parseServeMessage,
  type ChatTemplate,
  type DoneMessage,
  type GenerateParams,
  type ReadyMessage,
  type RequestId,
  type ServeMessage,
  type ServeRequest,
} from '../../shared/serve-protocol';
import { spawnCli, type CliProcess } from '../runs/cliProcess';

/** A running `steelscope serve`: a child process here, or an exec channel on an SSH host. */
export type ServeProcess = CliProcess;

/** Starts `serve` on a checkpoint; rejects (or throws) with a message for the user. */
export type ServeStart = (checkpoint: string) => ServeProcess | Promise<ServeProcess>;

export interface ServeClientOptions {
  /** The node binary (settings.ts: trainerNode); asked at each spawn so a changed setting applies. May throw. */
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
  /** Where a checkpoint is not on this machine: how to start serve for it (an SSH host's); undefined: here. */
  route?: (checkpoint: string) => ServeStart | undefined;
}

/** `node dist/cli.js serve <checkpoint>` as a child process of the extension host. */
function localServe(options: ServeClientOptions): ServeStart {
  return (checkpoint) =>
    spawnCli(
      { nodePath: options.nodePath(), cliPath: options.cliPath, env: options.env },
      ['serve', checkpoint, ...(options.args ?? [])],
      'the serve process',
    );
}

export interface Generation {
  /** Asks the server to stop; `done` then resolves with reason "cancelled" (or how it ended first). */
  cancel(): void;
  done: Promise<DoneMessage>;
  /** How the server renders the messages (its ready line's template; undefined when it did not say). */
  template?: Promise<ChatTemplate | undefined>;
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
const STDERR_KEEP = 2_000;

/** One serve process for one checkpoint. */
export class ServeClient {
  readonly ready: Promise<ReadyMessage>;
  private proc: ServeProcess | undefined;
  /** Request lines written before the process is up (a remote one takes a connection and a deploy). */
  private readonly queued: string[] = [];
  private nextId = 1;
  private readonly pending = new Map<RequestId, Pending>();
  private failure: Error | undefined;
  private stderrTail = '';
  private idleTimer: NodeJS.Timeout | undefined;
  private markReady: (ready: ReadyMessage) => void = () => {};
  private markFailed: (err: Error) => void = () => {};

  constructor(
    readonly checkpoint: string,
    private readonly options: ServeClientOptions,
    private readonly onClosed: (client: ServeClient) => void = () => {},
  ) {
    this.ready = new Promise<ReadyMessage>((ok, fail) => {
      this.markReady = ok;
      this.markFailed = fail;
    });
    handled(this.ready); // a failure also reaches every generation; nobody must await ready
    const start = options.route?.(checkpoint) ?? localServe(options);
    let started: ServeProcess | Promise<ServeProcess>;
    try {
      started = start(checkpoint);
    } catch (err) {
      started = Promise.reject(err);
    }
    void Promise.resolve(started).then(
      (proc) => this.attach(proc),
      (err: unknown) =>
        this.close(new Error(`Could not start the serve process: ${err instanceof Error ? err.message : String(err)}`)),
    );
    this.armIdle();
  }

  /** True once the process has ended or failed; the pool then starts a fresh one. */
  get closed(): boolean {
    return this.failure !== undefined;
  }

  /** The process id while it runs here (for tests and diagnostics; none for a remote one). */
  get pid(): number | undefined {
    return this.proc?.pid;
  }

  /** True while a generation is queued or running. */
  get busy(): boolean {
    return this.pending.size > 0;
  }

  private attach(proc: ServeProcess): void {
    if (this.closed) return proc.stop(); // disposed while it was starting
    this.proc = proc;
    void proc.exit.then((r) =>
      this.close(r.error !== undefined ? new Error(r.error) : this.exitError(r.code, r.signal ?? null)),
    );
    proc.stdin.on('error', () => {}); // EPIPE after an exit: the exit handler reports it
    proc.stderr.on('data', (chunk: Buffer) => {
      this.stderrTail = (this.stderrTail + chunk.toString('utf8')).slice(-STDERR_KEEP);
    });
    createInterface({ input: proc.stdout, crlfDelay: Infinity }).on('line', (line) => this.receive(line));
    for (const line of this.queued.splice(0)) proc.stdin.write(line);
  }

  private exitError(code: number | null, signal: string | null): Error {
    // Neither a code nor a signal: an SSH channel that closed under it (the connection dropped).
    const how =
      code !== null
        ? `exited with code ${code}`
        : signal
          ? `exited on ${signal}`
          : 'ended without an exit status (its connection closed); send the prompt again to reconnect';
    const tail = this.stderrTail.trim().split('\n').slice(-5).join('\n');
    return new Error(`The serve process for ${this.checkpoint} ${how}.${tail ? `\n${tail}` : ''}`);
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
    const done = handled(
      new Promise<DoneMessage>((ok, fail) => this.pending.set(id, { onToken, resolve: ok, reject: fail })),
    );
    this.disarmIdle();
    this.send({ id, method: 'generate', params });
    const cancel = () => {
      if (this.pending.has(id)) this.send({ id: this.nextId++, method: 'cancel', params: { target: id } });
    };
    return {
      cancel,
      done,
      template: this.ready.then(
        (r) => r.template,
        () => undefined,
      ),
    };
  }

  private send(request: ServeRequest): void {
    // Lines written before "ready" wait in the pipe: the server reads stdin once it has loaded.
    const line = JSON.stringify(request) + '\n';
    if (this.proc) this.proc.stdin.write(line);
    else this.queued.push(line);
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
    this.close(new Error(`The serve process for ${this.checkpoint} was closed.`));
    this.proc?.stop();
  }
}

/** Serve processes by checkpoint: one each, reused; at most `maxProcesses` idle ones are kept. */
export class ServePool {
  private readonly clients = new Map<string, ServeClient>();

  constructor(private readonly options: ServeClientOptions & { maxProcesses?: number }) {}

  /** The live client of this checkpoint, or a new one (a failed one is replaced). */
  client(checkpoint: string): ServeClient {
    const key = this.options.route?.(checkpoint) !== undefined ? checkpoint : resolve(checkpoint); // a remote one is an id, not a local path
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
