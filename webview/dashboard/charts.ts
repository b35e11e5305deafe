// The charts: one per group (loss with train and eval, gradient norm with its clip threshold,
// learning rate, tokens/s, then every other numeric series a writer logs). Every render rebuilds
// the dataset list from the held data — cheap, the points are already downsampled — so snapshot,
// delta, legend toggles and theme changes all take the same path.
import {
  Chart,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  LogarithmicScale,
  PointElement,
  Tooltip,
  type ChartDataset,
  type ChartOptions,
  type LegendItem,
  type Scale,
  type TooltipItem,
} from 'chart.js';
import { primaryLossField } from '../../src/shared/metricFields';
import type { ViewState } from '../../src/shared/protocol';
import { SYSTEM_KIND } from '../../src/shared/system';
import { compactNumber, logTicks, xLabel, xTickLabel, xTicks, xTitle } from './axes';
import type { DashboardData, MarkerPt, Pt, RunModel, SeriesData } from './data';
import { button } from '../common/ui';
import { backgroundPlugin, clipPlugin, eventsPlugin, LINE_CHART_BASE, selectPlugin, type EventLine } from './plugins';
import { runColor, withAlpha, type Theme } from './theme';

Chart.register(LineController, LineElement, PointElement, LinearScale, LogarithmicScale, Tooltip, Legend);

export interface BoardState {
  data: DashboardData;
  view: ViewState;
  /** `run:<key>` hides a run everywhere; `<chart>|<run>|<series>` one line of one chart. */
  hidden: Set<string>;
  theme: Theme;
  zoom(range: [number, number] | null): void;
  toggle(id: string): void;
  /** Save Chart as PNG: the host asks where and writes it. */
  savePng(chart: string, dataUrl: string): void;
}

const FIXED: [string, string][] = [
  ['loss', 'Loss'],
  ['grad_norm', 'Gradient norm'],
  ['lr', 'Learning rate'],
  ['tok_per_s', 'Tokens/s'],
];
const EVENT_LABELS: Record<string, string> = { spike: 'S', resume: 'R', checkpoint: 'C', nan: 'N', crash: '✕' };

/**
 * The System section's charts (system.jsonl, src/shared/system.ts): a field pattern, the chart's
 * key and title. One chart per quantity: every GPU's line in one chart, used memory beside total.
 */
const SYSTEM_CHARTS: [RegExp, string, string][] = [
  [/^cpu_pct$/, 'system/cpu', 'CPU % (trainer process)'],
  [/^rss_gb$/, 'system/rss', 'Trainer RSS (GB)'],
  [/^host_mem_(used|total)_gb$/, 'system/host_mem', 'Host memory (GB)'],
  [/^gpu\d+\/util_pct$/, 'system/gpu_util', 'GPU utilization %'],
  [/^gpu\d+\/mem_(used|total)_gb$/, 'system/gpu_mem', 'GPU memory (GB)'],
  [/^gpu\d+\/power_w$/, 'system/gpu_power', 'GPU power (W)'],
  [/^gpu\d+\/temp_c$/, 'system/gpu_temp', 'GPU temperature (°C)'],
];

/** Charts of the System section start with this (below the training charts, under their own heading). */
const SYSTEM_PREFIX = `${SYSTEM_KIND}/`;

/**
 * Which chart a series belongs to. `lossField` is its run's loss series of that kind (lossFieldsOf):
 * a run from another logger (`train/loss`, `train_loss`, `loss_step`) is plotted on the Loss chart too.
 */
export function chartOf(kind: string, field: string, lossField: string | undefined): string {
  if (kind === SYSTEM_KIND)
    return SYSTEM_CHARTS.find(([pattern]) => pattern.test(field))?.[1] ?? `${SYSTEM_PREFIX}${field}`;
  if (field === lossField && (kind === 'train' || kind === 'eval')) return 'loss';
  if (kind === 'train' && FIXED.some(([k]) => k === field)) return field;
  return kind === 'train' ? field : `${kind}/${field}`;
}

/** Each kind's loss series in a run, by the one rule the Runs view uses too (primaryLossField). */
function lossFieldsOf(run: RunModel): Map<string, string | undefined> {
  const fields = new Map<string, string[]>();
  for (const s of run.series.values()) fields.set(s.kind, [...(fields.get(s.kind) ?? []), s.field]);
  return new Map([...fields].map(([kind, names]) => [kind, primaryLossField(names)]));
}

