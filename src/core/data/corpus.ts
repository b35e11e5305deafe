// Turns the user's `--data <path|default>` into a hashed list of files, and reads documents
// from them. The hashes go into every checkpoint, so a resume can refuse data that changed.
// Everything here is synchronous: the trainer reads the corpus once, before training starts.
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fstatSync, openSync, readSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';

/** A problem with the user's data. The message always names the path and says what to do. */
export class DataError extends Error {
  override name = 'DataError';
}

export interface CorpusFile {
  /** Absolute path. */
  path: string;
  /** sha256 of the file's bytes, lowercase hex. */
  sha256: string;
  bytes: number;
}

/** Counters filled in while documents are read. */
export interface ReadStats {
  documents: number;
  /** JSONL lines that were not a JSON object with a string `text` field. */
  skippedLines: number;
}

const DEFAULT_CORPUS = join('corpus', 'poetry.jsonl.gz');
const SUPPORTED = 'a .txt, .jsonl, .txt.gz or .jsonl.gz file';
const CHUNK_BYTES = 4 * 1024 * 1024;

type Format = { kind: 'txt' | 'jsonl'; gz: boolean };

function formatOf(path: string): Format | null {
  const name = path.toLowerCase();
  if (name.endsWith('.jsonl.gz')) return { kind: 'jsonl', gz: true };
  if (name.endsWith('.txt.gz')) return { kind: 'txt', gz: true };
  if (name.endsWith('.jsonl')) return { kind: 'jsonl', gz: false };
  if (name.endsWith('.txt')) return { kind: 'txt', gz: false };
  return null;
}

function errCode(err: unknown): string {
  return err instanceof Error && 'code' in err ? String(err.code) : String(err);
}

/**
 * The built corpus. The CLI bundle is dist/cli.js with dist/corpus/ beside it; from source
 * (tests under tsx) we walk up until a `dist/corpus/` turns up.
 */
export function defaultCorpusPath(): string {
  // In an ES module there is no __dirname; `typeof` keeps that from throwing.
  const here = typeof __dirname === 'string' ? __dirname : dirname(resolve(process.argv[1] ?? '.'));
  const beside = join(here, DEFAULT_CORPUS);
  if (existsSync(beside)) return beside;
  for (let dir = here; ; dir = dirname(dir)) {
    const candidate = join(dir, 'dist', DEFAULT_CORPUS);
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) break;
  }
  throw new DataError(
    `The default corpus ${beside} is missing. Run \`npm run build\` to derive it, or pass --data <file or folder>.`,
  );
}

/** sha256 and size, read in chunks so a large file never sits in memory whole. */
function hashFile(path: string): { sha256: string; bytes: number } {
  const fd = openSync(path, 'r');
  try {
    const hash = createHash('sha256');
    const buf = Buffer.allocUnsafe(CHUNK_BYTES);
    let bytes = 0;
    for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0; ) {
      hash.update(buf.subarray(0, n));
      bytes += n;
    }
    return { sha256: hash.digest('hex'), bytes };
  } finally {
    closeSync(fd);
  }
}

function describeFile(path: string): CorpusFile {
  try {
    return { path, ...hashFile(path) };
  } catch (err) {
    throw new DataError(`Data file ${path} cannot be read (${errCode(err)}). Check that it exists and its permissions.`);
  }
}

/** Supported non-empty files under `dir`, depth first, sorted by name; hidden entries skipped. */
function listFolder(dir: string, seen: Set<string>, out: string[]): void {
  const real = realpathSync(dir);
  if (seen.has(real)) return; // a symlink cycle
  seen.add(real);
  // Plain code-unit order, so the file order (and so the data) is the same under every locale.
  const names = readdirSync(dir).filter((n) => !n.startsWith('.')).sort();
  for (const name of names) {
    const path = join(dir, name);
    let st;
    try {
      st = statSync(path);
    } catch {
      continue; // a dangling symlink
    }
    if (st.isDirectory()) listFolder(path, seen, out);
    else if (st.isFile() && st.size > 0 && formatOf(name)) out.push(path);
  }
}

/**
 * `default`, one supported file, or a folder searched recursively. Each file is hashed.
 * Empty files inside a folder are left out; a lone empty file is an error.
 */
export function resolveCorpus(input: string): CorpusFile[] {
  const path = input === 'default' ? defaultCorpusPath() : resolve(input);
  let st;
  try {
    st = statSync(path);
  } catch (err) {
    if (errCode(err) === 'ENOENT') {
      throw new DataError(`Data path ${path} does not exist. Pass ${SUPPORTED}, a folder of them, or "default".`);
    }
    throw new DataError(`Data path ${path} cannot be read (${errCode(err)}). Check its permissions.`);
  }
  if (st.isDirectory()) return resolveFolder(path);
  if (!formatOf(path)) throw new DataError(`Data file ${path} is not ${SUPPORTED}. Rename it or convert it.`);
  if (st.size === 0) throw new DataError(`Data file ${path} is empty. Pass a file with some text in it.`);
  return [describeFile(path)];
}

function resolveFolder(dir: string): CorpusFile[] {
  const paths: string[] = [];
  try {
    listFolder(dir, new Set(), paths);
  } catch (err) {
    throw new DataError(`Data folder ${dir} cannot be listed (${errCode(err)}). Check its permissions.`);
  }
  if (paths.length === 0) {
    throw new DataError(
      `Data folder ${dir} holds no usable files: it needs at least one non-empty .txt, .jsonl, .txt.gz or .jsonl.gz file (hidden files are skipped).`,
    );
  }
  return paths.map(describeFile);
}

