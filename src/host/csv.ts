// Metrics of several runs as one CSV (long format: one row per record, one column per field),
// the shape pandas and spreadsheets read without reshaping. Pure: no vscode.
import type { RunData } from './runs/types';

function cell(value: string | number): string {
  if (typeof value === 'number') return String(value); // NaN, Infinity and -Infinity spelled out
  return /[",\n\r]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

export function metricsCsv(runs: readonly RunData[]): string {
  const fields = new Set<string>();
  for (const run of runs) for (const table of run.tables.values()) for (const name of table.fields.keys()) fields.add(name);
  const columns = [...fields].sort();
  const lines = [['run', 'kind', 'step', 't', ...columns].map(cell).join(',')];
  for (const run of runs) {
    for (const table of run.tables.values()) {
      for (let i = 0; i < table.length; i++) {
        const row: (string | number)[] = [run.summary.name, table.kind, table.step[i], table.t[i]];
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
