// Command-line flags: node:util's parseArgs splits argv (--name value, --name=value, -- ends the
// options); here, only the rules of our commands: known flags only, typed values, repeatable
// --set. Every mistake is a UsageError (exit code 2) on one line that says what is allowed.
import { parseArgs as splitArgv } from 'node:util';
import { UsageError } from '../core/errors';

export { UsageError };

export interface FlagSpec {
  /** 'string' takes a value, 'int'/'number' a parsed value, 'list' is repeatable, 'bool' takes none. */
  kind: 'string' | 'int' | 'number' | 'list' | 'bool';
}

export interface Parsed {
  positional: string[];
  flags: Map<string, string | number | boolean | string[]>;
}

/** The typed value of one flag occurrence, or the UsageError saying why it is not one. */
function flagValue(
  name: string,
  flag: FlagSpec,
  value: string | undefined,
  inline: boolean,
): string | number | boolean {
  if (flag.kind === 'bool') {
    if (inline) throw new UsageError(`--${name} takes no value, got "${value}".`);
    return true;
  }
  if (value === undefined) throw new UsageError(`--${name} needs a value.`);
  if (flag.kind !== 'int' && flag.kind !== 'number') return value;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || (flag.kind === 'int' && !Number.isInteger(n))) {
    throw new UsageError(`--${name} must be ${flag.kind === 'int' ? 'an integer' : 'a number'}, got "${value}".`);
  }
  return n;
}

/** argv split by node:util: every flag but bool takes a value; non-strict, so that an unknown flag is ours to word. */
function tokensOf(argv: readonly string[], spec: Record<string, FlagSpec>) {
  const options = Object.fromEntries(
    Object.entries(spec).map(([name, f]) => [
      name,
      { type: f.kind === 'bool' ? ('boolean' as const) : ('string' as const) },
    ]),
  );
  return splitArgv({ args: [...argv], options, strict: false, allowPositionals: true, tokens: true }).tokens;
}

/**
 * The last value of string flag `name` in `argv`, even where parseArgs refuses the rest (an
 * unknown flag, a bad value): where a refused command's error is to be recorded (its run folder).
 */
export function rawFlag(argv: readonly string[], spec: Record<string, FlagSpec>, name: string): string | undefined {
  const values = tokensOf(argv, spec).flatMap((t) => (t.kind === 'option' && t.name === name ? [t.value] : []));
  return values.at(-1);
}

export function parseArgs(argv: readonly string[], spec: Record<string, FlagSpec>, command: string): Parsed {
  const tokens = tokensOf(argv, spec);
  const positional: string[] = [];
  const flags = new Map<string, string | number | boolean | string[]>();
  for (const token of tokens) {
    if (token.kind === 'positional') positional.push(token.value);
    if (token.kind !== 'option') continue;
    const flag = Object.prototype.hasOwnProperty.call(spec, token.name) ? spec[token.name] : undefined;
    if (!flag) {
      const known = Object.keys(spec)
        .map((k) => `--${k}`)
        .join(', ');
      throw new UsageError(
        `Unknown option ${token.rawName} for \`steelscope ${command}\`. Options: ${known || 'none'}.`,
      );
    }
    const value = flagValue(token.name, flag, token.value, token.inlineValue === true);
    const list = flags.get(token.name);
    if (flag.kind === 'list') flags.set(token.name, [...(Array.isArray(list) ? list : []), String(value)]);
    else flags.set(token.name, value);
  }
  return { positional, flags };
}

export function stringFlag(p: Parsed, name: string): string | undefined {
  const v = p.flags.get(name);
  return typeof v === 'string' ? v : undefined;
}

export function numberFlag(p: Parsed, name: string): number | undefined {
  const v = p.flags.get(name);
  return typeof v === 'number' ? v : undefined;
}

export function listFlag(p: Parsed, name: string): string[] {
  const v = p.flags.get(name);
  return Array.isArray(v) ? v : [];
}
