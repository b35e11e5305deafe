// The Evals section (evals.jsonl, src/shared/eval.ts): accuracy against step, one line per run and
// task (the task's macro average), each point with its 95% interval (acc ± 1.96·stderr) as an
// error bar; below it, every subject of each run's newest evaluation of each task in a table (the
// toolkit's data grid). Runs without evals.jsonl records leave the section hidden.
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
import { interval95, latestScores, MACRO_SUBJECT } from '../../src/shared/eval';
import type { EvalItem } from '../../src/shared/protocol';
import { el } from '../common/messenger';
import { button, table } from '../common/ui';
import type { RunModel } from './data';
import { backgroundPlugin, errorBarsPlugin, LINE_CHART_BASE, type IntervalPt } from './plugins';
import { runColor, type Theme } from './theme';

Chart.register(LineController, LineElement, PointElement, LinearScale, Tooltip, Legend);

/** Tasks of one run are told apart by the point's shape (the colour is the run's). */
const TASK_POINTS: PointStyle[] = ['circle', 'rect', 'triangle', 'rectRot', 'star', 'crossRot'];

interface EvalPt extends IntervalPt {
  n: number;
}

interface EvalLine {
  run: RunModel;
  task: string;
  color: string;
  points: EvalPt[];
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

/** The macro-average accuracy lines of the runs shown: one per run and task, ascending by step. */
export function evalLines(runs: readonly RunModel[], theme: Theme): EvalLine[] {
  const lines: EvalLine[] = [];
  for (const run of runs) {
    const byTask = new Map<string, EvalPt[]>();
    for (const r of latestScores(run.evals)) {
      if (r.subject !== MACRO_SUBJECT || r.acc === null) continue;
      const [lo, hi] = interval95(r.acc, r.stderr) ?? [undefined, undefined];
      const points = byTask.get(r.task) ?? [];
      points.push({ x: r.step, y: r.acc, lo, hi, n: r.n });
      byTask.set(r.task, points);
    }
    for (const [task, points] of byTask) lines.push({ run, task, color: runColor(theme, run.header.color), points });
  }
  return lines;
}

/** Per run and task, the subjects of its newest evaluated step (the average last). */
export function subjectRows(runs: readonly RunModel[]): Record<string, string>[] {
  return runs.flatMap((run) => {
    const latest = latestScores(run.evals);
    const newest = new Map<string, number>();
    for (const r of latest) newest.set(r.task, Math.max(newest.get(r.task) ?? -Infinity, r.step));
    const rows = latest.filter((r) => r.step === newest.get(r.task));
    const order = (r: EvalItem) => (r.subject === MACRO_SUBJECT ? 1 : 0);
    rows.sort((a, b) => a.task.localeCompare(b.task) || order(a) - order(b) || a.subject.localeCompare(b.subject));
    return rows.map((r) => {
      const ci = r.acc === null ? undefined : interval95(r.acc, r.stderr);
      return {
        run: run.header.name,
        task: r.task,
        subject: r.subject === MACRO_SUBJECT ? '(average)' : r.subject,
        step: r.step.toLocaleString('en-US'),
        n: r.n.toLocaleString('en-US'),
        acc: r.acc !== null ? pct(r.acc) : r.ppl !== null ? `ppl ${r.ppl.toFixed(2)}` : '—',
        interval: ci ? `${pct(ci[0])} – ${pct(ci[1])}` : '—',
        accNorm: r.accNorm !== null ? pct(r.accNorm) : '—',
      };
    });
  });
}

export class EvalsView {
  readonly root = el('section', { class: 'evals' });
  readonly chart: Chart<'line', EvalPt[]>;
  private lines: EvalLine[] = [];
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
    private readonly theme: () => Theme,
    /** Save PNG: the host asks where and writes it. */
    savePng: (chart: string, dataUrl: string) => void,
  ) {
    const heading = el('h2', { class: 'evals-heading' }, 'Evals');
    const card = el('section', { class: 'chart-card' });
    const head = el('div', { class: 'chart-head' });
    const save = button('Save PNG', { title: 'Save the Evals chart as a PNG image' });
    save.root.dataset.save = 'evals';
    save.onClick(() => savePng('evals', this.chart.toBase64Image('image/png')));
    head.append(el('h3', {}, 'Accuracy by step (macro average, 95% interval)'), save.root);
    const box = el('div', { class: 'chart-box' });
    const canvas = el('canvas', { 'data-chart': 'evals' });
    box.append(canvas);
    card.append(head, box);
    this.root.append(heading, card, this.grid.root);
    this.chart = new Chart<'line', EvalPt[]>(canvas, {
      type: 'line',
      data: { datasets: [] },
      options: this.options(),
      plugins: [
        backgroundPlugin(() => this.theme().bg),
        errorBarsPlugin(() => this.lines.map((l) => ({ points: l.points, color: l.color }))),
      ],
    });
    this.root.hidden = true;
  }

  private options(): ChartOptions<'line'> {
    const theme = this.theme();
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
        x: {
          type: 'linear',
          title: { display: true, text: 'step', color: theme.muted, padding: 0 },
          grid: { color: theme.grid },
          ticks: { color: theme.muted, precision: 0 },
        },
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
        tooltip: { callbacks: { title: (items) => this.title(items), label: (item) => this.label(item) } },
      },
    };
  }

  private title(items: TooltipItem<'line'>[]): string {
    return items.length ? `step ${items[0].parsed.x?.toLocaleString('en-US') ?? ''}` : '';
  }

  private label(item: TooltipItem<'line'>): string {
    const line = this.lines[item.datasetIndex];
    const p = line?.points[item.dataIndex];
    if (!line || !p) return '';
    const ci = p.lo !== undefined && p.hi !== undefined ? ` (95%: ${pct(p.lo)} – ${pct(p.hi)})` : '';
    return `${line.run.header.name} · ${line.task}: ${pct(p.y)}${ci}, n ${p.n}`;
  }

  /** Rebuilds the chart and the table from the held data (the runs not hidden). */
  render(): void {
    const runs = this.runs();
    const theme = this.theme();
    this.lines = evalLines(runs, theme);
    const rows = subjectRows(runs);
    this.root.hidden = this.lines.length === 0 && rows.length === 0;
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
