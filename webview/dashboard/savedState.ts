// What the dashboard webview keeps across hiding and window reloads (vscode.setState). It is read
// back by whatever bundle runs next, possibly a newer one: checked field by field, and a field an
// older bundle saved differently falls back alone instead of costing the rest.
import * as v from 'valibot';
import { ViewStateSchema } from '../../src/shared/protocol';
import { arr, int, parseOrUndefined, str, type Output } from '../../src/shared/schema';

export const TABS = ['samples', 'checkpoints', 'chat'] as const;
export type Tab = (typeof TABS)[number];

const SavedStateSchema = v.object({
  view: v.fallback(v.nullable(ViewStateSchema), null),
  hidden: v.fallback(arr(str), []),
  samples: v.fallback(v.object({ run: v.nullable(str), stepIndex: v.nullable(int) }), () => ({
    run: null,
    stepIndex: null,
  })),
  /** The tab below the charts; older saved states have none. */
  tab: v.fallback(v.optional(v.picklist(TABS)), undefined),
  /** The runs shown (from the last snapshot): what the host restores this panel with after a window reload. */
  keys: v.fallback(v.optional(arr(str)), undefined),
  /** The Evals table's step; null or absent (older saved states) follows the newest. */
  evalStep: v.fallback(v.optional(v.nullable(int)), undefined),
});
export type SavedState = Output<typeof SavedStateSchema>;

/** The saved state, each bad field replaced by its default; undefined when nothing (or no object) was saved. */
export function readSavedState(value: unknown): SavedState | undefined {
  return parseOrUndefined(SavedStateSchema, value);
}