/** How many labelled ticks fit along a scale without their labels touching. */
function tickCount(scale: Scale): number {
  return Math.max(2, Math.floor(scale.isHorizontal() ? scale.chart.width / 90 : scale.chart.height / 36));
}

/**
 * The x scale of every dashboard chart (the Evals chart's too): the view's axis, linear or log, the
 * zoomed range or `extent`, and ticks and labels from axes.ts.
 */
export function xScale(view: ViewState, theme: Theme, extent: [number, number] | null) {
  const [min, max] = view.range ?? extent ?? [undefined, undefined];
  let xStep = 1; // the distance between x ticks, which time labels choose their unit by
  return {
    type: (view.logX ? 'logarithmic' : 'linear') as 'linear',
    min: view.logX && min !== undefined && min <= 0 ? undefined : min,
    max,
    title: { display: true, text: xTitle(view.xAxis), color: theme.muted, padding: 0 },
    grid: { color: theme.grid },
    ticks: {
      color: theme.muted,
      maxRotation: 0,
      callback: (v: number | string) => xTickLabel(view.xAxis, Number(v), xStep),
    },
    afterBuildTicks: (scale: Scale) => {
      const chosen = xTicks(view.xAxis, view.logX, scale.min, scale.max, tickCount(scale));
      xStep = chosen.step;
      if (chosen.ticks.length) scale.ticks = chosen.ticks.map((value) => ({ value }));
    },
  };
}

interface DatasetMeta {
  run: RunModel;
  series: SeriesData;
  role: 'raw' | 'smooth' | 'markers';
  group: string;
}

class ChartView {
  readonly card: HTMLElement;
  readonly chart: Chart<'line', Pt[]>;
  meta: DatasetMeta[] = [];
  lines: EventLine[] = [];
  clip: { value: number; color: string } | null = null;
  /** x-range of all shown data, so every chart shares one x axis. */
  extent: [number, number] | null = null;

  constructor(
    readonly key: string,
    title: string,
    private readonly state: () => BoardState,
  ) {
    this.card = document.createElement('section');
    this.card.className = 'chart-card';
    const head = document.createElement('div');
    head.className = 'chart-head';
    const h = document.createElement('h3');
    h.textContent = title;
    const save = button('Save PNG', { title: `Save the ${title} chart as a PNG image` });
    save.root.dataset.save = key;
    // The picture has the theme's background (backgroundPlugin), so it reads outside the editor too.
    save.onClick(() => this.state().savePng(key, this.chart.toBase64Image('image/png')));
    head.append(h, save.root);
    const box = document.createElement('div');
    box.className = 'chart-box';
    const canvas = document.createElement('canvas');
    canvas.dataset.chart = key;
    box.append(canvas);
    this.card.append(head, box);
    this.chart = new Chart<'line', Pt[]>(canvas, {
      type: 'line',
      data: { datasets: [] },
      options: this.options(),
      plugins: [
        backgroundPlugin(() => this.state().theme.bg),
        eventsPlugin(() => this.lines),
        clipPlugin(() => this.clip),
        selectPlugin(
          (r) => this.state().zoom(r),
          () => withAlpha(this.state().theme.fg, 0.12),
          () => this.lines,
        ),
      ],
    });
  }

