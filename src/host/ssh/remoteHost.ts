// One SSH host's connection, shared by everything done there (deploy, launch, follow, transfer,
// serve): opened once however many callers wait, its state reported to the Runs view, and a
// refused host key or login remembered so background work does not ask again every few seconds.
import { EventEmitter } from 'node:events';
import { posix } from 'node:path';
import { SshError, type SshConnection } from './connection';
import type { ConnectionState } from './remoteFollower';
import { realpath } from './sftp';

/** `path` (not absolute) in the home folder `home`: `~` and `~/x` as a shell expands them, `x` as ssh starts in home. */
export function underHome(path: string, home: string): string {
  if (path === '~') return home;
  return posix.join(home, path.startsWith('~/') ? path.slice(2) : path);
}

export type SftpSession = Awaited<ReturnType<SshConnection['sftp']>>;

export class RemoteHost extends EventEmitter {
  private current: SshConnection | undefined;
  private connecting: Promise<SshConnection> | undefined;
  private stateNow: ConnectionState = 'disconnected';
  private home: string | undefined;
  /** A refused host key or login: not retried by background work; reconnect() clears it. */
  private refusal: SshError | undefined;
  /** Why the last connection attempt failed. */
  lastError: string | undefined;

  constructor(
    /** The host's alias (~/.ssh/config Host, or user@host): how messages name it. */
    readonly label: string,
    /** Opens a new authenticated connection (config, prompts and known_hosts are its business). */
    private readonly connect: () => Promise<SshConnection>,
  ) {
    super();
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
      const connection = await this.connect();
      this.current = connection;
      this.lastError = undefined;
      this.setState('connected');
      connection.onClose(() => {
        if (this.current === connection) this.setState('disconnected');
      });
      return connection;
    } catch (err) {
      this.lastError = err instanceof Error ? err.message : String(err);
      if (err instanceof SshError && ['host-key-changed', 'host-key-rejected', 'auth'].includes(err.reason))
        this.refusal = err;
      this.setState('disconnected');
      throw err;
    }
  }

  /** A fresh connection, even after a refusal (the user fixed known_hosts, or retypes the password). */
  async reconnect(): Promise<SshConnection> {
    this.refusal = undefined;
    this.disconnect();
    return this.connection();
  }

  /** Closes the connection; the next call opens a new one. */
  disconnect(): void {
    this.current?.close();
    this.current = undefined;
    this.setState('disconnected');
  }

  async sftp(): Promise<SftpSession> {
    return (await this.connection()).sftp();
  }

  /**
   * A path on the host as the user means it, made absolute: `~`, `~/x` and relative paths are in
   * the home folder (where an SSH session starts), whatever folder a command later runs in.
   */
  async remotePath(path: string): Promise<string> {
    if (posix.isAbsolute(path)) return path;
    this.home ??= await realpath(await this.sftp(), '.');
    return underHome(path, this.home);
  }

  /** Runs a command (already quoted); throws with its stderr unless it exits 0. */
  async sh(command: string, what: string, timeoutMs = 60_000): Promise<string> {
    const r = await (await this.connection()).run(command, { timeoutMs });
    if (r.code !== 0) {
      const said = (r.stderr || r.stdout).trim().split('\n').slice(-5).join('\n');
      throw new Error(`${what} failed on ${this.label} (exit ${r.code ?? r.signal}): ${said}`);
    }
    return r.stdout;
  }
}
