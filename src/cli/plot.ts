// A loss curve drawn with Unicode braille (2×4 dots per character cell), for the summary `train`
// prints at the end. Hand-written (about 60 lines) rather than a dependency: asciichart, the small
// well-kept one, draws one value per character cell in box-drawing characters, so 1,200 steps
// would need the same bucketing, at a quarter of braille's vertical resolution and no marks.

export type Point = readonly [x: number, y: number];

export interface ChartOptions {
  /** Character cells of the plotting area, labels excluded. */
  width: number;
  height: number;
  /** Points drawn as ● over the curve (eval loss). */
  marks?: readonly Point[];
}

// Braille dot bits by [column 0|1][row 0..3] within a cell (U+2800 + bits).
const DOT = [
  [0x01, 0x02, 0x04, 0x40],
  [0x08, 0x10, 0x20, 0x80],
];

/**
 * The curve through `points` (the mean of the points that fall in each dot column, joined by
 * vertical runs), with a y axis labelled at its top, middle and bottom and an x axis labelled at
 * both ends. Empty when there is nothing finite to draw.
 */
export function brailleChart(points: readonly Point[], opts: ChartOptions): string[] {
  const finite = points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const marks = (opts.marks ?? []).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  if (finite.length === 0) return [];
  const dotsX = opts.width * 2;
  const dotsY = opts.height * 4;
  const xs = [...finite, ...marks].map(([x]) => x);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const column = (x: number) => (x1 === x0 ? 0 : Math.round(((x - x0) / (x1 - x0)) * (dotsX - 1)));
  const means = columnMeans(finite, column, dotsX);
  const ys = [...means.filter((y): y is number => y !== undefined), ...marks.map(([, y]) => y)];
  const [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const row = (y: number) => (y1 === y0 ? dotsY >> 1 : Math.round(((y1 - y) / (y1 - y0)) * (dotsY - 1)));

  const cells = Array.from({ length: opts.height }, () => new Array<number>(opts.width).fill(0));
  const dot = (dx: number, dy: number) => (cells[dy >> 2][dx >> 1] |= DOT[dx & 1][dy & 3]);
  // Joined as a line: columns between two means (fewer points than dot columns) get the rows in
  // between, and each column a vertical run from the row before it, so a steep drop stays unbroken.
  let previous: { dx: number; dy: number } | undefined;
  means.forEach((y, dx) => {
    if (y === undefined) return;
    const dy = row(y);
    const from = previous ?? { dx: dx - 1, dy };
    let lastRow = from.dy;
    for (let c = from.dx + 1; c <= dx; c++) {
      const r = Math.round(from.dy + ((dy - from.dy) * (c - from.dx)) / (dx - from.dx));
      for (let v = Math.min(lastRow, r); v <= Math.max(lastRow, r); v++) dot(c, v);
      lastRow = r;
    }
    previous = { dx, dy };
  });
  const text = cells.map((line) => line.map((bits) => (bits ? String.fromCharCode(0x2800 + bits) : ' ')));
  for (const [x, y] of marks) text[row(y) >> 2][column(x) >> 1] = '●';

  const labels = text.map((_, i) =>
    i === 0 ? y1 : i === opts.height - 1 ? y0 : i === opts.height >> 1 ? (y0 + y1) / 2 : null,
  );
  const labelWidth = Math.max(...labels.map((v) => (v === null ? 0 : label(v).length)));
  const left = (v: number | null) => (v === null ? '' : label(v)).padStart(labelWidth);
  const lines = text.map((cellsOfLine, i) => `${left(labels[i])} ┤${cellsOfLine.join('')}`.trimEnd());
  const [first, last] = [String(Math.round(x0)), String(Math.round(x1))];
  lines.push(`${' '.repeat(labelWidth)} └${'─'.repeat(opts.width)}`);
  lines.push(`${' '.repeat(labelWidth + 2)}${first}${last.padStart(opts.width - first.length)}`);
  return lines;
}

/** Two decimals, without the "-0.00" of a midpoint that rounds to zero. */
function label(value: number): string {
  const text = value.toFixed(2);
  return text === '-0.00' ? '0.00' : text;
}

function columnMeans(points: readonly Point[], column: (x: number) => number, columns: number): (number | undefined)[] {
  const sum = new Array<number>(columns).fill(0);
  const count = new Array<number>(columns).fill(0);
  for (const [x, y] of points) {
    sum[column(x)] += y;
    count[column(x)] += 1;
  }
  return sum.map((s, i) => (count[i] ? s / count[i] : undefined));
}
