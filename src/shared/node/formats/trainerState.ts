// Hugging Face Trainer output folders: trainer_state.json in the output folder (written at the end)
// and in every checkpoint-N/ (written at each save). The one saved at the highest global step is
// read whole when any of them changes (stat signatures); src/shared/formats/trainerState.ts hands
// out only the entries not handed out before.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { TrainerStateDecoder, trainerStateStep } from '../../formats/trainerState';
import { quoteNonFiniteTokens } from '../../jsonl';
import { currentSignature, readRegularFile } from '../reader';
import { emptyBatch, type FormatBatch, type RunFormatReader, type SourcePosition, type SourcePositions } from './batch';

export const TRAINER_STATE = 'trainer_state.json';

/** The trainer_state.json files of an output folder: its own, then checkpoint-N/'s by N. */
export async function trainerStatePaths(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const checkpoints = names
    .map((name) => ({ name, n: /^checkpoint-(\d+)$/.exec(name)?.[1] }))
    .filter((c): c is { name: string; n: string } => c.n !== undefined)
    .sort((a, b) => Number(a.n) - Number(b.n))
    .map((c) => join(dir, c.name, TRAINER_STATE));
  return [join(dir, TRAINER_STATE), ...checkpoints];
}

/** JSON as Python writes it (bare NaN/Infinity read as markers); undefined when it is not JSON yet. */
function parsePythonJson(text: string): unknown {
  for (const candidate of [text, quoteNonFiniteTokens(text)]) {
    try {
      return JSON.parse(candidate);
    } catch {
      // half-written or Python's tokens: try the next form
    }
  }
  return undefined;
}

export class TrainerStateReader implements RunFormatReader {
  readonly format = 'trainer-state' as const;
  private readonly decoder: TrainerStateDecoder;
  private signatures = '';

  constructor(
    readonly dir: string,
    /** Entries handed out before a restart: `at` counts log_history entries, not bytes. */
    from?: SourcePosition,
  ) {
    this.decoder = new TrainerStateDecoder(from?.sent ?? 0);
  }

  positions(): SourcePositions {
    return { [TRAINER_STATE]: { at: this.decoder.sent, sent: this.decoder.sent } };
  }

  async read(): Promise<FormatBatch> {
    const paths = await trainerStatePaths(this.dir);
    const signatures = (await Promise.all(paths.map(currentSignature))).join('|');
    if (signatures === this.signatures) return emptyBatch();
    let newest: { step: number; state: unknown } | undefined;
    for (const path of paths) {
      const state = await readRegularFile(path).then(
        (b) => parsePythonJson(b.toString('utf8')),
        () => undefined,
      );
      const step = trainerStateStep(state);
      if (state !== undefined && (!newest || step > newest.step)) newest = { step, state };
    }
    const decoded = newest && this.decoder.decode(newest.state);
    if (!decoded) return emptyBatch(); // nothing readable yet (half-written): the next change is read again
    this.signatures = signatures;
    return { reset: decoded.reset, metrics: decoded.metrics, samples: [], malformed: decoded.malformed };
  }
}