  private options(): ChartOptions<'line'> {
    const { view, theme } = this.state();
    const axis = (log: boolean) => (log ? 'logarithmic' : 'linear') as 'linear';
    return {
      ...LINE_CHART_BASE,
      spanGaps: false,
      interaction: { mode: 'nearest', axis: 'x', intersect: false },
      elements: { point: { radius: 0, hitRadius: 4 }, line: { borderWidth: 1.5 } },
      scales: {
        x: xScale(view, theme, this.extent),
        y: {
          type: axis(view.logY),
          grid: { color: theme.grid },
          suggestedMax: this.clip ? this.clip.value * 1.1 : undefined,
          ...(view.logY
            ? {
                ticks: { color: theme.muted, callback: (v: number | string) => compactNumber(Number(v)) },
                afterBuildTicks: (scale: Scale) => {
                  const ticks = logTicks(scale.min, scale.max, tickCount(scale));
                  if (ticks.length) scale.ticks = ticks.map((value) => ({ value }));
                },
              }
            : { ticks: { color: theme.muted } }),
        },
        m: { type: 'linear', axis: 'y', display: false, min: 0, max: 1 },
      },
      plugins: {
        legend: {
          labels: {
            color: theme.fg,
            boxWidth: 12,
            filter: (item: LegendItem) =>
              this.meta[item.datasetIndex ?? -1]?.role !== 'raw' || !this.meta[item.datasetIndex ?? -1]?.series.smooth,
          },
          onClick: (_e, item) => {
            const m = this.meta[item.datasetIndex ?? -1];
            if (m) this.state().toggle(m.group);
          },
        },
        tooltip: {
          callbacks: {
            title: (items) => (items.length ? xLabel(view.xAxis, items[0].parsed.x ?? 0) : ''),
            label: (item) => this.label(item),
          },
        },
      },
    };
  }

  private label(item: TooltipItem<'line'>): string {
    const m = this.meta[item.datasetIndex];
    if (!m) return '';
    const name = `${m.run.header.name} ${m.series.kind}/${m.series.field}`;
    if (m.role === 'markers') {
      const p = item.raw as MarkerPt;
      return `${name}: ${p.v} at step ${p.step}`;
    }
    const y = (item.raw as Pt).y;
    return `${name}${m.role === 'raw' && m.series.smooth ? ' (raw)' : m.role === 'smooth' ? ' (smoothed)' : ''}: ${+y.toPrecision(6)}`;
  }

  /** Rebuilds datasets, scales and event lines from the held data. */
  update(members: [RunModel, SeriesData][], extent: [number, number] | null): void {
    this.extent = extent;
    const { theme, hidden } = this.state();
    const datasets: ChartDataset<'line', Pt[]>[] = [];
    this.meta = [];
    for (const [run, series] of members) {
      const color = runColor(theme, run.header.color);
      const group = `${this.key}|${run.header.key}|${series.kind}/${series.field}`;
      const common = {
        hidden: hidden.has(group),
        borderDash: dashOf(series.kind, series.field),
        pointRadius: series.total <= 60 && series.kind === 'eval' ? 2 : 0,
        backgroundColor: color,
      };
      const label = `${run.header.name} · ${series.kind === 'train' || series.kind === SYSTEM_KIND ? series.field : `${series.kind} ${series.field}`}`;
      const add = (role: DatasetMeta['role'], d: ChartDataset<'line', Pt[]>) => {
        datasets.push(d);
        this.meta.push({ run, series, role, group });
      };
      add('raw', {
        ...common,
        label,
        data: series.raw.pts,
        borderColor: series.smooth ? withAlpha(color, 0.25) : color,
        borderWidth: 1,
      });
      if (series.smooth) add('smooth', { ...common, label, data: series.smooth.pts, borderColor: color });
      if (series.markers.pts.length) {
        add('markers', {
          label: `${label} (non-finite)`,
          data: series.markers.pts,
          yAxisID: 'm',
          showLine: false,
          hidden: common.hidden,
          pointStyle: 'triangle',
          pointRotation: 180,
          pointRadius: 5,
          pointHoverRadius: 7,
          borderColor: theme.nan,
          backgroundColor: theme.nan,
        });
      }
    }
    const runs = [...new Set(members.map(([r]) => r))];
    this.lines = runs
      .flatMap((r) => r.events)
      .filter((e) => e.x !== null && e.kind in EVENT_LABELS)
      .map((e) => ({
        x: e.x as number,
        color: theme.events[e.kind] ?? theme.muted,
        label: EVENT_LABELS[e.kind],
        title: `step ${e.step} · ${e.kind}: ${e.message}`,
      }));
    const clip = this.key === 'grad_norm' ? runs.map((r) => r.header.gradClip).find((c) => c !== null) : null;
    this.clip = clip != null ? { value: clip, color: theme.muted } : null;
    this.chart.data.datasets = datasets;
    this.chart.options = this.options();
    this.chart.update('none');
    // The logged point count, for screen readers and for end-to-end tests reading the real page.
    const points = members.reduce((n, [, s]) => n + s.total, 0);
    this.chart.canvas.dataset.points = String(points);
    this.chart.canvas.setAttribute('aria-label', `${this.key} chart, ${points} logged points`);
  }

