// The server's configuration: flags and environment variables (flags win) validated into one typed
// object. Every flag --some-name has an environment variable VITRINE_SOME_NAME; --port and --host
// also read PORT and HOST.

import os from 'node:os';
import { FormatRegistry, type Static, type TSchema, Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { parseStrict } from '../runtime/args.js';
import { DEVICES } from '../runtime/ort.js';
import { defaultsOf, expected, flagOf, literalsOf, oneOf, packLines, shownValue } from '../runtime/schema.js';

const cores = Math.max(1, os.availableParallelism?.() ?? os.cpus().length);
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
const int = (minimum: number, maximum: number, def: number, description: string, more: { example?: string } = {}) =>
  Type.Integer({ minimum, maximum, default: def, description, ...more });

/**
 * The schema of `vitrine serve`'s configuration: the type, the defaults, the flags (--kebab-case of
 * each key), the environment variables (VITRINE_<FLAG>, and any `env` aliases) and the error
 * messages all come from it.
 */
export const ServeConfigSchema = Type.Object({
  models: Type.Union([Type.String(), Type.Null()], {
    default: null,
    example: 'DIR',
    description:
      'Folder of model folders (each with config.json and an ONNX graph). Default: ./models where it holds model folders, ' +
      "else the package's bundled models; none when model folders are given (vitrine serve DIR…) without it.",
  }),
  modelFolder: Type.Array(Type.String(), {
    default: [],
    example: '[NAME=]DIR',
    description:
      "A model folder served as NAME, or by its own name (a run's model/ by the run's); repeatable. " +
      '`vitrine serve DIR…` gives them; the first is the default model unless --default-model says otherwise.',
  }),
  // the more accurate of the bundled models (their README.md model cards have the figures)
  defaultModel: Type.String({ default: 'cct-cifar10', description: 'The model /classify uses when none is named.' }),
  port: Type.Integer({ minimum: 0, maximum: 65535, default: 8080, env: ['PORT'] }),
  host: Type.String({ default: '0.0.0.0', env: ['HOST'] }),
  grpcPort: Type.Union([Type.Integer({ minimum: 0, maximum: 65535 }), Type.Null()], {
    default: null,
    example: 'N',
    description:
      "The Open Inference Protocol's gRPC binding (inference.GRPCInferenceService, and grpc.health.v1.Health) on this port " +
      'of --host, beside HTTP; off when unset.',
  }),
  device: oneOf(DEVICES, { default: 'auto', description: 'ONNX Runtime provider.' }),
  // One single-threaded session per core (up to 8) and batches of at most 8: what served the bundled
  // models best on two cores (`npm run bench:serve -- --workers N` or `--max-batch N`; docs/service.md).
  // On the CPU, ONNX Runtime's cost per image with attention outputs grows past small batches
  // (`npm run bench:forward -- --sweep`), and an intra-op thread pool spins. A GPU wants fewer workers
  // and larger batches (docs/gpu.md).
  workers: int(
    1,
    64,
    Math.max(1, Math.min(8, cores)),
    'Inference worker threads, each with its own ONNX Runtime session per model (default: one per core, up to 8).',
    { example: 'N' },
  ),
  threads: int(1, 256, 1, 'ONNX Runtime intra-op threads per worker.'),
  // Half the cores decode (see gate.ts for what this trades).
  decoders: int(
    1,
    64,
    Math.max(1, Math.floor(cores / 2)),
    'Images sharp decodes at once (default: half the cores; a plain PNG already at the input size needs no decode slot).',
    { example: 'N' },
  ),
  // Heatmaps (GET /attention/:id as a PNG) are drawn in worker threads, this many at once (draws.ts).
  drawers: int(1, 64, Math.max(1, Math.floor(cores / 2)), 'Heatmaps drawn at once, each in a worker thread (default: half the cores).', {
    example: 'N',
  }),
  // Below the event loop's priority, so that it answers (/healthz included) while they compute.
  workerNice: int(0, 19, 10, "The inference and heatmap workers' nice value on Linux (per thread; 0: the event loop's own).", {
    example: 'N',
  }),
  maxBatch: int(1, 1024, 8, 'The most requests run as one batch.'),
  maxDelayMs: int(
    0,
    10_000,
    2,
    'How long a request may wait for others to join its batch when one worker is free (with more free, none waits).',
  ),
  maxQueue: int(1, Number.MAX_SAFE_INTEGER, 512, 'Requests waiting for a worker, beyond which new ones get 503.'),
  timeoutMs: int(
    1,
    Number.MAX_SAFE_INTEGER,
    10_000,
    'A request not answered within this gets 504: its decodes, its ' +
      'inference and its heatmap draw each stop waiting (or are stopped) at ' +
      'that deadline.',
  ),
  bodyLimit: int(1024, Number.MAX_SAFE_INTEGER, 10 * 1024 * 1024, 'Largest request body in bytes.'),
  // The bodies of the uploads in flight at once, each up to bodyLimit: without a budget, 100 slow
  // clients could hold 100 x 10 MB (~1 GB was seen).
  maxBodyBytesInFlight: int(
    1024,
    Number.MAX_SAFE_INTEGER,
    256 * 1024 * 1024,
    'The request bodies all connections may be sending at once, in bytes ' +
      '(by their Content-Length, or the body limit without one); a request ' +
      'beyond it gets 503 before its body is read.',
  ),
  // Without it a client that declares a large body and stops sending holds its connection and its
  // buffers forever (100 such uploads held ~1 GB for minutes).
  requestTimeoutMs: int(
    0,
    Number.MAX_SAFE_INTEGER,
    30_000,
    'How long a client may take to send a whole request, headers and body, before it is answered 408 and closed (0: no limit).',
  ),
  keepAliveTimeoutMs: int(1, Number.MAX_SAFE_INTEGER, 5_000, 'How long an idle keep-alive connection stays open.'),
  maxPixels: int(
    1,
    Number.MAX_SAFE_INTEGER,
    40_000_000,
    'Largest decoded image in pixels (width x height): a guard against decompression bombs.',
  ),
  resultsCapacity: int(0, Number.MAX_SAFE_INTEGER, 256, 'Classification results kept for GET /attention/:id.'),
  resultsTtlS: int(1, Number.MAX_SAFE_INTEGER, 600, 'How long a kept result lives, in seconds.'),
  resultsStore: Type.String({
    default: 'memory',
    format: 'results-store',
    example: 'memory|redis://host:6379/0',
    expects: "'memory' or redis://host:port/db",
    description: "Where kept results live: 'memory' (this process) or a Redis URL shared by replicas (rediss:// for TLS).",
  }),
  apiKey: Type.Union([Type.String(), Type.Null()], {
    default: null,
    example: 'KEY',
    description: 'Required as `Authorization: Bearer <key>` on the API when set.',
  }),
  corsOrigin: Type.Array(Type.String(), {
    default: [],
    example: "'*'|origin,…",
    description: "Allowed CORS origins ('*' for any), comma-separated; empty disables CORS.",
  }),
  logLevel: oneOf(LOG_LEVELS, { default: 'info', description: 'Log level.' }),
  // Triton's model control modes (docs/service.md, Models while serving)
  modelControl: oneOf(['none', 'explicit', 'poll'] as const, {
    default: 'none',
    description:
      'none: the models are the folders under --models at start; explicit: models load, reload and unload while serving ' +
      "through POST /v2/repository/… (the Open Inference Protocol's repository extension); poll: that, and the folder " +
      'is rescanned every --poll-interval seconds (new folders load, changed ones reload, removed ones unload).',
  }),
  pollInterval: int(1, 86_400, 5, 'With --model-control poll: seconds between two scans of --models.'),
  loadModel: Type.Array(Type.String(), {
    default: [],
    example: 'NAME',
    description: 'With --model-control explicit: the models loaded at start (repeatable or comma-separated; none given: all).',
  }),
  adminToken: Type.Union([Type.String(), Type.Null()], {
    default: null,
    example: 'TOKEN',
    description:
      'Required as `Authorization: Bearer <token>` on the repository routes; without it they answer only ' +
      'requests from this machine (loopback).',
  }),
});

export type ServeConfig = Static<typeof ServeConfigSchema>;
type Key = keyof ServeConfig;
const KEYS = Object.keys(ServeConfigSchema.properties) as Key[];
const envOf = (key: Key): string[] => [
  ...((ServeConfigSchema.properties[key] as TSchema & { env?: string[] }).env ?? []),
  `VITRINE_${flagOf(key).replace(/-/g, '_').toUpperCase()}`,
];

/** Every environment variable `vitrine serve` reads. */
export const SERVE_ENV: readonly string[] = KEYS.flatMap(envOf);

export function defaultServeConfig(): ServeConfig {
  return defaultsOf(ServeConfigSchema) as ServeConfig;
}

/** A flag's or variable's text as the key's type, or a one-line error naming where it came from. */
function parseValue(key: Key, raw: string, name: string): unknown {
  const s = ServeConfigSchema.properties[key] as TSchema;
  let value: unknown = raw;
  if (s.type === 'integer') value = raw.trim() === '' ? NaN : Number(raw);
  else if (s.type === 'array')
    value = raw
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean);
  else if (s.anyOf?.some((a: TSchema) => a.type === 'integer'))
    value = raw.trim() === '' ? null : Number(raw); // a number or null
  else if (s.anyOf && !literalsOf(s)) value = raw || null; // a string or null: empty means unset
  if (!Value.Check(s, value)) throw new Error(`${name} must be ${expected(s)}, got '${raw}'`);
  return value;
}

