// ~/.ssh/known_hosts, read and appended the way OpenSSH does: plain `host,host2 type base64`
// lines (patterns allowed), hashed `|1|salt|hmac` names, `[host]:port` for ports other than 22.
// @cert-authority lines are skipped (certificates are not supported here). A key on a @revoked
// line for the host is 'revoked' and never accepted, whatever else the file says. Otherwise a
// key is 'known' when some line for the host holds exactly it, 'changed' when a line for the
// host holds a different key of the same type (ssh's "REMOTE HOST IDENTIFICATION HAS CHANGED"),
// and 'unknown' otherwise. No vscode here.
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { appendFileSync, chmodSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { hostMatches } from './sshConfig';

export type HostKeyStatus = 'known' | 'unknown' | 'changed' | 'revoked';

export function defaultKnownHostsPath(): string {
  return join(homedir(), '.ssh', 'known_hosts');
}

/** `SHA256:` + unpadded base64 of the key blob's sha256: what `ssh-keygen -lf` prints. */
export function fingerprint(keyBlob: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '');
}

/** The key type named at the start of an SSH public key blob (`ssh-ed25519`, …). */
export function keyType(keyBlob: Buffer): string {
  if (keyBlob.length < 4) return '';
  const length = keyBlob.readUInt32BE(0);
  return keyBlob.subarray(4, 4 + length).toString('latin1');
}

/** How known_hosts names a host: `host` on port 22, `[host]:port` otherwise. */
export function hostEntryName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

function hashedNameMatches(field: string, name: string): boolean {
  const parts = field.split('|'); // ['', '1', salt, hash]
  if (parts.length !== 4 || parts[1] !== '1') return false;
  const salt = Buffer.from(parts[2], 'base64');
  const expected = createHmac('sha1', salt).update(name).digest('base64');
  return expected === parts[3];
}

function namesMatch(field: string, name: string): boolean {
  if (field.startsWith('|')) return hashedNameMatches(field, name);
  return hostMatches(field.split(','), name);
}

interface KnownKey {
  type: string;
  blob: Buffer;
  /** From a `@revoked` line: this key must never be accepted. */
  revoked: boolean;
}

/** The keys known_hosts text holds for `host`:`port` (plain and @revoked lines). */
export function keysFor(text: string, host: string, port: number): KnownKey[] {
  const name = hostEntryName(host, port);
  const keys: KnownKey[] = [];
  for (const raw of text.split(/\r?\n/)) {
    let line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const revoked = /^@revoked\s/.test(line);
    if (revoked) line = line.slice('@revoked'.length).trim();
    else if (line.startsWith('@')) continue; // @cert-authority
    const [names, type, base64] = line.split(/\s+/);
    if (!names || !type || !base64 || !namesMatch(names, name)) continue;
    keys.push({ type, blob: Buffer.from(base64, 'base64'), revoked });
  }
  return keys;
}

export function checkHostKeyIn(text: string, host: string, port: number, keyBlob: Buffer): HostKeyStatus {
  const all = keysFor(text, host, port);
  if (all.some((k) => k.revoked && k.blob.equals(keyBlob))) return 'revoked';
  const keys = all.filter((k) => !k.revoked);
  if (keys.some((k) => k.blob.equals(keyBlob))) return 'known';
  const type = keyType(keyBlob);
  return keys.some((k) => k.type === type) ? 'changed' : 'unknown';
}

export function checkHostKey(
  host: string,
  port: number,
  keyBlob: Buffer,
  file = defaultKnownHostsPath(),
): HostKeyStatus {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    // no known_hosts yet: every host is unknown
  }
  return checkHostKeyIn(text, host, port, keyBlob);
}

/** The line addHostKey appends: `name type base64`, the name hashed (`|1|salt|hmac`) if asked. */
export function knownHostsLine(host: string, port: number, keyBlob: Buffer, hashed = false): string {
  let name = hostEntryName(host, port);
  if (hashed) {
    const salt = randomBytes(20);
    name = `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(name).digest('base64')}`;
  }
  return `${name} ${keyType(keyBlob)} ${keyBlob.toString('base64')}`;
}

/** Appends the key; creates ~/.ssh (0700) and the file (0600) as ssh would. */
export function addHostKey(
  host: string,
  port: number,
  keyBlob: Buffer,
  opts: { hashed?: boolean; file?: string } = {},
): void {
  const file = opts.file ?? defaultKnownHostsPath();
  const created = !existsSync(file);
  if (created) mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  let prefix = '';
  if (!created) {
    const current = readFileSync(file);
    if (current.length > 0 && current[current.length - 1] !== 0x0a) prefix = '\n';
  }
  appendFileSync(file, `${prefix}${knownHostsLine(host, port, keyBlob, opts.hashed)}\n`, { mode: 0o600 });
  if (created) chmodSync(file, 0o600);
}
