// Kept results: what GET /attention/:id needs of a recent classification, so that it can draw it.
// A kept result is the model input (its RGB bytes; the worker normalizes them) and the image the maps
// are drawn over, ~6 KB for a 32 x 32 PNG (at 224 px the two are one 150 KB buffer), not the attention
// probabilities (~270 KB for the seed model): the map is made when it is asked for by running the
// model again on the input (which gives the same attentions; a relevance map needs the input
// anyway). Measured against keeping every layer's attention probabilities in a
// shared slab that the workers wrote into: docs/architecture.md, "The kept-result path".
//
// Two stores with one interface: in the process (a bounded LRU with a time to live; the default), or
// Redis shared by every replica (redis.ts).

import { type ModelInput, modelInputLength } from '../../runtime/pixels.js';

export interface KeptResult {
  id: string;
  model: string;
  createdAt: number;
  view: { data: Buffer; width: number; height: number };
  /** The model input: RGB bytes (HWC) of its size as /classify keeps it, or its normalized CHW floats
   *  (results a version before the bytes kept in a shared store). */
  input: ModelInput;
  /** The top prediction's index: the class a relevance map explains by default. */
  top: number;
  /** The model version that classified it (ServedModel.version, fingerprint): a map of it is made only
   *  by those files. Absent in results kept before versions were. */
  version?: number;
  fingerprint?: string;
}

export interface StoreStatus {
  kind: 'memory' | 'redis';
  url?: string;
  /** memory: ready; redis: connecting, ready or down */
  state: string;
  error?: string;
}

export interface Results {
  put(r: KeptResult): Promise<void>;
  /** The result, or undefined when unknown or past its time to live. */
  get(id: string): Promise<KeptResult | undefined>;
  /** Notes that result `id` came from a model without attention outputs (so GET says 422, not 404). */
  noteUnkept(id: string, model: string): Promise<void>;
  /** The model of a noted result without attention, or undefined. */
  unkeptModel(id: string): Promise<string | undefined>;
  /** Keeps a map made of result `id` (maps.ts names it), for as long as the result. */
  putMap(id: string, key: string, values: Float32Array): Promise<void>;
  getMap(id: string, key: string): Promise<Float32Array | undefined>;
  status(): StoreStatus;
  close(): Promise<void>;
}

/** Why a kept result cannot be drawn for its model, or null: its sizes against the model's (a result
 *  read from a shared store may have been written by another version, or by anyone who can write
 *  there; one that claimed a 100,000 px view once kept a draw worker busy for 17 minutes). */
export function unusableKept(
  r: KeptResult,
  model: { config: { mean: readonly number[]; image_size: readonly number[]; labels: readonly string[] } },
): string | null {
  const want = modelInputLength(r.input, [model.config.mean.length, ...model.config.image_size]);
  const what = r.input instanceof Float32Array ? 'floats' : 'bytes';
  if (r.input.length !== want) return `its input holds ${r.input.length} ${what} where the model takes ${want}`;
  const { width, height, data } = r.view;
  if (
    !Number.isSafeInteger(width) ||
    !Number.isSafeInteger(height) ||
    width < 1 ||
    height < 1 ||
    width > MAX_VIEW_SIDE ||
    height > MAX_VIEW_SIDE
  )
    return `its view is ${width} x ${height} px (1 to ${MAX_VIEW_SIDE} a side)`;
  if (data.length !== width * height * 3)
    return `its view holds ${data.length} bytes where ${width} x ${height} RGB takes ${width * height * 3}`;
  if (!Number.isSafeInteger(r.top) || r.top < 0 || r.top >= model.config.labels.length)
    return `its top class ${r.top} is not one of the model's ${model.config.labels.length}`;
  return null;
}

/** The largest side a view is drawn from: the model's own input size at most (runtime/model-config.ts bounds it). */
const MAX_VIEW_SIDE = 4096;

/** The most maps kept of one result: a map is keyed on its parameters, and a client asking for ever new
 *  ones (discard=1e-9, 2e-9, …) grew the process by hundreds of MB a minute before this bound. */
export const MAX_MAPS_PER_RESULT = 16;

/** The store as the map cache of one result (maps.ts): a store that fails only costs the map being made again. */
export function mapCache(
  results: Results,
  id: string,
  putFailed: () => void,
): { get(key: string): Promise<Float32Array | undefined>; put(key: string, values: Float32Array): Promise<void> } {
  return {
    get: (key) => results.getMap(id, key).catch(() => undefined),
    put: (key, values) => results.putMap(id, key, values).catch(putFailed),
  };
}

interface Entry {
  model: string;
  createdAt: number;
  /** Absent for a result of a model without attention outputs. */
  kept?: KeptResult;
  maps?: Map<string, Float32Array>;
}

/** Results in the process: the `capacity` most recently used, each for `ttlMs`. */
export class MemoryResults implements Results {
  private readonly entries = new Map<string, Entry>();

  constructor(
    readonly capacity: number,
    readonly ttlMs: number,
    /** The clock time to live is measured on (injectable, so that tests need not wait). */
    readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  private set(id: string, e: Entry): void {
    if (this.capacity === 0) return;
    this.entries.delete(id);
    while (this.entries.size >= this.capacity) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(id, e);
  }

  /** The live entry (made the most recently used), or undefined; an expired one is dropped. */
  private entry(id: string): Entry | undefined {
    const e = this.entries.get(id);
    if (!e) return undefined;
    this.entries.delete(id);
    if (this.now() - e.createdAt > this.ttlMs) return undefined;
    this.entries.set(id, e);
    return e;
  }

  async put(r: KeptResult): Promise<void> {
    this.set(r.id, { model: r.model, createdAt: r.createdAt, kept: r });
  }

  async get(id: string): Promise<KeptResult | undefined> {
    return this.entry(id)?.kept;
  }

  async noteUnkept(id: string, model: string): Promise<void> {
    this.set(id, { model, createdAt: this.now() });
  }

  async putMap(id: string, key: string, values: Float32Array): Promise<void> {
    const e = this.entry(id);
    if (!e?.kept) return;
    e.maps ??= new Map();
    const maps = e.maps;
    maps.delete(key);
    // the least recently made goes first
    while (maps.size >= MAX_MAPS_PER_RESULT) maps.delete(maps.keys().next().value!);
    maps.set(key, values);
  }

  async getMap(id: string, key: string): Promise<Float32Array | undefined> {
    return this.entry(id)?.maps?.get(key);
  }

  async unkeptModel(id: string): Promise<string | undefined> {
    const e = this.entry(id);
    return e && !e.kept ? e.model : undefined;
  }

  status(): StoreStatus {
    return { kind: 'memory', state: 'ready' };
  }

  async close(): Promise<void> {
    this.entries.clear();
  }
}
