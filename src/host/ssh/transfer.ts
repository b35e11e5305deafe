// Files brought down from an SSH host: a checkpoint, every file checked against its manifest.
import { createHash } from 'node:crypto';
import { createWriteStream, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { checkpointDirName } from '../../shared/run';
import type { RemoteHost, SftpSession } from './remoteHost';
import { readRemoteFile, statOrUndefined } from './sftp';

export interface FetchProgress {
  file: string;
  bytes: number;
  totalBytes: number;
}

interface ManifestFile {
  name: string;
  sha256: string;
  bytes: number;
}

/**
 * Downloads checkpoint `step` of `runDir` into `localDir` (created): every file of its manifest,
 * each checked against its sha256, then manifest.json, then DONE last, so an interrupted copy is
 * never taken for a checkpoint. Resolves with localDir.
 */
export async function fetchCheckpoint(
  host: RemoteHost,
  runDir: string,
  step: number,
  localDir: string,
  onProgress?: (p: FetchProgress) => void,
): Promise<string> {
  const sftp = await host.sftp();
  const remoteDir = posix.join(runDir, 'checkpoints', checkpointDirName(step));
  if (!(await statOrUndefined(sftp, posix.join(remoteDir, 'DONE')))) throw new Error(`Checkpoint ${step} of ${runDir} on ${host.label} is not complete (no DONE).`);
  const manifestText = await readRemoteFile(sftp, posix.join(remoteDir, 'manifest.json'));
  const files = (JSON.parse(manifestText.toString('utf8')) as { files?: ManifestFile[] }).files;
  if (!Array.isArray(files)) throw new Error(`The manifest of checkpoint ${step} on ${host.label} lists no files.`);
  mkdirSync(localDir, { recursive: true });
  rmSync(join(localDir, 'DONE'), { force: true });
  const totalBytes = files.reduce((sum, f) => sum + f.bytes, 0);
  let done = 0;
  for (const f of files) {
    if (posix.basename(f.name) !== f.name || f.name.startsWith('.')) throw new Error(`The manifest names an unexpected file "${f.name}"; not fetching it.`);
    const sha = await download(sftp, posix.join(remoteDir, f.name), join(localDir, f.name), (n) => onProgress?.({ file: f.name, bytes: done + n, totalBytes }));
    if (sha !== f.sha256) {
      rmSync(join(localDir, f.name), { force: true });
      throw new Error(`${f.name} of checkpoint ${step} does not match its sha256 after the download (expected ${f.sha256.slice(0, 12)}…, got ${sha.slice(0, 12)}…).`);
    }
    done += f.bytes;
  }
  writeFileSync(join(localDir, 'manifest.json'), manifestText);
  writeFileSync(join(localDir, 'DONE'), '');
  return localDir;
}

/** Streams one file down, hashing as it goes; resolves with its sha256. */
async function download(sftp: SftpSession, remote: string, local: string, onBytes: (n: number) => void): Promise<string> {
  const hash = createHash('sha256');
  let bytes = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      bytes += chunk.length;
      onBytes(bytes);
      cb(null, chunk);
    },
  });
  await pipeline(sftp.createReadStream(remote), tap, createWriteStream(local));
  return hash.digest('hex');
}
