// ~/.ssh/config, read the way ssh reads it: Host blocks matched against the alias with *, ? and
// !negation; for each keyword the first value obtained wins (so specific blocks come first, as
// ssh's manual says); IdentityFile accumulates; Include is expanded in place; Match blocks are
// not evaluated (skipped). The lines are parsed by the `ssh-config` package (quoting, `=`, Host
// and Match sections). Its matching and compute() are not used: its `?` also matches no character
// and it compares case-sensitively, where ssh wants exactly one character and ignores case
// (test/unit/ssh-config.test.ts); it expands no Include and it evaluates Match (exec included).
// Pure functions over text plus a file reader, so it is unit-tested in plain Node.
import { readdirSync, readFileSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { LineType, parse, type Line } from 'ssh-config';

export interface JumpHost {
  /** The alias or host name as written; resolved through the config again when connecting. */
  host: string;
  user?: string;
  port?: number;
}

export interface SshHostConfig {
  alias: string;
  hostName: string;
  user: string;
  port: number;
  /** Expanded paths (~ and %h/%u/%r/%p/%d/%n), in the order ssh tries them. */
  identityFiles: string[];
  /** IdentitiesOnly yes: do not offer the agent's other keys. */
  identitiesOnly: boolean;
  /** ProxyJump hops, first hop first; empty for a direct connection. */
  proxyJump: JumpHost[];
  /** StrictHostKeyChecking (ssh's default `ask`): what happens to an unknown host key. */
  strictHostKeyChecking?: StrictHostKeyChecking;
}

/** yes: refuse unknown keys; accept-new and no: add them unasked (as OpenSSH); ask: ask the user. */
export type StrictHostKeyChecking = 'yes' | 'accept-new' | 'no' | 'ask';

function strictness(value: string | undefined, alias: string): StrictHostKeyChecking {
  switch (value?.toLowerCase()) {
    case undefined:
    case 'ask':
      return 'ask';
    case 'yes':
    case 'true':
      return 'yes';
    case 'no':
    case 'off':
    case 'false':
      return 'no';
    case 'accept-new':
      return 'accept-new';
    default:
      throw new Error(`StrictHostKeyChecking ${value} of host ${alias} is not one of yes, accept-new, no, off, ask.`);
  }
}

export interface ConfigContext {
  home?: string;
  localUser?: string;
  /** Reads an Include'd file; default fs. Missing files are skipped, as ssh does. */
  readFile?: (path: string) => string | undefined;
  /** Lists files matching an Include glob; default: * and ? in the last path segment. */
  glob?: (pattern: string) => string[];
}

interface Entry {
  /** Patterns of the Host block the line belongs to; undefined before any Host (applies to all). */
  patterns: string[] | undefined;
  keyword: string;
  args: string[];
}

/** A config's lines; text ssh-config cannot read is an error naming the file. */
function parseConfig(text: string, file: string): Line[] {
  try {
    return parse(text);
  } catch (err) {
    throw new Error(`${file} is not readable as an ssh config: ${(err as Error).message}.`);
  }
}

/** A directive's arguments: one value, or the words of a Host/Match line. */
function argsOf(line: Line): string[] {
  if (line.type !== LineType.DIRECTIVE) return [];
  return typeof line.value === 'string' ? [line.value] : line.value.map((v) => v.val);
}

function globToRegExp(pattern: string): RegExp {
  const body = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${body}$`, 'i');
}

/** ssh's Host matching: some positive pattern matches and no negated one does. */
export function hostMatches(patterns: readonly string[], alias: string): boolean {
  let matched = false;
  for (const p of patterns) {
    if (p.startsWith('!')) {
      if (globToRegExp(p.slice(1)).test(alias)) return false;
    } else if (globToRegExp(p).test(alias)) matched = true;
  }
  return matched;
}

function defaultGlob(pattern: string): string[] {
  if (!/[*?]/.test(basename(pattern))) return [pattern];
  try {
    const re = globToRegExp(basename(pattern));
    return readdirSync(dirname(pattern))
      .filter((n) => re.test(n))
      .sort()
      .map((n) => join(dirname(pattern), n));
  } catch {
    return [];
  }
}

function defaultRead(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** The files an Include argument names: relative to ~/.ssh, globs expanded. */
function includedFiles(arg: string, ctx: Required<ConfigContext>): string[] {
  const path = expandTilde(arg, ctx.home);
  return ctx.glob(isAbsolute(path) ? path : join(ctx.home, '.ssh', path));
}

/**
 * The directives of a config with Include expanded (depth-limited, as ssh limits it to 16), each
 * with the patterns of its Host block; an included file starts in the block of its Include line.
 */
function entries(text: string, file: string, ctx: Required<ConfigContext>, depth = 0, inherited?: string[]): Entry[] {
  const out: Entry[] = [];
  const visit = (lines: readonly Line[], patterns: string[] | undefined) => {
    for (const line of lines) {
      if (line.type !== LineType.DIRECTIVE) continue;
      const keyword = line.param.toLowerCase();
      if ('config' in line) {
        if (keyword === 'host') visit(line.config, argsOf(line)); // a Match block is skipped whole
      } else if (keyword === 'include') {
        if (depth >= 16) continue;
        for (const arg of argsOf(line)) {
          for (const path of includedFiles(arg, ctx)) {
            const included = ctx.readFile(path);
            if (included !== undefined) out.push(...entries(included, path, ctx, depth + 1, patterns));
          }
        }
      } else {
        out.push({ patterns, keyword, args: argsOf(line) });
      }
    }
  };
  visit(parseConfig(text, file), inherited);
  return out;
}

function withDefaults(ctx: ConfigContext): Required<ConfigContext> {
  return {
    home: ctx.home ?? homedir(),
    localUser: ctx.localUser ?? userInfo().username,
    readFile: ctx.readFile ?? defaultRead,
    glob: ctx.glob ?? defaultGlob,
  };
}

/** Concrete Host aliases (no wildcard, no negation), in file order, without duplicates. */
export function hostsFromConfig(text: string, ctx: ConfigContext = {}): string[] {
  const seen = new Set<string>();
  const full = withDefaults(ctx);
  const visit = (lines: readonly Line[], depth: number) => {
    for (const line of lines) {
      if (line.type !== LineType.DIRECTIVE) continue;
      const keyword = line.param.toLowerCase();
      if (keyword === 'host') for (const p of argsOf(line)) if (!/[*?!]/.test(p)) seen.add(p);
      if ('config' in line) visit(line.config, depth);
      if (keyword === 'include' && depth < 16) {
        for (const path of argsOf(line).flatMap((arg) => includedFiles(arg, full))) {
          const included = full.readFile(path);
          if (included !== undefined) visit(parseConfig(included, path), depth + 1);
        }
      }
    }
  };
  visit(parseConfig(text, 'the ssh config'), 0);
  return [...seen];
}

function expandTilde(path: string, home: string): string {
  return path === '~' ? home : path.startsWith('~/') ? join(home, path.slice(2)) : path;
}

/** ssh's percent tokens; an unknown token is left as written. */
function expandTokens(value: string, tokens: Record<string, string>): string {
  return value.replace(/%(.)/g, (whole, c: string) => (c === '%' ? '%' : (tokens[c] ?? whole)));
}

/** `[user@]host[:port]`, or `ssh://[user@]host[:port]`. */
export function parseJump(spec: string): JumpHost {
  const m = /^(?:ssh:\/\/)?(?:([^@]+)@)?(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(spec.trim());
  if (!m) throw new Error(`Unreadable ProxyJump host "${spec}".`);
  const host = m[2].replace(/^\[|\]$/g, '');
  return { host, user: m[1], port: m[3] ? Number(m[3]) : undefined };
}

/** The effective settings for `alias`: the first value of each keyword among the blocks that match it. */
export function resolveHost(alias: string, text: string, ctx: ConfigContext = {}): SshHostConfig {
  const full = withDefaults(ctx);
  const first = new Map<string, string[]>();
  const identity: string[] = [];
  for (const e of entries(text, 'the ssh config', full)) {
    if (e.patterns && !hostMatches(e.patterns, alias)) continue;
    if (e.keyword === 'identityfile') identity.push(...e.args);
    else if (!first.has(e.keyword)) first.set(e.keyword, e.args);
  }
  const one = (k: string) => first.get(k)?.[0];
  const hostName = expandTokens(one('hostname') ?? alias, { h: alias, '%': '%' });
  const user = one('user') ?? full.localUser;
  const port = Number(one('port') ?? 22);
  if (!Number.isInteger(port) || port <= 0 || port > 65535)
    throw new Error(`Port ${one('port')} of host ${alias} is not a port number.`);
  const tokens = { h: hostName, u: full.localUser, r: user, p: String(port), d: full.home, n: alias };
  const jump = one('proxyjump');
  return {
    alias,
    hostName,
    user,
    port,
    identityFiles: identity.map((p) => expandTilde(expandTokens(p, tokens), full.home)),
    identitiesOnly: one('identitiesonly')?.toLowerCase() === 'yes',
    proxyJump:
      !jump || jump.toLowerCase() === 'none'
        ? []
        : (first.get('proxyjump') ?? []).join(',').split(',').filter(Boolean).map(parseJump),
    strictHostKeyChecking: strictness(one('stricthostkeychecking'), alias),
  };
}

/** The user's ~/.ssh/config, or '' where there is none. */
export function readUserConfig(home = homedir()): string {
  return defaultRead(join(home, '.ssh', 'config')) ?? '';
}

/** The default key files ssh tries when the config names none. */
export function defaultIdentityFiles(home = homedir()): string[] {
  return ['id_ed25519', 'id_ecdsa', 'id_rsa'].map((n) => join(home, '.ssh', n));
}
