// Turns the user's `--data <path|default>` into a hashed list of files, and reads documents
// from them. The hashes go into every checkpoint, so a resume can refuse data that changed.
// Everything here is synchronous: the trainer reads the corpus once, before training starts.
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fstatSync, openSync, readSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { SHIPPED_SFT_SET } from '../../shared/run';

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
  /** The shipped dataset's name when `--data` named one (BUNDLED_DATA): a resume looks for it in the install at hand. */
  bundled?: string;
}

/** Counters filled in while documents are read. */
export interface ReadStats {
  documents: number;
  /** JSONL lines that were not a JSON object with a string `text` field. */
  skippedLines: number;
}

const DEFAULT_CORPUS = join('corpus', 'poetry.jsonl.gz');

/** The datasets the build ships in dist/, by the name `--data` gives them, and their place under dist/. */
export const BUNDLED_DATA: Readonly<Record<string, string>> = {
  default: DEFAULT_CORPUS,
  [SHIPPED_SFT_SET]: join('sft', 'poetry-sft.jsonl'),
};
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
 * A file or folder the build writes into dist/ (the corpus, the shipped eval tasks). The CLI bundle
 * is dist/cli.js with it beside; from source (tests under tsx) we walk up until `dist/<rel>` turns up.
 */
export function builtAsset(rel: string): string | undefined {
  // In an ES module there is no __dirname; `typeof` keeps that from throwing.
  const here = typeof __dirname === 'string' ? __dirname : dirname(resolve(process.argv[1] ?? '.'));
  if (existsSync(join(here, rel))) return join(here, rel);
  for (let dir = here; ; dir = dirname(dir)) {
    const candidate = join(dir, 'dist', rel);
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) return undefined;
  }
}

/**
 * The built corpus. The CLI bundle is dist/cli.js with dist/corpus/ beside it; from source
 * (tests under tsx) we walk up until a `dist/corpus/` turns up.
 */
export function defaultCorpusPath(): string {
  const found = builtAsset(DEFAULT_CORPUS);
  if (found !== undefined) return found;
  throw new DataError(
    `The default corpus (dist/${DEFAULT_CORPUS}) is missing. Run \`npm run build\` to derive it, or pass --data <file or folder>.`,
  );
}

/** sha256 and size, read in chunks so a large file never sits in memory whole. */
export function hashFile(path: string): { sha256: string; bytes: number } {
  const fd = openSync(path, 'r');
  try {
    const hash = createHash('sha256');
    const buf = Buffer.allocUnsafe(CHUNK_BYTES);
    let bytes = 0;
    for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0;) {
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
    throw new DataError(
      `Data file ${path} cannot be read (${errCode(err)}). Check that it exists and its permissions.`,
    );
  }
}

/** Supported non-empty files under `dir`, depth first, sorted by name; hidden entries skipped. */
function listFolder(dir: string, seen: Set<string>, out: string[]): void {
  const real = realpathSync(dir);
  if (seen.has(real)) return; // a symlink cycle
  seen.add(real);
  // Plain code-unit order, so the file order (and so the data) is the same under every locale.
  const names = readdirSync(dir)
    .filter((n) => !n.startsWith('.'))
    .sort();
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
  if (input === 'default') return [{ ...describeFile(defaultCorpusPath()), bundled: 'default' }];
  const path = resolve(input);
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

/** Re-hashes a file a run started with at its recorded path; throws when it changed or went missing. */
export function verifyDataFile(file: CorpusFile): void {
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
      throw new DataError(
        `Data file ${path} is not a valid gzip file (${errCode(err)}). Recompress it, or drop the .gz suffix.`,
      );
    }
    for (let at = 0; at < data.length; at += CHUNK_BYTES) yield data.subarray(at, at + CHUNK_BYTES);
    return;
  }
  const fd = openOrThrow(path);
  try {
    const buf = Buffer.allocUnsafe(CHUNK_BYTES);
    for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0;) yield buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

function openOrThrow(path: string): number {
  try {
    return openSync(path, 'r');
  } catch (err) {
    throw new DataError(
      `Data file ${path} cannot be read (${errCode(err)}). Check that it exists and its permissions.`,
    );
  }
}

function readWhole(path: string): Buffer {
  const fd = openOrThrow(path);
  try {
    const out = Buffer.allocUnsafe(fstatSync(fd).size);
    let filled = 0;
    for (let n; filled < out.length && (n = readSync(fd, out, filled, out.length - filled, null)) > 0;) filled += n;
    return out.subarray(0, filled);
  } finally {
    closeSync(fd);
  }
}

/** How many bytes at the end of `chunk` begin a UTF-8 sequence that the next chunk completes (0-3). */
function incompleteTail(chunk: Uint8Array): number {
  for (let back = 1; back <= Math.min(3, chunk.length); back++) {
    const b = chunk[chunk.length - back];
    if ((b & 0xc0) === 0x80) continue; // a continuation byte: look further back for its lead
    const length = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    return length > back ? back : 0;
  }
  return 0;
}

