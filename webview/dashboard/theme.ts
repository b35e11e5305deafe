// Colours come only from VS Code's theme: dashboard.css maps --vscode-* variables (with plain
// fallbacks outside VS Code) to --ss-* ones, and this reads them back as concrete colours for
// the canvas. A theme switch changes the body's class, and the charts re-read everything.

export interface Theme {
  runs: string[];
  bg: string;
  fg: string;
  muted: string;
  grid: string;
  nan: string;
  events: Record<string, string>;
}

let probe: CanvasRenderingContext2D | null = null;

/** A CSS colour with its alpha replaced, via the canvas' own colour parser. */
export function withAlpha(color: string, alpha: number): string {
  probe ??= document.createElement('canvas').getContext('2d');
  if (!probe) return color;
  probe.fillStyle = '#000';
  probe.fillStyle = color;
  const c = String(probe.fillStyle);
  const hex = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(c);
  if (hex) return `rgba(${parseInt(hex[1], 16)}, ${parseInt(hex[2], 16)}, ${parseInt(hex[3], 16)}, ${alpha})`;
  const rgba = /^rgba?\(([^,]+),([^,]+),([^,)]+)/.exec(c);
  return rgba ? `rgba(${rgba[1]},${rgba[2]},${rgba[3]}, ${alpha})` : c;
}

export function readTheme(): Theme {
  const css = getComputedStyle(document.body);
  const v = (name: string) => css.getPropertyValue(name).trim() || css.color;
  const runs: string[] = [];
  for (let i = 0; i < 8; i++) runs.push(v(`--ss-run-${i}`));
  return {
    runs,
    bg: v('--ss-bg'),
    fg: v('--ss-fg'),
    muted: v('--ss-muted'),
    grid: withAlpha(v('--ss-grid'), 0.35),
    nan: v('--ss-nan'),
    events: {
      spike: v('--ss-ev-spike'),
      resume: v('--ss-ev-resume'),
      checkpoint: v('--ss-ev-checkpoint'),
      nan: v('--ss-nan'),
      crash: v('--ss-nan'),
      stop: v('--ss-muted'),
    },
  };
}

export function runColor(theme: Theme, index: number): string {
  return theme.runs[index % theme.runs.length];
}
