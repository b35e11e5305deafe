// The toolbar (x axis, smoothing, log scales, zoom reset) and the run legend. Plain elements
// styled with --vscode-* variables: the webview-ui-toolkit is deprecated, has no slider, and
// would add ~200 KB of web components for four controls.
import type { ViewState, WebviewToHost } from '../../src/shared/protocol';
import { X_AXES, type XAxis } from '../../src/shared/series';
import { el, throttle } from '../common/messenger';
import type { RunModel } from './data';
import { runColor, type Theme } from './theme';

const AXIS_LABELS: Record<XAxis, string> = { step: 'Step', tokens: 'Tokens', relative: 'Relative time', wall: 'Wall time' };

export class Controls {
  readonly root = el('div', { class: 'toolbar' });
  readonly legend = el('div', { class: 'run-legend' });
  private readonly axis = el('select', { 'aria-label': 'X axis' });
  private readonly smoothing = el('input', { type: 'range', min: '0', max: '0.99', step: '0.01', 'aria-label': 'Smoothing' });
  private readonly smoothingValue = el('span', { class: 'value' });
  private readonly logX = el('input', { type: 'checkbox' });
  private readonly logY = el('input', { type: 'checkbox' });
  private readonly reset = el('button', { type: 'button' }, 'Reset zoom');

  constructor(send: (m: WebviewToHost) => void) {
    this.axis.append(...X_AXES.map((a) => el('option', { value: a }, AXIS_LABELS[a])));
    const label = (text: string, ...children: HTMLElement[]) => { const l = el('label', {}, text); l.append(...children); return l; };
    this.root.append(
      label('X axis ', this.axis),
      label('Smoothing ', this.smoothing, this.smoothingValue),
      label('', this.logX, el('span', {}, 'log x')),
      label('', this.logY, el('span', {}, 'log y')),
      this.reset,
    );
    this.axis.addEventListener('change', () => send({ type: 'setXAxis', axis: this.axis.value as XAxis }));
    // Dragging the slider fires many inputs; the host re-smooths a million points per message.
    const sendSmoothing = throttle((w: number) => send({ type: 'setSmoothing', weight: w }), 120);
    this.smoothing.addEventListener('input', () => {
      this.smoothingValue.textContent = Number(this.smoothing.value).toFixed(2);
      sendSmoothing(Number(this.smoothing.value));
    });
    this.logX.addEventListener('change', () => send({ type: 'setScale', axis: 'x', log: this.logX.checked }));
    this.logY.addEventListener('change', () => send({ type: 'setScale', axis: 'y', log: this.logY.checked }));
    this.reset.addEventListener('click', () => send({ type: 'zoom', range: null }));
  }

  /** Shows the host's view (the host owns it; these controls only ask for changes). */
  show(view: ViewState): void {
    this.axis.value = view.xAxis;
    if (document.activeElement !== this.smoothing) this.smoothing.value = String(view.smoothing);
    this.smoothingValue.textContent = view.smoothing.toFixed(2);
    this.logX.checked = view.logX;
    this.logY.checked = view.logY;
    this.reset.hidden = view.range === null;
  }

  /** One chip per run: colour, name, status, malformed-line count; a click hides or shows the run. */
  showRuns(runs: RunModel[], hidden: Set<string>, theme: Theme, toggle: (id: string) => void): void {
    this.legend.replaceChildren(...runs.map((run) => {
      const h = run.header;
      const chip = el('button', { type: 'button', class: 'run-chip', 'aria-pressed': String(!hidden.has(`run:${h.key}`)), title: h.key });
      const swatch = el('span', { class: 'swatch' });
      swatch.style.backgroundColor = runColor(theme, h.color);
      chip.append(swatch, el('span', { class: 'name' }, h.name), el('span', { class: 'status' }, `${h.status}${h.lastStep !== null ? ` · step ${h.lastStep}` : ''}`));
      const bad = h.malformed.metrics + h.malformed.samples + h.malformed.events;
      if (bad > 0) {
        const m = h.malformed;
        chip.append(el('span', { class: 'malformed', title: `metrics ${m.metrics}, samples ${m.samples}, events ${m.events}` }, `${bad} malformed line${bad === 1 ? '' : 's'} skipped`));
      }
      chip.addEventListener('click', () => toggle(`run:${h.key}`));
      return chip;
    }));
  }
}
