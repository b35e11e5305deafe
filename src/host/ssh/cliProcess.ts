// A CLI command run attached on an SSH host (`steelscope eval` for Evaluate Checkpoint…): an exec
// channel whose streams are the command's. The command first tells its pid (a line on stderr that
// is taken out before anyone reads it), so stop() can signal it: closing the channel alone does not
// end a process that never reads its stdin and writes little.
import { PassThrough, Transform, type TransformCallback } from 'node:stream';
import type { CliProcess } from '../runs/cliProcess';
import type { RemoteCli } from './deploy';
import { shCommand, shQuote } from './quote';
import type { RemoteHost } from './remoteHost';

const PID_SCRIPT = 'echo "steelscope-pid $$" >&2; exec "$@"';
const PID_LINE = /^steelscope-pid (\d+)$/;

/** Passes a stream through, less its first line when that is the pid line (handed to `onPid`). */
class PidLineFilter extends Transform {
  private head: Buffer | undefined = Buffer.alloc(0);

  constructor(private readonly onPid: (pid: number) => void) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    if (!this.head) return done(null, chunk);
    this.head = Buffer.concat([this.head, chunk]);
    const nl = this.head.indexOf(0x0a);
    if (nl < 0) return done();
    const first = this.head.subarray(0, nl).toString('utf8');
    const rest = this.head.subarray(nl + 1);
    this.head = undefined;
    const m = PID_LINE.exec(first.trim());
    if (m) this.onPid(Number(m[1]));
    done(null, m ? rest : Buffer.concat([Buffer.from(first + '\n'), rest]));
  }

  override _flush(done: TransformCallback): void {
    done(null, this.head?.length ? this.head : null);
  }
}

/** Runs `node <cli.js> <args>` on the host (deploying the CLI first where needed). */
export async function execCli(host: RemoteHost, cli: RemoteCli, args: string[]): Promise<CliProcess> {
  const program = await cli.command(args);
  const command = shCommand(['sh', '-c', PID_SCRIPT, 'steelscope-cli', ...program]);
  const proc = await (await host.connection()).exec(command);
  let pid: number | undefined;
  const stderr = new PassThrough();
  proc.stderr.pipe(new PidLineFilter((p) => (pid = p))).pipe(stderr);
  let ended = false;
  const exit = proc.exit.then((r) => {
    ended = true;
    return r;
  });
  const stop = (): void => {
    if (ended) return;
    proc.stdin.end();
    const close = () => proc.close();
    if (pid === undefined) return close();
    void host
      .sh(`kill -TERM ${shQuote(String(pid))} 2>/dev/null || true`, 'Stopping the command')
      .catch(() => undefined)
      .finally(close);
  };
  return { stdin: proc.stdin, stdout: proc.stdout, stderr, exit, stop };
}
