// Which notifications the watched runs raise, without vscode (notifier.ts only shows them): it
// follows the run store's changes, feeds each run's new events, rows, record times and statuses to
// its RunAlerts (alerts.ts), checks for stale runs on a timer, drops what was said already, and
// keeps what `steelscope.notify` allows. A run is watched from when the store first tells of it:
// what it had written before is history, not news.
import type { Disposable, RunChange, RunData, RunKey, RunStoreApi } from '../runs/types';
import { RunAlerts, shouldNotify, type Alert, type AlertRule, type NotifyLevel } from './alerts';

/** How often every watched run is checked for staleness. */
export const STALE_CHECK_MS = 5000;

/** Events older than this when a run is first seen are history (a minute of slack for a slow first read). */
export const HISTORY_MS = 60_000;

interface Watched {
  alerts: RunAlerts;
  /** Rows of each table already fed to the rules. */
  rows: Map<string, number>;
  /**
   * What was said about this run: an event or a rule crossing re-read after its file was reset
   * (truncated, replaced, re-synced) is not news again. Statuses are not kept here: a run resumed
   * and finished twice says so twice.
   */
  said: Set<string>;
}

export interface AlertWatchOptions {
  /** The rules on one run (deduplicated here: a rule in two of the run's dashboards counts once). */
  rules: (key: RunKey) => AlertRule[];
  /** `steelscope.notify`, read when there is something to say. */
  level: () => NotifyLevel;
  /** Alerts to show for one run, already filtered; never called with none. */
  show: (key: RunKey, alerts: Alert[]) => void;
  /** Unix ms now (tests pass their clock). */
  now?: () => number;
}

export class AlertWatch implements Disposable {
  private readonly watched = new Map<RunKey, Watched>();
  private readonly subscription: Disposable;
  private readonly timer: NodeJS.Timeout;
  private readonly now: () => number;

  constructor(
    private readonly store: RunStoreApi,
    private readonly options: AlertWatchOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.subscription = store.onDidChange((change) => this.onChange(change));
    this.timer = setInterval(() => this.checkStale(), STALE_CHECK_MS);
    this.timer.unref();
  }

  /** Rules changed for `key`: they apply from the next record on (what was said stays said). */
  reloadRules(key: RunKey): void {
    const data = this.store.get(key);
    const said = this.watched.get(key)?.said;
    this.watched.delete(key);
    if (data) this.watch(key, data, said);
  }

  dispose(): void {
    this.subscription.dispose();
    clearInterval(this.timer);
  }

  private watch(key: RunKey, data: RunData, said = new Set<string>()): void {
    const alerts = new RunAlerts(data.summary.name, uniqueRules(this.options.rules(key)), this.now() - HISTORY_MS);
    alerts.onStatus(data.summary.status);
    alerts.onEvents(data.events); // history, not news
    const rows = new Map([...data.tables].map(([kind, t]) => [kind, t.length]));
    const train = data.tables.get('train');
    if (train) alerts.onRecordTimes(train.t.subarray(Math.max(0, train.length - 64), train.length));
    this.watched.set(key, { alerts, rows, said });
  }

  private onChange(change: RunChange): void {
    const data = this.store.get(change.key);
    if (!data || change.removed) {
      this.watched.delete(change.key);
      return;
    }
    const known = this.watched.get(change.key);
    if (!known) return this.watch(change.key, data);
    const { alerts, rows } = known;
    alerts.name = data.summary.name;
    const out: Alert[] = [...alerts.onEvents(data.events)];
    for (const [kind, table] of data.tables) {
      // Rows rewritten count as new (a resumed run repeats steps with new records and new times).
      const start = Math.min(rows.get(kind) ?? 0, change.tablesFrom.get(kind) ?? Infinity, table.length);
      if (start === table.length) continue;
      const steps = table.step.subarray(start, table.length);
      for (const [field, column] of table.fields)
        out.push(...alerts.onValues(kind, field, column.subarray(start, table.length), steps));
      if (kind === 'train') alerts.onRecordTimes(table.t.subarray(start, table.length));
      rows.set(kind, table.length);
    }
    out.push(...alerts.onStatus(data.summary.status));
    this.say(change.key, out);
  }

  private checkStale(): void {
    for (const [key, { alerts }] of this.watched) this.say(key, alerts.checkStale(this.now()));
  }

  private say(key: RunKey, alerts: Alert[]): void {
    const watched = this.watched.get(key);
    const fresh = alerts.filter((a) => {
      if (!watched || !SAID_ONCE.has(a.kind)) return true;
      const id = `${a.kind}\n${a.message}`;
      if (watched.said.has(id)) return false;
      watched.said.add(id);
      return true;
    });
    if (fresh.length === 0) return;
    const level = this.options.level();
    const shown = fresh.filter((a) => shouldNotify(level, a));
    if (shown.length > 0) this.options.show(key, shown);
  }
}

/** Alerts that name one event or one crossing (step and value in the message): each is news once. */
const SAID_ONCE: ReadonlySet<Alert['kind']> = new Set(['nan', 'spike', 'rule']);

function uniqueRules(rules: readonly AlertRule[]): AlertRule[] {
  const seen = new Set<string>();
  return rules.filter((r) => {
    const id = JSON.stringify([r.kind, r.field, r.op, r.value, r.scale]);
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
}