  destroy(): void {
    this.chart.destroy();
    this.card.remove();
  }
}

export class ChartBoard {
  private readonly views = new Map<string, ChartView>();
  /** The x-range of the data the charts show (the last render's), which the Evals chart lines up with. */
  extent: [number, number] | null = null;
  /** The System section's heading, shown only when some run has system.jsonl records. */
  private readonly systemHeading = Object.assign(document.createElement('h2'), {
    className: 'charts-section',
    textContent: 'System',
  });

  constructor(
    private readonly root: HTMLElement,
    private readonly state: () => BoardState,
  ) {}

  get charts(): ReadonlyMap<string, Chart<'line', Pt[]>> {
    return new Map([...this.views].map(([k, v]) => [k, v.chart]));
  }

  render(): void {
    const { data, hidden } = this.state();
    const groups = new Map<string, [RunModel, SeriesData][]>();
    for (const run of data.runs.values()) {
      if (hidden.has(`run:${run.header.key}`)) continue;
      const lossFields = lossFieldsOf(run);
      for (const s of run.series.values()) {
        if (s.kind === 'train' && s.field === 'tokens') continue; // an x-axis choice, not a chart of its own
        const key = chartOf(s.kind, s.field, lossFields.get(s.kind));
        if (!groups.has(key)) groups.set(key, []);
        groups.get(key)?.push([run, s]);
      }
    }
    // A log x axis starts at the first positive x (step 0 and token 0 have no place on it; left
    // to itself chart.js would start a decade below the end).
    const first = (pts: { x: number }[]) =>
      (this.state().view.logX ? pts.find((p) => p.x > 0)?.x : pts[0]?.x) ?? Infinity;
    let lo = Infinity,
      hi = -Infinity;
    for (const [, s] of [...groups.values()].flat()) {
      for (const pts of [s.raw.pts, s.markers.pts])
        if (pts.length) {
          lo = Math.min(lo, first(pts));
          hi = Math.max(hi, pts[pts.length - 1].x);
        }
    }
    const extent: [number, number] | null = lo < hi ? [lo, hi] : null;
    this.extent = extent;
    const isSystem = (k: string) => k.startsWith(SYSTEM_PREFIX);
    const others = [...groups.keys()].filter((k) => !FIXED.some(([f]) => f === k) && !isSystem(k)).sort();
    const systemOrder = SYSTEM_CHARTS.map(([, k]) => k);
    const rank = (k: string) => (systemOrder.includes(k) ? systemOrder.indexOf(k) : systemOrder.length);
    const system = [...groups.keys()].filter(isSystem).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
    const order = [...FIXED.map(([k]) => k).filter((k) => groups.has(k)), ...others, ...system];
    for (const [key, view] of this.views)
      if (!groups.has(key)) {
        view.destroy();
        this.views.delete(key);
      }
    this.systemHeading.remove();
    for (const key of order) {
      let view = this.views.get(key);
      if (!view) {
        view = new ChartView(key, chartTitle(key), this.state);
        this.views.set(key, view);
      }
      if (key === system[0]) this.root.append(this.systemHeading); // no records, no section
      this.root.append(view.card); // keeps the order stable as charts come and go
      view.update(groups.get(key) ?? [], extent);
    }
  }
}

function chartTitle(key: string): string {
  return FIXED.find(([k]) => k === key)?.[1] ?? SYSTEM_CHARTS.find(([, k]) => k === key)?.[2] ?? key;
}

/** GPUs of one run share its colour: each GPU gets its own dash pattern; eval lines and totals are dashed. */
const GPU_DASHES = [[], [6, 3], [2, 2], [8, 3, 2, 3]];
function dashOf(kind: string, field: string): number[] {
  if (kind === 'eval') return [5, 3];
  if (kind !== SYSTEM_KIND) return [];
  const gpu = /^gpu(\d+)\//.exec(field);
  if (field.includes('total')) return [1, 3];
  return gpu ? GPU_DASHES[Number(gpu[1]) % GPU_DASHES.length] : [];
}
