// The dashboard WebviewPanel: one per set of runs. The host owns the state (DashboardModel); the
// webview is a throw-away view that gets a snapshot on "ready" and then numbered deltas, at most
// four a second. Every message from the webview is checked against the protocol before use.
import * as vscode from 'vscode';
import {
  checkWebviewMessage,
  DEFAULT_VIEW,
  ViewStateSchema,
  type HostToWebview,
  type ViewState,
  type WebviewToHost,
} from '../../shared/protocol';
import { parseOrUndefined } from '../../shared/schema';
import { chatCheckpoints, DashboardChat, type ChatHub } from '../chat/dashboardChat';
import { hostLog } from '../log';
import type { Disposable, RunKey, RunStoreApi } from '../runs/types';
import { dashboardSmoothing } from '../settings';
import { dashboardHtml, makeNonce } from './dashboardHtml';
import { DashboardModel } from './dashboardModel';
import { saveChartPng } from './savePng';
import type { AlertRuleStore } from '../alerts/notifier';

export const DASHBOARD_VIEW_TYPE = 'steelscope.dashboard';
/** workspaceState key: the axis choices a new panel starts with. */
const VIEW_STATE_KEY = 'steelscope.dashboard.view';
/** workspaceState key prefix: a panel's chat (by its set of runs), kept across window reloads. */
const CHAT_STATE_KEY = 'steelscope.dashboard.chat';
/** Deltas to the webview are throttled to this interval (≤ 4/s); the store flushes every ~150 ms. */
const DELTA_INTERVAL_MS = 250;

/** The axis choices this workspace last used; else the defaults, smoothing from the settings. */
function storedView(context: vscode.ExtensionContext): ViewState {
  const smoothing = dashboardSmoothing(DEFAULT_VIEW.smoothing);
  const defaults = parseOrUndefined(ViewStateSchema, { ...DEFAULT_VIEW, smoothing }) ?? DEFAULT_VIEW;
  const stored: unknown = context.workspaceState.get(VIEW_STATE_KEY);
  const view = { ...defaults, ...(typeof stored === 'object' && stored ? stored : {}), range: null };
  return parseOrUndefined(ViewStateSchema, view) ?? defaults;
}

/** One panel per set of runs, whatever their order. */
function panelId(keys: readonly RunKey[]): string {
  return [...new Set(keys)].sort().join('\n');
}

function webviewOptions(context: vscode.ExtensionContext): vscode.WebviewOptions & vscode.WebviewPanelOptions {
  return {
    enableScripts: true,
    localResourceRoots: [
      vscode.Uri.joinPath(context.extensionUri, 'dist', 'webview'),
      vscode.Uri.joinPath(context.extensionUri, 'media'),
    ],
  };
}

/** The run keys a dashboard webview saved, checked (the state comes from the webview: untrusted). */
function savedKeys(state: unknown): RunKey[] {
  const keys = typeof state === 'object' && state !== null && 'keys' in state ? state.keys : undefined;
  return Array.isArray(keys)
    ? keys.filter((k): k is string => typeof k === 'string' && k.length > 0 && k.length < 4096).slice(0, 64)
    : [];
}

export class DashboardPanel {
  private static readonly open = new Map<string, DashboardPanel>();

  /** Shows the dashboard of these runs, reusing the panel already showing the same set. */
  static show(
    context: vscode.ExtensionContext,
    store: RunStoreApi,
    keys: RunKey[],
    hub: ChatHub,
    alerts: AlertRuleStore,
  ): DashboardPanel {
    const existing = DashboardPanel.open.get(panelId(keys));
    if (existing) {
      existing.panel.reveal();
      return existing;
    }
    const panel = vscode.window.createWebviewPanel(
      DASHBOARD_VIEW_TYPE,
      'Steelscope',
      vscode.ViewColumn.Active,
      webviewOptions(context),
    );
    return DashboardPanel.adopt(context, store, keys, panel, hub, alerts);
  }

  /**
   * Restores the dashboards of the last session after a window reload: VS Code hands back each
   * panel with the state its webview saved (vscode.setState), which names its runs.
   */
  static registerSerializer(
    context: vscode.ExtensionContext,
    store: RunStoreApi,
    hub: ChatHub,
    alerts: AlertRuleStore,
  ): vscode.Disposable {
    return vscode.window.registerWebviewPanelSerializer(DASHBOARD_VIEW_TYPE, {
      deserializeWebviewPanel: (panel, state: unknown) => {
        const keys = savedKeys(state);
        if (keys.length === 0 || DashboardPanel.open.has(panelId(keys)))
          panel.dispose(); // nothing to show, or shown already
        else DashboardPanel.adopt(context, store, keys, panel, hub, alerts);
        return Promise.resolve();
      },
    });
  }

  private static adopt(
    context: vscode.ExtensionContext,
    store: RunStoreApi,
    keys: RunKey[],
    panel: vscode.WebviewPanel,
    hub: ChatHub,
    alerts: AlertRuleStore,
  ): DashboardPanel {
    panel.webview.options = webviewOptions(context);
    const created = new DashboardPanel(context, store, [...new Set(keys)], panel, panelId(keys), hub, alerts);
    DashboardPanel.open.set(created.id, created);
    return created;
  }

  private readonly model: DashboardModel;
  /** The Chat tab's state; it outlives the webview (src/host/chat/dashboardChat.ts). */
  private readonly chat: DashboardChat;
  private readonly disposables: Disposable[] = [];
  private timer: NodeJS.Timeout | undefined;
  private lastSent = 0;
  /** Until the webview says "ready", messages would be lost: it gets a snapshot then. */
  private ready = false;

