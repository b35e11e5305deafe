// Files brought down from an SSH host: a checkpoint, checked as every reader checks one.
import { createWriteStream, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DONE_FILE, MANIFEST_FILE, MANIFEST_MAX_BYTES, parseManifest } from '../../shared/checkpoint';
import { checkCheckpoint } from '../../shared/node/checkpoints';
import { checkpointDirName } from '../../shared/run';
import type { RemoteHost, SftpSession } from './remoteHost';
import { readRemoteRegularFile, remoteRegularFileSize, statOrUndefined } from './sftp';

export interface FetchProgress {
  file: string;
  bytes: number;
  totalBytes: number;
}

/**
 * Downloads checkpoint `step` of `runDir` into `localDir` (created): the format's fixed files,
 * each a regular file of its manifest's size on the host and no larger when it arrives, then
 * manifest.json and DONE; the copy is then checked as every reader checks a checkpoint
 * (checkCheckpoint, hashes included), and loses its DONE when it fails. Resolves with localDir.
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
  if (!(await statOrUndefined(sftp, posix.join(remoteDir, DONE_FILE))))
    throw new Error(`Checkpoint ${step} of ${runDir} on ${host.label} is not complete (no DONE).`);
  const manifestText = await readRemoteRegularFile(sftp, posix.join(remoteDir, MANIFEST_FILE), MANIFEST_MAX_BYTES);
  const parsed = parseManifest(manifestText);
  if (!parsed.ok)
    throw new Error(`Checkpoint ${step} on ${host.label} is not valid (${parsed.reason}); not fetching it.`);
  const files = parsed.manifest.files; // exactly the format's file names
  mkdirSync(localDir, { recursive: true });
  rmSync(join(localDir, DONE_FILE), { force: true });
  const totalBytes = files.reduce((sum, f) => sum + f.bytes, 0);
  let done = 0;
  for (const f of files) {
    const remote = posix.join(remoteDir, f.name);
    const size = await remoteRegularFileSize(sftp, remote);
    if (size !== f.bytes)
      throw new Error(
        `${f.name} of checkpoint ${step} has ${size} bytes on ${host.label}, the manifest says ${f.bytes}; not fetching it.`,
      );
    await download(sftp, remote, join(localDir, f.name), f.bytes, (n) =>
      onProgress?.({ file: f.name, bytes: done + n, totalBytes }),
    );
    done += f.bytes;
  }
  writeFileSync(join(localDir, MANIFEST_FILE), manifestText);
  writeFileSync(join(localDir, DONE_FILE), '');
  const check = checkCheckpoint(localDir, { hashes: true });
  if (!check.ok) {
    rmSync(join(localDir, DONE_FILE), { force: true });
    throw new Error(`The download of checkpoint ${step} is not a valid checkpoint: ${check.reason}.`);
  }
  return localDir;
}

/** Streams one file down, at most maxBytes of it. */
async function download(
  sftp: SftpSession,
  remote: string,
  local: string,
  maxBytes: number,
  onBytes: (n: number) => void,
): Promise<void> {
  let bytes = 0;
  const cap = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      bytes += chunk.length;
      if (bytes > maxBytes)
        return cb(new Error(`${remote} grew past the ${maxBytes} bytes of its manifest while downloading.`));
      onBytes(bytes);
      cb(null, chunk);
    },
  });
  await pipeline(sftp.createReadStream(remote), cap, createWriteStream(local));
}
