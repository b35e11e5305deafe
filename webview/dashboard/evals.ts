// The Evals section (evals.jsonl, src/shared/eval.ts): accuracy along the dashboard's x axis (step,
// tokens, wall or relative time: the host places each record at its step's train record), one line
// per run and task (the task's macro average), each point with its 95% interval (acc ± 1.96·stderr)
// as an error bar; below it, every subject of each run's evaluation of each task at a chosen step
// (newest by default) in a table (the toolkit's data grid). Runs without evals.jsonl records leave
// the section hidden.
import {
  Chart,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Tooltip,
  type ChartDataset,
  type ChartOptions,
  type PointStyle,
  type TooltipItem,
} from 'chart.js';
import type { ViewState } from '../../src/shared/protocol';
import { el } from '../common/messenger';
import { button, dropdown, table } from '../common/ui';
import { xLabel } from './axes';
import { xScale } from './charts';
import type { RunModel } from './data';
import { evaluatedSteps, evalLines, evalsExtent, pct, subjectRows, type EvalLine, type EvalPt } from './evalsModel';
import { backgroundPlugin, errorBarsPlugin, LINE_CHART_BASE } from './plugins';
import type { Theme } from './theme';

Chart.register(LineController, LineElement, PointElement, LinearScale, Tooltip, Legend);

/** Tasks of one run are told apart by the point's shape (the colour is the run's). */
const TASK_POINTS: PointStyle[] = ['circle', 'rect', 'triangle', 'rectRot', 'star', 'crossRot'];

/** What the Evals chart follows: the dashboard's view (x axis, log x, zoom), theme, and the charts' x-range. */
export interface EvalsContext {
  view: ViewState;
  theme: Theme;
  extent: [number, number] | null;
}

/** The table's step, kept with the dashboard's saved state; null follows the newest. */
export interface EvalsState {
  step: number | null;
}

export class EvalsView {
  readonly root = el('section', { class: 'evals' });
  readonly chart: Chart<'line', EvalPt[]>;
  private lines: EvalLine[] = [];
  private readonly stepSelect = dropdown('Step of the subjects table');
  private readonly grid = table('Evals by subject', [
    { key: 'run', title: 'Run', width: 'minmax(8em, 2fr)' },
    { key: 'task', title: 'Task', width: 'minmax(6em, 1.5fr)' },
    { key: 'subject', title: 'Subject', width: 'minmax(6em, 1.5fr)' },
    { key: 'step', title: 'Step', width: '1fr' },
    { key: 'n', title: 'n', width: '0.8fr' },
    { key: 'acc', title: 'Accuracy', width: '1fr' },
    { key: 'interval', title: '95% interval', width: '1.6fr' },
    { key: 'accNorm', title: 'acc_norm', width: '1fr' },
  ]);
  private shownRows = '';

  constructor(
    private readonly runs: () => RunModel[],
    private readonly context: () => EvalsContext,
    private readonly state: EvalsState,
    /** The table's step was chosen: save the state. */
    changed: () => void,
    /** Save PNG: the host asks where and writes it. */
    savePng: (chart: string, dataUrl: string) => void,
  ) {
    const heading = el('h2', { class: 'evals-heading' }, 'Evals');
    const card = el('section', { class: 'chart-card' });
    const head = el('div', { class: 'chart-head' });
    const save = button('Save PNG', { title: 'Save the Evals chart as a PNG image' });
    save.root.dataset.save = 'evals';
    save.onClick(() => savePng('evals', this.chart.toBase64Image('image/png')));
    head.append(el('h3', {}, 'Accuracy (macro average, 95% interval)'), save.root);
    const box = el('div', { class: 'chart-box' });
    const canvas = el('canvas', { 'data-chart': 'evals' });
    box.append(canvas);
    card.append(head, box);
    const bar = el('label', { class: 'evals-bar' }, 'Subjects at step ');
    bar.append(this.stepSelect.root);
    this.stepSelect.onChange((value) => {
      const step = Number(value);
      // The newest chosen follows new evaluations as they arrive.
      this.state.step = step === evaluatedSteps(this.runs())[0] ? null : step;
      this.render();
      changed();
    });
    this.root.append(heading, card, bar, this.grid.root);
    this.chart = new Chart<'line', EvalPt[]>(canvas, {
      type: 'line',
      data: { datasets: [] },
      options: this.options(),
      plugins: [
        backgroundPlugin(() => this.context().theme.bg),
        errorBarsPlugin(() => this.lines.map((l) => ({ points: l.points, color: l.color }))),
      ],
    });
    this.root.hidden = true;
  }

