// A real OpenSSH server for the tests: Debian's sshd on 127.0.0.1, a free port, its own config,
// host key, client key and authorized_keys in a scratch folder; optionally password login for a
// test user (created when the tests run as root). Stopped with its session processes.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SshConnection, type SshPrompts } from '../src/host/ssh/connection';
import { RemoteTarget, type RemoteTargetOptions } from '../src/host/ssh/remoteTarget';
import type { SshHostConfig } from '../src/host/ssh/sshConfig';
import { freePort, ROOT, scratch, sleep, TEST_ENV } from './helpers';

export const SSHD = '/usr/sbin/sshd';
export const PASSWORD_USER = 'steelscope-test';

/** Why SSH tests cannot run here, or undefined. Under CI a missing sshd is a failure, not a skip. */
export function sshdSkipReason(): string | undefined {
  if (existsSync(SSHD) && existsSync('/usr/bin/ssh-keygen')) return undefined;
  const reason = `${SSHD} or ssh-keygen is missing (apt-get install openssh-server)`;
  if (process.env.CI) throw new Error(`SSH tests cannot run under CI: ${reason}.`);
  return reason;
}

/** Why the password test cannot run here, or undefined. */
export function passwordSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'creating a test user with a password needs root';
  if (!existsSync('/usr/sbin/useradd') || !existsSync('/usr/sbin/chpasswd')) return 'useradd/chpasswd are missing';
  return undefined;
}

function keygen(path: string): void {
  const r = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'steelscope-test', '-f', path], {
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`ssh-keygen failed: ${r.stderr}`);
}

/** The raw key blob of an OpenSSH .pub file. */
export function pubBlob(pubPath: string): Buffer {
  return Buffer.from(readFileSync(pubPath, 'utf8').trim().split(/\s+/)[1], 'base64');
}

/** Pids whose parent is `pid` (from /proc; no procps needed). */
function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

