// The Runs tree in the Steelscope activity-bar container: hosts → (a login node's partitions) runs →
// checkpoints and the latest samples. A view over the RunStore and the hosts; no state of its own.
import * as vscode from 'vscode';
import type { CheckpointSummary, RunData, RunDisplayStatus, RunStoreApi, RunSummary } from '../runs/types';
import type { SampleRecord } from '../../shared/run';
import { posix } from 'node:path';
import { groupRuns } from './runGroups';
import {
  checkpointDescription,
  checkpointTooltipMarkdown,
  hostTooltipMarkdown,
  runTooltipMarkdown,
} from './runTooltip';
import { checkpointScores } from '../../shared/eval';
import { partitionsDefaultFirst } from '../slurm/loginNode';
import type { SlurmPartition } from '../slurm/cluster';
import {
  hostDescription,
  listedHosts,
  noRunsRow,
  partitionRow,
  partitionsRow,
  type HostState,
  type RowSpec,
} from './hostRows';

export type RunsNode =
  | { kind: 'host'; hostId: string; label: string }
  | { kind: 'partitions'; hostId: string }
  | { kind: 'partition'; hostId: string; partition: SlurmPartition }
  | { kind: 'noRuns'; hostId: string }
  | { kind: 'group'; hostId: string; dir: string }
  | { kind: 'run'; key: string }
  | { kind: 'checkpoint'; key: string; checkpoint: CheckpointSummary }
  | { kind: 'samples'; key: string }
  | { kind: 'sample'; key: string; sample: SampleRecord };

const STATUS_ICON: Record<RunDisplayStatus, [string, string | undefined]> = {
  starting: ['loading~spin', undefined],
  running: ['sync~spin', 'charts.blue'],
  stopping: ['loading~spin', undefined],
  finished: ['pass', 'testing.iconPassed'],
  failed: ['error', 'testing.iconFailed'],
  stopped: ['debug-stop', undefined],
  stale: ['warning', 'list.warningForeground'],
  pending: ['clock', undefined],
  unknown: ['question', undefined],
};

