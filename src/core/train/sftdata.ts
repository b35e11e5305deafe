// The data of a fine-tuning run, for starting it and for resuming it on either engine: a chat JSONL
// file read and checked, its conversations rendered in ChatML into rows with their loss mask (the
// assistant's tokens), the loader over those rows, and the rows as token shards for the PyTorch engine.
//
// Packing: one conversation per row of seq_len + 1 tokens, padded (padding weighs 0), instead of
// several conversations per row. The fused wasm attention kernel is causal-only, so packing
// several into a row would let a conversation attend to the one before it; a row of its own
// keeps each conversation's attention to itself with no new kernel, at the cost of the padding.
// A conversation longer than a row is cut (and counted in the log).
import { mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as v from 'valibot';
import type { TrainConfig } from '../../shared/config';
import { SHIPPED_SFT_SET, type DataFileRecord, type RunInfo } from '../../shared/run';
import { describeIssue, parseJson } from '../../shared/schema';
import { ChatMessageSchema, type ChatMessage } from '../../shared/serve-protocol';
import { BlockLoader, BUNDLED_DATA, builtAsset, DataError, tokenArrayFor, writeShard, type DataCursor } from '../data';
import { renderChatTurns } from '../serve/chat';
import type { BpeTokenizer } from '../tokenizer';
import { sha256 } from './checkpoint';
import { filesIntact } from './prepare';

const ConversationSchema = v.strictObject(
  { messages: v.pipe(v.array(ChatMessageSchema, 'expected an array'), v.nonEmpty('expected a non-empty array')) },
  'expected {"messages":[{"role","content"},…]}',
);

/** The conversations of a chat JSONL file (blank lines skipped); a bad line is a DataError naming it. */
export function parseConversations(text: string, label: string): ChatMessage[][] {
  const conversations: ChatMessage[][] = [];
  for (const [i, line] of text.split('\n').entries()) {
    if (line.trim() === '') continue;
    const where = `${label} line ${i + 1}`;
    const value = parseJson(line);
    if (value === undefined)
      throw new DataError(`${where} is not JSON. Each line must be {"messages":[{"role":…,"content":…},…]}.`);
    const result = v.safeParse(ConversationSchema, value, { abortEarly: true });
    if (!result.success)
      throw new DataError(`${where}: ${describeIssue(result.issues[0], 'line')}. Fix or remove the line.`);
    if (!result.output.messages.some((m) => m.role === 'assistant')) {
      throw new DataError(`${where} has no assistant message, so nothing to learn. Add one or remove the line.`);
    }
    conversations.push(result.output.messages);
  }
  if (conversations.length === 0)
    throw new DataError(`${label} holds no conversation. Give a JSONL file with one {"messages":[…]} per line.`);
  return conversations;
}

export type SftRows = ReturnType<typeof conversationRows>;

/** Rows of seq_len + 1 ids, one conversation each, padded with `padId`; weights: 1 on assistant tokens. */
export function conversationRows(
  tokenizer: BpeTokenizer,
  conversations: readonly ChatMessage[][],
  seqLen: number,
  padId: number,
) {
  const blockLen = seqLen + 1;
  const tokens = new Uint32Array(conversations.length * blockLen).fill(padId);
  const weights = new Float32Array(conversations.length * blockLen);
  let cut = 0;
  for (const [row, messages] of conversations.entries()) {
    const { ids, assistant } = renderChatTurns(tokenizer, messages);
    if (ids.length > blockLen) cut++;
    const n = Math.min(ids.length, blockLen);
    tokens.set(ids.slice(0, n), row * blockLen);
    weights.set(assistant.slice(0, n), row * blockLen);
  }
  return { tokens, weights, cut };
}

/** The chat JSONL file that `--data` names: the shipped set, or a path. */
export function resolveSftData(data: string): string {
  if (data !== SHIPPED_SFT_SET) return resolve(data);
  const found = builtAsset(BUNDLED_DATA[SHIPPED_SFT_SET]);
  if (found === undefined)
    throw new DataError('The poetry-sft set (dist/sft/poetry-sft.jsonl) is missing. Run `npm run build` to derive it.');
  return found;
}

/** A chat file's conversations rendered into rows under `tokenizer`, and the file's record (path, sha256, bytes). */
export function readSftRows(path: string, label: string, tokenizer: BpeTokenizer, seqLen: number) {
  const bytes = readDataFile(path);
  const conversations = parseConversations(bytes.toString('utf8'), label);
  const dataFile: DataFileRecord = { path, sha256: sha256(bytes), bytes: bytes.length };
  return { conversations, dataFile, rows: conversationRows(tokenizer, conversations, seqLen, tokenizer.eotId) };
}

/** The one chat file a fine-tuning run records (run.json data.files), as a resume reads it. */
export function sftDataFile(info: RunInfo): DataFileRecord {
  const [file, ...more] = info.data.files;
  if (!file || more.length)
    throw new DataError(
      `The fine-tuning run records ${info.data.files.length} data files, not its one chat file; it cannot be resumed.`,
    );
  return file;
}

/** The rows in their seeded order, from the start or from a checkpoint's cursor; batches carry the loss mask. */
export function sftLoader(rows: SftRows, config: TrainConfig, label: string, cursor?: DataCursor): BlockLoader {
  return new BlockLoader(rows.tokens, config.seq_len + 1, config.seed, cursor, label, rows.weights);
}

/**
 * The rows as the PyTorch engine reads them: data/sft.bin (the ids, a token shard) and
 * data/sft-mask.bin (each id's weight as a target, 0 or 1, in the same shard format); their records.
 */
export function writeSftShards(runDir: string, rows: SftRows, vocabSize: number): DataFileRecord[] {
  const dataDir = join(runDir, 'data');
  mkdirSync(dataDir, { recursive: true });
  const tokens = tokenArrayFor(vocabSize, rows.tokens.length);
  tokens.set(rows.tokens);
  return [
    { path: join(dataDir, 'sft.bin'), ids: tokens },
    { path: join(dataDir, 'sft-mask.bin'), ids: Uint16Array.from(rows.weights) },
  ].map(({ path, ids }) => {
    writeShard(path, ids);
    const bytes = readFileSync(path);
    return { path, sha256: sha256(bytes), bytes: bytes.length };
  });
}

/**
 * The shards a fine-tuning run resumes from on the PyTorch engine (run.json data.shards): the
 * recorded ones while intact, else rendered again from the run's (verified) chat file and
 * tokenizer, which gives the same ids. A run the TF.js engine started records none until then.
 */
export function restoreSftShards(
  runDir: string,
  info: RunInfo,
  tokenizer: BpeTokenizer,
  config: TrainConfig,
): DataFileRecord[] {
  const recorded = info.data.shards ?? [];
  if (recorded.length === 2 && filesIntact(recorded)) return recorded;
  const { rows } = readSftRows(sftDataFile(info).path, info.data.input, tokenizer, config.seq_len);
  return writeSftShards(runDir, rows, config.vocab_size);
}

function readDataFile(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new DataError(`--data ${path} cannot be read (${code}). Give a chat JSONL file.`);
  }
}
