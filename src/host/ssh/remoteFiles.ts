// RunFiles on an SSH host: SFTP for reads, stats and renames, one quoted shell command for what
// SFTP does only file by file (mkdir -p, rm -rf).
import { posix } from 'node:path';
import type { RunFiles } from '../runs/runControl';
import { shQuote } from './quote';
import type { RemoteHost } from './remoteHost';
import { createExclusive, readdirNames, readRemoteFile, realpath, renameOver, statOrUndefined, unlink } from './sftp';

export function remoteRunFiles(host: RemoteHost): RunFiles {
  return {
    paths: posix,
    exists: async (path) => (await statOrUndefined(await host.sftp(), path)) !== undefined,
    size: async (path) => (await statOrUndefined(await host.sftp(), path))?.size ?? 0,
    read: async (path) => readRemoteFile(await host.sftp(), path),
    subfolders: async (dir) => {
      const sftp = await host.sftp();
      const entries = await readdirNames(sftp, dir).catch(() => []);
      return entries.filter((e) => e.isDirectory).map((e) => e.name);
    },
    mkdirs: async (dir) => void (await host.sh(`mkdir -p -- ${shQuote(dir)}`, 'Creating the runs folder')),
    createExclusive: async (path) => createExclusive(await host.sftp(), path),
    rename: async (from, to) => renameOver(await host.sftp(), from, to),
    removeFile: async (path) => unlink(await host.sftp(), path),
    removeFolder: async (dir) => void (await host.sh(`rm -rf -- ${shQuote(dir)}`, `Deleting ${dir}`)),
    realpath: async (path) => realpath(await host.sftp(), path).catch(() => posix.resolve(path)),
  };
}
