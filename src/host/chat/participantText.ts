// What @steelscope writes, without vscode (unit-tested): which checkpoint answers, and the model's
// text as markdown that renders literally while it streams in.
import { DEFAULT_CHAT_SETTINGS, type ChatSettings } from '../../shared/protocol';
import type { RunStoreApi, RunSummary } from '../runs/types';
import { checkpointRef, type ChatChoice } from './dashboardChat';
import { escapeMarkdown } from '../markdown';

/**
 * Model text → markdown, piece by piece, as an indented code block: every line starts with four
 * spaces, so no text can end the block or become markup (a fence could be closed by a line of
 * backticks that has not been generated yet when the fence is written). The reply before it
 * must end with a blank line.
 */
export class LiteralBlock {
  private atLineStart = true;
  private afterCR = false;
  private empty = true;

  push(piece: string): string {
    let out = '';
    for (const ch of piece) {
      // \r\n may arrive split over two pieces: the \n after a \r is already a line break.
      if (ch === '\n' && this.afterCR) {
        this.afterCR = false;
        continue;
      }
      this.afterCR = ch === '\r';
      if (this.atLineStart) out += '    ';
      this.empty = false;
      this.atLineStart = ch === '\n' || ch === '\r';
      out += this.atLineStart ? '\n' : ch;
    }
    return out;
  }

  /** Closes the block: what to write before any following markdown (which then starts a paragraph). */
  end(): string {
    if (this.empty) return '';
    return this.atLineStart ? '\n' : '\n\n';
  }

  /** True while nothing (not even an empty line) has been written. */
  get isEmpty(): boolean {
    return this.empty;
  }
}

export interface ParticipantChoice {
  dir: string;
  /** "run name · step N". */
  label: string;
  /** Why this one, for the reply's first line. */
  why: string;
  settings: ChatSettings;
}

function newestFirst(a: RunSummary, b: RunSummary): number {
  return (b.info?.createdAt ?? '').localeCompare(a.info?.createdAt ?? '') || a.name.localeCompare(b.name);
}

/**
 * The checkpoint the dashboard chat used last while it still exists (here or on an SSH host);
 * else the best checkpoint (lowest eval loss) of the newest run on this machine that has one, or
 * that run's newest. `dir` is the chat's checkpoint ref (checkpointRef).
 */
export function participantChoice(store: RunStoreApi, last: ChatChoice | undefined): ParticipantChoice | undefined {
  const all = [...store.runs.values()].map((r) => r.summary);
  if (last) {
    for (const run of all) {
      const c = run.checkpoints.find((k) => k.complete && checkpointRef(run, k.dir) === last.checkpoint.dir);
      if (c)
        return {
          dir: last.checkpoint.dir,
          label: `${run.name} · step ${c.step}`,
          why: 'the checkpoint last used in the dashboard chat',
          settings: last.settings,
        };
    }
  }
  for (const run of all.filter((s) => s.hostId === 'local').sort(newestFirst)) {
    const complete = run.checkpoints.filter((c) => c.complete);
    const c = complete.find((k) => k.best) ?? complete.at(-1);
    if (!c) continue;
    const why = c.best ? 'the best checkpoint of the newest run' : 'the newest checkpoint of the newest run';
    return { dir: c.dir, label: `${run.name} · step ${c.step}`, why, settings: DEFAULT_CHAT_SETTINGS };
  }
  return undefined;
}

/** The reply's first line: which checkpoint answers, and why that one. */
export function answeringLine(choice: ParticipantChoice): string {
  return `Answering from **${escapeMarkdown(choice.label)}** (${choice.why}):\n\n`;
}
