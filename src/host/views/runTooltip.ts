// The Markdown of a run's tooltip in the Runs view. Everything in it comes from a run folder, which
// may be anyone's: every value (numbers included: a foreign run.json's "number" can be any text)
// is escaped, so it shows as text and never as a link, an image, HTML or a theme icon. Pure: no vscode.
import { escapeMarkdown } from '../markdown';
import { describeEngine } from '../../shared/run';
import type { RunSummary } from '../runs/types';
import { describePartition, partitionsDefaultFirst, type SlurmCluster } from '../slurm/loginNode';

export function runTooltipMarkdown(s: RunSummary): string {
  const e = (value: unknown) => escapeMarkdown(String(value));
  const parts = [`**${e(s.name)}** — ${e(s.status)}`, e(s.dir)];
  if (s.config) parts.push(`${e(s.config.n_layer)} layers · d ${e(s.config.n_embd)} · vocab ${e(s.config.vocab_size)}`);
  const engine = s.info ? describeEngine(s.info) : undefined;
  if (engine !== undefined) parts.push(e(engine));
  if (s.info?.gpus?.length) parts.push(e(s.info.gpus.join(', ')));
  if (s.info?.backend) {
    const kernels = typeof s.info.backend.kernels === 'string' ? ` — ${e(s.info.backend.kernels)}` : '';
    parts.push(`backend: ${e(s.info.backend.name)}${kernels}`);
  }
  if (s.lastTokPerS !== undefined) parts.push(`${e(Math.round(s.lastTokPerS).toLocaleString('en-US'))} tokens/s`);
  const bad =
    s.malformed.metrics +
    s.malformed.samples +
    s.malformed.events +
    (s.malformed.system ?? 0) +
    (s.malformed.evals ?? 0);
  if (bad > 0) parts.push(`$(warning) ${bad} malformed line(s) skipped`);
  for (const problem of s.problems ?? []) parts.push(`$(warning) ${e(problem)}`);
  return parts.map((p) => `${p}\n\n`).join('');
}

/** A Slurm login node's tooltip: its partitions (default marked), and the accounts where there are any. */
export function hostTooltipMarkdown(label: string, cluster: SlurmCluster): string {
  const e = (value: unknown) => escapeMarkdown(String(value));
  const parts = [`**${e(label)}** — Slurm login node`];
  for (const p of partitionsDefaultFirst(cluster.partitions))
    parts.push(`**${e(p.name)}**${p.isDefault ? ' (default)' : ''}: ${e(describePartition(p))}`);
  if (cluster.partitions.length === 0) parts.push('sinfo lists no partition');
  if (cluster.accounts.length) parts.push(`accounts: ${e(cluster.accounts.map((a) => a.account).join(', '))}`);
  return parts.map((p) => `${p}\n\n`).join('');
}
