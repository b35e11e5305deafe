// Hugging Face Trainer's trainer_state.json: `log_history` is a list of logged dicts, each with a
// `step` (global step) and numbers: training logs (loss, learning_rate, grad_norm, epoch), eval
// logs (eval_loss, eval_runtime, ...), and a final summary (train_runtime, train_loss, ...). The
// Trainer rewrites the whole file at each checkpoint, so it is read whole; entries beyond those
// already handed out are new, and a history that no longer starts with them starts over.
import { decodeMetric, encodeMetric, type MetricRecord } from '../run';
import { StepMerger } from './stepMerge';

export interface TrainerStateBatch {
  reset: boolean;
  metrics: MetricRecord[];
  /** Entries that are not objects with an integer step. */
  malformed: number;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The table an entry belongs to: eval_* logs, the end-of-training summary, or training logs. */
function kindOfEntry(entry: Record<string, unknown>): string {
  if (Object.keys(entry).some((k) => k.startsWith('eval_'))) return 'eval';
  if ('train_runtime' in entry) return 'summary';
  return 'train';
}

/** The global step the state was saved at (to pick the newest of several files), or -1. */
export function trainerStateStep(state: unknown): number {
  return isObject(state) && typeof state.global_step === 'number' ? state.global_step : -1;
}

export class TrainerStateDecoder {
  /** The entries handed out so far, as JSON text (compared with the next file's). */
  private seen: string[] = [];
  private readonly merger = new StepMerger();

  /** `alreadySent`: entries handed out before a restart (`steelscope follow --from`), not handed out again. */
  constructor(private alreadySent = 0) {}

  /** How many entries have been handed out. */
  get sent(): number {
    return this.seen.length;
  }

  /** The file's parsed JSON; undefined when it is not a trainer state (nothing changes). */
  decode(state: unknown): TrainerStateBatch | undefined {
    if (!isObject(state) || !Array.isArray(state.log_history)) return undefined;
    const entries = state.log_history.map((e) => JSON.stringify(e));
    if (this.alreadySent > 0) {
      this.seen = entries.slice(0, this.alreadySent);
      this.alreadySent = 0;
    }
    const keeps = this.seen.every((text, i) => entries[i] === text);
    const batch: TrainerStateBatch = { reset: !keeps, metrics: [], malformed: 0 };
    if (!keeps) {
      this.seen = [];
      this.merger.clear();
    }
    for (const entry of state.log_history.slice(this.seen.length)) {
      if (!isObject(entry) || !Number.isSafeInteger(entry.step)) {
        batch.malformed++;
        continue;
      }
      const kind = kindOfEntry(entry);
      for (const [name, value] of Object.entries(entry)) {
        const number = decodeMetric(value); // Python writes NaN/Infinity bare: read as markers
        if (name === 'step' || number === undefined) continue;
        this.merger.add(kind, entry.step as number, NaN, name, encodeMetric(number));
      }
    }
    this.seen = entries;
    batch.metrics = this.merger.take();
    return batch;
  }
}
