// The trainer's progress in a terminal: on a TTY one line that redraws itself (a bar with step,
// loss, tokens/s and ETA), with the trainer's other lines (eval loss, samples, checkpoints)
// printed above it; elsewhere (a pipe, a log file, the extension's run log) plain lines every
// few percent, so a log stays readable.
import type { StepProgress } from '../core/train/trainer';

/** What the display writes to: process.stdout, or a stand-in in tests. */
export interface Terminal {
  isTTY?: boolean;
  columns?: number;
  write(text: string): unknown;
}

export interface ProgressDisplay {
  /** A line of the trainer's log, kept above the bar. */
  log(line: string): void;
  progress(p: StepProgress): void;
  /** Removes the bar line (the last plain line already says where the run ended). */
  end(): void;
}

/** Plain lines per run when not on a TTY: one every 1/PLAIN_LINES of the steps, and the last. */
const PLAIN_LINES = 40;
const REDRAW_MS = 100;
const CLEAR_LINE = '\r\x1b[K';

export function progressDisplay(term: Terminal, now: () => number = () => performance.now()): ProgressDisplay {
  const tty = term.isTTY === true;
  const rate = new Rate(now);
  let bar = '';
  let drawnAt = -Infinity;
  return {
    log(line) {
      term.write(tty && bar ? `${CLEAR_LINE}${line}\n${bar}` : `${line}\n`);
    },
    progress(p) {
      rate.observe(p);
      const last = p.step + 1 >= p.targetStep;
      if (tty) {
        if (!last && now() - drawnAt < REDRAW_MS) return;
        drawnAt = now();
        bar = barLine(p, rate, term.columns ?? 80);
        term.write(CLEAR_LINE + bar);
      } else if (last || (p.step - p.startStep) % plainEvery(p) === 0) {
        term.write(plainLine(p, rate) + '\n');
      }
    },
    end() {
      if (tty && bar) term.write(`${CLEAR_LINE}${bar}\n`);
      bar = '';
    },
  };
}

function plainEvery(p: StepProgress): number {
  return Math.max(1, Math.ceil((p.targetStep - p.startStep) / PLAIN_LINES));
}

/**
 * Throughput and time left. tokens/s is smoothed (one step's figure jumps with the machine's
 * load); the ETA uses wall time per step since the first one, evals and samples included.
 */
class Rate {
  private first: { at: number; step: number } | undefined;
  tokPerS = 0;
  secondsLeft = 0;
  constructor(private readonly now: () => number) {}

  observe(p: StepProgress): void {
    this.tokPerS = this.tokPerS === 0 ? p.tokPerS : 0.9 * this.tokPerS + 0.1 * p.tokPerS;
    const at = this.now();
    this.first ??= { at: at - p.stepSeconds * 1000, step: p.step - 1 };
    const perStep = (at - this.first.at) / 1000 / (p.step - this.first.step);
    this.secondsLeft = Math.max(0, (p.targetStep - p.step - 1) * perStep);
  }
}

export function formatDuration(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

function figures(p: StepProgress, rate: Rate): { done: number; total: number; stats: string } {
  const done = p.step + 1;
  const tokPerS = Math.round(rate.tokPerS).toLocaleString('en-US');
  const eta = done >= p.targetStep ? 'done' : `eta ${formatDuration(rate.secondsLeft)}`;
  return { done, total: p.targetStep, stats: `loss ${p.loss.toFixed(4)} │ ${tokPerS} tok/s │ ${eta}` };
}

function plainLine(p: StepProgress, rate: Rate): string {
  const { done, total, stats } = figures(p, rate);
  const percent = Math.floor((100 * done) / total);
  return `step ${done}/${total} (${percent}%) │ ${stats} │ lr ${p.lr.toExponential(2)} │ grad_norm ${p.gradNorm.toFixed(3)}`;
}

const PARTIAL = ['', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];

/** `[█████▌      ] 480/1200 │ loss … │ … tok/s │ eta …`, the bar shrinking to fit the terminal. */
function barLine(p: StepProgress, rate: Rate, columns: number): string {
  const { done, total, stats } = figures(p, rate);
  const text = ` ${done}/${total} │ ${stats}`;
  const width = Math.min(30, columns - 1 - text.length - 2);
  if (width < 5) return text.trim().slice(0, Math.max(0, columns - 1));
  const eighths = Math.round((done / total) * width * 8);
  const full = Math.floor(eighths / 8);
  const filled = '█'.repeat(full) + PARTIAL[eighths % 8];
  return `[${filled.padEnd(width)}]${text}`;
}
