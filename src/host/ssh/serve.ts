// `steelscope serve <checkpoint>` on an SSH host over an exec channel, for the chat: the same
// JSON lines as a local serve process.
import type { ServeProcess } from '../chat/serveClient';
import type { RemoteCli } from './deploy';
import { shCommand } from './quote';
import type { RemoteHost } from './remoteHost';

/** Starts the serve process; stop() ends its input and closes the channel, which ends it. */
export async function serveOnHost(host: RemoteHost, cli: RemoteCli, checkpoint: string): Promise<ServeProcess> {
  const command = shCommand(await cli.command(['serve', checkpoint]));
  const proc = await (await host.connection()).exec(command);
  const stop = (): void => {
    proc.stdin.end();
    proc.close();
  };
  return { stdin: proc.stdin, stdout: proc.stdout, stderr: proc.stderr, exit: proc.exit, stop };
}
