// Supervised fine-tuning (`steelscope sft`): a base checkpoint trained further on conversations
// rendered in ChatML, the loss counted on the assistant's tokens only.
//
// Packing: one conversation per row of seq_len + 1 tokens, padded (padding weighs 0), instead of
// several conversations per row. The fused wasm attention kernel is causal-only, so packing
// several into a row would let a conversation attend to the one before it; a row of its own
// keeps each conversation's attention to itself with no new kernel, at the cost of the padding.
// A conversation longer than a row is cut (and counted in the log).
import { mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as v from 'valibot';
import { applySettings, type TrainConfig } from '../../shared/config';
import { SHIPPED_SFT_SET, type DataFileRecord, type RunInfo, type RunStatus } from '../../shared/run';
import type { ChatTemplate } from '../../shared/serve-protocol';
import { describeIssue, parseJson } from '../../shared/schema';
import { ChatMessageSchema, type ChatMessage } from '../../shared/serve-protocol';
import type { BackendName } from '../backend';
import { BlockLoader, builtAsset, DataError, tokenArrayFor, writeShard } from '../data';
import { SteelLM } from '../model';
import { Rng } from '../rng';
import { renderChatTurns } from '../serve/chat';
import { BpeTokenizer } from '../tokenizer';
import { AdamW } from './adamw';
import { loadCheckpoint, sha256, type LoadedCheckpoint } from './checkpoint';
import { writePrompts } from './prepare';
import { readRunInfo, RunWriter, writeFileAtomic } from './rundir';
import { announceBackend, checkNewRunDir, newRunInfo, runGuarded, type RunControl } from './session';
import type { TrainSession } from './trainer';

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

export { SHIPPED_SFT_SET };

/** The chat JSONL file that `--data` names: the shipped set, or a path. */
export function resolveSftData(data: string): string {
  if (data !== SHIPPED_SFT_SET) return resolve(data);
  const found = builtAsset('sft/poetry-sft.jsonl');
  if (found === undefined)
    throw new DataError('The poetry-sft set (dist/sft/poetry-sft.jsonl) is missing. Run `npm run build` to derive it.');
  return found;
}

/** A fine-tuning run as `steelscope sft` asks for it, whichever engine trains it. */
export interface SftRequest {
  from: string;
  data: string;
  runDir: string;
  steps: number;
  sets: readonly string[];
  name?: string;
}

export interface SftOptions extends SftRequest {
  backend: BackendName | 'auto';
}

/** What a fine-tuning run starts from, on either engine: read and checked before anything is written. */
export interface SftInputs {
  base: LoadedCheckpoint;
  tokenizer: BpeTokenizer;
  config: TrainConfig;
  conversations: ChatMessage[][];
  rows: ReturnType<typeof conversationRows>;
  dataFile: DataFileRecord;
  /** run.json's base_checkpoint. */
  baseRecord: NonNullable<RunInfo['base_checkpoint']>;
}

/** The base checkpoint, its tokenizer, the conversations rendered into rows, and the config with --set applied. */
export function readSftInputs(opts: Pick<SftRequest, 'from' | 'data' | 'steps' | 'sets'>): SftInputs {
  const base = loadCheckpoint(resolve(opts.from));
  const tokenizer = BpeTokenizer.fromJSON(base.tokenizerJson);
  const dataPath = resolveSftData(opts.data);
  const bytes = readDataFile(dataPath);
  const conversations = parseConversations(bytes.toString('utf8'), opts.data);
  const config = applySettings(base.manifest.config, [`max_steps=${opts.steps}`, ...opts.sets]);
  return {
    base,
    tokenizer,
    config,
    conversations,
    rows: conversationRows(tokenizer, conversations, config.seq_len, tokenizer.eotId),
    dataFile: { path: dataPath, sha256: sha256(bytes), bytes: bytes.length },
    baseRecord: { path: resolve(opts.from), run_id: base.manifest.run_id, step: base.manifest.step },
  };
}

const rowsLine = (inputs: SftInputs) =>
  `sft: ${inputs.conversations.length} conversation(s), one per row of ${inputs.config.seq_len + 1} tokens; ` +
  `${inputs.rows.cut} cut to fit`;

/** Creates a fine-tuning run from a checkpoint and trains it; input errors throw before anything is written. */
export async function startSft(opts: SftOptions, control: RunControl): Promise<RunStatus> {
  const runDir = resolve(opts.runDir);
  const discard = checkNewRunDir(runDir);
  const inputs = readSftInputs(opts);
  const { base, tokenizer, config, rows, dataFile } = inputs;
  const backend = await announceBackend(opts.backend, control);
  mkdirSync(runDir, { recursive: true });
  const info = newRunInfo(runDir, { config, data: opts.data, name: opts.name }, backend);
  const writer = new RunWriter(runDir, {
    ...info,
    data: { input: opts.data, files: [dataFile] },
    base_checkpoint: inputs.baseRecord,
    template: 'chatml',
  });
  writer.update({});
  return runGuarded(writer, discard, async () => {
    const tokenizerJson = JSON.stringify(base.tokenizerJson);
    writeFileAtomic(join(runDir, 'tokenizer.json'), tokenizerJson);
    const weights = new Map([...base.weights].map(([name, t]) => [name, t.data]));
    const model = SteelLM.fromWeights(config, weights);
    control.log(rowsLine(inputs));
    const session: TrainSession = {
      config,
      writer,
      model,
      optimizer: new AdamW(model.params, config),
      tokenizer,
      tokenizerJson,
      loader: new BlockLoader(rows.tokens, config.seq_len + 1, config.seed, undefined, opts.data, rows.weights),
      evalSet: [],
      dataFiles: [dataFile],
      startStep: 0,
      targetStep: opts.steps,
      rng: new Rng(config.seed),
      ...control,
    };
    writer.event(
      0,
      'start',
      'info',
      `Fine-tuning started from ${opts.from} (step ${base.manifest.step}) on ${backend.name}.`,
    );
    return session;
  });
}

export const SFT_PREPARED_FORMAT = 'steelscope.sft-prepared/1';

/**
 * The PyTorch engine's fine-tuning input, rendered and tokenized here so ChatML and the loss mask
 * have one home: data/sft.bin (the rows' ids, a token shard), data/sft-mask.bin (each id's weight
 * as a target, 0 or 1, in the same shard format), tokenizer.json, data/prompts.json and
 * data/sft-prepared.json (config, data file, shards with hashes, base checkpoint) for main.py sft.
 */
export function prepareSftRun(runDir: string, input: string, inputs: SftInputs, log: (line: string) => void): void {
  const { config, rows } = inputs;
  const dataDir = join(runDir, 'data');
  mkdirSync(dataDir, { recursive: true });
  writeFileAtomic(join(runDir, 'tokenizer.json'), JSON.stringify(inputs.base.tokenizerJson));
  const tokens = tokenArrayFor(config.vocab_size, rows.tokens.length);
  tokens.set(rows.tokens);
  const shards = [
    { path: join(dataDir, 'sft.bin'), ids: tokens },
    { path: join(dataDir, 'sft-mask.bin'), ids: Uint16Array.from(rows.weights) },
  ].map(({ path, ids }) => {
    writeShard(path, ids);
    const bytes = readFileSync(path);
    return { path, sha256: sha256(bytes), bytes: bytes.length };
  });
  writePrompts(runDir, inputs.tokenizer);
  const prepared = {
    format: SFT_PREPARED_FORMAT,
    config,
    input,
    files: [inputs.dataFile],
    shards,
    tokenizer: 'tokenizer.json',
    base_checkpoint: inputs.baseRecord,
  };
  writeFileAtomic(join(dataDir, 'sft-prepared.json'), JSON.stringify(prepared, null, 2) + '\n');
  log(rowsLine(inputs));
}

function readDataFile(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new DataError(`--data ${path} cannot be read (${code}). Give a chat JSONL file.`);
  }
}

/**
 * How chat talks to a checkpoint: "chatml" when its run (the folder two levels up, where
 * `steelscope sft` writes checkpoints/step-N) is a fine-tuning run, else "plain" (a base model).
 */
export function checkpointTemplate(checkpointDir: string): ChatTemplate {
  try {
    return readRunInfo(resolve(checkpointDir, '..', '..')).template === 'chatml' ? 'chatml' : 'plain';
  } catch {
    return 'plain'; // a checkpoint outside a run folder: nothing says it was fine-tuned
  }
}
