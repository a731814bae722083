// The server's configuration: flags and environment variables (flags win) validated into one typed
// object. Every flag --some-name has an environment variable VITRINE_SOME_NAME; --port and --host
// also read PORT and HOST.

import os from 'node:os';
import { parseStrict } from '../runtime/args.js';
import { DEVICES, Device } from '../runtime/ort.js';

export interface ServeConfig {
  /** Folder of model folders (each with model.onnx and config.json). */
  models: string;
  /** The model /classify uses when none is named. */
  defaultModel: string;
  port: number;
  host: string;
  device: Device;
  /** Inference worker threads, each with its own ONNX Runtime session per model. */
  workers: number;
  /** ONNX Runtime intra-op threads per worker. */
  threads: number;
  /** Images sharp decodes at once (a plain PNG already at the input size needs no decode slot). */
  decoders: number;
  /** The most requests run as one batch. */
  maxBatch: number;
  /** How long a request may wait for others to join its batch once a worker is free. */
  maxDelayMs: number;
  /** Requests waiting for a worker, beyond which new ones get 503. */
  maxQueue: number;
  /** A request not answered within this gets 504. */
  timeoutMs: number;
  /** Largest request body in bytes. */
  bodyLimit: number;
  /** Largest decoded image in pixels (width x height): a guard against decompression bombs. */
  maxPixels: number;
  /** Classification results kept for GET /attention/:id, and for how long. */
  resultsCapacity: number;
  resultsTtlS: number;
  /** Where kept results live: 'memory' (this process) or a Redis URL shared by replicas. */
  resultsStore: string;
  /** Required as `Authorization: Bearer <key>` on the API when set. */
  apiKey: string | null;
  /** Allowed CORS origins ('*' for any); empty disables CORS. */
  corsOrigin: string[];
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

interface Field {
  flag: string;
  env: string[];
  parse: (raw: string, name: string) => unknown;
  key: keyof ServeConfig;
}

const int =
  (min: number, max = Number.MAX_SAFE_INTEGER) =>
  (raw: string, name: string) => {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${name} must be an integer in [${min}, ${max}], got '${raw}'`);
    return n;
  };
const str = (raw: string) => raw;
const oneOf =
  (...values: readonly string[]) =>
  (raw: string, name: string) => {
    if (!values.includes(raw)) throw new Error(`${name} must be one of ${values.join(', ')}, got '${raw}'`);
    return raw;
  };

/** 'memory', or redis://[user:password@]host[:port][/db] (rediss:// for TLS). */
function resultsStore(raw: string, name: string): string {
  if (raw === 'memory') return raw;
  let u: URL | null = null;
  try {
    u = new URL(raw);
  } catch {
    // reported below
  }
  if (!u || !['redis:', 'rediss:'].includes(u.protocol) || !u.hostname || !/^(\/\d*)?$/.test(u.pathname)) throw new Error(`${name} must be 'memory' or redis://host:port/db, got '${raw}'`);
  return raw;
}

const FIELDS: Field[] = [
  { flag: 'models', env: ['VITRINE_MODELS'], parse: str, key: 'models' },
  { flag: 'default-model', env: ['VITRINE_DEFAULT_MODEL'], parse: str, key: 'defaultModel' },
  { flag: 'port', env: ['PORT', 'VITRINE_PORT'], parse: int(0, 65535), key: 'port' },
  { flag: 'host', env: ['HOST', 'VITRINE_HOST'], parse: str, key: 'host' },
  { flag: 'device', env: ['VITRINE_DEVICE'], parse: oneOf(...DEVICES), key: 'device' },
  { flag: 'workers', env: ['VITRINE_WORKERS'], parse: int(1, 64), key: 'workers' },
  { flag: 'threads', env: ['VITRINE_THREADS'], parse: int(1, 256), key: 'threads' },
  { flag: 'decoders', env: ['VITRINE_DECODERS'], parse: int(1, 64), key: 'decoders' },
  { flag: 'max-batch', env: ['VITRINE_MAX_BATCH'], parse: int(1, 1024), key: 'maxBatch' },
  { flag: 'max-delay-ms', env: ['VITRINE_MAX_DELAY_MS'], parse: int(0, 10_000), key: 'maxDelayMs' },
  { flag: 'max-queue', env: ['VITRINE_MAX_QUEUE'], parse: int(1), key: 'maxQueue' },
  { flag: 'timeout-ms', env: ['VITRINE_TIMEOUT_MS'], parse: int(1), key: 'timeoutMs' },
  { flag: 'body-limit', env: ['VITRINE_BODY_LIMIT'], parse: int(1024), key: 'bodyLimit' },
  { flag: 'max-pixels', env: ['VITRINE_MAX_PIXELS'], parse: int(1), key: 'maxPixels' },
  { flag: 'results-capacity', env: ['VITRINE_RESULTS_CAPACITY'], parse: int(0), key: 'resultsCapacity' },
  { flag: 'results-ttl-s', env: ['VITRINE_RESULTS_TTL_S'], parse: int(1), key: 'resultsTtlS' },
  { flag: 'results-store', env: ['VITRINE_RESULTS_STORE'], parse: resultsStore, key: 'resultsStore' },
  { flag: 'api-key', env: ['VITRINE_API_KEY'], parse: (raw) => raw || null, key: 'apiKey' },
  { flag: 'cors-origin', env: ['VITRINE_CORS_ORIGIN'], parse: (raw) => raw.split(',').map((s) => s.trim()).filter(Boolean), key: 'corsOrigin' },
  { flag: 'log-level', env: ['VITRINE_LOG_LEVEL'], parse: oneOf('fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'), key: 'logLevel' },
];

/** Every environment variable `vitrine serve` reads. */
export const SERVE_ENV: readonly string[] = FIELDS.flatMap((f) => f.env);

export function defaultServeConfig(): ServeConfig {
  const cores = Math.max(1, os.availableParallelism?.() ?? os.cpus().length);
  return {
    models: 'models',
    // the more accurate of the bundled models (their MODEL_CARD.md files have the figures)
    defaultModel: 'cct-cifar10',
    port: 8080,
    host: '0.0.0.0',
    device: 'auto',
    // One single-threaded session per core (up to 8) and batches of at most 8: on the 2-core machine
    // this served the bundled model best (`npm run bench:serve -- --seconds 10 --workers N` or
    // `--max-batch N`, c=32, one run each: workers 1/2/3: 1,454/1,919/1,872 req/s; max batch
    // 64/16/8: 1,446/1,568/1,919). On the CPU, ONNX Runtime's cost per image with attention outputs
    // grows past small batches (`npm run bench:forward -- --sweep`, 1 thread: 2,254 img/s at batch 8,
    // 1,604 at 64), and an intra-op thread pool spins. A GPU wants fewer workers and larger batches
    // (see docker/).
    workers: Math.max(1, Math.min(8, cores)),
    threads: 1,
    // Half the cores decode (see gate.ts for what this trades).
    decoders: Math.max(1, Math.floor(cores / 2)),
    maxBatch: 8,
    maxDelayMs: 2,
    maxQueue: 512,
    timeoutMs: 10_000,
    bodyLimit: 10 * 1024 * 1024,
    maxPixels: 40_000_000,
    resultsCapacity: 256,
    resultsTtlS: 600,
    resultsStore: 'memory',
    apiKey: null,
    corsOrigin: [],
    logLevel: 'info',
  };
}

export const SERVE_USAGE = `usage: vitrine serve [--models models/] [--default-model cct-cifar10] [--port 8080] [--host 0.0.0.0]
  [--device auto|cpu|cuda] [--workers N] [--threads N] [--decoders N] [--max-batch 8] [--max-delay-ms 2] [--max-queue 512]
  [--timeout-ms 10000] [--body-limit 10485760] [--max-pixels 40000000] [--results-capacity 256]
  [--results-ttl-s 600] [--results-store memory|redis://host:6379/0] [--api-key KEY] [--cors-origin '*'|origin,…] [--log-level info]
  Every flag is also an environment variable: VITRINE_<FLAG> (e.g. VITRINE_MAX_BATCH), and PORT, HOST.`;

/** Environment first, then flags over it; throws one line on the first bad value. */
export function loadServeConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): ServeConfig {
  const config = defaultServeConfig() as unknown as Record<string, unknown>;
  for (const f of FIELDS) {
    const name = f.env.find((e) => env[e] !== undefined && env[e] !== '');
    if (name) config[f.key] = f.parse(env[name]!, name);
  }
  const values = parseStrict(argv, Object.fromEntries(FIELDS.map((f) => [f.flag, { type: 'string' as const }])));
  for (const f of FIELDS) {
    const raw = (values as Record<string, string | undefined>)[f.flag];
    if (raw !== undefined) config[f.key] = f.parse(raw, `--${f.flag}`);
  }
  return config as unknown as ServeConfig;
}