/**
 * The offset in `bytes` (which start at a character boundary) of the first sequence that is not
 * UTF-8. Node's decoders only say *that* bytes are invalid; this finds where: decoded leniently,
 * the text before the first bad sequence re-encodes to exactly the bytes it came from, so the
 * first U+FFFD that the source did not spell as EF BF BD is the place.
 */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  const text = new TextDecoder('utf-8', { ignoreBOM: true }).decode(bytes);
  for (let i = text.indexOf('\uFFFD'); i !== -1; i = text.indexOf('\uFFFD', i + 1)) {
    const at = Buffer.byteLength(text.slice(0, i));
    if (!(bytes[at] === 0xef && bytes[at + 1] === 0xbf && bytes[at + 2] === 0xbd)) return at;
  }
  return -1;
}

function notText(path: string, gz: boolean, offset: number, what: string): DataError {
  const where = gz ? ' of its decompressed data' : '';
  return new DataError(
    `Data file ${path} is not UTF-8 text: ${what} at byte offset ${offset}${where}. Pass a UTF-8 text file (convert it, e.g. with iconv -t UTF-8), not a binary one.`,
  );
}

/**
 * Lines without their terminator; CRLF becomes LF and a leading UTF-8 BOM is dropped. Bytes that
 * are not UTF-8, and NUL (binary data, or UTF-16 text), are refused with their offset: never
 * silently turned into U+FFFD and trained on.
 */
function* textLines(chunks: Iterable<Uint8Array>, path: string, gz: boolean): Generator<string> {
  const decoder = new TextDecoder('utf-8', { fatal: true }); // strips a leading BOM (ignoreBOM defaults to false)
  let carry = '';
  let start = 0; // offset of the first byte the next decode() turns into text
  let pending: Uint8Array = new Uint8Array(0); // the previous chunk's incomplete last character
  const split = function* (text: string): Generator<string> {
    let from = 0;
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', from)) {
      yield dropCR(text.slice(from, nl));
      from = nl + 1;
    }
    carry = text.slice(from);
  };
  const decode = (chunk: Uint8Array | undefined): string => {
    // NUL is never part of a longer sequence, so its byte position is exact; the earlier problem is reported.
    const nul = chunk ? chunk.indexOf(0) : -1;
    let text: string;
    try {
      text = chunk ? decoder.decode(chunk, { stream: true }) : decoder.decode();
    } catch {
      const bytes = Buffer.concat([pending, chunk ?? new Uint8Array(0)]);
      const bad = firstInvalidUtf8(bytes);
      if (nul !== -1 && (bad === -1 || pending.length + nul < bad))
        throw notText(path, gz, start + pending.length + nul, 'a NUL byte');
      throw notText(path, gz, start + (bad === -1 ? bytes.length - pending.length : bad), 'an invalid byte sequence');
    }
    if (nul !== -1) throw notText(path, gz, start + pending.length + nul, 'a NUL byte');
    if (chunk) {
      const tail = incompleteTail(chunk);
      start += pending.length + chunk.length - tail;
      pending = Uint8Array.from(chunk.subarray(chunk.length - tail)); // a copy: the chunk's buffer is reused
    }
    return text;
  };
  for (const chunk of chunks) yield* split(carry + decode(chunk));
  yield* split(carry + decode(undefined));
  if (carry) yield dropCR(carry);
}

function dropCR(line: string): string {
  return line.endsWith('\r') ? line.slice(0, -1) : line;
}

/** Plain text: documents are separated by one or more blank (or whitespace-only) lines. */
function* txtDocuments(path: string, gz: boolean): Generator<string> {
  let lines: string[] = [];
  for (const line of textLines(byteChunks(path, gz), path, gz)) {
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
    if (typeof value !== 'object' || value === null || !('text' in value)) return null;
    return typeof value.text === 'string' ? value.text : null;
  } catch {
    return null;
  }
}

/** JSONL: one object per line with a string `text`; bad lines are skipped and counted. */
function* jsonlDocuments(path: string, gz: boolean, stats: ReadStats): Generator<string> {
  let valid = 0;
  let lineNo = 0;
  let firstBad = 0;
  for (const line of textLines(byteChunks(path, gz), path, gz)) {
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
 * Reads every document once, so that input errors (no text, not UTF-8, no valid JSONL line)
 * surface before a run folder is created. Returns the counts.
 */
export function checkDocuments(files: readonly CorpusFile[]): ReadStats {
  const stats = { documents: 0, skippedLines: 0 };
  for (const _doc of readDocuments(files, stats));
  return stats;
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
    const docs =
      format.kind === 'txt' ? txtDocuments(file.path, format.gz) : jsonlDocuments(file.path, format.gz, counts);
    let inFile = 0;
    for (const doc of docs) {
      inFile++;
      counts.documents++;
      yield doc;
    }
    if (inFile === 0)
      throw new DataError(`Data file ${file.path} contains no text. Remove it, or put some text in it.`);
  }
}
