// How one call is shared out between the main thread and the helper threads (threads.ts): a
// fixed function of the shapes and the thread count, never of timing, so every element is
// computed by the same instructions whichever thread runs it. Pure functions.

/** Chunks each helper may claim per call: more balance the load, fewer repack shared operands less. */
export const CHUNKS_PER_HELPER = 4;

/** One product as steel_matmul takes it: pointers are byte offsets, strides in elements. */
export interface MatmulCall {
  c: number;
  a: number;
  b: number;
  pack: number;
  batch: number;
  m: number;
  n: number;
  k: number;
  sam: number;
  sak: number;
  sbk: number;
  sbn: number;
  bsa: number;
  bsb: number;
  /** C's row stride and batch stride (elements): n and m*n for a whole product. */
  ldc: number;
  bsc: number;
}

const ARG_ORDER: readonly (keyof MatmulCall)[] = [
  'c',
  'a',
  'b',
  'pack',
  'batch',
  'm',
  'n',
  'k',
  'sam',
  'sak',
  'sbk',
  'sbn',
  'bsa',
  'bsb',
  'ldc',
  'bsc',
];

/** How one product is shared out: the main thread's part, and the chunks the helpers may claim. */
export interface Split<T> {
  main: T;
  chunks: T[];
}

/** Boundaries cutting [from, to) into `parts`, multiples of `quantum` past from. */
function cuts(from: number, to: number, parts: number, quantum: number): number[] {
  const out = [from];
  for (let i = 1; i < parts; i++) out.push(from + Math.floor(((to - from) * i) / parts / quantum) * quantum);
  out.push(to);
  return out.filter((x, i) => i === 0 || x > out[i - 1]);
}

/**
 * Items [0, count) shared out: an even share [0, first) for the main thread (a smaller one measured
 * no faster), the rest cut into at most CHUNKS_PER_HELPER chunks per helper; as [start, end) pairs.
 */
export function shareItems(count: number, helpers: number): Split<[number, number]> {
  const first = Math.floor(count / (helpers + 1));
  const at = cuts(first, count, helpers * CHUNKS_PER_HELPER, 1);
  return { main: [0, first], chunks: at.slice(0, -1).map((start, i): [number, number] => [start, at[i + 1]]) };
}

/** Batched products: whole items per chunk (an unbatched operand, stride 0, is read by all). */
function splitBatch(call: MatmulCall, helpers: number): Split<MatmulCall> {
  const { bsa, bsb, bsc } = call;
  const items = shareItems(call.batch, helpers);
  const part = ([start, end]: [number, number]): MatmulCall => ({
    ...call,
    batch: end - start,
    a: call.a + 4 * start * bsa,
    b: call.b + 4 * start * bsb,
    c: call.c + 4 * start * bsc,
  });
  return { main: part(items.main), chunks: items.chunks.map(part) };
}

/** Starts of a share of [0, size) for the main thread and the chunks, in whole `quantum`s. */
function shareRange(size: number, helpers: number, quantum: number): number[] {
  const first = Math.floor(size / (helpers + 1) / quantum) * quantum;
  return [0, ...cuts(first, size, Math.min(helpers * CHUNKS_PER_HELPER, Math.ceil((size - first) / quantum)), quantum)];
}

/**
 * Single products: by rows of C (whole 8-row tiles) or by columns (whole 8-column panels). Each
 * part packs all of the operand it shares with the others (B for rows, A for columns), so the
 * split shares the smaller one: columns where M*K < K*N (a weight gradient X^T·dY with few rows).
 */
function splitSingle(call: MatmulCall, helpers: number): Split<MatmulCall> {
  const { m, n, sam, sbn } = call;
  const byColumns = m < n && n >= 16;
  const at = shareRange(byColumns ? n : m, helpers, 8);
  const parts = at.slice(0, -1).map((start, i): MatmulCall => {
    const size = at[i + 1] - start;
    if (byColumns) return { ...call, n: size, b: call.b + 4 * start * sbn, c: call.c + 4 * start };
    return { ...call, m: size, a: call.a + 4 * start * sam, c: call.c + 4 * start * call.ldc };
  });
  return { main: parts[0], chunks: parts.slice(1) };
}

/**
 * The split of this product over `helpers` helper threads and the main one, or null where it is
 * not worth one (fewer than minMacs multiply-adds, or too small to cut).
 */
export function planSplit(call: MatmulCall, helpers: number, minMacs: number): Split<MatmulCall> | null {
  if (helpers < 1 || call.batch * call.m * call.n * call.k < minMacs) return null;
  if (call.batch >= 2) return splitBatch(call, Math.min(helpers, call.batch - 1));
  const along = Math.max(call.m, call.n);
  if (along < 16) return null;
  return splitSingle(call, Math.min(helpers, Math.floor(along / 8) - 1));
}

export function callArgs(call: MatmulCall): number[] {
  return ARG_ORDER.map((key) => call[key]);
}
