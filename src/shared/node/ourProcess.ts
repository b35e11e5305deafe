// Is the pid a run.json names really our trainer of that run? run.json is only a file: a foreign
// or stale one can name any process (an editor, a shell, a pid since reused). Before a signal is
// sent, the process itself must say it is ours (Linux, from /proc):
// - its command line runs our CLI (…/cli.js or …/steelscope[.js]) with `train --run-dir <dir>` or
//   `sft --run-dir <dir>` or `resume <dir>`, the dir resolved against the process's own working folder being this run's;
// - it started no later than run.json says it took the run (createdAt, or the `at` of the resume
//   that recorded this pid): a process started after that is a reused pid.
// Elsewhere (no /proc) nothing can be verified and the answer is no; a process this extension
// spawned itself is known without any of this (the launcher's own children).
import { readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { basename, isAbsolute, resolve } from 'node:path';
import type { ObservedRun } from '../run';

export type TrainerCheck = { ours: true } | { ours: false; why: string };

/** The kernel's USER_HZ: /proc/<pid>/stat counts start times in these ticks (100 on every Linux ABI). */
const CLOCK_TICKS_PER_S = 100;
/** btime has whole seconds and the tick 10 ms: a start this much after the claim still matches. */
const START_SLACK_MS = 2_000;
const CLI_SCRIPTS = new Set(['cli.js', 'steelscope.js', 'steelscope']);

/** argv of a /proc/<pid>/cmdline (NUL-separated, NUL-terminated). */
export function parseCmdline(raw: string): string[] {
  const args = raw.split('\0');
  if (args.at(-1) === '') args.pop();
  return args;
}

/**
 * The run folder our CLI was started on according to `argv` (relative to `cwd`), or undefined when
 * argv is not `<node> [node flags] <our cli> train|sft|resume …`.
 */
export function trainerRunDir(argv: readonly string[], cwd: string): string | undefined {
  const cli = argv.findIndex((a, i) => i > 0 && CLI_SCRIPTS.has(basename(a)));
  if (cli < 0) return undefined;
  const [command, ...rest] = argv.slice(cli + 1);
  let dir: string | undefined;
  if (command === 'train' || command === 'sft') {
    const i = rest.findIndex((a) => a === '--run-dir' || a.startsWith('--run-dir='));
    if (i >= 0) dir = rest[i].startsWith('--run-dir=') ? rest[i].slice('--run-dir='.length) : rest[i + 1];
  } else if (command === 'resume') {
    // The first argument that is neither a flag nor a flag's value (resume's flags all take one).
    for (let i = 0; i < rest.length && dir === undefined; i++) {
      if (!rest[i].startsWith('--')) dir = rest[i];
      else if (!rest[i].includes('=')) i++;
    }
  }
  return dir === undefined || dir === '' ? undefined : isAbsolute(dir) ? resolve(dir) : resolve(cwd, dir);
}

/** Field 22 of /proc/<pid>/stat (start time in ticks after boot); fields counted after "(comm)". */
export function startTicks(stat: string): number | undefined {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[22 - 3]);
  return Number.isFinite(ticks) ? ticks : undefined;
}

/** When run.json says the process `info.pid` took the run (Unix ms), or undefined when unparsable. */
export function claimedAt(info: ObservedRun): number | undefined {
  const resume = [...(info.resumes ?? [])].reverse().find((r) => r.pid === info.pid);
  const at = Date.parse(resume?.at ?? info.createdAt);
  return Number.isFinite(at) ? at : undefined;
}

function realOrResolved(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return resolve(path);
  }
}

/** What /proc says of a process, read here or on an SSH host. */
export interface ProcessFacts {
  argv: string[];
  /** Its working folder (relative run-folder arguments are resolved against it). */
  cwd: string;
  /** /proc/<pid>/stat. */
  stat: string;
  /** /proc/stat's btime: boot time in Unix seconds. */
  bootTimeS: number;
}

/** The /proc reads behind ProcessFacts as one POSIX shell script (for an SSH host); `pid` is a checked integer. */
export function procFactsScript(pid: number): string {
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`not a pid: ${pid}`);
  const p = `/proc/${pid}`;
  return `test -r ${p}/cmdline || exit 3; od -An -v -tx1 ${p}/cmdline | tr -d ' \\n'; echo; readlink ${p}/cwd; cat ${p}/stat; grep '^btime ' /proc/stat`;
}

/** Parses what procFactsScript printed; undefined when it is not that. */
export function parseProcFacts(out: string): ProcessFacts | undefined {
  const [hex, cwd, stat, btime] = out.split('\n');
  const bootTimeS = Number(/^btime (\d+)$/.exec(btime ?? '')?.[1]);
  if (!/^([0-9a-f]{2})*$/.test(hex ?? '') || !cwd || !stat || !Number.isFinite(bootTimeS)) return undefined;
  return { argv: parseCmdline(Buffer.from(hex, 'hex').toString('utf8')), cwd, stat, bootTimeS };
}

/**
 * Is the process these facts describe our trainer of `runDir` (as run.json `info` claims)?
 * `samePath` compares run folders (real paths here; as written on a host).
 */
export function judgeTrainer(
  info: ObservedRun,
  runDir: string,
  facts: ProcessFacts,
  samePath: (a: string, b: string) => boolean = (a, b) => resolve(a) === resolve(b),
): TrainerCheck {
  const pid = info.pid;
  const dir = trainerRunDir(facts.argv, facts.cwd);
  if (dir === undefined) {
    return {
      ours: false,
      why: `process ${pid} is not a steelscope trainer (it runs ${facts.argv.join(' ').slice(0, 200)})`,
    };
  }
  if (!samePath(dir, runDir)) return { ours: false, why: `process ${pid} trains another run folder (${dir})` };
  const ticks = startTicks(facts.stat);
  const claim = claimedAt(info);
  if (ticks === undefined || claim === undefined || !Number.isFinite(facts.bootTimeS)) {
    return { ours: false, why: `the start time of process ${pid} or run.json's time cannot be read` };
  }
  const startedMs = (facts.bootTimeS + ticks / CLOCK_TICKS_PER_S) * 1000;
  if (startedMs > claim + START_SLACK_MS) {
    const when = new Date(startedMs).toISOString();
    return {
      ours: false,
      why: `process ${pid} started at ${when}, after run.json says its trainer did (a reused pid)`,
    };
  }
  return { ours: true };
}

/** Checks from /proc (procRoot for tests) that `info.pid` is our trainer of `runDir`. */
export function checkOurTrainer(info: ObservedRun, runDir: string, procRoot = '/proc'): TrainerCheck {
  const pid = info.pid;
  if (!Number.isInteger(pid) || pid <= 0) return { ours: false, why: `run.json names no valid pid (${String(pid)})` };
  const proc = `${procRoot}/${pid}`;
  let facts: ProcessFacts;
  try {
    facts = {
      argv: parseCmdline(readFileSync(`${proc}/cmdline`, 'utf8')),
      cwd: readlinkSync(`${proc}/cwd`),
      stat: readFileSync(`${proc}/stat`, 'utf8'),
      bootTimeS: Number(/^btime (\d+)$/m.exec(readFileSync(`${procRoot}/stat`, 'utf8'))?.[1]),
    };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { ours: false, why: `process ${pid} cannot be inspected here (no ${proc})` };
    return { ours: false, why: `process ${pid} cannot be inspected (${code ?? String(err)})` };
  }
  return judgeTrainer(info, runDir, facts, (a, b) => realOrResolved(a) === realOrResolved(b));
}
