// Supervised fine-tuning (`steelscope sft`): a base checkpoint trained further on conversations
// rendered in ChatML, the loss counted on the assistant's tokens only (the rows and their mask:
// ./sftdata.ts). A fine-tuning run resumes as any run does (session.ts resumeRun).
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { applySettings, sftSettings, type TrainConfig } from '../../shared/config';
import { SHIPPED_SFT_SET, type DataFileRecord, type RunInfo, type RunStatus } from '../../shared/run';
import type { ChatMessage, ChatTemplate } from '../../shared/serve-protocol';
import type { BackendName } from '../backend';
import { resolveTasks, type ResolvedTask } from '../eval';
import { SteelLM } from '../model';
import { Rng } from '../rng';
import { BpeTokenizer } from '../tokenizer';
import { AdamW } from './adamw';
import { loadCheckpoint, type LoadedCheckpoint } from './checkpoint';
import { writeEvals, writePrompts } from './prepare';
import { readRunInfo, RunWriter, writeFileAtomic } from './rundir';
import { announceBackend, checkNewRunDir, newRunInfo, runGuarded, type RunControl } from './session';
import { readSftRows, resolveSftData, sftLoader, writeSftShards, type SftRows } from './sftdata';
import type { TrainSession } from './trainer';

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
  rows: SftRows;
  dataFile: DataFileRecord;
  /** The config's eval_tasks, read and checked: run at step 0 and before each checkpoint, as in pretraining. */
  evalTasks: ResolvedTask[];
  /** run.json's base_checkpoint. */
  baseRecord: NonNullable<RunInfo['base_checkpoint']>;
}

/** The base checkpoint, its tokenizer, the conversations rendered into rows, and the config with --set applied. */
export function readSftInputs(opts: Pick<SftRequest, 'from' | 'data' | 'steps' | 'sets'>): SftInputs {
  const base = loadCheckpoint(resolve(opts.from));
  const tokenizer = BpeTokenizer.fromJSON(base.tokenizerJson);
  const sets = [`max_steps=${opts.steps}`, ...sftSettings(base.manifest.config.lr, opts.sets)];
  const config = applySettings(base.manifest.config, sets);
  const evalTasks = resolveTasks(config.eval_tasks ?? []);
  const { conversations, rows, dataFile } = readSftRows(
    resolveSftData(opts.data),
    opts.data,
    tokenizer,
    config.seq_len,
  );
  return {
    base,
    tokenizer,
    config,
    conversations,
    rows,
    dataFile: opts.data === SHIPPED_SFT_SET ? { ...dataFile, bundled: SHIPPED_SFT_SET } : dataFile,
    evalTasks,
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
      loader: sftLoader(rows, config, opts.data),
      evalSet: [],
      evalTasks: inputs.evalTasks,
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
 * have one home: the rows as token shards (writeSftShards), tokenizer.json, data/prompts.json,
 * data/evals.json (the config's eval_tasks rendered to ids) and data/sft-prepared.json (config, data
 * file, shards with hashes, base checkpoint) for main.py sft.
 */
export function prepareSftRun(runDir: string, input: string, inputs: SftInputs, log: (line: string) => void): void {
  const { config, rows } = inputs;
  mkdirSync(join(runDir, 'data'), { recursive: true });
  writeFileAtomic(join(runDir, 'tokenizer.json'), JSON.stringify(inputs.base.tokenizerJson));
  const shards = writeSftShards(runDir, rows, config.vocab_size);
  writePrompts(runDir, inputs.tokenizer);
  writeEvals(runDir, inputs.tokenizer, inputs.evalTasks);
  const prepared = {
    format: SFT_PREPARED_FORMAT,
    config,
    input,
    files: [inputs.dataFile],
    shards,
    tokenizer: 'tokenizer.json',
    base_checkpoint: inputs.baseRecord,
  };
  writeFileAtomic(join(runDir, 'data', 'sft-prepared.json'), JSON.stringify(prepared, null, 2) + '\n');
  log(rowsLine(inputs));
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
