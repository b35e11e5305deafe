// One flat, documented training config, saved with every run and every checkpoint.
// Model shape follows Steel-LLM / Qwen1.5; names follow nanoGPT where one exists.
// Shared by the CLI (validation of --set) and the extension (the Start Training picks).
import * as v from 'valibot';
import { evalTaskName, EvalTaskSpecSchema, parseBestBy, EVAL_LOSS, type EvalTaskSpec } from './eval';

export interface TrainConfig {
  // --- model (Qwen1.5-shaped decoder) ---
  /** Vocabulary size: the BPE tokenizer is trained to exactly this many ids (specials included). */
  vocab_size: number;
  /** Number of transformer blocks. */
  n_layer: number;
  /** Hidden size d_model. */
  n_embd: number;
  /** Attention (query) heads; head_dim = n_embd / n_head. */
  n_head: number;
  /** Key/value heads (grouped-query attention); must divide n_head. n_kv_head == n_head is plain MHA. */
  n_kv_head: number;
  /** SwiGLU inner width. */
  intermediate_size: number;
  /** Rotary base (Qwen1.5: 1e6). */
  rope_theta: number;
  /** RMSNorm epsilon. */
  norm_eps: number;
  /** Share the token embedding with the output projection. */
  tie_embeddings: boolean;
  /** Std of the normal init of matrices; output projections of each block get init_std/sqrt(2*n_layer). */
  init_std: number;

  // --- data ---
  /** Context length in tokens; blocks of seq_len+1 are cut from the token stream. */
  seq_len: number;
  /** Sequences per micro-batch. */
  batch_size: number;
  /** Micro-batches whose gradients are averaged into one optimizer step. */
  grad_accum: number;
  /** Fraction of documents held out for evaluation. */
  val_fraction: number;

  // --- optimizer and schedule (AdamW, warmup then cosine) ---
  /** Peak learning rate. */
  lr: number;
  /** Floor of the cosine decay. */
  min_lr: number;
  /** Linear warmup steps. */
  warmup_steps: number;
  /** Length of the cosine schedule, and the default number of steps to train. */
  max_steps: number;
  /** Decoupled weight decay, applied to matrices (rank >= 2) only. */
  weight_decay: number;
  beta1: number;
  beta2: number;
  adam_eps: number;
  /** Global gradient-norm clip. */
  grad_clip: number;

  // --- bookkeeping ---
  /** Seed of every random choice: init, data order, sampling. */
  seed: number;
  /** Write a train record every this many steps. */
  log_every: number;
  /** Validation loss every this many steps (0: never). */
  eval_every: number;
  /** Batches averaged for one validation loss. */
  eval_batches: number;
  /** Sample generations every this many steps (0: never). */
  sample_every: number;
  /** Tokens generated per sample. */
  sample_tokens: number;
  sample_temperature: number;
  sample_top_k: number;
  sample_top_p: number;
  /** Checkpoint every this many steps (0: only at the end and on a signal). */
  checkpoint_every: number;
  /** Most recent checkpoints kept (the best by eval loss is kept as well). */
  keep_checkpoints: number;
  /** A loss this many standard deviations above its recent mean writes a spike event. */
  spike_sigma: number;
  /**
   * PyTorch engine: train through torch.compile where the installed torch has it (the TF.js engine
   * ignores it). Optional: configs saved before the PyTorch engine lack it (false).
   */
  compile?: boolean;
  /**
   * Evaluation tasks (`steelscope eval`'s): run at step 0 and at every checkpoint, their records
   * appended to the run's evals.jsonl with the step. Each is `{task, shots?, limit?, format?}`
   * (task: poetry-mc, a C-Eval/CMMLU CSV or folder, ppl:<file.txt>; shots default 5; format
   * letters or cloze). `--set eval_tasks=poetry-mc,ppl:held.txt` or a JSON array. Optional: none.
   */
  eval_tasks?: EvalTaskSpec[];
  /**
   * What the best checkpoint is (kept by pruning, ★ in the editor): `eval_loss` (the lowest, the
   * default) or `<task>/<metric>` of eval_tasks' macro average: acc or acc_norm (highest), ppl (lowest),
   * e.g. `poetry-mc/acc`. Optional: eval_loss.
   */
  best_by?: string;
}

