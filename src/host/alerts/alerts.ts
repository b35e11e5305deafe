// Alerts on watched runs, without vscode: what deserves a notification as records, events and
// statuses arrive. The host part (notifier.ts) only shows what this returns.
//
// - A run that finishes (info), fails (problem), goes stale (problem: no record for STALE_FACTOR ×
//   its usual interval between train records), or writes a nan or spike event (problem).
// - A rule the user set on a series ("grad_norm > 10", "tok_per_s below 0.5 × its median") fires
//   once when the value crosses it, and re-arms when a value is back on the safe side.
// - `steelscope.notify`: all, problems (no "finished"), none.
import * as v from 'valibot';
import { AlertRuleSchema, AlertRulesSchema, describeRule, type AlertRule } from '../../shared/alertRules';
import { parseAs, type Parsed } from '../../shared/schema';

export type { AlertRule };

export const NOTIFY_LEVELS = ['all', 'problems', 'none'] as const;
export type NotifyLevel = (typeof NOTIFY_LEVELS)[number];

/** No record for this many times the run's usual interval: stale. */
export const STALE_FACTOR = 10;

export function parseAlertRules(value: unknown): Parsed<AlertRule[]> {
  return parseAs(AlertRulesSchema, value ?? [], 'alert rules');
}

export type AlertKind = 'finished' | 'failed' | 'stale' | 'nan' | 'spike' | 'rule';

export interface Alert {
  kind: AlertKind;
  /** A problem (shown as a warning) or news (information). */
  problem: boolean;
  message: string;
}

export function shouldNotify(level: NotifyLevel, alert: Alert): boolean {
  return level === 'all' || (level === 'problems' && alert.problem);
}

/** One rule's memory: armed until it fires; re-armed by a value on the safe side. Values seen for the median. */
class RuleState {
  armed = true;
  private readonly seen: number[] = [];

  constructor(readonly rule: AlertRule) {}

  /** True when `value` crosses the rule (once, until re-armed). */
  observe(value: number): { fired: boolean; threshold: number } {
    const threshold = this.threshold();
    if (Number.isFinite(value)) insertSorted(this.seen, value);
    if (!Number.isFinite(threshold) || Number.isNaN(value)) return { fired: false, threshold };
    const crossed = this.rule.op === 'above' ? value > threshold : value < threshold;
    const fired = crossed && this.armed;
    this.armed = !crossed;
    return { fired, threshold };
  }

  private threshold(): number {
    if (this.rule.scale === 'absolute') return this.rule.value;
    if (this.seen.length === 0) return NaN; // no median yet
    const mid = this.seen.length >> 1;
    const median = this.seen.length % 2 ? this.seen[mid] : (this.seen[mid - 1] + this.seen[mid]) / 2;
    return this.rule.value * median;
  }
}

function insertSorted(list: number[], value: number): void {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (list[mid] <= value) lo = mid + 1;
    else hi = mid;
  }
  list.splice(lo, 0, value);
}

const ACTIVE = new Set(['starting', 'running', 'stopping']);

/**
 * Statuses in which train records are due. A stopping trainer saves its checkpoint and writes none,
 * and a Slurm run stays stopping until its job is requeued or has ended (jobState.ts statusWithJob).
 */
const TRAINING = new Set(['starting', 'running']);

/** What one watched run has told so far, and what it has not yet told. */
export class RunAlerts {
  private status: string | undefined;
  private eventsSeen = 0;
  private readonly rules: RuleState[];
  private readonly times: number[] = [];
  private staleSaid = false;

  constructor(
    /**
     * The run's display name (RunSummary.name, as the Runs view shows it). A run first seen before
     * its run.json was read is named by its folder until then: AlertWatch renames it on each change.
     */
    public name: string,
    rules: readonly AlertRule[] = [],
    /** Events written before this (Unix ms) are history, not news (a run read at the editor's start). */
    private readonly since = -Infinity,
  ) {
    this.rules = rules.map((r) => new RuleState(r));
  }

