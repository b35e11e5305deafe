// Metrics of several runs as one CSV (long format: one row per record, one column per field),
// the shape pandas and spreadsheets read without reshaping. Pure: no vscode.
import type { RunData } from './runs/types';

/** A plain decimal number: a spreadsheet reads it as that number, never as a formula. */
const PLAIN_NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/**
 * Text (a run name, a kind: anyone's run folder chooses them) that starts like a formula (= + - @,
 * or a tab / carriage return before one) gets a leading apostrophe, so a spreadsheet shows it
 * instead of evaluating it (OWASP's CSV injection advice). Numbers are written as numbers, and
 * text that is just a number (a run named "-1") stays readable as one.
 */
function cell(value: string | number): string {
  if (typeof value === 'number') return String(value); // NaN, Infinity and -Infinity spelled out
  const text = /^[=+\-@\t\r]/.test(value) && !PLAIN_NUMBER.test(value) ? `'${value}` : value;
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function metricsCsv(runs: readonly RunData[]): string {
  const fields = new Set<string>();
  for (const run of runs)
    for (const table of run.tables.values()) for (const name of table.fields.keys()) fields.add(name);
  const columns = [...fields].sort();
  const lines = [['run', 'kind', 'step', 't', ...columns].map(cell).join(',')];
  for (const run of runs) {
    for (const table of run.tables.values()) {
      for (let i = 0; i < table.length; i++) {
        const time = Number.isFinite(table.t[i]) ? table.t[i] : ''; // a record without time: an empty cell
        const row: (string | number)[] = [run.summary.name, table.kind, table.step[i], time];
        for (const name of columns) {
          const value = table.fields.get(name)?.[i] ?? NaN;
          const missing = Number.isNaN(value) && table.loggedNaN.get(name)?.has(i) !== true;
          row.push(missing ? '' : value);
        }
        lines.push(row.map(cell).join(','));
      }
    }
  }
  return lines.join('\n') + '\n';
}
