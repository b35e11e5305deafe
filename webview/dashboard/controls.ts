// The toolbar (x axis, smoothing, log scales, zoom reset) and the run legend. Controls come from
// webview/common/ui.ts (the toolkit); the smoothing slider is a native range input (it has none).
import type { ViewState, WebviewToHost } from '../../src/shared/protocol';
import { X_AXES, type XAxis } from '../../src/shared/series';
import { el, throttle } from '../common/messenger';
import { button, checkbox, dropdown, slider } from '../common/ui';
import type { RunModel } from './data';
import { runColor, type Theme } from './theme';

const isXAxis = (v: string): v is XAxis => (X_AXES as readonly string[]).includes(v);
const AXIS_LABELS: Record<XAxis, string> = {
  step: 'Step',
  tokens: 'Tokens',
  relative: 'Relative time',
  wall: 'Wall time',
};

export class Controls {
  readonly root = el('div', { class: 'toolbar' });
  readonly legend = el('div', { class: 'run-legend' });
  private readonly axis = dropdown('X axis');
  private readonly smoothing = slider('Smoothing', { min: '0', max: '0.99', step: '0.01' });
  private readonly smoothingValue = el('span', { class: 'value' });
  private readonly logX = checkbox('log x');
  private readonly logY = checkbox('log y');
  private readonly reset = button('Reset zoom');

  constructor(send: (m: WebviewToHost) => void) {
    this.axis.setOptions(X_AXES.map((a) => ({ value: a, label: AXIS_LABELS[a] })));
    const label = (text: string, ...children: HTMLElement[]) => {
      const l = el('label', {}, text);
      l.append(...children);
      return l;
    };
    this.root.append(
      label('X axis ', this.axis.root),
      label('Smoothing ', this.smoothing, this.smoothingValue),
      this.logX.root,
      this.logY.root,
      this.reset.root,
    );
    this.axis.onChange((axis) => {
      if (isXAxis(axis)) send({ type: 'setXAxis', axis });
    });
    // Dragging the slider fires many inputs; the host re-smooths a million points per message.
    const sendSmoothing = throttle((w: number) => send({ type: 'setSmoothing', weight: w }), 120);
    this.smoothing.addEventListener('input', () => {
      this.smoothingValue.textContent = Number(this.smoothing.value).toFixed(2);
      sendSmoothing(Number(this.smoothing.value));
    });
    this.logX.onChange((log) => send({ type: 'setScale', axis: 'x', log }));
    this.logY.onChange((log) => send({ type: 'setScale', axis: 'y', log }));
    this.reset.onClick(() => send({ type: 'zoom', range: null }));
  }

  /** Shows the host's view (the host owns it; these controls only ask for changes). */
  show(view: ViewState): void {
    this.axis.value = view.xAxis;
    if (document.activeElement !== this.smoothing) this.smoothing.value = String(view.smoothing);
    this.smoothingValue.textContent = view.smoothing.toFixed(2);
    this.logX.checked = view.logX;
    this.logY.checked = view.logY;
    this.reset.root.hidden = view.range === null;
  }

  /** One chip per run: colour, name, status, malformed-line count; a click hides or shows the run. */
  showRuns(runs: RunModel[], hidden: Set<string>, theme: Theme, toggle: (id: string) => void): void {
    this.legend.replaceChildren(
      ...runs.map((run) => {
        const h = run.header;
        const chip = el('button', {
          type: 'button',
          class: 'run-chip',
          'aria-pressed': String(!hidden.has(`run:${h.key}`)),
          title: h.key,
        });
        const swatch = el('span', { class: 'swatch' });
        swatch.style.backgroundColor = runColor(theme, h.color);
        chip.append(
          swatch,
          el('span', { class: 'name' }, h.name),
          el('span', { class: 'status' }, `${h.status}${h.lastStep !== null ? ` · step ${h.lastStep}` : ''}`),
        );
        const bad = h.malformed.metrics + h.malformed.samples + h.malformed.events + (h.malformed.system ?? 0);
        if (bad > 0) {
          const m = h.malformed;
          chip.append(
            el(
              'span',
              {
                class: 'malformed',
                title: `metrics ${m.metrics}, samples ${m.samples}, events ${m.events}, system ${m.system ?? 0}`,
              },
              `${bad} malformed line${bad === 1 ? '' : 's'} skipped`,
            ),
          );
        }
        if (h.engine !== null) chip.append(el('span', { class: 'status engine' }, h.engine));
        if (!h.timed) {
          const note = 'its records have no time (t, time, timestamp, wall_time or _timestamp): not on the time axes';
          chip.append(el('span', { class: 'status', title: note }, 'no wall time'));
        }
        chip.addEventListener('click', () => toggle(`run:${h.key}`));
        return chip;
      }),
    );
  }
}
