// The Markdown of a run's tooltip in the Runs view. Everything in it comes from a run folder, which
// may be anyone's: every value (numbers included: a foreign run.json's "number" can be any text)
// is escaped, so it shows as text and never as a link, an image, HTML or a theme icon. Pure: no vscode.
import { escapeMarkdown } from '../markdown';
import { describeEngine } from '../../shared/run';
import { interval95, scoreText, type EvalRecord } from '../../shared/eval';
import type { CheckpointSummary, RunSummary } from '../runs/types';
import { isHopeless, jobTooltip } from '../slurm/jobState';
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
  if (s.job) parts.push(...jobTooltip(s.job).split('\n').map(e));
  if (s.job && isHopeless(s.job)) parts.push('$(warning) Slurm cannot start this job as asked; Stop cancels it');
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

function formatLoss(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  return Math.abs(v) >= 100 ? v.toFixed(1) : v.toFixed(4);
}

/**
 * A checkpoint's line in the Runs view: eval loss, each task's score at its step ("poetry-mc 31.2%",
 * the macro averages of checkpointScores), ★ best, and whether it is skipped or incomplete.
 */
export function checkpointDescription(c: CheckpointSummary, scores: readonly EvalRecord[]): string {
  const parts: string[] = [];
  if (c.evalLoss !== null) parts.push(`eval ${formatLoss(c.evalLoss)}`);
  for (const r of scores) parts.push(scoreText(r));
  if (c.best) parts.push('★ best');
  if (!c.complete) parts.push(c.problem ? 'skipped' : 'incomplete');
  return parts.join(' · ');
}

/** A checkpoint's tooltip: its folder, why it is skipped, each score with n and its 95% interval, what "best" is by. */
export function checkpointTooltipMarkdown(
  c: CheckpointSummary,
  scores: readonly EvalRecord[],
  bestBy: string | undefined,
): string {
  const e = (value: unknown) => escapeMarkdown(String(value));
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const parts = [`**step ${e(c.step)}** — ${e(c.dir)}`];
  if (c.problem) parts.push(`Skipped: ${e(c.problem)}`);
  if (c.evalLoss !== null) parts.push(`eval loss ${e(formatLoss(c.evalLoss))}`);
  for (const r of scores) {
    const ci = r.acc === undefined ? undefined : interval95(r.acc, r.stderr);
    const shots = r.shots === undefined ? '' : `, ${r.shots}-shot`;
    parts.push(`${e(scoreText(r))} (n ${e(r.n)}${e(shots)}${ci ? `; 95%: ${pct(ci[0])} – ${pct(ci[1])}` : ''})`);
  }
  if (c.best) parts.push(`★ best by ${e(bestBy ?? 'eval_loss')}`);
  return parts.map((p) => `${p}\n\n`).join('');
}
