// The building blocks of every runtime schema at a boundary (webview messages, the serve and follow
// protocols, run.json), on valibot, and the one way a failed check is worded: the path of the
// first misfit and what was expected there ("setXAxis.axis: expected one of step, tokens, …").
// Types come from the schemas (v.InferOutput), so a type and its check cannot drift apart.
import * as v from 'valibot';

export type Schema = v.GenericSchema;
export type Output<S extends Schema> = v.InferOutput<S>;

export const num = v.pipe(v.number('expected a finite number'), v.finite('expected a finite number'));
export const int = v.pipe(v.number('expected an integer'), v.safeInteger('expected an integer'));
export const nonNegativeInt = v.pipe(int, v.minValue(0, 'expected a non-negative integer'));
export const str = v.string('expected a string');
export const bool = v.boolean('expected a boolean');

export function oneOf<const L extends readonly string[]>(values: L) {
  return v.picklist(values, `expected one of ${values.join(', ')}`);
}

export function range(min: number, max: number) {
  const expected = `expected a number in [${min}, ${max}]`;
  return v.pipe(v.number(expected), v.minValue(min, expected), v.maxValue(max, expected));
}

export function intRange(min: number, max: number) {
  const expected = `expected an integer in [${min}, ${max}]`;
  return v.pipe(v.number(expected), v.safeInteger(expected), v.minValue(min, expected), v.maxValue(max, expected));
}

export function arr<S extends Schema>(item: S) {
  return v.array(item, 'expected an array');
}

/** Exactly two items (a shorter or longer array is "not a pair", not a misfit at some index). */
export function pair<S extends Schema>(item: S) {
  const expected = 'expected a pair';
  return v.pipe(v.array(v.unknown(), expected), v.length(2, expected), v.strictTuple([item, item], expected));
}

/** An object with exactly these keys: an unknown key means the two sides disagree. */
export function obj<E extends v.ObjectEntries>(entries: E) {
  return v.strictObject(entries, 'expected an object');
}

/** An object with these keys and any others (records a writer may extend, e.g. run.json). */
export function openObj<E extends v.ObjectEntries>(entries: E) {
  return v.looseObject(entries, 'expected an object');
}

/** "root.a.b[2]" for an issue's path. */
function pathOf(issue: v.BaseIssue<unknown>, root: string): string {
  let path = root;
  for (const item of issue.path ?? []) {
    const key: unknown = item.key;
    path += typeof key === 'number' ? `[${key}]` : `.${String(key)}`;
  }
  return path;
}

const OBJECT_TYPES = new Set(['object', 'strict_object', 'loose_object']);

/** One line for the first issue: where, and what was expected there. */
export function describeIssue(issue: v.BaseIssue<unknown>, root: string): string {
  const last = issue.path?.[issue.path.length - 1];
  if (OBJECT_TYPES.has(issue.type) && last?.origin === 'key') {
    return `${pathOf(issue, root)}: ${issue.expected === 'never' ? 'unknown field' : 'missing'}`;
  }
  return `${pathOf(issue, root)}: ${issue.message}`;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

/**
 * Checks `value` against `schema`: the checked value (a copy, in the schema's shape), or one line
 * naming the first misfit under `root` (the name of the value in the message).
 */
export function parseAs<S extends Schema>(schema: S, value: unknown, root: string): Parsed<Output<S>> {
  const result = v.safeParse(schema, value, { abortEarly: true });
  if (result.success) return { ok: true, value: result.output };
  return { ok: false, error: describeIssue(result.issues[0], root) };
}

/** The checked value, or undefined when it does not fit. */
export function parseOrUndefined<S extends Schema>(schema: S, value: unknown): Output<S> | undefined {
  const result = v.safeParse(schema, value, { abortEarly: true });
  return result.success ? result.output : undefined;
}

/** JSON.parse that returns undefined for text that is not JSON (a line is only text until checked). */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
