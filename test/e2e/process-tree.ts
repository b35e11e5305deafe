// Finds and kills every process an e2e session started. code-server forks extension hosts, a pty
// host and file watchers, and the extension starts trainers that are meant to outlive the editor;
// a plain kill of the launcher leaves them running. Two nets catch them: the descendants of the
// launcher (by parent pid) and any process whose environment carries the session's marker
// variable, which also finds processes already re-parented to init. Linux only (/proc).
import { readdirSync, readFileSync } from 'node:fs';

/** The environment variable whose value tags every process of one session. */
export const MARKER_VAR = 'STEELSCOPE_E2E_SESSION';

interface ProcInfo {
  pid: number;
  ppid: number;
  marked: boolean;
}

function readProc(pid: number, marker: Buffer): ProcInfo | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name in parentheses may contain spaces; the fields after it do not.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    let marked = false;
    try {
      marked = readFileSync(`/proc/${pid}/environ`).includes(marker);
    } catch {
      // Another user's process, or gone already: only the parent link counts.
    }
    return { pid, ppid, marked };
  } catch {
    return undefined;
  }
}

/** Pids of `rootPid`'s descendants (and itself) plus every process tagged with `markerValue`. */
export function sessionProcesses(rootPid: number | undefined, markerValue: string): number[] {
  const marker = Buffer.from(`${MARKER_VAR}=${markerValue}\0`);
  const procs = readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map((name) => readProc(Number(name), marker))
    .filter((p): p is ProcInfo => p !== undefined);
  const found = new Set<number>(procs.filter((p) => p.marked).map((p) => p.pid));
  if (rootPid !== undefined) found.add(rootPid);
  // Close over parent links until nothing new is added, so grandchildren are found too.
  for (let grew = true; grew;) {
    grew = false;
    for (const p of procs) {
      if (!found.has(p.pid) && found.has(p.ppid)) {
        found.add(p.pid);
        grew = true;
      }
    }
  }
  found.delete(process.pid);
  return [...found];
}

/** SIGKILLs the session's processes at once; synchronous so it also works in an 'exit' handler. */
export function killSession(rootPid: number | undefined, markerValue: string): number[] {
  const pids = sessionProcesses(rootPid, markerValue);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Exited between the scan and the kill.
    }
  }
  return pids;
}

/** Kills until no tagged process is left (a dying parent may fork once more), up to `timeoutMs`. */
export async function killSessionAndWait(
  rootPid: number | undefined,
  markerValue: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    // Zombies keep their pid but lose their environment, so they drop out of the marker net;
    // only the parent links could still name them, and those are not rechecked here.
    killSession(rootPid, markerValue);
    rootPid = undefined;
    if (sessionProcesses(undefined, markerValue).length === 0) return;
    if (Date.now() > deadline) {
      throw new Error(
        `e2e: processes of session ${markerValue} survive SIGKILL: ${sessionProcesses(undefined, markerValue).join(', ')}`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
