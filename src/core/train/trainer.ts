// The training loop. Step s names the state after s optimizer updates (nanoGPT's iter_num):
// at step s we evaluate, sample and checkpoint that state, then run update s on the next batch
// and log its loss as the train record of step s. A resumed run starts at its checkpoint's step
// and does exactly what the uninterrupted run would have done from there.
import * as tf from '@tensorflow/tfjs-core';
import type { TrainConfig } from '../../shared/config';
import type { DataFileRecord } from '../../shared/run';
import type { Batch, BlockLoader } from '../data';

export type { Batch };
import type { SteelLM } from '../model';
import { appendEvalRecords, runEvalTask, type ResolvedTask } from '../eval';
import { MACRO_SUBJECT } from '../../shared/eval';
import { Rng } from '../rng';
import { tokenStream } from '../sample/generate';
import type { BpeTokenizer } from '../tokenizer';
import { AdamW, globalNorm } from './adamw';
import { pruneCheckpoints, saveCheckpoint, type Tensors } from './checkpoint';
import type { RunWriter } from './rundir';
import { learningRate } from './schedule';
import { SpikeDetector } from './spike';

export interface TrainSession {
  config: TrainConfig;
  writer: RunWriter;
  model: SteelLM;
  optimizer: AdamW;
  tokenizer: BpeTokenizer;
  tokenizerJson: string;
  loader: BlockLoader;
  evalSet: Batch[];
  /** The config's eval_tasks, read and checked: run at step 0 and before each checkpoint. */
  evalTasks?: ResolvedTask[];
  dataFiles: DataFileRecord[];
  /** Step of the state the session starts from (0, or the checkpoint's step). */
  startStep: number;
  /** Train until this step (exclusive: updates startStep .. targetStep-1). */
  targetStep: number;
  rng: Rng;
  log: (line: string) => void;
  /** Polled between steps; true once SIGTERM/SIGINT asked the run to stop. */
  stopRequested: () => boolean;
  onStep?: (step: number) => void;
  /** Where each step's figures go (the CLI draws them); without it, one plain log line per step. */
  progress?: (p: StepProgress) => void;
}

/** What one optimizer update did, for a progress display. */
export interface StepProgress {
  step: number;
  /** The step the run stops at; updates run from startStep to targetStep - 1. */
  targetStep: number;
  startStep: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokPerS: number;
  stepSeconds: number;
}

/** Prompts sampled on the sample_every schedule: a title, a title and author, a first character. */
export const SAMPLE_PROMPTS = ['春', '秋夜\n', '山居\n王維\n'];

export type TrainOutcome = 'finished' | 'stopped';

export async function trainLoop(s: TrainSession): Promise<TrainOutcome> {
  const { config, writer } = s;
  const tokensPerStep = config.batch_size * config.seq_len * config.grad_accum;
  const spikes = new SpikeDetector(config.spike_sigma);
  let lastEval: number | null = null;
  let lastLoss: number | null = null;
  let lastCheckpoint = s.startStep;
  const resumed = s.startStep > 0;
  let step = s.startStep;
  for (; ; step++) {
    const fresh = !resumed || step > s.startStep; // the checkpointed state's eval/sample were already written
    if (fresh && config.eval_every > 0 && step % config.eval_every === 0)
      lastEval = (await evaluate(s, step)) ?? lastEval;
    if (fresh && config.sample_every > 0 && step % config.sample_every === 0) await writeSamples(s, step);
    if (fresh && step === 0) runEvalTasks(s, step);
    if (step > lastCheckpoint && config.checkpoint_every > 0 && step % config.checkpoint_every === 0) {
      runEvalTasks(s, step); // before the checkpoint, so its pruning sees this step's scores (best_by)
      checkpoint(s, step, lastEval, lastLoss);
      lastCheckpoint = step;
    }
    if (step >= s.targetStep || s.stopRequested()) break;

    const started = performance.now();
    const lr = learningRate(step, config);
    const cursor = s.loader.cursor();
    const accumulated = await accumulateGradients(s);
    if (!accumulated) {
      // Stopped half-way through the step: nothing was applied; the checkpoint is the state at
      // `step`, so the batches this step drew are drawn again after a resume.
      s.loader.rewind(cursor);
      break;
    }
    const { loss, grads } = accumulated;
    const gradNorm = globalNorm(grads);
    if (Number.isFinite(loss) && Number.isFinite(gradNorm)) {
      s.optimizer.apply(grads, gradNorm, lr);
    } else {
      writer.event(
        step,
        'nan',
        'warning',
        `Non-finite loss (${loss}) or gradient norm (${gradNorm}): update skipped.`,
        { loss: String(loss), grad_norm: String(gradNorm) },
      );
    }
    tf.dispose([...grads.values()]);
    const seconds = (performance.now() - started) / 1000;
    const tokens = (step + 1) * tokensPerStep;
    lastLoss = loss;
    if (step % config.log_every === 0) {
      writer.metric({
        step,
        kind: 'train',
        loss,
        lr,
        grad_norm: gradNorm,
        tokens,
        tok_per_s: tokensPerStep / seconds,
        step_ms: seconds * 1000,
      });
    }
    const spike = spikes.observe(loss);
    if (spike)
      writer.event(
        step,
        'spike',
        'warning',
        `Loss ${loss.toFixed(4)} is ${spike.sigmas.toFixed(1)}σ above its recent mean ${spike.mean.toFixed(4)}.`,
        { loss, mean: spike.mean, std: spike.std },
      );
    const progress = {
      step,
      targetStep: s.targetStep,
      startStep: s.startStep,
      loss,
      lr,
      gradNorm,
      tokPerS: tokensPerStep / seconds,
      stepSeconds: seconds,
    };
    if (s.progress) s.progress(progress);
    else s.log(progressLine(progress));
    s.onStep?.(step);
    // Let signal handlers and stdout run between steps: the step itself is synchronous.
    await new Promise((resolve) => setImmediate(resolve));
  }
  if (step > lastCheckpoint || step === 0) {
    if (step > 0) runEvalTasks(s, step);
    checkpoint(s, step, lastEval, lastLoss);
  }
  return step >= s.targetStep ? 'finished' : 'stopped';
}