export type ConfigKey = keyof TrainConfig;

type Kind = 'int' | 'number' | 'bool' | 'string' | 'tasks';
interface KeySpec {
  kind: Kind;
  min?: number;
  max?: number;
  /** May be absent from a saved config (added after configs were first saved). */
  optional?: true;
}

/** Types and bounds of every key: what --set accepts. */
export const CONFIG_SPEC: Record<ConfigKey, KeySpec> = {
  vocab_size: { kind: 'int', min: 260, max: 1_000_000 },
  n_layer: { kind: 'int', min: 1, max: 256 },
  n_embd: { kind: 'int', min: 8, max: 65536 },
  n_head: { kind: 'int', min: 1, max: 1024 },
  n_kv_head: { kind: 'int', min: 1, max: 1024 },
  intermediate_size: { kind: 'int', min: 1, max: 1_000_000 },
  rope_theta: { kind: 'number', min: 1 },
  norm_eps: { kind: 'number', min: 0, max: 1 },
  tie_embeddings: { kind: 'bool' },
  init_std: { kind: 'number', min: 0, max: 10 },
  seq_len: { kind: 'int', min: 2, max: 1_048_576 },
  batch_size: { kind: 'int', min: 1, max: 65536 },
  grad_accum: { kind: 'int', min: 1, max: 65536 },
  val_fraction: { kind: 'number', min: 0, max: 0.5 },
  lr: { kind: 'number', min: 0, max: 10 },
  min_lr: { kind: 'number', min: 0, max: 10 },
  warmup_steps: { kind: 'int', min: 0 },
  max_steps: { kind: 'int', min: 1 },
  weight_decay: { kind: 'number', min: 0, max: 10 },
  beta1: { kind: 'number', min: 0, max: 0.999999 },
  beta2: { kind: 'number', min: 0, max: 0.999999 },
  adam_eps: { kind: 'number', min: 0, max: 1 },
  grad_clip: { kind: 'number', min: 0 },
  seed: { kind: 'int', min: 0, max: 2 ** 32 - 1 },
  log_every: { kind: 'int', min: 1 },
  eval_every: { kind: 'int', min: 0 },
  eval_batches: { kind: 'int', min: 1 },
  sample_every: { kind: 'int', min: 0 },
  sample_tokens: { kind: 'int', min: 1, max: 100_000 },
  sample_temperature: { kind: 'number', min: 0, max: 100 },
  sample_top_k: { kind: 'int', min: 0 },
  sample_top_p: { kind: 'number', min: 0, max: 1 },
  checkpoint_every: { kind: 'int', min: 0 },
  keep_checkpoints: { kind: 'int', min: 1, max: 10_000 },
  spike_sigma: { kind: 'number', min: 0 },
  compile: { kind: 'bool', optional: true },
  eval_tasks: { kind: 'tasks', optional: true },
  best_by: { kind: 'string', optional: true },
};

/** A config value: a number, a flag, best_by's string or eval_tasks' list. */
export type ConfigValue = number | boolean | string | EvalTaskSpec[];

const SHARED_DEFAULTS: Omit<
  TrainConfig,
  | 'vocab_size'
  | 'n_layer'
  | 'n_embd'
  | 'n_head'
  | 'n_kv_head'
  | 'intermediate_size'
  | 'tie_embeddings'
  | 'seq_len'
  | 'batch_size'
> = {
  rope_theta: 1e6,
  norm_eps: 1e-6,
  init_std: 0.02,
  grad_accum: 1,
  val_fraction: 0.01,
  lr: 3e-3,
  min_lr: 3e-4,
  warmup_steps: 30,
  max_steps: 2000,
  weight_decay: 0.05,
  beta1: 0.9,
  beta2: 0.95,
  adam_eps: 1e-8,
  grad_clip: 1.0,
  seed: 1337,
  log_every: 1,
  eval_every: 100,
  eval_batches: 4,
  sample_every: 100,
  sample_tokens: 48,
  sample_temperature: 0.8,
  sample_top_k: 40,
  sample_top_p: 0.95,
  checkpoint_every: 200,
  keep_checkpoints: 3,
  spike_sigma: 6,
  compile: false,
  eval_tasks: [],
  best_by: EVAL_LOSS,
};

