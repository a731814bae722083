// Kept results in Redis (or Valkey), shared by every replica: any of them answers GET /attention/:id
// for a result another classified, and a restart loses nothing. A result is what store.ts keeps (the
// model input and the image the maps are drawn over), written with the TTL (PX), so Redis forgets them
// as the memory store does.
//
// Redis down: commands fail at once (no offline queue), classification goes on without keeping,
// GET /attention/:id answers 503, and the client reconnects by itself (retries every <= 2 s).

import { Redis } from 'ioredis';
import { Errors } from '../errors.js';
import { type KeptResult, MAX_MAPS_PER_RESULT, type Results, type StoreStatus } from './store.js';

export type StoreState = 'connecting' | 'ready' | 'down';

/** 2: the input as RGB bytes or float32; 1 (still read): float32 only, as `pixels`. */
const FORMAT = 2;

/** How long to wait before reconnect attempt `times` (1, 2, …): 100 ms more each time, at most 2 s. */
export const reconnectDelay = (times: number): number => Math.min(100 * times, 2000);

/** [4-byte header length][header JSON][view bytes][input: RGB bytes, or float32 little-endian]. */
export function encodeKept(r: KeptResult): Buffer {
  const floats = r.input instanceof Float32Array;
  const header = Buffer.from(
    JSON.stringify({
      v: FORMAT,
      model: r.model,
      createdAt: r.createdAt,
      top: r.top,
      ...(r.fingerprint ? { fp: r.fingerprint, version: r.version } : {}),
      view: { width: r.view.width, height: r.view.height, bytes: r.view.data.length },
      input: { type: floats ? 'float32' : 'uint8', length: r.input.length },
    }),
  );
  const len = Buffer.alloc(4);
  len.writeUInt32LE(header.length);
  let input: Buffer;
  if (floats) {
    input = Buffer.alloc(r.input.length * 4);
    for (let i = 0; i < r.input.length; i++) input.writeFloatLE(r.input[i], i * 4);
  } else input = Buffer.from(r.input.buffer, r.input.byteOffset, r.input.byteLength);
  return Buffer.concat([len, header, r.view.data, input]);
}

/** A stored value that is not a kept result as encodeKept writes it. */
export class UnreadableResult extends Error {}

export function decodeKept(id: string, b: Buffer): KeptResult {
  const bad = (why: string) => new UnreadableResult(`kept result ${id} ${why}`);
  if (b.length < 4) throw bad('is too short to be one');
  const n = b.readUInt32LE(0);
  if (n > b.length - 4) throw bad(`claims a ${n}-byte header in ${b.length} bytes`);
  let h: {
    v: number;
    model: string;
    createdAt: number;
    top: number;
    fp?: string;
    version?: number;
    view: { width: number; height: number; bytes: number };
    input?: { type: string; length: number };
    pixels?: number;
  };
  try {
    h = JSON.parse(b.subarray(4, 4 + n).toString());
  } catch {
    throw bad('has a header that is not JSON');
  }
  if (h?.v !== FORMAT && h?.v !== 1) throw bad(`has format ${h?.v}; this version reads 1 and ${FORMAT}`);
  const count = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
  // format 1 kept the input as float32 only, its length as `pixels`
  const input = h.v === 1 ? { type: 'float32', length: h.pixels } : h.input;
  const length = input?.length ?? -1;
  if (
    typeof h.model !== 'string' ||
    !count(h.top) ||
    (h.fp !== undefined && (typeof h.fp !== 'string' || !count(h.version))) ||
    !count(h.view?.width) ||
    !count(h.view?.height) ||
    !count(h.view?.bytes) ||
    (input?.type !== 'float32' && input?.type !== 'uint8') ||
    !count(length)
  )
    throw bad('has a malformed header');
  const inputBytes = length * (input.type === 'float32' ? 4 : 1);
  if (b.length !== 4 + n + h.view.bytes + inputBytes)
    throw bad(`holds ${b.length} bytes where its header says ${4 + n + h.view.bytes + inputBytes}`);
  let o = 4 + n;
  const view = { data: Buffer.from(b.subarray(o, o + h.view.bytes)), width: h.view.width, height: h.view.height };
  o += h.view.bytes;
  let kept: Float32Array | Uint8Array;
  if (input.type === 'uint8') kept = new Uint8Array(b.subarray(o, o + length));
  else {
    const floats = new Float32Array(length);
    for (let i = 0; i < length; i++) floats[i] = b.readFloatLE(o + i * 4);
    kept = floats;
  }
  const version = h.fp === undefined ? {} : { fingerprint: h.fp, version: h.version };
  return { id, model: h.model, createdAt: h.createdAt, view, input: kept, top: h.top, ...version };
}