/** 'memory', or redis://[user:password@]host[:port][/db] (rediss:// for TLS). */
function isResultsStore(raw: string): boolean {
  if (raw === 'memory') return true;
  try {
    const u = new URL(raw);
    return ['redis:', 'rediss:'].includes(u.protocol) && u.hostname !== '' && /^(\/\d*)?$/.test(u.pathname);
  } catch {
    return false;
  }
}
FormatRegistry.Set('results-store', isResultsStore);

/** The flags, a few to a line: `[--flag shown]` for each key, shown being its example, values or default. */
const usageLines = packLines(KEYS.map((k) => `[--${flagOf(k)} ${shownValue(ServeConfigSchema.properties[k])}]`));

export const SERVE_USAGE = `usage: vitrine serve ${usageLines.join('\n  ')}
  Every flag is also an environment variable: VITRINE_<FLAG> (e.g. VITRINE_MAX_BATCH), and PORT, HOST.`;

/** Environment first, then flags over it; throws one line on the first bad value. */
export function loadServeConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): ServeConfig {
  const config: Record<string, unknown> = defaultServeConfig();
  for (const k of KEYS) {
    const name = envOf(k).find((e) => env[e] !== undefined && env[e] !== '');
    if (name) config[k] = parseValue(k, env[name]!, name);
  }
  // a list's flag may be given more than once: its values join
  const multiple = (k: Key) => (ServeConfigSchema.properties[k] as TSchema).type === 'array';
  const options = Object.fromEntries(KEYS.map((k) => [flagOf(k), { type: 'string' as const, multiple: multiple(k) }]));
  const values = parseStrict(argv, options) as Record<string, string | string[] | undefined>;
  for (const k of KEYS) {
    const raw = values[flagOf(k)];
    if (raw !== undefined) config[k] = parseValue(k, Array.isArray(raw) ? raw.join(',') : raw, `--${flagOf(k)}`);
  }
  return config as ServeConfig;
}
