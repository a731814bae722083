// An exponential moving average of the weights (Polyak averaging, as timm's ModelEmaV2): after every
// step avg <- decay * avg + (1 - decay) * weight. It is evaluated beside the weights each epoch, saved
// in the checkpoint (as `optimizer.ema.<name>`, so a resumed run continues it exactly), and exported
// when it does better on the held-out images at the end.

import type { OptimizerParam } from './optim.js';

const PREFIX = 'optimizer.ema.';

export class WeightAverage {
  private readonly avg = new Map<string, Float32Array>();

  constructor(
    readonly decay: number,
    params: readonly OptimizerParam[],
  ) {
    for (const p of params) this.avg.set(p.name, Float32Array.from(p.data));
  }

  update(params: readonly OptimizerParam[]): void {
    const d = this.decay;
    for (const p of params) {
      const a = this.avg.get(p.name)!;
      const w = p.data;
      for (let i = 0; i < a.length; i++) a[i] = d * a[i] + (1 - d) * w[i];
    }
  }

  state(): Map<string, Float32Array> {
    return new Map([...this.avg].map(([n, a]) => [`${PREFIX}${n}`, a]));
  }

  /** Takes the average from a checkpoint's state; false when the checkpoint has none (the run then starts it from the weights). */
  load(state: ReadonlyMap<string, Float32Array>): boolean {
    let found = false;
    for (const [key, a] of state) {
      const name = key.startsWith(PREFIX) ? key.slice(PREFIX.length) : null;
      if (name !== null && this.avg.has(name) && this.avg.get(name)!.length === a.length) {
        this.avg.get(name)!.set(a);
        found = true;
      }
    }
    return found;
  }

  /** Runs fn with the averaged weights in the parameters' place, then puts the weights back. */
  async swapped<T>(params: readonly OptimizerParam[], fn: () => Promise<T>): Promise<T> {
    const saved = params.map((p) => Float32Array.from(p.data));
    for (const p of params) p.data.set(this.avg.get(p.name)!);
    try {
      return await fn();
    } finally {
      params.forEach((p, i) => p.data.set(saved[i]));
    }
  }

  /** Puts the averaged weights in the parameters' place for good (for the export). */
  adopt(params: readonly OptimizerParam[]): void {
    for (const p of params) p.data.set(this.avg.get(p.name)!);
  }
}