/** Lets the signal handler run: a stop is seen between micro-batches, eval batches and sampled tokens. */
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Mean loss and mean gradients over grad_accum micro-batches. The caller disposes the grads.
 * Undefined when a stop arrived between micro-batches: the partial sums are freed, nothing applied.
 */
async function accumulateGradients(
  s: TrainSession,
): Promise<{ loss: number; grads: Map<string, tf.Tensor> } | undefined> {
  const { config, model, loader } = s;
  const vars = [...model.params.values()];
  const summed = new Map<string, tf.Tensor>();
  let lossSum = 0;
  for (let micro = 0; micro < config.grad_accum; micro++) {
    if (micro > 0) {
      await nextTurn();
      if (s.stopRequested()) {
        tf.dispose([...summed.values()]);
        return undefined;
      }
    }
    const batch = loader.nextBatch(config.batch_size);
    const { value, grads } = tf.tidy(() => {
      const x = tf.tensor2d(batch.x, [config.batch_size, config.seq_len], 'int32'); // [B, T]
      const y = tf.tensor2d(batch.y, [config.batch_size, config.seq_len], 'int32'); // [B, T]
      const mask = batch.mask ? tf.tensor2d(batch.mask, [config.batch_size, config.seq_len], 'float32') : undefined; // [B, T]
      return tf.variableGrads(() => model.loss(x, y, mask), vars);
    });
    lossSum += value.dataSync()[0];
    value.dispose();
    for (const [name, variable] of model.params) {
      const g = grads[variable.name]; // variableGrads keys gradients by the variable's own name
      if (!g) throw new Error(`no gradient for ${name}`);
      const prev = summed.get(name);
      summed.set(name, prev ? tf.tidy(() => tf.add(prev, g)) : g);
      if (prev) {
        prev.dispose();
        g.dispose();
      }
    }
  }
  if (config.grad_accum > 1) {
    for (const [name, g] of summed) {
      summed.set(
        name,
        tf.tidy(() => tf.div(g, config.grad_accum)),
      );
      g.dispose();
    }
  }
  return { loss: lossSum / config.grad_accum, grads: summed };
}

/** The mean eval loss; null without eval data, or when a stop cut it short (an eval-skipped event). */
async function evaluate(s: TrainSession, step: number): Promise<number | null> {
  if (s.evalSet.length === 0) return null;
  let sum = 0;
  for (const batch of s.evalSet) {
    await nextTurn();
    if (s.stopRequested()) {
      s.writer.event(step, 'eval-skipped', 'info', `Evaluation at step ${step} was cut short by the stop request.`);
      return null;
    }
    const rows = batch.x.length / s.config.seq_len;
    const loss = tf.tidy(() => {
      const x = tf.tensor2d(batch.x, [rows, s.config.seq_len], 'int32'); // [b, T]
      const y = tf.tensor2d(batch.y, [rows, s.config.seq_len], 'int32'); // [b, T]
      return s.model.loss(x, y);
    });
    sum += loss.dataSync()[0];
    loss.dispose();
  }
  const mean = sum / s.evalSet.length;
  s.writer.metric({ step, kind: 'eval', loss: mean });
  s.log(`step ${step}: eval loss ${mean.toFixed(4)}`);
  return mean;
}

