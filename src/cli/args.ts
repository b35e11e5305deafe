// A small, strict argument parser: known flags only, typed values, repeatable --set.
// Every mistake is a UsageError (exit code 2) that says what is allowed.

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

export function parseArgs(argv: readonly string[], spec: Record<string, FlagSpec>, command: string): Parsed {
  const positional: string[] = [];
  const flags = new Map<string, string | number | boolean | string[]>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(2, eq) : arg.slice(2);
    const flag = spec[name];
    if (!flag) {
      const known = Object.keys(spec).map((k) => `--${k}`).join(', ');
      throw new UsageError(`Unknown option --${name} for \`steelscope ${command}\`. Options: ${known || 'none'}.`);
    }
    if (flag.kind === 'bool') {
      flags.set(name, true);
      continue;
    }
    const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined) throw new UsageError(`--${name} needs a value.`);
    if (flag.kind === 'list') {
      const list = (flags.get(name) as string[] | undefined) ?? [];
      list.push(value);
      flags.set(name, list);
    } else if (flag.kind === 'int' || flag.kind === 'number') {
      const n = Number(value);
      if (value.trim() === '' || !Number.isFinite(n) || (flag.kind === 'int' && !Number.isInteger(n))) {
        throw new UsageError(`--${name} must be ${flag.kind === 'int' ? 'an integer' : 'a number'}, got "${value}".`);
      }
      flags.set(name, n);
    } else {
      flags.set(name, value);
    }
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
