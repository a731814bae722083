// What a person sees of a run: a progress line (redrawn on a terminal, plain lines otherwise), the
// per-epoch metrics, and curves.svg (train and test loss, train and test accuracy per epoch).

export interface EpochMetrics {
  epoch: number;
  step: number;
  lr: number;
  train_loss: number;
  train_accuracy: number;
  test_loss?: number;
  test_accuracy?: number;
  /** The same for the exponential moving average of the weights, when the run keeps one. */
  ema_test_loss?: number;
  ema_test_accuracy?: number;
  images_per_s: number;
  epoch_s: number;
  elapsed_s: number;
}

/** The run's rule for what it exports: the weight average when it scored higher than the weights on
 *  the held-out images at the last epoch (its metrics), the weights otherwise. */
export function averageWins(last: EpochMetrics | undefined): last is EpochMetrics & { test_accuracy: number; ema_test_accuracy: number } {
  return last?.ema_test_accuracy !== undefined && last.test_accuracy !== undefined && last.ema_test_accuracy > last.test_accuracy;
}

export function formatDuration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '--:--';
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = Math.floor(s % 60);
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}` : `${m}:${String(sec).padStart(2, '0')}`;
}

export interface ProgressState {
  epoch: number;
  epochs: number;
  step: number; // within the epoch, 1-based after the step
  steps: number;
  loss: number;
  accuracy: number;
  imagesPerS: number;
  etaS: number;
}

export class ProgressBar {
  private lastDraw = 0;
  private drawn = false;

  constructor(
    private readonly stream: NodeJS.WritableStream & { isTTY?: boolean; columns?: number },
    private readonly plainEvery = 0.25,
  ) {}

  private render(p: ProgressState): string {
    const width = 20;
    const filled = Math.round((p.step / p.steps) * width);
    return (
      `epoch ${p.epoch}/${p.epochs} ` +
      `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ` +
      `${p.step}/${p.steps} loss ${p.loss.toFixed(4)} acc ` +
      `${(100 * p.accuracy).toFixed(1)}% ${Math.round(p.imagesPerS)} img/s ` +
      `ETA ${formatDuration(p.etaS)}`
    );
  }

  update(p: ProgressState): void {
    if (this.stream.isTTY) {
      const now = Date.now();
      if (now - this.lastDraw < 100 && p.step < p.steps) return;
      this.lastDraw = now;
      this.stream.write(`\r\x1b[2K${this.render(p)}`);
      this.drawn = true;
    } else {
      const every = Math.max(1, Math.floor(p.steps * this.plainEvery));
      if (p.step % every === 0 || p.step === p.steps) this.stream.write(this.render(p) + '\n');
    }
  }

  /** Prints a whole line, below the bar if one is drawn. */
  line(text: string): void {
    if (this.drawn) this.stream.write('\r\x1b[2K');
    this.drawn = false;
    this.stream.write(text + '\n');
  }
}

/** Epoch ticks at round steps (1, 2, 5, 10, 20, 25, 50, …), at most about six, and the first epoch. */
export function epochTicks(maxEpoch: number): number[] {
  const steps = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000];
  const step = steps.find((s) => maxEpoch / s <= 6) ?? Math.ceil(maxEpoch / 6);
  const ticks = [1];
  for (let e = step; e <= maxEpoch; e += step) if (e !== 1) ticks.push(e);
  // the first tick would crowd the second on a short axis
  if (ticks.length > 2 && ticks[1] - ticks[0] < step / 2) ticks.splice(1, 1);
  return ticks;
}

/** A value axis from 0 that reaches `max`, ticked at a round step (1, 2 or 5 times a power of
 *  ten), at most five intervals: the ticks read 0.5, 1, 1.5, never 0.38, 0.75, 1.13. */
export function valueTicks(max: number): number[] {
  const target = Math.max(max, 1e-9) / 5;
  const power = 10 ** Math.floor(Math.log10(target));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= target)!;
  const count = Math.max(1, Math.ceil(max / step - 1e-9));
  return Array.from({ length: count + 1 }, (_, i) => Number((i * step).toPrecision(12)));
}

/** Two panels (loss, accuracy) over epochs, like the seed post's plot; `evalName` names the held-out split. */
export function renderCurves(history: readonly EpochMetrics[], title = 'training', evalName: 'test' | 'val' = 'test'): string {
  const W = 420;
  const H = 290;
  const pad = { l: 52, r: 16, t: 50, b: 40 };
  const held = evalName === 'val' ? 'validation' : 'test';
  const epochs = history.map((h) => h.epoch);
  const maxEpoch = Math.max(1, ...epochs);
  const panel = (
    x0: number,
    label: string,
    series: { name: string; color: string; points: [number, number][] }[],
    yTicks: number[],
    yFmt: (v: number) => string,
  ) => {
    const yMax = yTicks[yTicks.length - 1];
    const px = (e: number) =>
      x0 + pad.l + ((e - (maxEpoch > 1 ? 1 : 0)) / Math.max(1, maxEpoch - (maxEpoch > 1 ? 1 : 0))) * (W - pad.l - pad.r);
    const py = (v: number) => pad.t + (1 - Math.min(v, yMax) / yMax) * (H - pad.t - pad.b);
    const parts = [`<text x="${x0 + W / 2}" y="20" text-anchor="middle" font-weight="bold">${label}</text>`];
    for (const v of yTicks) {
      parts.push(`<line x1="${x0 + pad.l}" x2="${x0 + W - pad.r}" y1="${py(v)}" y2="${py(v)}" stroke="#ddd"/>`);
      parts.push(`<text x="${x0 + pad.l - 6}" y="${py(v) + 4}" text-anchor="end">${yFmt(v)}</text>`);
    }
    for (const e of epochTicks(maxEpoch)) parts.push(`<text x="${px(e)}" y="${H - pad.b + 16}" text-anchor="middle">${e}</text>`);
    parts.push(`<text x="${x0 + W / 2}" y="${H - 6}" text-anchor="middle">epoch</text>`);
    parts.push(
      `<rect x="${x0 + pad.l}" y="${pad.t}" width="${W - pad.l - pad.r}" height="${H - pad.t - pad.b}" fill="none" stroke="#888"/>`,
    );
    series.forEach((s, i) => {
      if (s.points.length === 0) return;
      const d = s.points.map(([e, v]) => `${px(e).toFixed(1)},${py(v).toFixed(1)}`).join(' ');
      parts.push(`<polyline points="${d}" fill="none" stroke="${s.color}" stroke-width="2"/>`);
      if (s.points.length === 1) parts.push(`<circle cx="${px(s.points[0][0])}" cy="${py(s.points[0][1])}" r="3" fill="${s.color}"/>`);
      // the legend sits between the title and the plot, never over the lines
      const lx = x0 + pad.l + 150 * i;
      parts.push(`<line x1="${lx}" x2="${lx + 18}" y1="36" y2="36" stroke="${s.color}" stroke-width="2"/>`);
      parts.push(`<text x="${lx + 22}" y="40" fill="#333">${s.name}</text>`);
    });
    return parts.join('\n');
  };
  const pts = (key: keyof EpochMetrics, scale = 1) =>
    history.filter((h) => typeof h[key] === 'number').map((h) => [h.epoch, (h[key] as number) * scale] as [number, number]);
  const maxLoss = Math.max(0.5, ...history.flatMap((h) => [h.train_loss, h.test_loss ?? 0]).filter(Number.isFinite));
  const lossTicks = valueTicks(maxLoss);
  const decimals = (ticks: number[]) => Math.max(0, ...ticks.map((v) => (String(v).split('.')[1] ?? '').length));
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${2 * W}" ` +
      `height="${H}" viewBox="0 0 ${2 * W} ${H}" font-family="sans-serif" ` +
      `font-size="12">`,
    `<title>${title}</title>`,
    `<rect width="100%" height="100%" fill="white"/>`,
    panel(
      0,
      'Loss',
      [
        { name: 'train loss', color: '#1f77b4', points: pts('train_loss') },
        { name: `${held} loss`, color: '#ff7f0e', points: pts('test_loss') },
      ],
      lossTicks,
      (v) => v.toFixed(decimals(lossTicks)),
    ),
    panel(
      W,
      'Accuracy',
      [
        { name: 'train accuracy', color: '#1f77b4', points: pts('train_accuracy', 100) },
        { name: `${held} accuracy`, color: '#ff7f0e', points: pts('test_accuracy', 100) },
      ],
      [0, 20, 40, 60, 80, 100],
      (v) => `${v.toFixed(0)}%`,
    ),
    '</svg>',
    '',
  ].join('\n');
}