/** Re-hashes the files a run started with; throws naming the first one that changed or went missing. */
export function verifyCorpus(recorded: readonly CorpusFile[]): void {
  for (const file of recorded) {
    let now;
    try {
      now = hashFile(file.path);
    } catch (err) {
      const why = errCode(err) === 'ENOENT' ? 'is missing' : `cannot be read (${errCode(err)})`;
      throw new DataError(
        `Data file ${file.path} ${why}; the run started with it (sha256 ${file.sha256}). Restore it, or start a new run.`,
      );
    }
    if (now.sha256 !== file.sha256) {
      throw new DataError(
        `Data file ${file.path} changed since the run started (sha256 was ${file.sha256}, now ${now.sha256}). Restore it, or start a new run.`,
      );
    }
  }
}

/** The file's (gunzipped) bytes in chunks. */
function* byteChunks(path: string, gz: boolean): Generator<Uint8Array> {
  if (gz) {
    let data: Buffer;
    try {
      // zlib has no synchronous streaming API; a whole decompressed buffer is still far below the
      // string limit, and it is decoded below in chunks, never into one string.
      data = gunzipSync(readWhole(path));
    } catch (err) {
      if (err instanceof DataError) throw err;
      throw new DataError(`Data file ${path} is not a valid gzip file (${errCode(err)}). Recompress it, or drop the .gz suffix.`);
    }
    for (let at = 0; at < data.length; at += CHUNK_BYTES) yield data.subarray(at, at + CHUNK_BYTES);
    return;
  }
  const fd = openOrThrow(path);
  try {
    const buf = Buffer.allocUnsafe(CHUNK_BYTES);
    for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0; ) yield buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

function openOrThrow(path: string): number {
  try {
    return openSync(path, 'r');
  } catch (err) {
    throw new DataError(`Data file ${path} cannot be read (${errCode(err)}). Check that it exists and its permissions.`);
  }
}

function readWhole(path: string): Buffer {
  const fd = openOrThrow(path);
  try {
    const out = Buffer.allocUnsafe(fstatSync(fd).size);
    let filled = 0;
    for (let n; filled < out.length && (n = readSync(fd, out, filled, out.length - filled, null)) > 0; ) filled += n;
    return out.subarray(0, filled);
  } finally {
    closeSync(fd);
  }
}

/** Lines without their terminator; CRLF becomes LF and a leading UTF-8 BOM is dropped. */
function* textLines(chunks: Iterable<Uint8Array>): Generator<string> {
  const decoder = new TextDecoder('utf-8'); // strips a leading BOM (ignoreBOM defaults to false)
  let carry = '';
  const split = function* (text: string): Generator<string> {
    let start = 0;
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', start)) {
      yield dropCR(text.slice(start, nl));
      start = nl + 1;
    }
    carry = text.slice(start);
  };
  for (const chunk of chunks) yield* split(carry + decoder.decode(chunk, { stream: true }));
  yield* split(carry + decoder.decode());
  if (carry) yield dropCR(carry);
}

function dropCR(line: string): string {
  return line.endsWith('\r') ? line.slice(0, -1) : line;
}

/** Plain text: documents are separated by one or more blank (or whitespace-only) lines. */
function* txtDocuments(path: string, gz: boolean): Generator<string> {
  let lines: string[] = [];
  for (const line of textLines(byteChunks(path, gz))) {
    if (line.trim() === '') {
      if (lines.length) yield lines.join('\n');
      lines = [];
    } else lines.push(line);
  }
  if (lines.length) yield lines.join('\n');
}

function textField(line: string): string | null {
  try {
    const value: unknown = JSON.parse(line);
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
    const text: unknown = (value as Record<string, unknown>).text;
    return typeof text === 'string' ? text : null;
  } catch {
    return null;
  }
}

/** JSONL: one object per line with a string `text`; bad lines are skipped and counted. */
function* jsonlDocuments(path: string, gz: boolean, stats: ReadStats): Generator<string> {
  let valid = 0;
  let lineNo = 0;
  let firstBad = 0;
  for (const line of textLines(byteChunks(path, gz))) {
    lineNo++;
    if (line.trim() === '') continue;
    const text = textField(line);
    if (text === null) {
      stats.skippedLines++;
      firstBad ||= lineNo;
      continue;
    }
    valid++;
    const doc = text.includes('\r\n') ? text.replace(/\r\n/g, '\n') : text;
    if (doc.trim() !== '') yield doc;
  }
  if (valid === 0) {
    const where = firstBad ? ` (the first bad line is line ${firstBad})` : '';
    throw new DataError(
      `Data file ${path} has no valid line${where}: each line must be a JSON object like {"text": "..."}. Fix the file, or rename it to .txt if it is plain text.`,
    );
  }
}

/**
 * Every document of every file, in order. `stats` (optional) is updated as reading goes, so a
 * caller can read skippedLines at the end. A file that yields no document at all is an error.
 */
export function* readDocuments(files: readonly CorpusFile[], stats?: ReadStats): Generator<string> {
  const counts = stats ?? { documents: 0, skippedLines: 0 };
  for (const file of files) {
    const format = formatOf(file.path);
    if (!format) throw new DataError(`Data file ${file.path} is not ${SUPPORTED}. Rename it or convert it.`);
    const docs = format.kind === 'txt' ? txtDocuments(file.path, format.gz) : jsonlDocuments(file.path, format.gz, counts);
    let inFile = 0;
    for (const doc of docs) {
      inFile++;
      counts.documents++;
      yield doc;
    }
    if (inFile === 0) throw new DataError(`Data file ${file.path} contains no text. Remove it, or put some text in it.`);
  }
}
