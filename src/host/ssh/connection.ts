// One SSH connection (ssh2's Client) with the checks a user expects of ssh itself: the host key
// verified against known_hosts before anything is sent (a changed key refused, an unknown one
// only on the user's word), auth by agent, key files (passphrase asked) or password (asked),
// ProxyJump through a chain of hops, keepalives, and errors that say what went wrong. Prompts are an
// interface: VS Code dialogs in vscodePrompts.ts, a script in tests. No vscode here.
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import type { Duplex, Readable, Writable } from 'node:stream';
import {
  Client,
  utils,
  type AnyAuthMethod,
  type AuthenticationType,
  type ClientChannel,
  type NextAuthHandler,
  type ParsedKey,
  type SFTPWrapper,
} from 'ssh2';
import { addHostKey, checkHostKey, defaultKnownHostsPath, fingerprint, hostEntryName } from './knownHosts';
import { defaultIdentityFiles, type SshHostConfig } from './sshConfig';

export type SecretRef =
  { kind: 'password'; host: string; port: number; user: string } | { kind: 'passphrase'; keyPath: string };

/** What a connection may ask the user. Every answer may be undefined/false: the user cancelled. */
export interface SshPrompts {
  password(host: string, user: string, port: number): Promise<string | undefined>;
  passphrase(keyPath: string): Promise<string | undefined>;
  /** An unknown host key: trust it (it is then added to known_hosts)? */
  confirmHostKey(host: string, fingerprint: string): Promise<boolean>;
  /** The secret worked: the caller may keep it (SecretStorage) if the user agreed. */
  remember?(secret: SecretRef, value: string): Promise<void> | void;
  /** The secret was wrong: drop any stored copy so that the next attempt asks again. */
  forget?(secret: SecretRef): Promise<void> | void;
}

export interface SshConnectOptions {
  host: SshHostConfig;
  prompts: SshPrompts;
  /** Default ~/.ssh/known_hosts. */
  knownHostsFile?: string;
  /** Hash the names of added known_hosts lines (HashKnownHosts). Default false. */
  hashKnownHosts?: boolean;
  /** ssh-agent socket; default SSH_AUTH_SOCK. Empty string: no agent. */
  agent?: string;
  /** Resolves a ProxyJump host (an alias of the config, usually) to its settings. */
  resolveJump?: (host: string) => SshHostConfig;
  /** Handshake and TCP connect limit. Default 20 s. */
  readyTimeoutMs?: number;
  /** SSH keepalive interval; the connection is dropped after 3 unanswered. Default 10 s. */
  keepaliveMs?: number;
}

/** A refused connection whose message is meant for the user as it is. */
export class SshError extends Error {
  constructor(
    message: string,
    readonly reason: 'host-key-changed' | 'host-key-rejected' | 'auth' | 'unreachable' | 'closed' | 'timeout' | 'other',
  ) {
    super(message);
    this.name = 'SshError';
  }
}

export interface RemoteProcess {
  stdout: Readable;
  stderr: Readable;
  stdin: Writable;
  /** Exit code (null when killed by a signal or the connection dropped). Never rejects. */
  exit: Promise<{ code: number | null; signal?: string }>;
  /** Closes the channel (the remote process sees its pipes close). */
  close(): void;
}

export interface RunResult {
  code: number | null;
  signal?: string;
  stdout: string;
  stderr: string;
}

function unreachable(err: NodeJS.ErrnoException, where: string): SshError {
  const why: Record<string, string> = {
    ECONNREFUSED: 'the connection was refused (is sshd running, and is the port right?)',
    ENOTFOUND: 'the host name does not resolve',
    EAI_AGAIN: 'the host name does not resolve (DNS lookup failed)',
    ETIMEDOUT: 'the connection timed out',
    EHOSTUNREACH: 'the host is unreachable',
    ENETUNREACH: 'the network is unreachable',
  };
  return new SshError(`Cannot reach ${where}: ${why[err.code ?? ''] ?? err.message}.`, 'unreachable');
}

/** A TCP connection to host:port, or a clear error within `timeoutMs`. */
function tcpConnect(host: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new SshError(`Cannot reach ${host}:${port}: no answer within ${timeoutMs / 1000} s.`, 'unreachable'));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(unreachable(err, `${host}:${port}`));
    });
  });
}

/** Jump hosts one connection may go through (ProxyJump a,b,…). */
const MAX_JUMPS = 8;

export class SshConnection extends EventEmitter {
  private sftpSession: Promise<SFTPWrapper> | undefined;
  private closedFlag = false;

