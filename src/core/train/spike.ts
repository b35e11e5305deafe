// Loss-spike detection: a finite loss more than `sigmas` standard deviations above the mean of
// the recent window. Needs a warm window first, so the fast fall at the start is not a "spike".
const WINDOW = 100;
const MIN_SAMPLES = 20;

export class SpikeDetector {
  private readonly recent: number[] = [];

  constructor(private readonly sigmas: number) {}

  /** Returns the statistics when `loss` is a spike; the loss joins the window either way. */
  observe(loss: number): { mean: number; std: number; sigmas: number } | undefined {
    if (!Number.isFinite(loss)) return undefined;
    let result: { mean: number; std: number; sigmas: number } | undefined;
    if (this.sigmas > 0 && this.recent.length >= MIN_SAMPLES) {
      const mean = this.recent.reduce((a, b) => a + b, 0) / this.recent.length;
      const variance = this.recent.reduce((a, b) => a + (b - mean) ** 2, 0) / this.recent.length;
      const std = Math.sqrt(variance);
      // The floor on std keeps a perfectly flat window from flagging tiny wiggles.
      const z = (loss - mean) / Math.max(std, 1e-3 * Math.abs(mean), 1e-6);
      if (z > this.sigmas) result = { mean, std, sigmas: z };
    }
    this.recent.push(loss);
    if (this.recent.length > WINDOW) this.recent.shift();
    return result;
  }
}