export const PRESET_NAMES = ['tiny', 'small', 'base-100m', 'steel-1b'] as const;
export type PresetName = (typeof PRESET_NAMES)[number];

export const PRESETS: Record<PresetName, TrainConfig> = {
  /** Learns visibly on a 2-core CPU in minutes (1,067,648 parameters). */
  tiny: {
    ...SHARED_DEFAULTS,
    vocab_size: 2048,
    n_layer: 4,
    n_embd: 128,
    n_head: 4,
    n_kv_head: 4,
    intermediate_size: 352,
    tie_embeddings: true,
    seq_len: 128,
    batch_size: 8,
  },
  /** A laptop-sized model (6,527,232 parameters). */
  small: {
    ...SHARED_DEFAULTS,
    vocab_size: 8192,
    n_layer: 6,
    n_embd: 256,
    n_head: 8,
    n_kv_head: 4,
    intermediate_size: 704,
    tie_embeddings: true,
    seq_len: 256,
    batch_size: 8,
    lr: 1e-3,
    min_lr: 1e-4,
    warmup_steps: 100,
    max_steps: 10000,
    eval_every: 250,
    sample_every: 250,
    checkpoint_every: 500,
  },
  /**
   * A GPT-2-small-sized model for one GPU (about 98M parameters: 12 layers, hidden 768): what
   * scripts/gpu-check.sh measures beside `small`. The vocabulary stays small's, so `prepare`
   * trains its tokenizer on the default corpus in seconds.
   */
  'base-100m': {
    ...SHARED_DEFAULTS,
    vocab_size: 8192,
    n_layer: 12,
    n_embd: 768,
    n_head: 12,
    n_kv_head: 12,
    intermediate_size: 2304,
    tie_embeddings: true,
    seq_len: 1024,
    batch_size: 16,
    lr: 6e-4,
    min_lr: 6e-5,
    warmup_steps: 200,
    max_steps: 20_000,
    eval_every: 500,
    sample_every: 500,
    checkpoint_every: 1000,
  },
  /** Steel-LLM's 1.12B shape, for GPUs: 18 layers, hidden 1792, 32 heads, untied. */
  'steel-1b': {
    ...SHARED_DEFAULTS,
    vocab_size: 151_936,
    n_layer: 18,
    n_embd: 1792,
    n_head: 32,
    n_kv_head: 32,
    intermediate_size: 3584,
    tie_embeddings: false,
    seq_len: 2048,
    batch_size: 8,
    grad_accum: 8,
    lr: 3e-4,
    min_lr: 3e-5,
    warmup_steps: 2000,
    max_steps: 200_000,
    eval_every: 1000,
    sample_every: 1000,
    checkpoint_every: 2000,
  },
};

/**
 * Fine-tuning's default peak learning rate, as a fraction of the base run's: SFT recipes train at about
 * a tenth of the pretraining peak (for every preset here that is the base's own cosine floor, min_lr),
 * so a chat set of a few hundred conversations adjusts the model without washing out what it learned.
 */
export const SFT_LR_FRACTION = 0.1;

/** The default peak learning rate for fine-tuning a checkpoint trained at peak `baseLr` (tiny's when unknown). */
export function sftLearningRate(baseLr: number | undefined): number {
  const lr = baseLr !== undefined && Number.isFinite(baseLr) && baseLr > 0 ? baseLr : PRESETS.tiny.lr;
  return Number((lr * SFT_LR_FRACTION).toPrecision(6));
}

/**
 * A learning rate typed by a user (3e-4, 0.0003): the number, or one line saying what is wrong. Bounded
 * as `--set lr=` is (CONFIG_SPEC), and positive: at 0 nothing would train.
 */
export function parseLearningRate(text: string): number | string {
  const raw = text.trim();
  const value = raw === '' ? NaN : Number(raw);
  const max = CONFIG_SPEC.lr.max ?? Infinity;
  if (Number.isFinite(value) && value > 0 && value <= max) return value;
  return `Enter a positive number up to ${max} (e.g. 3e-4), the peak learning rate; got "${raw}".`;
}

