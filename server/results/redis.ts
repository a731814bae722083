// Kept results in Redis (or Valkey), shared by every replica: any of them answers GET /attention/:id
// for a result another classified, and a restart loses nothing. A result is what store.ts keeps (the
// model input and the image the maps are drawn over), written with the TTL (PX), so Redis forgets them
// as the memory store does.
//
// Redis down: commands fail at once (no offline queue), classification goes on without keeping,
// GET /attention/:id answers 503, and the client reconnects by itself (retries every <= 2 s).

import { Redis } from 'ioredis';
import { Errors } from '../errors.js';
import { UnreadableResult, decodeKept, encodeKept } from './kept-format.js';
import { type KeptResult, MAX_MAPS_PER_RESULT, type Results, type StoreStatus } from './store.js';

export type StoreState = 'connecting' | 'ready' | 'down';

/** How long to wait before reconnect attempt `times` (1, 2, …): 100 ms more each time, at most 2 s. */
export const reconnectDelay = (times: number): number => Math.min(100 * times, 2000);

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
