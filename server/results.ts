// Recent classification results, kept so that GET /attention/:id can draw them: a bounded LRU with a
// time to live. Each entry holds every layer's attention probabilities and the image the model saw.

export interface StoredResult {
  id: string;
  model: string;
  createdAt: number;
  attentions: Float32Array[]; // per layer, heads * tokens * tokens
  heads: number;
  tokens: number;
  view: { data: Buffer; width: number; height: number };
}

export class ResultStore {
  private readonly entries = new Map<string, StoredResult>();

  constructor(
    readonly capacity: number,
    readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  put(r: StoredResult): void {
    if (this.capacity === 0) return;
    this.entries.delete(r.id);
    this.entries.set(r.id, r);
    while (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value!);
  }

  /** The result, or undefined when unknown or older than the TTL (then it is dropped). */
  get(id: string): StoredResult | undefined {
    const r = this.entries.get(id);
    if (!r) return undefined;
    if (this.now() - r.createdAt > this.ttlMs) {
      this.entries.delete(id);
      return undefined;
    }
    this.entries.delete(id);
    this.entries.set(id, r); // most recently used last
    return r;
  }
}