/** The --set assignments of a fine-tune at peak `lr`: the cosine floor a tenth of it, as every preset's. */
export function sftLearningRateSettings(lr: number): string[] {
  return [`lr=${lr}`, `min_lr=${Number((lr * 0.1).toPrecision(6))}`];
}

/**
 * A fine-tune's --set list (`steelscope sft`, whoever starts it): the learning-rate defaults first, so
 * the user's own assignments win: peak a tenth of the base run's (sftLearningRate) unless `lr=` is given,
 * floor a tenth of that peak (sftLearningRateSettings) unless `min_lr=` is given.
 */
export function sftSettings(baseLr: number | undefined, sets: readonly string[]): string[] {
  const given = sets.map(parseSetting).find(([key]) => key === 'lr')?.[1];
  const lr = typeof given === 'number' ? given : sftLearningRate(baseLr);
  return [...sftLearningRateSettings(lr), ...sets];
}

export class ConfigError extends Error {
  constructor(
    readonly key: string,
    message: string,
  ) {
    super(message);
    this.name = 'ConfigError';
  }
}

function describe(spec: KeySpec): string {
  if (spec.kind === 'string') return 'a string';
  if (spec.kind === 'tasks') return 'a list of eval tasks ({task, shots?, limit?, format?})';
  const kind = spec.kind === 'int' ? 'an integer' : spec.kind === 'bool' ? 'true or false' : 'a number';
  const lo = spec.min !== undefined ? ` >= ${spec.min}` : '';
  const hi = spec.max !== undefined ? ` <= ${spec.max}` : '';
  return kind + (lo && hi ? `${lo} and${hi}` : lo || hi);
}

function isKey(key: string): key is ConfigKey {
  return Object.prototype.hasOwnProperty.call(CONFIG_SPEC, key);
}

/** eval_tasks from --set: a JSON array (of names or specs), else comma-separated task names. */
function parseTaskList(raw: string): unknown {
  if (!raw.startsWith('['))
    return raw
      .split(',')
      .filter((t) => t.trim() !== '')
      .map((task) => ({ task: task.trim() }));
  try {
    const list: unknown = JSON.parse(raw);
    return Array.isArray(list) ? list.map((t: unknown) => (typeof t === 'string' ? { task: t } : t)) : list;
  } catch {
    throw new ConfigError('eval_tasks', `eval_tasks is not a JSON array: ${raw}. Give task names separated by commas.`);
  }
}

/** Parses one `key=value` of --set against the spec; throws ConfigError naming the key. */
export function parseSetting(assignment: string): [ConfigKey, ConfigValue] {
  const eq = assignment.indexOf('=');
  if (eq <= 0) throw new ConfigError(assignment, `--set expects key=value, got "${assignment}".`);
  const key = assignment.slice(0, eq).trim();
  const raw = assignment.slice(eq + 1).trim();
  if (!isKey(key)) {
    throw new ConfigError(key, `Unknown config key "${key}". Allowed keys: ${Object.keys(CONFIG_SPEC).join(', ')}.`);
  }
  const spec = CONFIG_SPEC[key];
  if (spec.kind === 'string') return [key, raw];
  if (spec.kind === 'tasks') return [key, parseTaskList(raw) as EvalTaskSpec[]]; // validateConfig checks it
  if (spec.kind === 'bool') {
    if (raw !== 'true' && raw !== 'false') throw new ConfigError(key, `${key} must be true or false, got "${raw}".`);
    return [key, raw === 'true'];
  }
  const value = raw === '' ? NaN : Number(raw);
  if (!Number.isFinite(value) || (spec.kind === 'int' && !Number.isInteger(value))) {
    throw new ConfigError(key, `${key} must be ${describe(spec)}, got "${raw}".`);
  }
  return [key, value];
}

/** Whether a value fits its key's kind and bounds. */
function fitsSpec(spec: KeySpec, value: unknown): boolean {
  if (spec.kind === 'bool') return typeof value === 'boolean';
  if (spec.kind === 'string') return typeof value === 'string';
  if (spec.kind === 'tasks') return v.is(v.array(EvalTaskSpecSchema), value);
  return (
    typeof value === 'number' &&
    Number.isFinite(value) &&
    (spec.kind !== 'int' || Number.isInteger(value)) &&
    (spec.min === undefined || value >= spec.min) &&
    (spec.max === undefined || value <= spec.max)
  );
}

