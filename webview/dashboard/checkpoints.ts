// The Checkpoints tab: every checkpoint of the runs shown, in a table (the toolkit's data grid):
// run, step, eval loss, the best one starred, and whether it is complete (DONE written).
import { el } from '../common/messenger';
import { table } from '../common/ui';
import type { RunModel } from './data';

export class CheckpointsView {
  readonly root = el('section', { class: 'checkpoints' });
  private readonly grid = table('Checkpoints', [
    { key: 'run', title: 'Run', width: 'minmax(8em, 2fr)' },
    { key: 'step', title: 'Step', width: '1fr' },
    { key: 'evalLoss', title: 'Eval loss', width: '1fr' },
    { key: 'best', title: 'Best', width: '5em' },
    { key: 'state', title: 'State', width: '1fr' },
  ]);
  private readonly empty = el('p', { class: 'empty' }, 'No checkpoints saved yet.');
  private shown = '';

  constructor(private readonly runs: () => RunModel[]) {
    this.root.append(this.grid.root, this.empty);
  }

  render(): void {
    const rows = this.runs().flatMap((run) =>
      run.header.checkpoints.map((c) => ({
        run: run.header.name,
        step: c.step.toLocaleString('en-US'),
        evalLoss: c.evalLoss === null ? '—' : c.evalLoss.toFixed(4),
        best: c.best ? '★' : '',
        state: c.complete ? 'complete' : 'incomplete',
      })),
    );
    const key = JSON.stringify(rows);
    if (key === this.shown) return; // the grid rebuilds its rows on every set: only when they change
    this.shown = key;
    this.grid.setRows(rows);
    this.grid.root.hidden = rows.length === 0;
    this.empty.hidden = rows.length > 0;
  }
}
