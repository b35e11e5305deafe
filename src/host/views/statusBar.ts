// A status-bar item for the focused run: step, loss and tokens/s; a click opens its dashboard.
// The focused run is the one whose dashboard was used last, else the newest running run.
import * as vscode from 'vscode';
import { isActiveStatus } from '../../shared/run';
import type { RunKey, RunStoreApi, RunSummary } from '../runs/types';

export class RunStatusBar implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem(
    'steelscope.focusedRun',
    vscode.StatusBarAlignment.Left,
    50,
  );
  private focused: RunKey | undefined;
  private readonly subscription: { dispose(): void };

  constructor(private readonly store: RunStoreApi) {
    this.item.name = 'Steelscope: Focused Run';
    this.subscription = store.onDidChange(() => this.render());
    this.render();
  }

  focus(key: RunKey): void {
    this.focused = key;
    this.render();
  }

  private pick(): RunSummary | undefined {
    const focused = this.focused ? this.store.get(this.focused)?.summary : undefined;
    if (focused) return focused;
    const running = [...this.store.runs.values()].map((r) => r.summary).filter((s) => isActiveStatus(s.status));
    return running.sort((a, b) => (b.info?.createdAt ?? '').localeCompare(a.info?.createdAt ?? ''))[0];
  }

  private render(): void {
    const run = this.pick();
    if (!run) {
      this.item.hide();
      return;
    }
    const icon =
      run.status === 'running'
        ? '$(pulse)'
        : run.status === 'stale' || run.status === 'failed'
          ? '$(warning)'
          : '$(graph-line)';
    const parts = [`${icon} ${run.name}`];
    if (run.lastStep !== undefined) parts.push(`step ${run.lastStep}`);
    if (run.lastLoss !== undefined)
      parts.push(`loss ${Number.isFinite(run.lastLoss) ? run.lastLoss.toFixed(3) : String(run.lastLoss)}`);
    if (run.lastTokPerS !== undefined && run.status === 'running')
      parts.push(`${Math.round(run.lastTokPerS).toLocaleString('en-US')} tok/s`);
    this.item.text = parts.join(' · ');
    this.item.tooltip = `Steelscope: ${run.name} (${run.status}) — click to open its dashboard`;
    this.item.command = {
      command: 'steelscope.openDashboard',
      title: 'Open Dashboard',
      arguments: [{ kind: 'run', key: run.key }],
    };
    this.item.show();
  }

  dispose(): void {
    this.subscription.dispose();
    this.item.dispose();
  }
}
