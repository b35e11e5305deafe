// Shows the alerts of watched runs (alerts.ts decides what deserves one) as notifications with
// "Open Dashboard". Thin: it feeds the store's changes to RunAlerts and shows what comes back. A run
// is watched from when the extension sees it; what it had written before is not announced again.
import * as vscode from 'vscode';
import type { RunChange, RunData, RunKey, RunStoreApi } from '../runs/types';
import { hostLog } from '../log';
import {
  NOTIFY_LEVELS,
  parseAlertRules,
  RunAlerts,
  shouldNotify,
  type Alert,
  type AlertRule,
  type NotifyLevel,
} from './alerts';

/** Workspace state: alert rules per run key (schema-checked when read). */
export const ALERT_RULES_KEY = 'steelscope.alertRules';

export function notifyLevel(): NotifyLevel {
  const value = vscode.workspace.getConfiguration('steelscope').get<string>('notify', 'all');
  return NOTIFY_LEVELS.find((l) => l === value) ?? 'all';
}

/**
 * The rules the dashboards set, kept in workspace state per set of runs (a dashboard's keys) and
 * checked against their schema when read (a bad entry is logged and left out). A run's rules are
 * those of every set it is in.
 */
export class AlertRuleStore {
  constructor(
    private readonly state: vscode.Memento,
    private readonly changed: (keys: readonly RunKey[]) => void,
  ) {}

  private all(): Record<string, { keys: unknown; rules: AlertRule[] }> {
    const stored = this.state.get<unknown>(ALERT_RULES_KEY, {});
    const out: Record<string, { keys: unknown; rules: AlertRule[] }> = {};
    if (typeof stored !== 'object' || stored === null) return out;
    for (const [id, entry] of Object.entries(stored)) {
      const rules = parseAlertRules((entry as { rules?: unknown } | null)?.rules);
      if (!rules.ok) hostLog().warn(`alert rules of ${id} ignored: ${rules.error}`);
      else out[id] = { keys: (entry as { keys?: unknown }).keys, rules: rules.value };
    }
    return out;
  }

  load(keys: readonly RunKey[]): AlertRule[] {
    return this.all()[setId(keys)]?.rules ?? [];
  }

  async save(keys: readonly RunKey[], rules: AlertRule[]): Promise<void> {
    await this.state.update(ALERT_RULES_KEY, { ...this.all(), [setId(keys)]: { keys: [...keys], rules } });
    this.changed(keys);
  }

  /** Every rule on `key`: those of each set of runs that holds it. */
  forRun(key: RunKey): AlertRule[] {
    return Object.values(this.all()).flatMap((e) => (Array.isArray(e.keys) && e.keys.includes(key) ? e.rules : []));
  }
}

const setId = (keys: readonly RunKey[]) => JSON.stringify([...keys].sort());

/** Events older than this when a run is first seen are history (a minute of slack for a slow first read). */
const HISTORY_MS = 60_000;

interface Watched {
  alerts: RunAlerts;
  /** Rows of each table already fed to the rules. */
  rows: Map<string, number>;
}

export class AlertNotifier implements vscode.Disposable {
  private readonly watched = new Map<RunKey, Watched>();
  private readonly subscription: { dispose(): void };
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly store: RunStoreApi,
    private readonly rules: (key: RunKey) => AlertRule[],
    private readonly openDashboard: (keys: RunKey[]) => void,
  ) {
    this.subscription = store.onDidChange((change) => this.onChange(change));
    this.timer = setInterval(() => this.checkStale(), 5000);
    this.timer.unref();
  }

  /** Rules changed for `key`: they apply from the next record on. */
  reloadRules(key: RunKey): void {
    const data = this.store.get(key);
    this.watched.delete(key);
    if (data) this.watch(key, data);
  }

  dispose(): void {
    this.subscription.dispose();
    clearInterval(this.timer);
  }

  private watch(key: RunKey, data: RunData): Watched {
    const alerts = new RunAlerts(data.summary.name, this.rules(key), Date.now() - HISTORY_MS);
    alerts.onStatus(data.summary.status);
    alerts.onEvents(data.events); // history, not news
    const rows = new Map([...data.tables].map(([kind, t]) => [kind, t.length]));
    const train = data.tables.get('train');
    if (train) alerts.onRecordTimes(train.t.subarray(Math.max(0, train.length - 64), train.length));
    const watched = { alerts, rows };
    this.watched.set(key, watched);
    return watched;
  }

  private onChange(change: RunChange): void {
    const data = this.store.get(change.key);
    if (!data || change.removed) {
      this.watched.delete(change.key);
      return;
    }
    const known = this.watched.get(change.key);
    if (!known) return void this.watch(change.key, data);
    const { alerts, rows } = known;
    const out: Alert[] = [...alerts.onEvents(data.events)];
    for (const [kind, table] of data.tables) {
      const start = Math.min(rows.get(kind) ?? 0, table.length);
      if (start === table.length) continue;
      for (const [field, column] of table.fields) {
        out.push(
          ...alerts.onValues(
            kind,
            field,
            column.subarray(start, table.length),
            table.step.subarray(start, table.length),
          ),
        );
      }
      if (kind === 'train') alerts.onRecordTimes(table.t.subarray(start, table.length));
      rows.set(kind, table.length);
    }
    out.push(...alerts.onStatus(data.summary.status));
    this.show(change.key, out);
  }

  private checkStale(): void {
    for (const [key, { alerts }] of this.watched) this.show(key, alerts.checkStale(Date.now()));
  }

  private show(key: RunKey, alerts: Alert[]): void {
    const level = notifyLevel();
    for (const alert of alerts) {
      if (!shouldNotify(level, alert)) continue;
      const show = alert.problem ? vscode.window.showWarningMessage : vscode.window.showInformationMessage;
      void show(`Steelscope: ${alert.message}`, 'Open Dashboard').then((choice) => {
        if (choice === 'Open Dashboard') this.openDashboard([key]);
      });
    }
  }
}
