// Promise forms of the few SFTP calls the remote target needs. Paths are the host's (POSIX).
import type { SFTPWrapper, Stats } from 'ssh2';

function call<T>(fn: (cb: (err: Error | null | undefined, value: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value))));
}

/** SFTP's "no such file" (status 2). */
export function isNoSuchFile(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === 2;
}

export async function statOrUndefined(sftp: SFTPWrapper, path: string): Promise<Stats | undefined> {
  try {
    return await call<Stats>((cb) => sftp.stat(path, cb));
  } catch (err) {
    if (isNoSuchFile(err)) return undefined;
    throw err;
  }
}

/**
 * A remote file that must be a regular file (lstat: not a link, device or FIFO) of at most
 * maxBytes, read whole; throws naming what is wrong, before reading anything otherwise.
 */
export async function readRemoteRegularFile(sftp: SFTPWrapper, path: string, maxBytes: number): Promise<Buffer> {
  const st = await remoteRegularFileSize(sftp, path);
  if (st > maxBytes) throw new Error(`${path} has ${st} bytes, more than the ${maxBytes} allowed.`);
  return readRemoteFile(sftp, path);
}

/** The size of a remote regular file (lstat); throws when it is anything else. */
export async function remoteRegularFileSize(sftp: SFTPWrapper, path: string): Promise<number> {
  const st = await call<Stats>((cb) => sftp.lstat(path, cb));
  if (!st.isFile()) throw new Error(`${path} is not a regular file${st.isSymbolicLink() ? ' (a symbolic link)' : ''}.`);
  return st.size;
}

export function readRemoteFile(sftp: SFTPWrapper, path: string): Promise<Buffer> {
  return call<Buffer>((cb) => sftp.readFile(path, cb));
}

export function writeRemoteFile(sftp: SFTPWrapper, path: string, data: string | Buffer): Promise<void> {
  return call<void>((cb) => sftp.writeFile(path, data, (err) => cb(err, undefined)));
}

export function realpath(sftp: SFTPWrapper, path: string): Promise<string> {
  return call<string>((cb) => sftp.realpath(path, cb));
}

export function readdirNames(sftp: SFTPWrapper, path: string): Promise<{ name: string; isDirectory: boolean }[]> {
  return call<{ filename: string; attrs: Stats }[]>((cb) => sftp.readdir(path, cb)).then((list) =>
    list.map((e) => ({ name: e.filename, isDirectory: e.attrs.isDirectory() })),
  );
}

export function unlink(sftp: SFTPWrapper, path: string): Promise<void> {
  return call<void>((cb) => sftp.unlink(path, (err) => cb(err, undefined)));
}

/** Creates `path` only if it does not exist (O_EXCL): reserves a name against a concurrent start. */
export async function createExclusive(sftp: SFTPWrapper, path: string): Promise<boolean> {
  try {
    const handle = await call<Buffer>((cb) => sftp.open(path, 'wx', cb));
    await call<void>((cb) => sftp.close(handle, (err) => cb(err, undefined)));
    return true;
  } catch (err) {
    if ((await statOrUndefined(sftp, path)) !== undefined) return false;
    throw err;
  }
}

/** Renames over an existing target (OpenSSH's posix-rename where offered; else unlink first). */
export async function renameOver(sftp: SFTPWrapper, from: string, to: string): Promise<void> {
  try {
    await call<void>((cb) => sftp.ext_openssh_rename(from, to, (err) => cb(err, undefined)));
    return;
  } catch {
    // not offered by this server
  }
  if (await statOrUndefined(sftp, to)) await unlink(sftp, to);
  await call<void>((cb) => sftp.rename(from, to, (err) => cb(err, undefined)));
}

export function fastPut(sftp: SFTPWrapper, local: string, remote: string): Promise<void> {
  return call<void>((cb) => sftp.fastPut(local, remote, (err) => cb(err, undefined)));
}