  private constructor(
    readonly config: SshHostConfig,
    private readonly client: Client,
    /** The transport: a TCP socket, or a channel through the jump host. */
    private readonly transport: Duplex,
    private readonly jump: SshConnection | undefined,
  ) {
    super();
    client.on('close', () => this.markClosed());
    client.on('error', () => this.markClosed());
  }

  /** Connects and authenticates; rejects with an SshError whose message is for the user. */
  static async connect(options: SshConnectOptions): Promise<SshConnection> {
    const { host } = options;
    const timeoutMs = options.readyTimeoutMs ?? 20_000;
    if (host.proxyJump.length > MAX_JUMPS)
      throw new SshError(
        `ProxyJump through ${host.proxyJump.length} hosts is more than ${MAX_JUMPS}: ${host.alias}.`,
        'other',
      );
    let jump: SshConnection | undefined;
    let transport: Duplex;
    if (host.proxyJump.length > 0) {
      // As OpenSSH: ProxyJump a,b reaches b through a, then the host through b. The last hop is
      // connected to with the hops before it as its own jumps (its config's ProxyJump is ignored).
      const spec = host.proxyJump[host.proxyJump.length - 1];
      const base = options.resolveJump?.(spec.host) ?? {
        alias: spec.host,
        hostName: spec.host,
        user: host.user,
        port: 22,
        identityFiles: [],
        identitiesOnly: false,
        proxyJump: [],
      };
      const jumpConfig: SshHostConfig = {
        ...base,
        user: spec.user ?? base.user,
        port: spec.port ?? base.port,
        proxyJump: host.proxyJump.slice(0, -1),
      };
      jump = await SshConnection.connect({ ...options, host: jumpConfig });
      try {
        transport = await jump.forwardOut(host.hostName, host.port);
      } catch (err) {
        jump.close();
        throw new SshError(
          `Cannot reach ${host.hostName}:${host.port} through ${jumpConfig.alias}: ${(err as Error).message}.`,
          'unreachable',
        );
      }
    } else {
      transport = await tcpConnect(host.hostName, host.port, timeoutMs);
    }
    try {
      return await handshake(options, transport, jump, timeoutMs);
    } catch (err) {
      transport.destroy();
      jump?.close();
      throw err;
    }
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  /** Runs `command` (already quoted: see quote.ts) in the user's login shell on the host. */
  exec(command: string): Promise<RemoteProcess> {
    return new Promise((resolve, reject) => {
      if (this.closedFlag) return reject(new SshError(`The connection to ${this.config.alias} is closed.`, 'closed'));
      this.client.exec(command, (err, channel: ClientChannel) => {
        if (err) return reject(new SshError(`Cannot run a command on ${this.config.alias}: ${err.message}`, 'other'));
        let result: { code: number | null; signal?: string } = { code: null };
        channel.on(
          'exit',
          (code: number | null, signal?: string) => (result = { code: code ?? null, signal: signal ?? undefined }),
        );
        const exit = new Promise<{ code: number | null; signal?: string }>((done) =>
          channel.on('close', () => done(result)),
        );
        resolve({ stdout: channel, stderr: channel.stderr, stdin: channel, exit, close: () => channel.close() });
      });
    });
  }

  /** exec, collecting the output; `timeoutMs` closes the channel and rejects. */
  async run(command: string, opts: { timeoutMs?: number; input?: string } = {}): Promise<RunResult> {
    const proc = await this.exec(command);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    proc.stdout.on('data', (b: Buffer) => out.push(b));
    proc.stderr.on('data', (b: Buffer) => err.push(b));
    proc.stdin.end(opts.input ?? '');
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      if (opts.timeoutMs)
        timer = setTimeout(() => {
          proc.close();
          reject(
            new SshError(
              `A command on ${this.config.alias} did not finish within ${opts.timeoutMs! / 1000} s.`,
              'timeout',
            ),
          );
        }, opts.timeoutMs);
    });
    try {
      const { code, signal } = await Promise.race([proc.exit, timeout]);
      return { code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
    } finally {
      clearTimeout(timer);
    }
  }

  /** The connection's SFTP session (opened once). */
  sftp(): Promise<SFTPWrapper> {
    this.sftpSession ??= new Promise<SFTPWrapper>((resolve, reject) => {
      this.client.sftp((err, sftp) => {
        if (err) {
          this.sftpSession = undefined;
          return reject(new SshError(`SFTP is not available on ${this.config.alias}: ${err.message}`, 'other'));
        }
        sftp.on('close', () => (this.sftpSession = undefined));
        resolve(sftp);
      });
    });
    return this.sftpSession;
  }

