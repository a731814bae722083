// Optimizers over the parameter arrays, in plain TypeScript (float64 arithmetic, float32 storage).
// AdamW follows torch.optim.AdamW (decoupled weight decay: p -= lr * wd * p, then the Adam step with
// bias correction); SGD follows torch.optim.SGD (L2 weight decay added to the gradient, momentum
// buffer initialized with the first gradient, optional Nesterov). A parameter's lrScale multiplies the
// rate for it (layer-wise decay, as torch's parameter groups with their own lr); at 0 the parameter is
// frozen: not updated, its state untouched, and AdamW counts its steps apart (torch keeps a step per
// parameter), so its bias correction starts afresh when it thaws.

export interface OptimizerParam {
  name: string;
  data: Float32Array;
  /** False for parameters exempt from weight decay. */
  decay: boolean;
  /** The share of the learning rate this parameter takes (default 1; 0 freezes it). */
  lrScale?: number;
}

export interface Optimizer {
  readonly kind: 'adamw' | 'sgd';
  /** Number of updates so far. */
  readonly steps: number;
  step(params: readonly OptimizerParam[], grads: readonly Float32Array[], lr: number): void;
  /** Named state arrays for a checkpoint, plus the step count. */
  state(): Map<string, Float32Array>;
  loadState(state: ReadonlyMap<string, Float32Array>, steps: number): void;
}

export interface AdamWOptions {
  weightDecay: number;
  betas: [number, number];
  eps: number;
}

export class AdamW implements Optimizer {
  readonly kind = 'adamw' as const;
  steps = 0;
  private readonly m = new Map<string, Float32Array>();
  private readonly v = new Map<string, Float32Array>();
  /** Steps a frozen parameter sat out: its own step count is steps minus these. */
  private readonly skipped = new Map<string, number>();

  constructor(readonly o: AdamWOptions) {}

  step(params: readonly OptimizerParam[], grads: readonly Float32Array[], baseLr: number): void {
    this.steps++;
    const [b1, b2] = this.o.betas;
    params.forEach((p, k) => {
      const scale = p.lrScale ?? 1;
      if (scale === 0) {
        this.skipped.set(p.name, (this.skipped.get(p.name) ?? 0) + 1);
        return;
      }
      const lr = baseLr * scale;
      const t = this.steps - (this.skipped.get(p.name) ?? 0);
      const c1 = 1 - b1 ** t;
      const c2 = 1 - b2 ** t;
      const g = grads[k];
      const m = this.m.get(p.name) ?? this.m.set(p.name, new Float32Array(p.data.length)).get(p.name)!;
      const v = this.v.get(p.name) ?? this.v.set(p.name, new Float32Array(p.data.length)).get(p.name)!;
      const shrink = p.decay ? 1 - lr * this.o.weightDecay : 1;
      const d = p.data;
      for (let i = 0; i < d.length; i++) {
        const gi = g[i];
        m[i] = b1 * m[i] + (1 - b1) * gi;
        v[i] = b2 * v[i] + (1 - b2) * gi * gi;
        d[i] = d[i] * shrink - (lr * (m[i] / c1)) / (Math.sqrt(v[i] / c2) + this.o.eps);
      }
    });
  }

  state(): Map<string, Float32Array> {
    const out = new Map<string, Float32Array>();
    for (const [n, a] of this.m) out.set(`optimizer.exp_avg.${n}`, a);
    for (const [n, a] of this.v) out.set(`optimizer.exp_avg_sq.${n}`, a);
    for (const [n, k] of this.skipped) out.set(`optimizer.skipped_steps.${n}`, Float32Array.of(k));
    return out;
  }

  loadState(state: ReadonlyMap<string, Float32Array>, steps: number): void {
    this.steps = steps;
    for (const [key, a] of state) {
      if (key.startsWith('optimizer.skipped_steps.')) this.skipped.set(key.slice('optimizer.skipped_steps.'.length), a[0]);
      else if (key.startsWith('optimizer.exp_avg_sq.')) this.v.set(key.slice('optimizer.exp_avg_sq.'.length), Float32Array.from(a));
      else if (key.startsWith('optimizer.exp_avg.')) this.m.set(key.slice('optimizer.exp_avg.'.length), Float32Array.from(a));
    }
  }
}

export interface SGDOptions {
  weightDecay: number;
  momentum: number;
  nesterov: boolean;
}

export class SGD implements Optimizer {
  readonly kind = 'sgd' as const;
  steps = 0;
  private readonly buf = new Map<string, Float32Array>();

  constructor(readonly o: SGDOptions) {}

  step(params: readonly OptimizerParam[], grads: readonly Float32Array[], baseLr: number): void {
    this.steps++;
    const { momentum: mu, nesterov } = this.o;
    params.forEach((p, k) => {
      const scale = p.lrScale ?? 1;
      if (scale === 0) return;
      const lr = baseLr * scale;
      const g = grads[k];
      const d = p.data;
      const wd = p.decay ? this.o.weightDecay : 0;
      let b = this.buf.get(p.name);
      const first = !b;
      if (!b && mu > 0) {
        b = new Float32Array(d.length);
        this.buf.set(p.name, b);
      }
      for (let i = 0; i < d.length; i++) {
        let gi = g[i] + wd * d[i];
        if (b) {
          b[i] = first ? gi : mu * b[i] + gi;
          gi = nesterov ? gi + mu * b[i] : b[i];
        }
        d[i] -= lr * gi;
      }
    });
  }

  state(): Map<string, Float32Array> {
    return new Map([...this.buf].map(([n, a]) => [`optimizer.momentum_buffer.${n}`, a]));
  }

  loadState(state: ReadonlyMap<string, Float32Array>, steps: number): void {
    this.steps = steps;
    for (const [key, a] of state)
      if (key.startsWith('optimizer.momentum_buffer.')) this.buf.set(key.slice('optimizer.momentum_buffer.'.length), Float32Array.from(a));
  }
}

/** 1-D parameters (biases, layer norms) and the embeddings; exempt from decay when asked. */
export function isNoDecayParam(name: string, shape: readonly number[]): boolean {
  return shape.length === 1 || name.endsWith('cls_token') || name.endsWith('distillation_token') || name.endsWith('position_embeddings');
}
