// Recent classification results, kept so that GET /attention/:id can draw them: a bounded LRU with a
// time to live. Each entry holds every layer's attention probabilities and the image the model saw.
//
// Memory: the attention probabilities (~270 KB per result for the bundled model) live in one shared
// slab per model (a SharedArrayBuffer, one slot per result) that the inference workers write into
// directly. Arrays allocated per request and handed from the worker to the event loop kept V8's
// collector busy on every core (bench:serve c=32, one worker: 1,199 -> 1,328 req/s without them); a
// slot is reused for ever. A slab has `capacity + inflight` slots: the entries, plus the results of batches still
// running, which hold a reserved slot until they commit it or give it back. The memory is the OS's
// zeroed pages, taken as slots are first written.
// Until a model's first batch has told the shapes, its results are copied in (put) instead; so are
// they when the slab cannot be allocated. Sizing: capacity x layers x heads x tokens^2 x 4 bytes
// (the bundled model: 270 KB a result; a ViT-B/16 at 224 px would take 22 MB a result).

export interface StoredResult {
  id: string;
  model: string;
  createdAt: number;
  attentions: Float32Array[]; // per layer, heads * tokens * tokens
  heads: number;
  tokens: number;
  view: { data: Buffer; width: number; height: number };
  /** The model input (normalized CHW), so that a relevance map for any class can be computed when asked. */
  pixels?: Float32Array;
  /** The top prediction's index: the class a relevance map explains by default. */
  top?: number;
}

interface Entry extends StoredResult {
  slot: number; // -1: copied in, not in a slab
}

export interface Slab {
  buffer: SharedArrayBuffer;
  layers: number;
  /** Floats per layer of one result (heads * tokens * tokens). */
  layerFloats: number;
}

interface ModelSlab extends Slab {
  floats: Float32Array;
  free: number[];
}

export class ResultStore {
  private readonly entries = new Map<string, Entry>();
  private readonly slabs = new Map<string, ModelSlab>();
  /** Ids of results of models without attention outputs (nothing to keep but whose they were), so
   *  that asking for their maps is told why (422) rather than that they are unknown; same bounds. */
  private readonly unkept = new Map<string, { model: string; createdAt: number }>();

  /**
   * @param capacity results kept (0: none)
   * @param inflight most results that can be running at once (workers x max batch): slab slots beyond the capacity
   */
  constructor(
    readonly capacity: number,
    readonly ttlMs: number,
    private readonly inflight = 0,
    /** The clock TTLs are measured on (injectable, so that tests need not wait). */
    readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** The model's slab, once its shapes are known (see learn). */
  slab(model: string): Slab | null {
    return this.slabs.get(model) ?? null;
  }

  /** Creates the model's slab from the shapes of its attention outputs. */
  learn(model: string, layers: number, layerFloats: number): void {
    if (this.capacity === 0 || this.slabs.has(model) || layers * layerFloats === 0) return;
    const slots = this.capacity + this.inflight;
    let buffer: SharedArrayBuffer;
    try {
      buffer = new SharedArrayBuffer(slots * layers * layerFloats * 4);
    } catch {
      return; // too large to reserve at once: this model's results stay on the copying path
    }
    this.slabs.set(model, { buffer, layers, layerFloats, floats: new Float32Array(buffer), free: Array.from({ length: slots }, (_, i) => slots - 1 - i) });
  }

  /** A slot for a result about to be computed, or null (no slab yet, or none free). */
  reserve(model: string): number | null {
    const slab = this.slabs.get(model);
    if (!slab) return null;
    if (slab.free.length === 0) {
      for (const [id, e] of this.entries) {
        if (e.model === model && e.slot >= 0) {
          this.delete(id);
          break;
        }
      }
    }
    return slab.free.pop() ?? null;
  }

  /** Gives back a reserved slot whose result never came. */
  release(model: string, slot: number): void {
    this.slabs.get(model)?.free.push(slot);
  }

  /** Stores a result whose attention a worker wrote into the reserved slot. */
  commit(r: Omit<StoredResult, 'attentions'>, slot: number): void {
    const slab = this.slabs.get(r.model)!;
    this.makeRoom(r.id);
    const base = slot * slab.layers * slab.layerFloats;
    const attentions = Array.from({ length: slab.layers }, (_, l) => slab.floats.subarray(base + l * slab.layerFloats, base + (l + 1) * slab.layerFloats));
    this.entries.set(r.id, { ...r, attentions, slot });
  }

  /** Stores a result by copying its attention arrays. */
  put(r: StoredResult): void {
    if (this.capacity === 0) return;
    this.makeRoom(r.id);
    this.entries.set(r.id, { ...r, attentions: r.attentions.map((a) => a.slice()), slot: -1 });
  }

  private makeRoom(id: string): void {
    this.delete(id);
    while (this.entries.size >= this.capacity) this.delete(this.entries.keys().next().value!);
  }

  private delete(id: string): void {
    const e = this.entries.get(id);
    if (!e) return;
    this.entries.delete(id);
    if (e.slot >= 0) this.slabs.get(e.model)!.free.push(e.slot);
  }

  /** Notes that result `id` came from a model without attention outputs. */
  noteUnkept(id: string, model: string): void {
    if (this.capacity === 0) return;
    this.unkept.delete(id);
    while (this.unkept.size >= this.capacity) this.unkept.delete(this.unkept.keys().next().value!);
    this.unkept.set(id, { model, createdAt: this.now() });
  }

  /** The model of a noted result without attention, or undefined (unknown or older than the TTL). */
  unkeptModel(id: string): string | undefined {
    const u = this.unkept.get(id);
    if (!u) return undefined;
    if (this.now() - u.createdAt <= this.ttlMs) return u.model;
    this.unkept.delete(id);
    return undefined;
  }

  /**
   * The result, or undefined when unknown or older than the TTL (then it is dropped). Its attention
   * arrays may be views of a slot: read them before yielding to the event loop (a slot is reused once
   * its entry leaves).
   */
  get(id: string): StoredResult | undefined {
    const e = this.entries.get(id);
    if (!e) return undefined;
    if (this.now() - e.createdAt > this.ttlMs) {
      this.delete(id);
      return undefined;
    }
    this.entries.delete(id);
    this.entries.set(id, e); // most recently used last
    return e;
  }
}
