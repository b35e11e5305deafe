// Shows the alerts of watched runs as notifications with "Open Dashboard", and keeps the rules the
// dashboards set. Thin: which alerts, when, and how often is decided without vscode in watch.ts
// (the store's changes) and alerts.ts (one run's records).
import * as vscode from 'vscode';
import type { RunKey, RunStoreApi } from '../runs/types';
import { hostLog } from '../log';
import { NOTIFY_LEVELS, parseAlertRules, type Alert, type AlertRule, type NotifyLevel } from './alerts';
import { AlertWatch } from './watch';

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

/** Shows what the AlertWatch (watch.ts) decides, as notifications with "Open Dashboard". */
export class AlertNotifier implements vscode.Disposable {
  private readonly watch: AlertWatch;

  constructor(
    store: RunStoreApi,
    rules: (key: RunKey) => AlertRule[],
    private readonly openDashboard: (keys: RunKey[]) => void,
  ) {
    this.watch = new AlertWatch(store, { rules, level: notifyLevel, show: (key, alerts) => this.show(key, alerts) });
  }

  /** Rules changed for `key`: they apply from the next record on. */
  reloadRules(key: RunKey): void {
    this.watch.reloadRules(key);
  }

  dispose(): void {
    this.watch.dispose();
  }

  private show(key: RunKey, alerts: Alert[]): void {
    for (const alert of alerts) {
      const show = alert.problem ? vscode.window.showWarningMessage : vscode.window.showInformationMessage;
      void show(`Steelscope: ${alert.message}`, 'Open Dashboard').then((choice) => {
        if (choice === 'Open Dashboard') this.openDashboard([key]);
      });
    }
  }
}
