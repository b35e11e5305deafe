// Dashboard webview entry: a throw-away view of the host's state. It announces itself with
// "ready" (with the view it remembers, if reloaded), replaces everything on a snapshot, applies
// numbered deltas in order, and asks for a fresh snapshot when numbering has a gap.
import type { ChatHostMessage, HostToWebview, ViewState } from '../../src/shared/protocol';
import { DEFAULT_VIEW, isChatHostMessage } from '../../src/shared/protocol';
import { el, Messenger, throttle } from '../common/messenger';
import { loadToolkit, tabs } from '../common/ui';
import { AlertRulesView } from './alertRules';
import { ChartBoard, type BoardState } from './charts';
import { ChatView } from './chat';
import { CheckpointsView } from './checkpoints';
import { Controls } from './controls';
import { DashboardData } from './data';
import { EvalsView, type EvalsState } from './evals';
import { SamplesView, type SamplesState } from './samples';
import { readSavedState, type SavedState, type Tab } from './savedState';
import { exposeCharts, markPainted } from './testHooks';
import { readTheme } from './theme';

/** Set by the build: true in the test bundle only, so the production bundle holds no test hooks. */
declare const STEELSCOPE_TEST_HOOKS: boolean;

const messenger = new Messenger<SavedState>();
const saved = readSavedState(messenger.state);
const data = new DashboardData();
const hidden = new Set<string>(saved?.hidden ?? []);
const samplesState: SamplesState = saved?.samples ?? { run: null, stepIndex: null };
const evalsState: EvalsState = { step: saved?.evalStep ?? null };
let view: ViewState = saved?.view ?? DEFAULT_VIEW;
let theme = readTheme();
let waitingForSnapshot = false;
let tab: Tab = saved?.tab ?? 'samples';
let keys: string[] = saved?.keys ?? [];

const save = () => {
  messenger.state = { view, hidden: [...hidden], samples: samplesState, tab, keys, evalStep: evalsState.step };
};

const boardState: BoardState = {
  data,
  get view() {
    return view;
  },
  hidden,
  get theme() {
    return theme;
  },
  zoom: (range) => messenger.post({ type: 'zoom', range }),
  savePng: (chart, dataUrl) => messenger.post({ type: 'savePng', chart, dataUrl }),
  toggle: (id) => {
    if (!hidden.delete(id)) hidden.add(id);
    save();
    render();
  },
};

const app = document.getElementById('app') ?? document.body;
app.removeAttribute('aria-busy');
app.textContent = '';
const controls = new Controls((m) => messenger.post(m));
const status = el('div', { class: 'status-line' });
const chartsRoot = el('div', { class: 'charts' });
const alertRules = new AlertRulesView((m) => messenger.post(m));
const board = new ChartBoard(chartsRoot, () => boardState);
const samples = new SamplesView(() => [...data.runs.values()], samplesState, save);
// The Checkpoints and Chat views are built when their tab is first shown (fillTab).
let checkpoints: CheckpointsView | undefined;
let chat: ChatView | undefined;
// The chat's messages from before its view was built, from the newest snapshot on (a snapshot
// replaces all before it): the view takes them in order when it is built.
let chatBacklog: ChatHostMessage[] = [];
const evals = new EvalsView(
  () => [...data.runs.values()].filter((r) => !hidden.has(`run:${r.header.key}`)),
  () => ({ view, theme, extent: board.extent }),
  evalsState,
  save,
  (chart, dataUrl) => messenger.post({ type: 'savePng', chart, dataUrl }),
);
const tabBar = tabs(
  new Map<Tab, string>([
    ['samples', 'Samples'],
    ['checkpoints', 'Checkpoints'],
    ['chat', 'Chat'],
  ]),
  'Samples, checkpoints and chat',
  fillTab,
);
tabBar.root.classList.add('tabs');
tabBar.onChange((name) => {
  tab = name;
  save();
});
// The tab is chosen before the tabs join the page, so they lay out once, with it.
showTab(tab);
app.append(controls.root, controls.legend, alertRules.root, status, chartsRoot, evals.root, tabBar.root);

function fillTab(name: Tab, pane: HTMLElement): void {
  if (name === 'samples') return pane.append(samples.root);
  if (name === 'checkpoints') {
    checkpoints = new CheckpointsView(() => [...data.runs.values()]);
    pane.append(checkpoints.root);
    return checkpoints.render();
  }
  const view = new ChatView(
    (m) => messenger.post(m),
    () => {
      showTab('chat');
      view.root.scrollIntoView({ block: 'start' });
    },
  );
  chat = view;
  pane.append(view.root);
  for (const m of chatBacklog.splice(0)) view.receive(m);
}

function receiveChat(m: ChatHostMessage): void {
  if (chat) return chat.receive(m);
  if (m.type === 'chatSnapshot') chatBacklog = [];
  chatBacklog.push(m);
  if (m.type === 'chatSnapshot' && m.focus) showTab('chat'); // builds the view, which takes the focus
}

function showTab(name: Tab): void {
  tab = name;
  tabBar.show(name);
  save();
}

function render(): void {
  controls.show(view);
  controls.showRuns([...data.runs.values()], hidden, theme, boardState.toggle);
  status.textContent =
    data.runs.size === 0
      ? 'No data from these runs yet.'
      : view.range
        ? 'Zoomed: drag to zoom further, double-click to reset.'
        : 'Drag across a chart to zoom.';
  board.render();
  alertRules.showSeries([...data.runs.values()]);
  samples.render();
  checkpoints?.render();
  evals.render();
  if (STEELSCOPE_TEST_HOOKS) exposeCharts(new Map([...board.charts, ['evals', evals.chart]]));
}

// Deltas arrive at most 4/s; a burst of them (a reconnect) is drawn once per frame.
let frame = 0;
const renderSoon = () => {
  if (!frame)
    frame = requestAnimationFrame(() => {
      frame = 0;
      render();
    });
};

function requestSnapshot(reason: string): void {
  if (waitingForSnapshot) return;
  waitingForSnapshot = true;
  messenger.post({ type: 'requestSnapshot', reason });
}

function receive(m: HostToWebview): void {
  if (isChatHostMessage(m)) return receiveChat(m);
  if (m.type === 'alertRules') return alertRules.showRules(m.rules);
  if (m.type === 'snapshot') {
    waitingForSnapshot = false;
    data.snapshot(m);
    view = m.view;
    keys = m.keys;
    save();
    render();
    if (STEELSCOPE_TEST_HOOKS) requestAnimationFrame(markPainted);
    requestAnimationFrame(loadToolkitSoon);
    return;
  }
  if (waitingForSnapshot) return;
  if (data.delta(m) === null) requestSnapshot(`delta ${m.seq} does not follow ${data.seq}`);
  else renderSoon();
}

messenger.listen(receive);

// A theme switch changes the body's class; colours are re-read from the CSS variables.
new MutationObserver(
  throttle(() => {
    theme = readTheme();
    render();
  }, 50),
).observe(document.body, { attributes: true, attributeFilter: ['class'] });

/**
 * The controls' toolkit is loaded after the first chart paint (a task after the frame that drew
 * it), so it does not delay the charts; or a second after "ready" if no snapshot came by then.
 */
function loadToolkitSoon(): void {
  setTimeout(() => void loadToolkit());
}
setTimeout(loadToolkitSoon, 1000);

messenger.post({ type: 'ready', view: saved?.view ?? null });