export class RunsTreeProvider implements vscode.TreeDataProvider<RunsNode>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<RunsNode | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private readonly subscription: { dispose(): void };

  constructor(
    private readonly store: RunStoreApi,
    private readonly hosts: () => HostState[],
  ) {
    // Store changes arrive already batched; a full refresh keeps ordering and grouping simple.
    this.subscription = store.onDidChange(() => this.changed.fire(undefined));
  }

  refresh(): void {
    this.changed.fire(undefined);
  }

  getChildren(node?: RunsNode): RunsNode[] {
    const runs = [...this.store.runs.values()].map((r) => r.summary);
    if (!node)
      return listedHosts(this.hosts(), runs.length).map((h) => ({ kind: 'host', hostId: h.id, label: h.label }));
    if (node.kind === 'partitions') {
      const cluster = this.hosts().find((h) => h.id === node.hostId)?.slurm;
      return partitionsDefaultFirst(cluster?.partitions ?? []).map((partition) => ({
        kind: 'partition',
        hostId: node.hostId,
        partition,
      }));
    }
    if (node.kind === 'host' || node.kind === 'group') {
      const ofHost = runs
        .filter((r) => r.hostId === node.hostId)
        .sort(
          (a, b) =>
            (b.info?.createdAt ?? '').localeCompare(a.info?.createdAt ?? '') ||
            a.dir.localeCompare(b.dir, undefined, { numeric: true }),
        );
      const entries = groupRuns(ofHost);
      if (node.kind === 'group') {
        const group = entries.find((e) => e.kind === 'group' && e.dir === node.dir);
        return group?.kind === 'group' ? group.runs.map((r) => ({ kind: 'run', key: r.key })) : [];
      }
      const rows = entries.map((e): RunsNode =>
        e.kind === 'run' ? { kind: 'run', key: e.run.key } : { kind: 'group', hostId: node.hostId, dir: e.dir },
      );
      const none: RunsNode[] = [{ kind: 'noRuns', hostId: node.hostId }];
      return [...this.aboveRuns(node.hostId), ...(rows.length ? rows : none)];
    }
    if (node.kind === 'run') {
      const data = this.store.get(node.key);
      if (!data) return [];
      const checkpoints: RunsNode[] = [...data.summary.checkpoints]
        .reverse()
        .map((checkpoint) => ({ kind: 'checkpoint', key: node.key, checkpoint }));
      return data.samples.length ? [...checkpoints, { kind: 'samples', key: node.key }] : checkpoints;
    }
    if (node.kind === 'samples')
      return latestSamples(this.store.get(node.key)?.samples ?? []).map((sample) => ({
        kind: 'sample',
        key: node.key,
        sample,
      }));
    return [];
  }

  getTreeItem(node: RunsNode): vscode.TreeItem {
    switch (node.kind) {
      case 'host':
        return this.hostItem(node.hostId, node.label);
      case 'partitions': {
        const cluster = this.hosts().find((h) => h.id === node.hostId)?.slurm;
        return rowItem(partitionsRow(node.hostId, cluster ?? { partitions: [], accounts: [] }));
      }
      case 'partition':
        return rowItem(partitionRow(node.hostId, node.partition));
      case 'noRuns': {
        const host = this.hosts().find((h) => h.id === node.hostId);
        return rowItem(noRunsRow(host ?? { id: node.hostId, label: node.hostId, state: 'disconnected' }));
      }
      case 'group': {
        const item = new vscode.TreeItem(posix.basename(node.dir), vscode.TreeItemCollapsibleState.Expanded);
        item.id = `group:${node.hostId}:${node.dir}`;
        item.description = node.dir;
        item.iconPath = new vscode.ThemeIcon('folder');
        item.contextValue = 'runGroup';
        return item;
      }
      case 'run':
        return runItem(this.store.get(node.key)?.summary);
      case 'checkpoint':
        return checkpointItem(node.checkpoint, this.store.get(node.key));
      case 'samples': {
        const item = new vscode.TreeItem('Latest samples', vscode.TreeItemCollapsibleState.Collapsed);
        item.iconPath = new vscode.ThemeIcon('comment-discussion');
        item.contextValue = 'samples';
        return item;
      }
      case 'sample':
        return sampleItem(node.sample);
    }
  }

  private hostItem(hostId: string, label: string): vscode.TreeItem {
    const host = this.hosts().find((h) => h.id === hostId);
    const item = new vscode.TreeItem(label, vscode.TreeItemCollapsibleState.Expanded);
    item.id = `host:${hostId}`;
    item.description = hostDescription(host);
    if (host?.slurm) item.tooltip = markdown(hostTooltipMarkdown(label, host.slurm));
    item.iconPath = new vscode.ThemeIcon(
      hostId === 'local' ? 'vm' : host?.slurm ? 'server-environment' : 'remote',
      host?.state === 'disconnected' ? new vscode.ThemeColor('list.warningForeground') : undefined,
    );
    item.contextValue = hostId === 'local' ? 'host.local' : `host.ssh.${host?.state ?? 'disconnected'}`;
    return item;
  }

  /** A login node's Partitions row, above its runs. */
  private aboveRuns(hostId: string): RunsNode[] {
    return this.hosts().find((h) => h.id === hostId)?.slurm ? [{ kind: 'partitions', hostId }] : [];
  }

  dispose(): void {
    this.subscription.dispose();
    this.changed.dispose();
  }
}

function rowItem(row: RowSpec): vscode.TreeItem {
  const item = new vscode.TreeItem(
    row.label,
    row.collapsed ? vscode.TreeItemCollapsibleState.Collapsed : vscode.TreeItemCollapsibleState.None,
  );
  item.id = row.id;
  item.description = row.description;
  item.tooltip = row.tooltip;
  item.iconPath = new vscode.ThemeIcon(row.icon, row.color ? new vscode.ThemeColor(row.color) : undefined);
  item.contextValue = row.contextValue;
  if (row.command) {
    const { id, title, hostId } = row.command;
    item.command = { command: id, title, arguments: hostId ? [{ kind: 'host', hostId }] : [] };
  }
  return item;
}

