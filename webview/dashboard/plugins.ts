// Small chart.js plugins (no zoom plugin is installed, so drag-to-zoom is ours): the background,
// vertical event markers (spike, resume, checkpoint…), the gradient-clip threshold line, and a drag-to-select
// x-range with double-click to reset. Each is made per chart with closures over its data.
import type { Chart, ChartOptions, Plugin } from 'chart.js';

/**
 * What every dashboard line chart sets alike: drawn at once (no animation), data handed over
 * already parsed and sorted, sized by its box rather than an aspect ratio.
 */
export const LINE_CHART_BASE = {
  animation: false,
  parsing: false,
  normalized: true,
  responsive: true,
  maintainAspectRatio: false,
} satisfies ChartOptions<'line'>;

export interface EventLine {
  x: number;
  color: string;
  label: string;
  title: string;
}

export function eventsPlugin(lines: () => EventLine[]): Plugin<'line'> {
  return {
    id: 'ssEvents',
    afterDatasetsDraw(chart) {
      const { ctx, chartArea: area, scales } = chart;
      ctx.save();
      ctx.setLineDash([3, 3]);
      ctx.lineWidth = 1;
      ctx.font = '10px sans-serif';
      ctx.textAlign = 'center';
      for (const e of lines()) {
        const px = scales.x.getPixelForValue(e.x);
        if (!(px >= area.left && px <= area.right)) continue;
        ctx.strokeStyle = e.color;
        ctx.fillStyle = e.color;
        ctx.beginPath();
        ctx.moveTo(px, area.top + 10);
        ctx.lineTo(px, area.bottom);
        ctx.stroke();
        ctx.fillText(e.label, px, area.top + 8);
      }
      ctx.restore();
    },
  };
}

/** Fills the canvas with the editor's background, so a saved PNG looks as the chart does on screen. */
export function backgroundPlugin(color: () => string): Plugin<'line'> {
  return {
    id: 'ssBackground',
    beforeDraw(chart) {
      const { ctx } = chart;
      ctx.save();
      ctx.globalCompositeOperation = 'destination-over';
      ctx.fillStyle = color();
      ctx.fillRect(0, 0, chart.width, chart.height);
      ctx.restore();
    },
  };
}

export function clipPlugin(clip: () => { value: number; color: string } | null): Plugin<'line'> {
  return {
    id: 'ssClip',
    afterDatasetsDraw(chart) {
      const c = clip();
      if (!c) return;
      const { ctx, chartArea: area, scales } = chart;
      const py = scales.y.getPixelForValue(c.value);
      if (!(py >= area.top && py <= area.bottom)) return;
      ctx.save();
      ctx.strokeStyle = c.color;
      ctx.fillStyle = c.color;
      ctx.setLineDash([6, 4]);
      ctx.beginPath();
      ctx.moveTo(area.left, py);
      ctx.lineTo(area.right, py);
      ctx.stroke();
      ctx.font = '10px sans-serif';
      ctx.textAlign = 'right';
      ctx.fillText(`clip ${c.value}`, area.right - 4, py - 3);
      ctx.restore();
    },
  };
}

/** Drag across the plot to choose an x-range; double-click for everything; hover an event line for its message. */
export function selectPlugin(
  onZoom: (range: [number, number] | null) => void,
  shade: () => string,
  lines: () => EventLine[],
): Plugin<'line'> {
  let start: number | null = null;
  let current = 0;
  const cleanups = new WeakMap<Chart, () => void>();
  return {
    id: 'ssSelect',
    afterInit(chart) {
      const canvas = chart.canvas;
      const px = (e: PointerEvent | MouseEvent) => e.clientX - canvas.getBoundingClientRect().left;
      const inArea = (x: number) => x >= chart.chartArea.left && x <= chart.chartArea.right;
      const down = (e: PointerEvent) => {
        if (e.button !== 0 || !inArea(px(e))) return;
        start = current = px(e);
        canvas.setPointerCapture(e.pointerId);
      };
      const move = (e: PointerEvent) => {
        const x = px(e);
        if (start !== null) {
          current = Math.min(chart.chartArea.right, Math.max(chart.chartArea.left, x));
          chart.draw();
        }
        const near = lines().find((l) => Math.abs(chart.scales.x.getPixelForValue(l.x) - x) <= 4);
        canvas.title = near ? near.title : '';
      };
      const up = () => {
        if (start === null) return;
        const [a, b] = [Math.min(start, current), Math.max(start, current)];
        start = null;
        chart.draw();
        if (b - a > 4) onZoom([chart.scales.x.getValueForPixel(a) ?? 0, chart.scales.x.getValueForPixel(b) ?? 0]);
      };
      const dbl = () => onZoom(null);
      canvas.addEventListener('pointerdown', down);
      canvas.addEventListener('pointermove', move);
      canvas.addEventListener('pointerup', up);
      canvas.addEventListener('dblclick', dbl);
      cleanups.set(chart, () => {
        canvas.removeEventListener('pointerdown', down);
        canvas.removeEventListener('pointermove', move);
        canvas.removeEventListener('pointerup', up);
        canvas.removeEventListener('dblclick', dbl);
      });
    },
    afterDraw(chart) {
      if (start === null) return;
      const { ctx, chartArea: area } = chart;
      ctx.save();
      ctx.fillStyle = shade();
      ctx.fillRect(Math.min(start, current), area.top, Math.abs(current - start), area.bottom - area.top);
      ctx.restore();
    },
    beforeDestroy(chart) {
      cleanups.get(chart)?.();
    },
  };
}

/** A point with its interval (the Evals chart: accuracy and its 95% interval). */
export interface IntervalPt {
  x: number;
  y: number;
  lo?: number;
  hi?: number;
}

/**
 * Vertical error bars with caps from each point's lo and hi; `series` lines up with the chart's
 * datasets (index i: dataset i), so a hidden dataset's bars are hidden too.
 * Hand-written: chart.js draws no error bars, and chartjs-chart-error-bars would bring its own
 * controllers for what is a dozen lines on the canvas.
 */
export function errorBarsPlugin(
  series: () => readonly { points: readonly IntervalPt[]; color: string }[],
): Plugin<'line'> {
  return {
    id: 'ssErrorBars',
    afterDatasetsDraw(chart) {
      const { ctx, scales } = chart;
      ctx.save();
      ctx.lineWidth = 1;
      ctx.setLineDash([]);
      series().forEach(({ points, color }, i) => {
        if (!chart.isDatasetVisible(i)) return;
        ctx.strokeStyle = color;
        for (const p of points) {
          if (p.lo === undefined || p.hi === undefined) continue;
          const px = scales.x.getPixelForValue(p.x);
          const [top, bottom] = [scales.y.getPixelForValue(p.hi), scales.y.getPixelForValue(p.lo)];
          ctx.beginPath();
          ctx.moveTo(px, top);
          ctx.lineTo(px, bottom);
          for (const y of [top, bottom]) {
            ctx.moveTo(px - 4, y);
            ctx.lineTo(px + 4, y);
          }
          ctx.stroke();
        }
      });
      ctx.restore();
    },
  };
}