  private options(): ChartOptions<'line'> {
    const { view, theme, extent } = this.context();
    // chart.js scales to the points alone: the bounds include the error bars, within [0, 1].
    const ends = this.lines.flatMap((l) => l.points.flatMap((p) => [p.lo ?? p.y, p.hi ?? p.y]));
    const pad = 0.02;
    const min = ends.length ? Math.max(0, Math.min(...ends) - pad) : 0;
    const max = ends.length ? Math.min(1, Math.max(...ends) + pad) : 1;
    return {
      ...LINE_CHART_BASE,
      interaction: { mode: 'nearest', intersect: false },
      elements: { point: { radius: 3, hitRadius: 6 }, line: { borderWidth: 1.5 } },
      scales: {
        x: xScale(view, theme, evalsExtent(this.lines, extent)),
        y: {
          type: 'linear',
          min,
          max,
          title: { display: true, text: 'accuracy', color: theme.muted, padding: 0 },
          grid: { color: theme.grid },
          ticks: { color: theme.muted, callback: (v) => `${Math.round(100 * Number(v))}%` },
        },
      },
      plugins: {
        legend: { labels: { color: theme.fg, boxWidth: 12, usePointStyle: true } },
        tooltip: {
          callbacks: {
            title: (items) => (items.length ? xLabel(view.xAxis, items[0].parsed.x ?? 0) : ''),
            label: (item) => this.label(item, view),
          },
        },
      },
    };
  }

  private label(item: TooltipItem<'line'>, view: ViewState): string {
    const line = this.lines[item.datasetIndex];
    const p = line?.points[item.dataIndex];
    if (!line || !p) return '';
    const ci = p.lo !== undefined && p.hi !== undefined ? ` (95%: ${pct(p.lo)} – ${pct(p.hi)})` : '';
    const at = view.xAxis === 'step' ? '' : ` at step ${p.step.toLocaleString('en-US')}`;
    return `${line.run.header.name} · ${line.task}: ${pct(p.y)}${ci}, n ${p.n}${at}`;
  }

  /** The table's step choices, newest first; a chosen step no longer among them falls back to the newest. */
  private showSteps(runs: readonly RunModel[]): number | null {
    const steps = evaluatedSteps(runs);
    if (this.state.step !== null && !steps.includes(this.state.step)) this.state.step = null;
    const choices = steps.map((step, i) => ({
      value: String(step),
      label: `${step.toLocaleString('en-US')}${i === 0 ? ' (newest)' : ''}`,
    }));
    this.stepSelect.setOptions(choices, String(this.state.step ?? steps[0] ?? ''));
    return this.state.step;
  }

  /** Rebuilds the chart and the table from the held data (the runs not hidden). */
  render(): void {
    const runs = this.runs();
    const { view, theme } = this.context();
    this.lines = evalLines(runs, theme, view.logX);
    const rows = subjectRows(runs, this.showSteps(runs));
    this.root.hidden = runs.every((r) => r.evals.length === 0);
    const tasks = [...new Set(this.lines.map((l) => l.task))].sort();
    const datasets: ChartDataset<'line', EvalPt[]>[] = this.lines.map((l) => ({
      label: `${l.run.header.name} · ${l.task}`,
      data: l.points,
      borderColor: l.color,
      backgroundColor: l.color,
      pointStyle: TASK_POINTS[tasks.indexOf(l.task) % TASK_POINTS.length],
    }));
    this.chart.data.datasets = datasets;
    this.chart.options = this.options();
    if (!this.root.hidden) this.chart.update('none');
    const points = this.lines.reduce((n, l) => n + l.points.length, 0);
    this.chart.canvas.dataset.points = String(points);
    this.chart.canvas.setAttribute('aria-label', `evals chart, ${points} evaluated points`);
    const key = JSON.stringify(rows);
    if (key === this.shownRows) return; // the grid rebuilds its rows on every set: only when they change
    this.shownRows = key;
    this.grid.setRows(rows);
  }
}