function runItem(summary: RunSummary | undefined): vscode.TreeItem {
  if (!summary) return new vscode.TreeItem('(removed)');
  const item = new vscode.TreeItem(summary.name, vscode.TreeItemCollapsibleState.Collapsed);
  item.id = `run:${summary.key}`;
  const reason = summary.status === 'pending' && summary.job?.reason ? ` (${summary.job.reason})` : '';
  const parts: string[] = [summary.status + reason];
  if (summary.lastStep !== undefined) parts.push(`step ${summary.lastStep}`);
  if (summary.lastLoss !== undefined) parts.push(`loss ${formatNumber(summary.lastLoss)}`);
  if (summary.problems?.length) parts.push('run.json has problems');
  item.description = parts.join(' · ');
  const [icon, color] = STATUS_ICON[summary.status];
  item.iconPath = new vscode.ThemeIcon(icon, color ? new vscode.ThemeColor(color) : undefined);
  item.contextValue = `run.${summary.status}${summary.hostId === 'local' ? '' : '.remote'}`;
  item.tooltip = markdown(runTooltipMarkdown(summary));
  item.command = {
    command: 'steelscope.openDashboard',
    title: 'Open Dashboard',
    arguments: [{ kind: 'run', key: summary.key }],
  };
  if (summary.hostId === 'local') item.resourceUri = vscode.Uri.file(summary.dir);
  return item;
}

/** Untrusted Markdown with theme icons: what runTooltip.ts writes (every value escaped there). */
function markdown(text: string): vscode.MarkdownString {
  const md = new vscode.MarkdownString(undefined, true);
  md.isTrusted = false;
  md.appendMarkdown(text);
  return md;
}

function checkpointItem(c: CheckpointSummary, run: RunData | undefined): vscode.TreeItem {
  const remote = run?.summary.hostId !== 'local';
  const item = new vscode.TreeItem(`step ${c.step}`, vscode.TreeItemCollapsibleState.None);
  item.id = `ckpt:${c.dir}`;
  const scores = checkpointScores(run?.evals ?? [], c.step);
  item.description = checkpointDescription(c, scores);
  item.iconPath = new vscode.ThemeIcon(c.complete ? (c.best ? 'star-full' : 'save') : 'circle-slash');
  item.contextValue = (c.complete ? 'checkpoint.complete' : 'checkpoint.incomplete') + (remote ? '.remote' : '');
  item.tooltip = markdown(checkpointTooltipMarkdown(c, scores, run?.summary.config?.best_by));
  if (!remote) item.resourceUri = vscode.Uri.file(c.dir);
  return item;
}

function sampleItem(s: SampleRecord): vscode.TreeItem {
  const oneLine = (s.prompt + s.text).replace(/\s+/g, ' ');
  const item = new vscode.TreeItem(
    oneLine.length > 60 ? oneLine.slice(0, 59) + '…' : oneLine,
    vscode.TreeItemCollapsibleState.None,
  );
  item.description = `step ${s.step}`;
  item.tooltip = `${s.prompt}${s.text}\n\n(step ${s.step}, temperature ${s.temperature}, seed ${s.seed})`;
  item.iconPath = new vscode.ThemeIcon('quote');
  item.contextValue = 'sample';
  return item;
}

/** The newest sample of each prompt, newest first. */
export function latestSamples(samples: readonly SampleRecord[]): SampleRecord[] {
  const byPrompt = new Map<string, SampleRecord>();
  for (const s of samples) {
    const prev = byPrompt.get(s.prompt);
    if (!prev || s.step >= prev.step) byPrompt.set(s.prompt, s);
  }
  return [...byPrompt.values()].sort((a, b) => b.step - a.step);
}

function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  return Math.abs(v) >= 100 ? v.toFixed(1) : v.toFixed(4);
}