  /** A TCP channel to host:port opened from the far side (ProxyJump). */
  forwardOut(host: string, port: number): Promise<ClientChannel> {
    return new Promise((resolve, reject) =>
      this.client.forwardOut('127.0.0.1', 0, host, port, (err, stream) => (err ? reject(err) : resolve(stream))),
    );
  }

  /** Calls `listener` once when the connection is gone (closed, dropped, or failed). */
  onClose(listener: () => void): void {
    if (this.closedFlag) listener();
    else this.once('close', listener);
  }

  close(): void {
    this.client.end();
    this.transport.destroy();
    this.markClosed();
  }

  /** Drops the transport without a goodbye, as a network failure would (tests). */
  destroyTransport(): void {
    this.transport.destroy();
  }

  private markClosed(): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    this.jump?.close();
    this.emit('close');
  }

  /** @internal */
  static wrap(
    config: SshHostConfig,
    client: Client,
    transport: Duplex,
    jump: SshConnection | undefined,
  ): SshConnection {
    return new SshConnection(config, client, transport, jump);
  }
}

/** Host key check, authentication and the ready event over an open transport. */
function handshake(
  options: SshConnectOptions,
  transport: Duplex,
  jump: SshConnection | undefined,
  timeoutMs: number,
): Promise<SshConnection> {
  const { host } = options;
  const where = `${host.user}@${host.hostName}${host.port === 22 ? '' : `:${host.port}`}`;
  const client = new Client();
  const auth = new AuthSequence(options);
  let refusal: SshError | undefined;
  return new Promise((resolve, reject) => {
    client.on('ready', () => {
      void auth.succeeded();
      resolve(SshConnection.wrap(host, client, transport, jump));
    });
    client.on('error', (err: Error & { level?: string }) => {
      if (refusal) return reject(refusal);
      if (err.level === 'client-authentication') {
        void auth.failed();
        return reject(
          new SshError(`Authentication failed for ${where}: wrong password or key.${auth.summary()}`, 'auth'),
        );
      }
      if (err.level === 'client-timeout')
        return reject(
          new SshError(`${where} did not complete the SSH handshake within ${timeoutMs / 1000} s.`, 'timeout'),
        );
      reject(new SshError(`SSH connection to ${where} failed: ${err.message}`, 'other'));
    });
    client.on('close', () =>
      reject(refusal ?? new SshError(`${where} closed the connection during the handshake.`, 'closed')),
    );
    client.connect({
      sock: transport,
      username: host.user,
      readyTimeout: timeoutMs,
      keepaliveInterval: options.keepaliveMs ?? 10_000,
      keepaliveCountMax: 3,
      hostVerifier: (key: Buffer, verify: (valid: boolean) => void) => {
        verifyHostKey(options, key).then(
          () => verify(true),
          (err: SshError) => {
            refusal = err;
            verify(false);
          },
        );
      },
      authHandler: (methodsLeft, _partial, next) => {
        const nextOrEnd = endableAuth(next);
        auth.next(methodsLeft).then(
          (m) => nextOrEnd(m ?? false),
          () => nextOrEnd(false),
        );
      },
    });
  });
}

/** Resolves when the key may be trusted; rejects with the message to show otherwise. Nothing is sent before. */
async function verifyHostKey(options: SshConnectOptions, key: Buffer): Promise<void> {
  const { hostName, port } = options.host;
  const file = options.knownHostsFile ?? defaultKnownHostsPath();
  const print = fingerprint(key);
  const name = hostEntryName(hostName, port);
  const status = checkHostKey(hostName, port, key, file);
  if (status === 'known') return;
  if (status === 'revoked') {
    throw new SshError(
      `The host key of ${name} (${print}) is marked @revoked in ${file}. The connection was refused; nothing was sent.`,
      'host-key-rejected',
    );
  }
  if (status === 'changed') {
    throw new SshError(
      `The host key of ${name} has CHANGED since it was recorded in ${file}. It now offers ${print}. ` +
        `This could be a man-in-the-middle attack, or the host was reinstalled. The connection was refused; nothing was sent. ` +
        `If the change is expected, remove the old line (ssh-keygen -R ${JSON.stringify(name)}) and connect again.`,
      'host-key-changed',
    );
  }
  // An unknown key, as ssh treats it under the host's StrictHostKeyChecking (a changed one is refused above whatever it says).
  const strict = options.host.strictHostKeyChecking ?? 'ask';
  if (strict === 'yes') {
    throw new SshError(
      `The host key of ${name} (${print}) is not in ${file}, and StrictHostKeyChecking is yes for ${options.host.alias}. ` +
        `The connection was refused; nothing was sent. Add the key (ssh ${options.host.alias} once), or change that setting.`,
      'host-key-rejected',
    );
  }
  if (strict === 'ask' && !(await options.prompts.confirmHostKey(name, print))) {
    throw new SshError(`The host key of ${name} (${print}) was not trusted; nothing was sent.`, 'host-key-rejected');
  }
  addHostKey(hostName, port, key, { hashed: options.hashKnownHosts, file });
}