/** eval_tasks name each task once, and best_by names eval_loss or a metric of one of them. */
function checkEvalKeys(tasks: readonly EvalTaskSpec[], bestBy: string): void {
  const names = tasks.map(evalTaskName);
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice !== undefined) throw new ConfigError('eval_tasks', `eval_tasks lists ${twice} twice; give each task once.`);
  const by = parseBestBy(bestBy);
  if (typeof by === 'string') throw new ConfigError('best_by', by);
  if (by.kind === 'eval' && !names.includes(by.task)) {
    throw new ConfigError(
      'best_by',
      `best_by names task ${by.task}, which is not in eval_tasks (${names.join(', ') || 'none'}); add it there or use eval_loss.`,
    );
  }
}

/** Applies `key=value` assignments to a preset; the result is validated as a whole. */
export function applySettings(base: TrainConfig, assignments: readonly string[]): TrainConfig {
  const config: TrainConfig = { ...base, ...Object.fromEntries(assignments.map(parseSetting)) };
  validateConfig(config);
  return config;
}

/** Checks every key's type and bounds, then the shapes that must agree with each other; throws ConfigError. */
export function validateConfig(value: object): asserts value is TrainConfig {
  const record: Record<string, unknown> = { ...value };
  for (const [key, spec] of Object.entries(CONFIG_SPEC)) {
    const value = record[key];
    if (value === undefined && spec.optional) continue;
    if (!fitsSpec(spec, value))
      throw new ConfigError(key, `${key} must be ${describe(spec)}, got ${JSON.stringify(value)}.`);
  }
  for (const key of Object.keys(record)) {
    if (!isKey(key)) throw new ConfigError(key, `Unknown config key "${key}".`);
  }
  // Every key is a number of its bounds now (tie_embeddings aside, which is not read here).
  const n = (key: ConfigKey) => Number(record[key]);
  if (n('n_embd') % n('n_head') !== 0) {
    throw new ConfigError('n_head', `n_embd (${n('n_embd')}) must be divisible by n_head (${n('n_head')}).`);
  }
  if ((n('n_embd') / n('n_head')) % 2 !== 0) {
    throw new ConfigError(
      'n_head',
      `head_dim = n_embd / n_head = ${n('n_embd') / n('n_head')} must be even for rotary positions.`,
    );
  }
  if (n('n_head') % n('n_kv_head') !== 0) {
    throw new ConfigError('n_kv_head', `n_kv_head (${n('n_kv_head')}) must divide n_head (${n('n_head')}).`);
  }
  if (n('min_lr') > n('lr')) {
    throw new ConfigError('min_lr', `min_lr (${n('min_lr')}) must not exceed lr (${n('lr')}).`);
  }
  checkEvalKeys(
    (record.eval_tasks as EvalTaskSpec[] | undefined) ?? [],
    (record.best_by as string | undefined) ?? EVAL_LOSS,
  );
}

/** What is wrong with a config read from a file or a pipe (ConfigError's message), or undefined. */
export function configProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'expected a config object';
  try {
    validateConfig(value);
    return undefined;
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
}

/** A config as run.json, a manifest or `serve` carries it: every key of its type and bounds. */
export const TrainConfigSchema = v.custom<TrainConfig>(
  (value) => configProblem(value) === undefined,
  (issue) => configProblem(issue.input) ?? 'expected a config object',
);

export function headDim(config: TrainConfig): number {
  return config.n_embd / config.n_head;
}

/**
 * Closed-form parameter count of the model the config describes:
 * embedding V*d; per block 2 norms (2d), q (d*d + d), k and v (2*(d*kv + kv)) with kv = n_kv_head*head_dim,
 * o (d*d), SwiGLU (3*d*ff); final norm d; untied output head d*V.
 */
export function parameterCount(config: TrainConfig): number {
  const d = config.n_embd;
  const kv = config.n_kv_head * headDim(config);
  const ff = config.intermediate_size;
  const V = config.vocab_size;
  const perBlock = 2 * d + (d * d + d) + 2 * (d * kv + kv) + d * d + 3 * d * ff;
  return V * d + config.n_layer * perBlock + d + (config.tie_embeddings ? 0 : d * V);
}