/** The URL with any password hidden, for messages and /readyz. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url;
  }
}

export class RedisResults implements Results {
  private readonly client: Redis;
  private stateNow: StoreState = 'connecting';
  private lastError = '';
  readonly where: string;

  constructor(
    url: string,
    private readonly ttlMs: number,
    private readonly log: { warn(m: string): void; info(m: string): void },
    private readonly onState: (s: StoreState) => void = () => {},
    private readonly prefix = 'vitrine:',
  ) {
    this.where = redactUrl(url);
    this.client = new Redis(url, {
      enableOfflineQueue: false, // fail at once while disconnected rather than queue
      maxRetriesPerRequest: 0,
      connectTimeout: 2000,
      commandTimeout: 2000,
      retryStrategy: reconnectDelay,
      lazyConnect: false,
    });
    this.client.on('ready', () => this.set('ready'));
    this.client.on('error', (err: Error) => {
      this.lastError = err.message;
    });
    this.client.on('close', () => this.set('down'));
  }

  private set(s: StoreState): void {
    if (s === this.stateNow) return;
    const was = this.stateNow;
    this.stateNow = s;
    if (s === 'ready') this.log.info(`results store ${this.where}: connected`);
    else if (was === 'ready') this.log.warn(`results store ${this.where}: connection lost (${this.lastError || 'closed'}); reconnecting`);
    this.onState(s);
  }

  get state(): StoreState {
    return this.stateNow;
  }

  status(): StoreStatus {
    return {
      kind: 'redis',
      url: this.where,
      state: this.stateNow,
      ...(this.stateNow !== 'ready' && this.lastError ? { error: this.lastError } : {}),
    };
  }

  /** Resolves once connected (or rejects after `ms`). */
  async waitReady(ms: number): Promise<void> {
    if (this.stateNow === 'ready') return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(new Error(`results store ${this.where}: not connected within ${ms} ms${this.lastError ? ` (${this.lastError})` : ''}`)),
        ms,
      );
      this.client.once('ready', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private unavailable(err: unknown): Error {
    // a key holding another type (a hash where a result belongs) is the value's fault, not the store's
    if (/^WRONGTYPE/.test((err as Error).message))
      return Errors.unreadableResult(`a value in the results store (${this.where}) is not a kept result: ${(err as Error).message}`);
    return Errors.storeUnavailable(`the results store (${this.where}) is unavailable: ${(err as Error).message}`);
  }

  async put(r: KeptResult): Promise<void> {
    try {
      await this.client.set(`${this.prefix}result:${r.id}`, encodeKept(r), 'PX', this.ttlMs);
    } catch (err) {
      throw this.unavailable(err);
    }
  }

  async get(id: string): Promise<KeptResult | undefined> {
    let b: Buffer | null;
    try {
      b = await this.client.getBuffer(`${this.prefix}result:${id}`);
    } catch (err) {
      throw this.unavailable(err);
    }
    try {
      return b ? decodeKept(id, b) : undefined;
    } catch (err) {
      if (err instanceof UnreadableResult) throw Errors.unreadableResult(`${err.message}: it cannot be drawn`);
      throw err;
    }
  }

  async noteUnkept(id: string, model: string): Promise<void> {
    try {
      await this.client.set(`${this.prefix}unkept:${id}`, model, 'PX', this.ttlMs);
    } catch (err) {
      throw this.unavailable(err);
    }
  }

  async unkeptModel(id: string): Promise<string | undefined> {
    try {
      return (await this.client.get(`${this.prefix}unkept:${id}`)) ?? undefined;
    } catch (err) {
      throw this.unavailable(err);
    }
  }

  // The maps of a result live in a hash beside it, expiring with it; a hash holding its share of maps
  // (MAX_MAPS_PER_RESULT) takes no more, the maps beyond being made again when asked.
  async putMap(id: string, key: string, values: Float32Array): Promise<void> {
    const hash = `${this.prefix}maps:${id}`;
    try {
      if ((await this.client.hlen(hash)) >= MAX_MAPS_PER_RESULT) return;
      await this.client
        .multi()
        .hset(hash, key, Buffer.from(values.buffer, values.byteOffset, values.byteLength))
        .pexpire(hash, this.ttlMs)
        .exec();
    } catch (err) {
      throw this.unavailable(err);
    }
  }

  async getMap(id: string, key: string): Promise<Float32Array | undefined> {
    let b: Buffer | null;
    try {
      b = await this.client.hgetBuffer(`${this.prefix}maps:${id}`, key);
    } catch (err) {
      throw this.unavailable(err);
    }
    return b ? new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)) : undefined;
  }

  async close(): Promise<void> {
    this.client.disconnect(false);
  }
}
