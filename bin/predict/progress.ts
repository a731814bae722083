// vitrine predict's progress on stderr: one line redrawn on a terminal (at most ten times a second),
// else a plain line every 10% or every 30 s.

import { formatDuration } from '../../trainer/train/report.js';

export class PredictProgress {
  private readonly started = Date.now();
  private lastDraw = 0;
  private lastDecile = 0;
  private drawn = false;

  constructor(
    private readonly total: number,
    private readonly stream: NodeJS.WritableStream & { isTTY?: boolean } = process.stderr,
  ) {}

  /** Seconds since the bar started. */
  elapsedS(): number {
    return (Date.now() - this.started) / 1000;
  }

  /** Images per second so far. */
  rate(done: number): number {
    const s = this.elapsedS();
    return s > 0 ? done / s : 0;
  }

  private render(done: number, errors: number): string {
    const width = 20;
    const filled = this.total > 0 ? Math.round((done / this.total) * width) : width;
    const rate = this.rate(done);
    const eta = rate > 0 ? (this.total - done) / rate : NaN;
    return (
      `predict [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ` +
      `${done.toLocaleString('en-US')}/${this.total.toLocaleString('en-US')} ` +
      `${Math.round(rate).toLocaleString('en-US')} images/s ETA ` +
      `${formatDuration(eta)}${errors ? ` (${errors} error${errors > 1 ? 's' : ''})` : ''}`
    );
  }

  update(done: number, errors: number): void {
    const now = Date.now();
    const last = done === this.total;
    if (this.stream.isTTY) {
      if (now - this.lastDraw < 100 && !last) return;
      this.stream.write(`\r\x1b[2K${this.render(done, errors)}`);
      this.drawn = true;
    } else {
      const decile = this.total > 0 ? Math.floor((10 * done) / this.total) : 10;
      if (decile === this.lastDecile && now - this.lastDraw < 30_000 && !last) return;
      this.lastDecile = decile;
      this.stream.write(this.render(done, errors) + '\n');
    }
    this.lastDraw = now;
  }

  /** Prints a whole line, below the bar if one is drawn. */
  line(text: string): void {
    if (this.drawn) this.stream.write('\r\x1b[2K');
    this.drawn = false;
    this.stream.write(text + '\n');
  }

  /** Ends the bar's line on a terminal. */
  end(): void {
    if (this.drawn) this.stream.write('\n');
    this.drawn = false;
  }
}
