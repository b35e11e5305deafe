// The SSH hosts the user added, as RemoteTargets: resolved through ~/.ssh/config, connected with
// the given prompts, remembered by alias (no secret) in a small persisted list. No vscode here;
// commands.ts wires it to the editor.
import { SshConnection, type SshPrompts } from './connection';
import { RemoteTarget, type RemoteTargetOptions } from './remoteTarget';
import { parseJump, readUserConfig, resolveHost, type SshHostConfig } from './sshConfig';
import type { RunKey } from '../runs/types';

/** Where the host list lives (globalState in the extension, a Map in tests). */
export interface HostListStorage {
  get(): string[];
  set(aliases: string[]): PromiseLike<void> | void;
}

/** The part of the RunStore hosts need. */
export interface RemoteRunSink {
  addRemoteRun(target: RemoteTarget, dir: string, source: ReturnType<RemoteTarget['createFollower']>): RunKey;
}

export interface SshHostsOptions extends Omit<RemoteTargetOptions, 'alias' | 'connect' | 'runsRoot'> {
  /** The runs folder of a host (a setting per host); undefined: `<remoteRoot>/runs`. */
  runsRootOf?: (alias: string) => string | undefined;
  prompts: SshPrompts;
  storage: HostListStorage;
  /** ~/.ssh/config text; default the user's file, read at each connect. */
  configText?: () => string;
  knownHostsFile?: string;
}

/** `alias`, or `user@host[:port]` for a host not in the config. */
export function resolveSpec(spec: string, configText: string): SshHostConfig {
  const jump = /[@:]/.test(spec) ? parseJump(spec) : { host: spec, user: undefined, port: undefined };
  const resolved = resolveHost(jump.host, configText);
  return { ...resolved, alias: spec, user: jump.user ?? resolved.user, port: jump.port ?? resolved.port };
}

export class SshHosts {
  private readonly targets = new Map<string, RemoteTarget>();

  constructor(private readonly options: SshHostsOptions) {
    for (const alias of options.storage.get()) this.targets.set(alias, this.makeTarget(alias));
  }

  list(): RemoteTarget[] {
    return [...this.targets.values()];
  }

  get(alias: string): RemoteTarget | undefined {
    return this.targets.get(alias);
  }

  /** Adds (and remembers) a host; connects and deploys so that failures show at once. */
  async add(alias: string): Promise<RemoteTarget> {
    const target = this.targets.get(alias) ?? this.makeTarget(alias);
    if (target.state !== 'connected') await target.reconnect(); // a fresh try, even after a refusal
    await target.deploy(); // node is checked here
    if (!this.targets.has(alias)) {
      this.targets.set(alias, target);
      await this.options.storage.set([...this.targets.keys()]);
    }
    return target;
  }

  async remove(alias: string): Promise<void> {
    this.targets.get(alias)?.disconnect();
    this.targets.delete(alias);
    await this.options.storage.set([...this.targets.keys()]);
  }

  /** Observes every run folder of every host that can be reached; unreachable hosts keep their error. */
  async rescan(store: RemoteRunSink): Promise<void> {
    await Promise.all(
      this.list().map(async (target) => {
        try {
          for (const dir of await target.listRunDirs()) store.addRemoteRun(target, dir, target.createFollower(dir));
        } catch {
          // target.lastError says why; the tree shows the host as disconnected
        }
      }),
    );
  }

  /** Asks each connected Slurm login node about its partitions again (the Runs view's Refresh). */
  async refreshClusters(): Promise<void> {
    await Promise.all(
      this.list().map((target) =>
        target.slurm.refresh().catch(() => undefined /* the host's state and lastError say why */),
      ),
    );
  }

  dispose(): void {
    for (const target of this.targets.values()) target.disconnect();
  }

  private makeTarget(alias: string): RemoteTarget {
    const { prompts, storage: _s, configText, knownHostsFile, runsRootOf, ...rest } = this.options;
    const text = () => (configText ?? readUserConfig)();
    return new RemoteTarget({
      ...rest,
      alias,
      runsRoot: () => runsRootOf?.(alias),
      connect: () => {
        const config = text();
        return SshConnection.connect({
          host: resolveSpec(alias, config),
          prompts,
          knownHostsFile,
          resolveJump: (h) => resolveSpec(h, config),
        });
      },
    });
  }
}
