// `steelscope serve <checkpoint|run-dir>`: loads a checkpoint once, then answers JSON-lines
// requests on stdin with JSON-lines messages on stdout (src/shared/serve-protocol.ts) until
// stdin ends. Anything that stops the server from starting is one error line on stdout, the
// same message on stderr, and exit code 2. Diagnostics never go to stdout: it is the protocol.
import { createInterface } from 'node:readline';
import { selectBackend } from '../../core/backend';
import { SteelLM } from '../../core/model';
import { ServeSession } from '../../core/serve/server';
import { BpeTokenizer } from '../../core/tokenizer';
import { loadCheckpoint } from '../../core/train/checkpoint';
import { checkpointTemplate } from '../../core/train/sft';
import { SERVE_PROTOCOL, type ChatTemplate, type ServeMessage } from '../../shared/serve-protocol';
import { numberFlag, parseArgs, stringFlag, UsageError } from '../args';
import { resolveCheckpointDir } from './sample';
import { backendFlag } from './train';

export const SERVE_USAGE =
  'steelscope serve <checkpoint-dir|run-dir> [--backend auto|tfjs-node-gpu|tfjs-node|wasm|cpu] [--crop-to N (ids kept when the context outgrows seq_len; default 3/4 of it)]\n' +
  '                 [--valid-utf8 (sample only tokens that keep the text valid UTF-8, unless a request says)]';

interface Loaded {
  model: SteelLM;
  tokenizer: BpeTokenizer;
  ready: ServeMessage;
}

async function load(
  argv: readonly string[],
): Promise<{ loaded: Loaded; cropTo: number | undefined; template: ChatTemplate; validUtf8: boolean }> {
  const flags = { backend: { kind: 'string' }, 'crop-to': { kind: 'int' }, 'valid-utf8': { kind: 'bool' } } as const;
  const p = parseArgs(argv, flags, 'serve');
  if (p.positional.length !== 1) throw new UsageError(`Usage: ${SERVE_USAGE}`);
  const dir = resolveCheckpointDir(p.positional[0]);
  const backend = await selectBackend(backendFlag(stringFlag(p, 'backend')));
  const ckpt = loadCheckpoint(dir);
  const config = ckpt.manifest.config;
  const cropTo = numberFlag(p, 'crop-to');
  if (cropTo !== undefined && (cropTo < 1 || cropTo > config.seq_len))
    throw new UsageError(`--crop-to must be in 1..${config.seq_len} (the checkpoint's seq_len).`);
  const tokenizer = BpeTokenizer.fromJSON(ckpt.tokenizerJson);
  const model = SteelLM.fromWeights(config, new Map([...ckpt.weights].map(([k, t]) => [k, t.data])));
  const template = checkpointTemplate(dir);
  const ready: ServeMessage = {
    ready: true,
    protocol: SERVE_PROTOCOL,
    checkpoint: dir,
    step: ckpt.manifest.step,
    config,
    backend: backend.name,
    template,
  };
  return { loaded: { model, tokenizer, ready }, cropTo, template, validUtf8: p.flags.get('valid-utf8') === true };
}

/** Calls `stop` once the first SIGTERM/SIGINT has been seen (main.ts turns signals into a flag). */
function watchStop(stopRequested: () => boolean, stop: () => void): () => void {
  const timer = setInterval(() => {
    if (!stopRequested()) return;
    clearInterval(timer);
    stop();
  }, 50);
  timer.unref();
  return () => clearInterval(timer);
}

/** `listen` installs the signal handlers (main.ts): called once loaded, so a signal during the load ends serve at once. */
export async function serveCommand(
  argv: readonly string[],
  stopRequested: () => boolean,
  listen: () => void,
): Promise<number> {
  const send = (message: ServeMessage): void => {
    process.stdout.write(JSON.stringify(message) + '\n');
  };
  let start: Awaited<ReturnType<typeof load>>;
  try {
    start = await load(argv);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    send({ id: null, error: { message } });
    process.stderr.write(`steelscope: ${message}\n`);
    return 2;
  }
  const { model, tokenizer, ready } = start.loaded;
  const session = new ServeSession(model, tokenizer, send, {
    cropTo: start.cropTo,
    template: start.template,
    validUtf8: start.validUtf8,
  });
  listen();
  send(ready);
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  const ended = new Promise<void>((resolve) => lines.once('close', resolve));
  lines.on('line', (line) => session.handleLine(line));
  // A signal cancels what runs, answers what waits, and ends the server like EOF does.
  const unwatch = watchStop(stopRequested, () => {
    session.cancelAll();
    lines.close();
    process.stdin.destroy();
  });
  try {
    await ended;
    await session.drain();
  } finally {
    unwatch();
    model.dispose();
  }
  return 0;
}
