// The alert rules of this dashboard's runs: a row to add one (series, above/below, value, × median)
// and the list with a Remove button each. The host keeps them and notifies (src/host/alerts).
import type { WebviewToHost } from '../../src/shared/protocol';
import { describeRule, type AlertRule } from '../../src/shared/alertRules';
import { el } from '../common/messenger';
import { button, checkbox, dropdown, textField } from '../common/ui';
import type { RunModel } from './data';

export class AlertRulesView {
  readonly root = el('div', { class: 'alert-rules' });
  private readonly series = dropdown('Series');
  private readonly op = dropdown('Condition');
  private readonly value = textField('Value', { placeholder: '10' });
  private readonly median = checkbox('× its median');
  private readonly add = button('Add alert');
  private readonly list = el('ul', { class: 'alert-rule-list' });
  private rules: AlertRule[] = [];
  private readonly problem = el('span', { class: 'alert-rule-problem' });

  constructor(private readonly send: (m: WebviewToHost) => void) {
    this.op.setOptions([
      { value: 'above', label: 'above' },
      { value: 'below', label: 'below' },
    ]);
    const row = el('div', { class: 'alert-rule-form' });
    row.append(
      el('span', {}, 'Alert when '),
      this.series.root,
      this.op.root,
      this.value.root,
      this.median.root,
      this.add.root,
      this.problem,
    );
    this.root.append(row, this.list);
    this.add.onClick(() => this.addRule());
  }

  /** The series the runs log, as the dashboard names them (kind/field). */
  showSeries(runs: readonly RunModel[]): void {
    const ids = new Set<string>();
    for (const run of runs) for (const s of run.series.values()) ids.add(`${s.kind}/${s.field}`);
    const sorted = [...ids].sort();
    this.series.setOptions(sorted.map((id) => ({ value: id, label: id.startsWith('train/') ? id.slice(6) : id })));
  }

  showRules(rules: AlertRule[]): void {
    this.rules = rules;
    this.list.textContent = '';
    rules.forEach((rule, i) => {
      const item = el('li', { class: 'alert-rule' }, describeRule(rule) + ' ');
      const remove = button('Remove', { title: `Remove the alert ${describeRule(rule)}` });
      remove.onClick(() => this.send({ type: 'setAlertRules', rules: this.rules.filter((_, j) => j !== i) }));
      item.append(remove.root);
      this.list.append(item);
    });
  }

  private addRule(): void {
    const id = this.series.value;
    const slash = id.indexOf('/');
    const value = Number(this.value.value.trim());
    if (slash < 0 || this.value.value.trim() === '' || !Number.isFinite(value)) {
      this.problem.textContent = 'Choose a series and type a number.';
      return;
    }
    this.problem.textContent = '';
    const rule: AlertRule = {
      kind: id.slice(0, slash),
      field: id.slice(slash + 1),
      op: this.op.value === 'below' ? 'below' : 'above',
      value,
      scale: this.median.checked ? 'median' : 'absolute',
    };
    this.send({ type: 'setAlertRules', rules: [...this.rules, rule] });
  }
}
