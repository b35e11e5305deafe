// Sample generations: for the chosen step, the newest generation of every prompt at or before
// it; a slider walks back through every step that has samples. Text is set with textContent
// only — a model (or a foreign writer) can emit anything, and it must stay text.
import type { SampleItem } from '../../src/shared/protocol';
import { el } from '../common/messenger';
import { dropdown, slider } from '../common/ui';
import type { RunModel } from './data';

export interface SamplesState {
  run: string | null;
  /** Index into the run's sample steps; null follows the newest. */
  stepIndex: number | null;
}

/** Distinct steps with samples, ascending. */
export function sampleSteps(samples: readonly SampleItem[]): number[] {
  return [...new Set(samples.map((s) => s.step))].sort((a, b) => a - b);
}

/** Per prompt (in order of first appearance), the newest sample at or before `step`. */
export function samplesAt(samples: readonly SampleItem[], step: number): SampleItem[] {
  const byPrompt = new Map<string, SampleItem>();
  for (const s of samples) {
    if (s.step > step) continue;
    const prev = byPrompt.get(s.prompt);
    if (!prev || s.step >= prev.step) byPrompt.set(s.prompt, s);
  }
  return [...byPrompt.values()];
}

export class SamplesView {
  readonly root = el('section', { class: 'samples' });
  private readonly runSelect = dropdown('Run');
  private readonly slider = slider('Sample step', { min: '0', max: '0', step: '1' });
  private readonly stepLabel = el('span', { class: 'step-label' });
  private readonly list = el('div', { class: 'sample-list' });

  constructor(
    private readonly runs: () => RunModel[],
    private readonly state: SamplesState,
    private readonly changed: () => void,
  ) {
    const bar = el('div', { class: 'samples-bar' });
    bar.append(el('h2', {}, 'Samples'), this.runSelect.root, this.slider, this.stepLabel);
    this.root.append(bar, this.list);
    this.runSelect.onChange((run) => {
      this.state.run = run;
      this.state.stepIndex = null;
      this.render();
      this.changed();
    });
    this.slider.addEventListener('input', () => {
      const i = Number(this.slider.value);
      this.state.stepIndex = i >= Number(this.slider.max) ? null : i;
      this.render();
      this.changed();
    });
  }

  render(): void {
    const runs = this.runs();
    const run = runs.find((r) => r.header.key === this.state.run) ?? runs[0];
    this.runSelect.setOptions(
      runs.map((r) => ({ value: r.header.key, label: r.header.name })),
      run?.header.key,
    );
    this.runSelect.root.hidden = runs.length < 2;
    const steps = run ? sampleSteps(run.samples) : [];
    this.root.hidden = steps.length === 0;
    if (!run || steps.length === 0) return;
    const index = Math.min(this.state.stepIndex ?? steps.length - 1, steps.length - 1);
    this.slider.max = String(steps.length - 1);
    this.slider.value = String(index);
    this.slider.disabled = steps.length < 2;
    const step = steps[index];
    this.stepLabel.textContent = `step ${step}${index === steps.length - 1 ? ' (newest)' : ''} · ${index + 1} of ${steps.length}`;
    this.list.replaceChildren(...samplesAt(run.samples, step).map((s) => this.card(s)));
  }

  private card(s: SampleItem): HTMLElement {
    const card = el('article', { class: 'sample' });
    const head = el('div', { class: 'sample-head' });
    head.append(
      el('span', { class: 'prompt' }, s.prompt),
      el('span', { class: 'meta' }, `step ${s.step}${s.settings ? ` · ${s.settings}` : ''}`),
    );
    card.append(head, el('pre', { class: 'sample-text' }, s.text));
    return card;
  }
}