/**
 * ssh2's `next` also takes `false` for "no method left" (it then fails with "All configured
 * authentication methods failed"; see ssh2/lib/client.js), which @types/ssh2 does not spell.
 * The assertion only widens what `next` is known to accept.
 */
function endableAuth(next: NextAuthHandler): (method: AnyAuthMethod | false) => void {
  return next as (method: AnyAuthMethod | false) => void;
}

interface AuthStep {
  type: AuthenticationType;
  make(): Promise<AnyAuthMethod | undefined>;
}

/** The order ssh tries: agent, key files, password; each only if the server still allows it. */
class AuthSequence {
  private readonly steps: AuthStep[] = [];
  private index = 0;
  private passwordTried: string | undefined;
  private readonly notes: string[] = [];
  private readonly passphrasesUsed: { keyPath: string; value: string }[] = [];

  constructor(private readonly options: SshConnectOptions) {
    const { host } = options;
    const username = host.user;
    const agent = options.agent ?? process.env.SSH_AUTH_SOCK ?? '';
    if (agent && !(host.identitiesOnly && host.identityFiles.length > 0))
      this.steps.push({ type: 'agent', make: async () => ({ type: 'agent', username, agent }) });
    const files = host.identityFiles.length > 0 ? host.identityFiles : defaultIdentityFiles();
    for (const path of files) this.steps.push({ type: 'publickey', make: () => this.keyFile(path) });
    this.steps.push({
      type: 'password',
      make: async () => {
        const password = await options.prompts.password(host.hostName, username, host.port);
        if (password === undefined) return undefined;
        this.passwordTried = password;
        return { type: 'password', username, password };
      },
    });
  }

  /** The next method the server allows, or undefined when none is left. */
  async next(methodsLeft: AuthenticationType[] | null): Promise<AnyAuthMethod | undefined> {
    while (this.index < this.steps.length) {
      const step = this.steps[this.index++];
      // The agent signs with public keys: the server lists it as 'publickey'.
      const asListed = step.type === 'agent' ? 'publickey' : step.type;
      if (methodsLeft !== null && !methodsLeft.includes(asListed)) continue;
      const method = await step.make();
      if (method) return method;
    }
    return undefined;
  }

  private async keyFile(path: string): Promise<AnyAuthMethod | undefined> {
    let data: Buffer;
    try {
      data = readFileSync(path);
    } catch {
      return undefined; // a default key file that does not exist
    }
    let parsed = utils.parseKey(data);
    if (parsed instanceof Error && /passphrase|encrypted/i.test(parsed.message)) {
      const passphrase = await this.options.prompts.passphrase(path);
      if (passphrase === undefined) return undefined;
      parsed = utils.parseKey(data, passphrase);
      if (parsed instanceof Error) {
        this.notes.push(`the passphrase of ${path} was wrong`);
        await this.options.prompts.forget?.({ kind: 'passphrase', keyPath: path });
        return undefined;
      }
      this.passphrasesUsed.push({ keyPath: path, value: passphrase });
    }
    if (parsed instanceof Error) {
      this.notes.push(`${path} is not a usable private key (${parsed.message})`);
      return undefined;
    }
    const key: ParsedKey = Array.isArray(parsed) ? parsed[0] : parsed;
    return { type: 'publickey', username: this.options.host.user, key };
  }

  /** A correct passphrase is worth keeping whether or not the server took that key. */
  async succeeded(): Promise<void> {
    const { prompts, host } = this.options;
    for (const p of this.passphrasesUsed) await prompts.remember?.({ kind: 'passphrase', keyPath: p.keyPath }, p.value);
    if (this.passwordTried !== undefined)
      await prompts.remember?.(
        { kind: 'password', host: host.hostName, port: host.port, user: host.user },
        this.passwordTried,
      );
  }

  async failed(): Promise<void> {
    const { prompts, host } = this.options;
    for (const p of this.passphrasesUsed) await prompts.remember?.({ kind: 'passphrase', keyPath: p.keyPath }, p.value);
    if (this.passwordTried !== undefined)
      await prompts.forget?.({ kind: 'password', host: host.hostName, port: host.port, user: host.user });
  }

  summary(): string {
    return this.notes.length ? ` (${this.notes.join('; ')})` : '';
  }
}
