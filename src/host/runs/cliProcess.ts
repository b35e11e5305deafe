// A CLI command the extension runs attached and reads as it goes (`serve` for the chat, `eval`
// for Evaluate Checkpoint…): a child process of the extension host here, or an exec channel on an
// SSH host (src/host/ssh/cliProcess.ts). Trainers are not these: they run detached (runControl.ts).
import { spawn } from 'node:child_process';

export interface CliProcess {
  stdin: NodeJS.WritableStream;
  stdout: NodeJS.ReadableStream;
  stderr: NodeJS.ReadableStream;
  /** Settles once it has ended and its output is read to the end; `error`: it could not run at all. */
  exit: Promise<{ code: number | null; signal?: string | null; error?: string }>;
  /** Ends it: stdin closed and SIGTERM where there is a process to signal; forced if it lingers. */
  stop(): void;
  pid?: number;
}

export interface LocalCliOptions {
  /** The node binary (settings.ts: trainerNode); never the editor's own runtime. */
  nodePath: string;
  /** The bundled dist/cli.js. */
  cliPath: string;
  env?: NodeJS.ProcessEnv;
}

const KILL_AFTER_MS = 2_000;

/**
 * `node dist/cli.js <args>` as a child process of the extension host, pipes on all three streams;
 * `what` names it when it cannot run ("the serve process").
 */
export function spawnCli(options: LocalCliOptions, args: readonly string[], what: string): CliProcess {
  const child = spawn(options.nodePath, [options.cliPath, ...args], {
    env: options.env ?? process.env,
    stdio: 'pipe',
    windowsHide: true,
  });
  // 'close', not 'exit': by then stdout is read to its end, so a last error line came first.
  const exit = new Promise<{ code: number | null; signal?: string | null; error?: string }>((done) => {
    child.once('error', (err) =>
      done({ code: null, error: `Could not run ${what}: ${err.message}. Check steelscope.nodePath.` }),
    );
    child.once('close', (code, signal) => done({ code, signal }));
  });
  const stop = (): void => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.stdin.end();
    child.kill('SIGTERM');
    const timer = setTimeout(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }, KILL_AFTER_MS);
    timer.unref();
  };
  return { stdin: child.stdin, stdout: child.stdout, stderr: child.stderr, exit, stop, pid: child.pid };
}
