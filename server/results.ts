// Recent classification results, kept so that GET /attention/:id can draw them: a bounded LRU with a
// time to live. Each entry holds every layer's attention probabilities and the image the model saw.
//
// Memory: an entry's attention arrays start as views into the arrays of the batch it ran in (no copy
// per request). Results of one batch are stored together and leave together (oldest first), so a
// batch's arrays are freed when its last entry goes. An entry that is read is moved to the young end
// and would keep its whole batch alive, so a read first gives it arrays of its own. What the store
// holds is so at most (capacity + one batch) entries' worth: ~270 KB each for the bundled model.

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
    const own = { ...r, attentions: r.attentions.map((a) => (a.byteLength === a.buffer.byteLength ? a : a.slice())) };
    this.entries.set(id, own); // most recently used last
    return own;
  }
}