  private constructor(
    private readonly context: vscode.ExtensionContext,
    private readonly store: RunStoreApi,
    keys: RunKey[],
    private readonly panel: vscode.WebviewPanel,
    private readonly id: string,
    hub: ChatHub,
    private readonly alerts: AlertRuleStore,
  ) {
    this.model = new DashboardModel(store, keys, storedView(context));
    const chatKey = `${CHAT_STATE_KEY}:${id}`;
    const memory = {
      load: () => context.workspaceState.get(chatKey),
      save: (chat: unknown) => void context.workspaceState.update(chatKey, chat),
    };
    this.chat = new DashboardChat(
      hub,
      () => chatCheckpoints(store, keys),
      (m) => this.postChat(m),
      memory,
    );
    this.updateTitle();
    panel.iconPath = vscode.Uri.joinPath(context.extensionUri, 'media', 'steelscope.svg');
    panel.webview.html = this.html();
    // The webview takes a few hundred ms to load; the first snapshot is computed meanwhile.
    setImmediate(() => {
      if (!this.ready) this.model.prepare();
    });
    this.disposables.push(
      panel.webview.onDidReceiveMessage((m: unknown) => this.receive(m)),
      panel.onDidDispose(() => this.dispose()),
      // A hidden webview is gone (chat tokens included); the one shown next says "ready" again.
      panel.onDidChangeViewState(() => {
        if (!panel.visible) this.ready = false;
      }),
      store.onDidChange((change) => {
        if (!this.model.accept(change)) return;
        if (change.summaryChanged) {
          this.updateTitle();
          this.chat.checkpointsChanged();
        }
        this.schedule();
      }),
    );
  }

  private html(): string {
    const webview = this.panel.webview;
    const asset = (...p: string[]) =>
      webview.asWebviewUri(vscode.Uri.joinPath(this.context.extensionUri, ...p)).toString();
    return dashboardHtml({
      cspSource: webview.cspSource,
      nonce: makeNonce(),
      styleNonce: makeNonce(),
      scriptUri: asset('dist', 'webview', 'dashboard.js'),
      styleUri: asset('dist', 'webview', 'dashboard.css'),
      title: this.panel.title,
    });
  }

  private updateTitle(): void {
    const names = this.model.keys.map((k) => this.store.get(k)?.summary.name ?? k.split(/[\\/]/).pop() ?? k);
    this.panel.title = names.length > 2 ? `${names.slice(0, 2).join(', ')} +${names.length - 2}` : names.join(', ');
  }

  private receive(raw: unknown): void {
    const checked = checkWebviewMessage(raw);
    if (!checked.ok) {
      hostLog().warn(`dashboard: dropped a malformed message (${checked.error})`);
      return;
    }
    this.handle(checked.message);
  }

  private handle(m: WebviewToHost): void {
    switch (m.type) {
      case 'ready':
        this.ready = true;
        // A reloaded webview remembers its view (vscode.setState); the zoom is not kept.
        if (m.view) this.model.setView({ ...m.view, range: null });
        this.post(this.model.snapshot());
        this.sendAlertRules();
        return this.chat.resend();
      case 'requestSnapshot':
        return this.post(this.model.snapshot());
      case 'setSmoothing':
        return this.changeView({ smoothing: m.weight });
      case 'setXAxis':
        return this.changeView({ xAxis: m.axis, range: null });
      case 'setScale':
        return this.changeView(m.axis === 'x' ? { logX: m.log } : { logY: m.log });
      case 'zoom':
        return this.changeView({ range: m.range });
      case 'savePng':
        return void saveChartPng(
          this.model.keys.flatMap((k) => this.store.get(k)?.summary ?? []),
          m.chart,
          m.dataUrl,
        );
      case 'setAlertRules':
        return void this.alerts.save(this.model.keys, m.rules).then(() => this.sendAlertRules());
      case 'chatSend':
      case 'chatRegenerate':
      case 'chatStop':
      case 'chatClear':
      case 'chatSelect':
        return this.chat.handle(m);
    }
  }

  /** Brings the panel forward on its Chat tab, with this checkpoint chosen. */
  focusChat(checkpointDir?: string): void {
    this.panel.reveal();
    this.chat.focus(checkpointDir);
  }

  /** Chat messages go out unthrottled; a webview that is not there gets the chat snapshot on "ready". */
  private postChat(message: HostToWebview): boolean {
    if (!this.ready || !this.panel.visible) return false;
    void this.panel.webview.postMessage(message);
    return true;
  }

  private changeView(patch: Partial<ViewState>): void {
    this.model.setView(patch);
    const { range: _range, ...remembered } = this.model.view;
    void this.context.workspaceState.update(VIEW_STATE_KEY, remembered);
    // A view change answers the user's own action: send it now, not on the throttle.
    this.flush();
  }

  private schedule(): void {
    if (this.timer) return;
    const wait = Math.max(0, this.lastSent + DELTA_INTERVAL_MS - Date.now());
    this.timer = setTimeout(() => this.flush(), wait);
  }

  private flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    // A hidden panel's webview is gone; it says "ready" again when it is shown.
    if (!this.panel.visible) this.ready = false;
    if (!this.ready) return; // changes reach it in the snapshot it gets on "ready"
    const message = this.model.next();
    if (message) this.post(message);
  }

  private sendAlertRules(): void {
    this.post({ type: 'alertRules', rules: this.alerts.load(this.model.keys) });
  }

  private post(message: HostToWebview): void {
    this.lastSent = Date.now();
    void this.panel.webview.postMessage(message);
  }

  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    DashboardPanel.open.delete(this.id);
    this.chat.dispose();
    for (const d of this.disposables.splice(0)) d.dispose();
  }
}