/**
 * The config's eval tasks on the current weights, appended to evals.jsonl at `step` (the records
 * `steelscope eval` writes). Not on the way out of a stop: the user asked to stop, and
 * `steelscope eval` scores the checkpoint later. Each task's scoring is synchronous (seconds for
 * tiny on poetry-mc); a signal during it is seen right after.
 */
function runEvalTasks(s: TrainSession, step: number): void {
  if (!s.evalTasks?.length || s.stopRequested()) return;
  for (const task of s.evalTasks) {
    const records = runEvalTask(s.model, s.tokenizer, task, { step });
    appendEvalRecords(s.writer.dir, records);
    const macro = records.find((r) => r.subject === MACRO_SUBJECT);
    const figure = (name: string, x?: number, se?: number) =>
      x === undefined ? '' : ` ${name} ${x.toFixed(4)}${se === undefined ? '' : ` ± ${se.toFixed(4)}`}`;
    s.log(
      `step ${step}: ${macro?.task}${figure('acc', macro?.acc, macro?.stderr)}` +
        `${figure('acc_norm', macro?.acc_norm, macro?.acc_norm_stderr)}${figure('ppl', macro?.ppl)}`,
    );
  }
}

/** One sample per prompt; a stop request ends sampling between tokens (the cut sample is not written). */
async function writeSamples(s: TrainSession, step: number): Promise<void> {
  const { config } = s;
  for (const [i, prompt] of SAMPLE_PROMPTS.entries()) {
    const seed = (config.seed + step * 7919 + i) >>> 0; // independent of the training stream
    const stream = tokenStream(s.model, s.tokenizer.encode(prompt), {
      maxTokens: config.sample_tokens,
      temperature: config.sample_temperature,
      topK: config.sample_top_k,
      topP: config.sample_top_p,
      rng: new Rng(seed),
    });
    const ids: number[] = [];
    try {
      for (let next = stream.next(); next.done !== true && next.value !== s.tokenizer.eotId; next = stream.next()) {
        ids.push(next.value);
        await nextTurn();
        if (s.stopRequested()) return;
      }
    } finally {
      stream.return(); // frees the KV cache
    }
    const text = s.tokenizer.decode(ids);
    s.writer.sample({
      step,
      prompt,
      text,
      temperature: config.sample_temperature,
      top_k: config.sample_top_k,
      top_p: config.sample_top_p,
      seed,
    });
    if (i === 0) s.log(`step ${step}: sample ${JSON.stringify(prompt + text)}`);
  }
}

function checkpoint(s: TrainSession, step: number, evalLoss: number | null, trainLoss: number | null): void {
  const weights: Tensors = new Map();
  const shapes = new Map([...s.model.params].map(([name, p]) => [name, p.shape]));
  for (const [name, data] of s.model.readWeights())
    weights.set(name, { shape: shapes.get(name) ?? [data.length], data });
  const optimizerState: Tensors = new Map();
  for (const [name, slot] of s.optimizer.slots) {
    optimizerState.set(`m.${name}`, { shape: slot.m.shape, data: slot.m.dataSync() as Float32Array });
    optimizerState.set(`v.${name}`, { shape: slot.v.shape, data: slot.v.dataSync() as Float32Array });
  }
  const dir = saveCheckpoint(s.writer.dir, {
    run_id: s.writer.run.id,
    step,
    tokens: step * s.config.batch_size * s.config.seq_len * s.config.grad_accum,
    config: s.config,
    data: { cursor: s.loader.cursor(), files: s.dataFiles },
    rng: s.rng.state(),
    optimizer: { step: s.optimizer.step },
    eval_loss: evalLoss !== null && Number.isFinite(evalLoss) ? evalLoss : null,
    train_loss: trainLoss !== null && Number.isFinite(trainLoss) ? trainLoss : null,
    weights,
    optimizerState,
    tokenizerJson: s.tokenizerJson,
  });
  const removed = pruneCheckpoints(s.writer.dir, s.config.keep_checkpoints);
  s.writer.event(step, 'checkpoint', 'info', `Checkpoint saved at step ${step}.`, { path: dir, removed });
  s.writer.update({ step });
  s.log(`step ${step}: checkpoint ${dir}`);
}

function progressLine(p: StepProgress): string {
  const left = Math.round((p.targetStep - p.step - 1) * p.stepSeconds);
  const eta = left >= 60 ? `${Math.floor(left / 60)}m${String(left % 60).padStart(2, '0')}s` : `${left}s`;
  return `step ${p.step}/${p.targetStep} | loss ${p.loss.toFixed(4)} | lr ${p.lr.toExponential(2)} | grad_norm ${p.gradNorm.toFixed(3)} | ${Math.round(p.tokPerS)} tok/s | eta ${eta}`;
}
