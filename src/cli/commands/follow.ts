// `steelscope follow <run-dir> [--from <offsets-json>]`: runs next to a run (on an SSH host, over
// an exec channel) and streams what is appended to its files as JSON lines on stdout
// (src/shared/follow-protocol.ts), until stdin ends, a signal arrives or the channel closes.
//
// - What is followed lives in src/cli/follow/sources.ts: a folder in another format (TensorBoard
//   event files, metrics.csv, trainer_state.json) through its format reader, and the JSONL files through the shared
//   incremental reader (src/shared/node/reader.ts), which owns the rules (partial last line,
//   truncation/replacement/deletion sent as a reset, the record cap, regular files only), run.json
//   and the checkpoint list; the channel's plumbing in src/cli/follow/channel.ts.
// - Every chunk's messages are written at once and the next chunk waits for stdout's 'drain', so a
//   slow channel slows the reading instead of filling memory; a stop request is checked per chunk.
// - fs.watch on the run folder and its checkpoints folder wakes a scan at once; a short stat poll
//   is the fallback (watches fail on some file systems and never see DONE inside a step folder).
import { stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  FOLLOW_PROTOCOL,
  FOLLOWED_FILES,
  parseFollowOffsets,
  type FollowLine,
  type FollowOffsets,
  emptyOffsets,
} from '../../shared/follow-protocol';
import { LineOutput, listenForStop, onceEach, StopSignal, Wake, Watches } from '../follow/channel';
import { CheckpointFollower, FileFollower, FormatFollower, RunJsonFollower } from '../follow/sources';
import { FormatDetector } from '../../shared/node/formats/detect';
import { numberFlag, parseArgs, stringFlag, UsageError } from '../args';

export const FOLLOW_USAGE = `steelscope follow <run-dir> [--from '{"metrics.jsonl":N,"samples.jsonl":N,"events.jsonl":N,"system.jsonl":N,"evals.jsonl":N}'] [--poll-ms N (default 500)] [--heartbeat-ms N (default 5000)]`;

interface Setup {
  dir: string;
  from: FollowOffsets;
  pollMs: number;
  heartbeatMs: number;
}

async function setup(argv: readonly string[]): Promise<Setup> {
  const p = parseArgs(
    argv,
    { from: { kind: 'string' }, 'poll-ms': { kind: 'int' }, 'heartbeat-ms': { kind: 'int' } },
    'follow',
  );
  if (p.positional.length !== 1) throw new UsageError(`Usage: ${FOLLOW_USAGE}`);
  const dir = resolve(p.positional[0]);
  const fromText = stringFlag(p, 'from');
  const parsed = fromText === undefined ? { ok: true as const, offsets: emptyOffsets() } : parseFollowOffsets(fromText);
  if (!parsed.ok) throw new UsageError(parsed.message);
  const pollMs = numberFlag(p, 'poll-ms') ?? 500;
  const heartbeatMs = numberFlag(p, 'heartbeat-ms') ?? 5000;
  if (pollMs < 10) throw new UsageError('--poll-ms must be at least 10.');
  if (heartbeatMs < 50) throw new UsageError('--heartbeat-ms must be at least 50.');
  let s: Stats;
  try {
    s = await stat(dir);
  } catch {
    throw new UsageError(`No run directory at ${dir}.`);
  }
  if (!s.isDirectory()) throw new UsageError(`${dir} is not a directory, so it holds no run.`);
  return { dir, from: parsed.offsets, pollMs, heartbeatMs };
}

interface Scanner {
  dir: string;
  runJson: RunJsonFollower;
  checkpoints: CheckpointFollower;
  files: FileFollower[];
  /** The folder's format, asked on each pass until a file tells it. */
  format: FormatDetector;
  /** Set when the folder holds another format than ours. */
  formats: FormatFollower | undefined;
  /** Where a resumed follow reads that format's files from (--from's "sources"). */
  sourcesFrom: FollowOffsets['sources'];
  watches: Watches;
}

/** Once the folder tells another format than ours (a pass may come before its first file), it is followed too. */
function detectFormat(s: Scanner): void {
  if (s.formats) return;
  const format = s.format.detect();
  if (format !== undefined && format !== 'steelscope') s.formats = new FormatFollower(s.dir, format, s.sourcesFrom);
}

/** One pass over everything; a failure of one part (permissions, say) is reported and retried next pass. */
async function scan(s: Scanner, out: LineOutput, stop: StopSignal, warn: (err: unknown) => void): Promise<void> {
  s.watches.ensure(s.dir); // again each pass: a watch that failed (or a folder that appeared) is retried
  s.watches.ensure(s.checkpoints.root);
  detectFormat(s);
  await s.runJson.poll(out).catch(warn);
  await s.checkpoints.poll(out).catch(warn);
  for (const file of s.files) {
    if (stop.stopped) return;
    await file.poll(out, stop).catch(warn);
  }
  if (s.formats && !stop.stopped) await s.formats.poll(out).catch(warn);
  await out.drained();
}

export async function followCommand(argv: readonly string[], stopRequested: () => boolean): Promise<number> {
  let config: Setup;
  try {
    config = await setup(argv);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    process.stdout.write(JSON.stringify({ error: { message } } satisfies FollowLine) + '\n');
    process.stderr.write(`steelscope: ${message}\n`);
    return 2;
  }
  const { dir, from, pollMs, heartbeatMs } = config;
  const stop = new StopSignal();
  const out = new LineOutput(process.stdout, stop);
  const wake = new Wake();
  const scanner: Scanner = {
    dir,
    runJson: new RunJsonFollower(join(dir, 'run.json')),
    checkpoints: new CheckpointFollower(join(dir, 'checkpoints')),
    files: FOLLOWED_FILES.map((f) => new FileFollower(f, join(dir, f), from[f])),
    format: new FormatDetector(dir),
    formats: undefined,
    sourcesFrom: from.sources,
    watches: new Watches(wake),
  };
  detectFormat(scanner);
  out.send({ ready: true, protocol: FOLLOW_PROTOCOL, dir, from });
  const unlisten = listenForStop(stop, stopRequested);
  const offsets = (): FollowOffsets => {
    const now = emptyOffsets();
    for (const f of scanner.files) now[f.file] = f.position;
    if (scanner.formats) now.sources = scanner.formats.positions();
    return now;
  };
  const heartbeat = setInterval(() => out.send({ heartbeat: true, t: Date.now(), offsets: offsets() }), heartbeatMs);
  const warn = onceEach();
  try {
    while (!stop.stopped) {
      await scan(scanner, out, stop, warn);
      await wake.wait(pollMs, stop.promise);
    }
  } finally {
    clearInterval(heartbeat);
    scanner.watches.close();
    unlisten();
  }
  return 0;
}
