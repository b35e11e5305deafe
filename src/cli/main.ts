// The CLI entry: dispatch only. `node dist/cli.js <command> …` or `npx steelscope <command> …`.
import { UsageError } from '../core/errors';
import { REQUEUE_EXIT_CODE } from '../shared/run';
import { evalCommand, EVAL_USAGE } from './commands/eval';
import { followCommand, FOLLOW_USAGE } from './commands/follow';
import { infoCommand } from './commands/info';
import { prepareCommand, PREPARE_USAGE } from './commands/prepare';
import { installBackendCommand, INSTALL_BACKEND_USAGE } from './commands/install-backend';
import { sampleCommand, SAMPLE_USAGE } from './commands/sample';
import { serveCommand, SERVE_USAGE } from './commands/serve';
import { sftCommand, SFT_USAGE } from './commands/sft';
import {
  resumeCommand,
  RESUME_USAGE,
  SLURM_REQUEUE_USAGE,
  slurmRequeueCommand,
  trainCommand,
  TRAIN_USAGE,
} from './commands/train';

const USAGE = `usage:
  ${TRAIN_USAGE}
  ${RESUME_USAGE}
  ${PREPARE_USAGE}
  ${SFT_USAGE}
  ${SAMPLE_USAGE}
  ${EVAL_USAGE}
  ${SERVE_USAGE}
  ${FOLLOW_USAGE}
  steelscope info <preset|checkpoint-dir|run-dir>
  ${INSTALL_BACKEND_USAGE}
  ${SLURM_REQUEUE_USAGE}`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const out = (line: string) => process.stdout.write(line + '\n');
  // The first SIGTERM/SIGINT asks the loop to checkpoint and stop; a second one exits at once.
  // SIGUSR1 (Slurm: the time limit is near, or a preemption) asks the same, and the exit status then
  // says "requeue me"; it never counts as a second signal, nor makes the TERM that may follow it one
  // (srun may pass USR1 to this process while the batch shell answers it with TERM).
  let terms = 0;
  const trains = TRAIN_COMMANDS.has(command ?? '');
  const onSignal = (signal: NodeJS.Signals) => {
    if (signal === 'SIGUSR1') requeue ||= !stop;
    else if (++terms > 1) process.exit(130);
    if (stop) return;
    stop = true;
    const what = trains ? 'saving a checkpoint and stopping' : 'stopping';
    process.stderr.write(
      `\n${signal}: ${what}${signal === 'SIGUSR1' && trains ? ' for the job to be requeued' : ''}…\n`,
    );
  };
  const listen = () => {
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    process.on('SIGUSR1', onSignal);
  };
  if (trains) keepTrainingWithoutReaders();
  // serve has nothing to save while it loads (a long synchronous read): until it is ready, a
  // signal keeps its default action and ends it at once; it listens from then on. eval scores
  // synchronously and writes its records only at the end: a signal ends it at once, nothing written.
  if (command !== 'serve' && command !== 'eval') listen();
  const control = { log: out, stopRequested: () => stop };
  switch (command) {
    case 'train':
      return trainCommand(rest, control);
    case 'resume':
      return resumeCommand(rest, control);
    case 'sft':
      return sftCommand(rest, control);
    case 'prepare':
      return prepareCommand(rest, out);
    case 'sample':
      return sampleCommand(rest, out);
    case 'eval':
      return evalCommand(rest, out);
    case 'serve':
      return serveCommand(rest, control.stopRequested, listen);
    case 'follow':
      return followCommand(rest, control.stopRequested);
    case 'info':
      return infoCommand(rest, out);
    case 'install-backend':
      return installBackendCommand(rest, out);
    case 'slurm-requeue':
      return slurmRequeueCommand(rest, out);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      out(USAGE);
      return command === undefined ? 2 : 0;
    default:
      throw new UsageError(`Unknown command "${command}".\n${USAGE}`);
  }
}

/** The commands that train: they hold signal handlers from start to end. */
const TRAIN_COMMANDS: ReadonlySet<string> = new Set(['train', 'resume', 'sft']);

// Errors about what the user gave (data, config, a checkpoint folder): their message alone, exit 2.
const INPUT_ERRORS = new Set(['DataError', 'ConfigError', 'CheckpointError', 'TokenizerError']);

/** Set by the first SIGTERM/SIGINT/SIGUSR1: the command winds down (a trainer checkpoints first). */
let stop = false;
/** Set when SIGUSR1 asked for the stop: a run that then stopped cleanly exits REQUEUE_EXIT_CODE. */
let requeue = false;

/**
 * A trainer outlives the readers of its output: once the reading end of its stdout or stderr is
 * gone (`| head`, a `| tee` ended by the same Ctrl-C that asks the trainer for its checkpoint), its
 * lines have nowhere to go, and the run folder stays the record. The EPIPE used to be an uncaught
 * error that ended the run at once: exit 7, no checkpoint, run.json still saying "running".
 */
function keepTrainingWithoutReaders(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err;
    });
  }
}

/** Resolves once everything written to stdout and stderr so far has been handed to the OS. */
function flushed(): Promise<void[]> {
  const drain = (stream: NodeJS.WriteStream) => new Promise<void>((resolve) => stream.write('', () => resolve()));
  return Promise.all([drain(process.stdout), drain(process.stderr)]);
}

main(process.argv.slice(2)).then(
  (code) => {
    const status = requeue && code === 0 ? REQUEUE_EXIT_CODE : code;
    // Once a signal asked for the stop, exit explicitly rather than let the event loop drain: Node's
    // teardown puts the default signal actions back before the process ends, so a TERM arriving then
    // (a batch shell answering USR1 with TERM) killed a run that had already saved its checkpoint, and
    // its exit status said "killed by SIGTERM" instead of 75 (60 of 60 times with TERM sent in a loop;
    // once in CI). process.exit keeps our handlers to the end; stdout and stderr are flushed first
    // (pipes are asynchronous on POSIX). A trainer that finished on its own exits so too: Stop's TERM
    // may reach it just then (its run.json already says finished), and must not turn into a kill.
    if (stop || TRAIN_COMMANDS.has(process.argv[2] ?? '')) return flushed().then(() => process.exit(status));
    process.exitCode = status;
  },
  (err: unknown) => {
    const usage = err instanceof UsageError || (err instanceof Error && INPUT_ERRORS.has(err.name));
    process.stderr.write(
      `steelscope: ${err instanceof Error ? (usage ? err.message : (err.stack ?? err.message)) : String(err)}\n`,
    );
    process.exitCode = usage ? 2 : 1;
  },
);
