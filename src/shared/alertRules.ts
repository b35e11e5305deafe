// Alert rules as the dashboard sets them and the workspace keeps them (src/host/alerts/alerts.ts
// evaluates them): declared once, for the webview, the protocol and the host.
import { arr, num, obj, oneOf, str, type Output } from './schema';

/**
 * A rule on one series of a run's metrics (kind/field, as the dashboard names them). `scale` of
 * `median`: the threshold is `value` × the median of the values seen so far (tok/s below half its
 * median: below, 0.5, median); `absolute`: the threshold is `value`.
 */
export const AlertRuleSchema = obj({
  kind: str,
  field: str,
  op: oneOf(['above', 'below'] as const),
  value: num,
  scale: oneOf(['absolute', 'median'] as const),
});
export type AlertRule = Output<typeof AlertRuleSchema>;

/** The rules of one set of runs (a dashboard's). */
export const AlertRulesSchema = arr(AlertRuleSchema);

export function describeRule(r: AlertRule): string {
  const threshold = r.scale === 'median' ? `${r.value} × its median` : String(r.value);
  return `${r.kind === 'train' ? r.field : `${r.kind}/${r.field}`} ${r.op === 'above' ? '>' : '<'} ${threshold}`;
}