  /** The run's display status now (running, finished, failed, stale, …): an alert on a change into an end. */
  onStatus(status: string): Alert[] {
    const before = this.status;
    this.status = status;
    // Training again (a resume, a requeued Slurm job): silence is counted from this stretch's records,
    // not from the last one before the stop (which may be hours old).
    if (TRAINING.has(status) && before !== undefined && !TRAINING.has(before)) this.times.length = 0;
    if (before === undefined || before === status || !ACTIVE.has(before)) return [];
    if (status === 'finished') return [{ kind: 'finished', problem: false, message: `Run ${this.name} finished.` }];
    if (status === 'failed') return [{ kind: 'failed', problem: true, message: `Run ${this.name} failed.` }];
    if (status === 'stale')
      return [
        {
          kind: 'failed',
          problem: true,
          message: `Run ${this.name} stopped without saying why (its process is gone).`,
        },
      ];
    return [];
  }

  /** The run's events from the first one not yet seen on (pass them all: only new ones count). */
  onEvents(events: readonly { kind: string; step: number; t?: number; message: string }[]): Alert[] {
    const fresh = events.slice(this.eventsSeen).filter((e) => !(typeof e.t === 'number' && e.t < this.since));
    this.eventsSeen = events.length;
    return fresh
      .filter((e) => e.kind === 'nan' || e.kind === 'spike')
      .map((e) => ({
        kind: e.kind as AlertKind,
        problem: true,
        message: `Run ${this.name}, step ${e.step}: ${e.message}`,
      }));
  }

  /** New values of one series, in order (NaN for a row without it); rules on it may fire. */
  onValues(kind: string, field: string, values: ArrayLike<number>, steps: ArrayLike<number>): Alert[] {
    const alerts: Alert[] = [];
    for (const state of this.rules) {
      if (state.rule.kind !== kind || state.rule.field !== field) continue;
      for (let i = 0; i < values.length; i++) {
        const { fired, threshold } = state.observe(values[i]);
        if (fired) {
          const message = `Run ${this.name}, step ${steps[i]}: ${field} = ${+values[i].toPrecision(4)} crossed ${describeRule(state.rule)} (${+threshold.toPrecision(4)}).`;
          alerts.push({ kind: 'rule', problem: true, message });
        }
      }
    }
    return alerts;
  }

  /** Times (Unix ms) of new train records: they set the usual interval and end staleness. */
  onRecordTimes(times: ArrayLike<number>): void {
    for (let i = 0; i < times.length; i++) if (Number.isFinite(times[i])) this.times.push(times[i]);
    if (times.length > 0) this.staleSaid = false;
    if (this.times.length > 64) this.times.splice(0, this.times.length - 64);
  }

  /** Stale: a training run with no record for STALE_FACTOR × its median interval (said once per silence). */
  checkStale(now: number): Alert[] {
    if (this.staleSaid || this.status === undefined || !TRAINING.has(this.status) || this.times.length < 3) return [];
    const gaps = this.times
      .slice(1)
      .map((t, i) => t - this.times[i])
      .sort((a, b) => a - b);
    const usual = Math.max(gaps[gaps.length >> 1], 1000);
    const silent = now - this.times[this.times.length - 1];
    if (silent < STALE_FACTOR * usual) return [];
    this.staleSaid = true;
    const seconds = Math.round(silent / 1000);
    return [
      {
        kind: 'stale',
        problem: true,
        message: `Run ${this.name} has written nothing for ${seconds} s (usually every ${+(usual / 1000).toPrecision(2)} s).`,
      },
    ];
  }
}

/** A rule as the dashboard's form sends it, checked. */
export function ruleFrom(value: unknown): AlertRule | undefined {
  const parsed = v.safeParse(AlertRuleSchema, value);
  return parsed.success ? parsed.output : undefined;
}