function ensurePasswordUser(password: string): void {
  if (spawnSync('id', [PASSWORD_USER]).status !== 0) {
    const r = spawnSync('useradd', ['-m', '-s', '/bin/sh', PASSWORD_USER], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`useradd failed: ${r.stderr}`);
  }
  const r = spawnSync('chpasswd', [], { input: `${PASSWORD_USER}:${password}\n`, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`chpasswd failed: ${r.stderr}`);
}

/** sshd could not bind its port: someone took it after freePort found it free. */
class PortTaken extends Error {
  constructor(port: number, log: string) {
    super(`port ${port} was taken before sshd could listen on it: ${log}`);
  }
}

export class TestSshd {
  readonly hostKey: string;
  readonly clientKey: string;
  readonly knownHosts: string;
  readonly password = 'correct horse battery staple';
  private child: ChildProcess | undefined;
  private readonly reap = () => this.killNow();

  private constructor(
    readonly dir: string,
    readonly port: number,
    private readonly withPassword: boolean,
    private readonly extraConfig: readonly string[] = [],
  ) {
    this.hostKey = join(dir, 'host_key');
    this.clientKey = join(dir, 'client_key');
    this.knownHosts = join(dir, 'known_hosts');
  }

  /** extraConfig: more sshd_config lines (test/slurm.ts: `SetEnv SLURM_CONF=…` for the test cluster's clients). */
  static async start(opts: { password?: boolean; extraConfig?: string[] } = {}): Promise<TestSshd> {
    // freePort's port was free a moment ago; another process (a client's outgoing connection, a
    // rendezvous store) may take it before sshd binds it. Then sshd says so and exits, and a new
    // port is tried: a choice of port, never a test's assertion, is what is repeated.
    for (let attempt = 1; ; attempt++) {
      const sshd = new TestSshd(scratch('sshd'), await freePort(), opts.password ?? false, opts.extraConfig);
      keygen(sshd.hostKey);
      keygen(sshd.clientKey);
      writeFileSync(join(sshd.dir, 'authorized_keys'), readFileSync(`${sshd.clientKey}.pub`));
      if (sshd.withPassword) ensurePasswordUser(sshd.password);
      mkdirSync('/run/sshd', { recursive: true }); // privilege separation directory
      try {
        await sshd.launch();
        return sshd;
      } catch (err) {
        if (!(err instanceof PortTaken) || attempt === 3) throw err;
      }
    }
  }

  /** The host's public key blob (what known_hosts holds and ssh2's hostVerifier receives). */
  get hostKeyBlob(): Buffer {
    return pubBlob(`${this.hostKey}.pub`);
  }

  /** Settings as resolveHost would give them for this server. */
  hostConfig(overrides: Partial<SshHostConfig> = {}): SshHostConfig {
    return {
      alias: 'test-sshd',
      hostName: '127.0.0.1',
      user: 'root',
      port: this.port,
      identityFiles: [this.clientKey],
      identitiesOnly: true,
      proxyJump: [],
      ...overrides,
    };
  }

  private config(): string {
    return [
      `Port ${this.port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${this.hostKey}`,
      `PidFile ${join(this.dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${join(this.dir, 'authorized_keys')}`,
      'PubkeyAuthentication yes',
      `PasswordAuthentication ${this.withPassword ? 'yes' : 'no'}`,
      'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password',
      'UsePAM no',
      'StrictModes no',
      'MaxStartups 100',
      'MaxSessions 100',
      'Subsystem sftp internal-sftp',
      ...this.extraConfig,
      '',
    ].join('\n');
  }

  private async launch(): Promise<void> {
    const cfg = join(this.dir, 'sshd_config');
    writeFileSync(cfg, this.config());
    const check = spawnSync(SSHD, ['-t', '-f', cfg], { encoding: 'utf8' });
    if (check.status !== 0) throw new Error(`sshd -t rejected the test config: ${check.stderr}`);
    let log = '';
    const child = spawn(SSHD, ['-D', '-e', '-f', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr?.on('data', (b: Buffer) => (log += b.toString('utf8')));
    this.child = child;
    process.once('exit', this.reap);
    // Ready when sshd itself says it listens (-e: its log on stderr). A connection that succeeds
    // proves nothing: whoever took the port first would accept it while this sshd fails to bind.
    const deadline = Date.now() + 10_000;
    while (!log.includes(`Server listening on 127.0.0.1 port ${this.port}.`)) {
      if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
        this.child = undefined;
        process.removeListener('exit', this.reap);
        if (child.exitCode === null) child.kill('SIGKILL');
        if (/Address already in use/.test(log)) throw new PortTaken(this.port, log);
        throw new Error(`sshd did not start: ${log}`);
      }
      await sleep(20);
    }
  }

  /** Kills the sshd processes serving connections (as a network drop would end them); the listener stays. */
  killSessions(): number {
    const pids = this.child?.pid ? childPids(this.child.pid) : [];
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    return pids.length;
  }

  /** A new host key (the server was "reinstalled"): restarts sshd on the same port. */
  async regenerateHostKey(): Promise<void> {
    await this.stop();
    rmSync(this.hostKey, { force: true });
    rmSync(`${this.hostKey}.pub`, { force: true });
    keygen(this.hostKey);
    await this.launch();
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    process.removeListener('exit', this.reap);
    this.killSessionsOf(child);
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(5000)]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  }

  private killSessionsOf(child: ChildProcess): void {
    for (const pid of child.pid ? childPids(child.pid) : []) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }

  private killNow(): void {
    if (this.child) {
      this.killSessionsOf(this.child);
      this.child.kill('SIGKILL');
    }
  }
}

/** The answers a test gives: the test sshd's key is trusted; nothing else is asked (key auth). */
export const TRUSTING_PROMPTS: SshPrompts = {
  password: async () => undefined,
  passphrase: async () => undefined,
  confirmHostKey: async () => true,
  forget: () => undefined,
};

/**
 * A RemoteTarget on the test sshd (TRUSTING_PROMPTS, no agent) deploying this checkout's dist/ to
 * `<root>/home/.steelscope`, its trainers sharing the tests' cache; `options` add or override the rest.
 */
export function sshdTarget(
  sshd: TestSshd,
  root: string,
  options: Pick<RemoteTargetOptions, 'alias'> & Partial<RemoteTargetOptions>,
): RemoteTarget {
  return new RemoteTarget({
    connect: () =>
      SshConnection.connect({
        host: sshd.hostConfig(),
        prompts: TRUSTING_PROMPTS,
        knownHostsFile: sshd.knownHosts,
        agent: '',
      }),
    distDir: join(ROOT, 'dist'),
    version: 'test',
    remoteRoot: join(root, 'home', '.steelscope'),
    env: { STEELSCOPE_CACHE: TEST_ENV.STEELSCOPE_CACHE ?? join(root, 'cache') },
    ...options,
  });
}
