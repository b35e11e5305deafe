// Learning-rate schedule of Steel-LLM / nanoGPT: linear warmup to `lr`, then cosine decay to
// `min_lr` at `max_steps`, then flat at `min_lr`. `step` counts optimizer updates from 0.
import type { TrainConfig } from '../../shared/config';

export function learningRate(
  step: number,
  config: Pick<TrainConfig, 'lr' | 'min_lr' | 'warmup_steps' | 'max_steps'>,
): number {
  const { lr, min_lr, warmup_steps, max_steps } = config;
  if (step < warmup_steps) return (lr * (step + 1)) / warmup_steps;
  if (step >= max_steps) return min_lr;
  const progress = (step - warmup_steps) / Math.max(1, max_steps - warmup_steps); // in [0, 1)
  return min_lr + 0.5 * (1 + Math.cos(Math.PI * progress)) * (lr - min_lr);
}
