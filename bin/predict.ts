// vitrine predict: classify (and explain) files, folders and globs of images from the command line,
// with the service's pipeline, workers and batcher in this process (no HTTP); results appended as they
// come, resumable, and sharded over the pods of a Kubernetes Indexed Job (bin/predict/).

import { constants as fsConstants, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Value } from '@sinclair/typebox/value';
import type { TSchema } from '@sinclair/typebox';
import { DEVICES } from '../runtime/ort.js';
import { imageSpec } from '../runtime/pixels.js';
import { expected } from '../runtime/schema.js';
import { toGrid } from '../server/engine/attention.js';
import { type Classified, classifyAndExplain } from '../server/engine/classify.js';
import { defaultServeConfig } from '../server/config.js';
import { ServiceError } from '../server/errors.js';
import { Gate } from '../server/gate.js';
import { Drawers } from '../server/drawing/draws.js';
import { startInference } from '../server/engine/inference.js';
import type { ModelInput } from '../server/engine/job.js';
import { type MapQuery, checkMapQuery } from '../server/engine/maps.js';
import { type ServedModel, loadModelFolder } from '../server/engine/models.js';
import { decodeImage } from '../server/engine/preprocess.js';
import { AttentionQuery } from '../server/http/schemas.js';
import { CliError, findModelFolder, intFlag, parseFlagsAndInputs } from './cli-util.js';
import { servedNameOf } from '../runtime/model-config.js';
import { IMAGE_EXTENSIONS, type Input, inputKey, listInputs, mapFile, shardOf } from './predict/inputs.js';
import { PredictProgress } from './predict/progress.js';
import {
  Appender,
  type PredictRecord,
  type WrittenRecord,
  csvHeader,
  csvLine,
  formatRecord,
  mergeShards,
  readRecords,
  replaceFile,
  resultsFile,
} from './predict/results.js';

const DEFAULTS = defaultServeConfig();
// Throughput is all that counts here, not a request's latency: larger batches and a decode per core.
// Measured with vitrine predict on 2 cores (cct-cifar10): 10,000 CIFAR-10 PNGs at max batch 8 / 16 /
// 32 / 64: 1,761 / 1,958 / 2,001 / 1,969 images/s; 500 640x480 JPEGs with 1 / 2 decoders: 231 / 274.
const PREDICT_MAX_BATCH = 32;
const PREDICT_DECODERS = Math.max(1, os.availableParallelism?.() ?? os.cpus().length);

export const PREDICT_USAGE = `usage: vitrine predict <files | folders | globs …> [--model <dir or name>]
    [--models DIR (or VITRINE_MODELS)] [--out results]
    [--format jsonl|csv] [--topk 5] [--logits] [--tta none|flip] [--on-bad-image skip|fail] [--resume | --overwrite]
    [--maps relevance|chefer|grad-input|combined|rollout|cls] [--maps-json] [--class <label or index>]
    [--layer N] [--head mean|max|min|<n>] [--discard R] [--size 256] [--alpha 0.5] [--colormap jet|viridis|inferno|gray]
    [--shard i/n | --shards n] [--device auto|cpu|webgpu|cuda] [--workers N] [--threads N]
    [--decoders N (cores)] [--max-batch 32] [--max-pixels N]
       vitrine predict --merge <results folder>
  Folders are walked recursively for ${IMAGE_EXTENSIONS.join(' ')} files; a file named, or matched by a glob, is tried whatever its name.
  --model: a model folder (a run's model/, an export), or a name under --models (default ${DEFAULTS.defaultModel}; --models defaults
  to ./models where it holds model folders, else the bundled models). Results: <out>/predictions.jsonl (or .csv), one
  record per input (path, size, mtime_ms, top-k labels and probabilities, or the error); --maps draws heatmaps under <out>/maps/.
  --resume skips the inputs already written (same path, size and mtime). --shards n takes the shard from JOB_COMPLETION_INDEX.`;

export const PREDICT_FLAGS = {
  model: { type: 'string' },
  models: { type: 'string' },
  out: { type: 'string' },
  format: { type: 'string' },
  topk: { type: 'string' },
  logits: { type: 'boolean' },
  tta: { type: 'string' },
  'on-bad-image': { type: 'string' },
  resume: { type: 'boolean' },
  overwrite: { type: 'boolean' },
  maps: { type: 'string' },
  'maps-json': { type: 'boolean' },
  class: { type: 'string' },
  layer: { type: 'string' },
  head: { type: 'string' },
  discard: { type: 'string' },
  size: { type: 'string' },
  alpha: { type: 'string' },
  colormap: { type: 'string' },
  shard: { type: 'string' },
  shards: { type: 'string' },
  merge: { type: 'string' },
  device: { type: 'string' },
  workers: { type: 'string' },
  threads: { type: 'string' },
  decoders: { type: 'string' },
  'max-batch': { type: 'string' },
  'max-pixels': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

const MAP_FLAGS = ['class', 'layer', 'head', 'discard', 'size', 'alpha', 'colormap'] as const;

function choice<T extends string>(value: string | undefined, name: string, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (!allowed.includes(value as T)) throw new CliError(`--${name} must be one of ${allowed.join(', ')}, got '${value}'`, 2);
  return value as T;
}

/** The map flags as GET /attention's query, checked against the same schema (so the same bounds). */
function mapQuery(values: Record<string, string | boolean | undefined>): MapQuery & { size: number; alpha: number; colormap: string } {
  const q: Record<string, unknown> = { method: values.maps };
  for (const key of ['method', ...MAP_FLAGS] as const) {
    const raw = key === 'method' ? values.maps : values[key];
    if (raw === undefined) continue;
    const schema = AttentionQuery.properties[key] as TSchema & { enum?: string[] };
    // the route's enums are plain JSON Schema (for Fastify's validator), which TypeBox's Value does not check
    const value = schema.enum ? raw : Value.Convert(schema, raw);
    if (schema.enum ? !schema.enum.includes(String(raw)) : !Value.Check(schema, value))
      throw new CliError(
        `--${key === 'method' ? 'maps' : key} must be ${schema.enum ? `one of ${schema.enum.join(', ')}` : expected(schema)}, got '${raw}'`,
        2,
      );
    q[key] = value;
  }
  return { size: 256, alpha: 0.5, colormap: 'jet', ...q } as MapQuery & { size: number; alpha: number; colormap: string };
}

async function findModel(arg: string, modelsDir: string | undefined, warn: (m: string) => void): Promise<ServedModel> {
  const dir = findModelFolder(arg, modelsDir);
  try {
    return await loadModelFolder(dir, servedNameOf(dir), warn);
  } catch (err) {
    throw new CliError(`cannot load the model in ${dir}: ${(err as Error).message}`);
  }
}

/** Why an input has no result, as its record says it: the service's error code, or the file system's. */
/** An input's bytes, only from a regular file (a link to one is fine): a link to a FIFO once blocked
 *  the run past two SIGTERMs, one to /dev/zero grew it ~350 MB/s. The file is opened without
 *  blocking and checked as opened, so what is read is what was checked. */
async function readImageFile(file: string): Promise<Buffer> {
  const handle = await fs.open(file, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  try {
    const stat = await handle.stat();
    if (!stat.isFile())
      throw Object.assign(new Error('not a regular file (a FIFO, a device or a socket): skipped'), { code: 'VIT_NOT_A_FILE' });
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}

function failure(err: unknown): { code: string; message: string } {
  if (err instanceof ServiceError) return { code: err.code, message: err.message };
  const code = (err as NodeJS.ErrnoException).code;
  if (code?.startsWith('VIT_')) return { code, message: (err as Error).message };
  return { code: code ?? 'VIT_INTERNAL', message: code ? `cannot read the file: ${code}` : (err as Error).message };
}

const count = (n: number, what: string) => `${n.toLocaleString('en-US')} ${what}${n === 1 ? '' : 's'}`;

export async function predictCommand(argv: string[], log: (line: string) => void): Promise<number> {
  const { values, positionals } = parseFlagsAndInputs(argv, PREDICT_FLAGS, PREDICT_USAGE);
  if (values.help) {
    log(PREDICT_USAGE);
    return 0;
  }
  const warn = (m: string) => process.stderr.write(`warning: ${m}\n`);
  if (values.merge !== undefined) {
    if (positionals.length || Object.keys(values).length > 1) throw new CliError('--merge <folder> takes no other flags or inputs', 2);
    const { file, shards, records } = await mergeShards(values.merge);
    log(`merged ${shards} shards: ${count(records.length, 'result')} in ${file}`);
    return 0;
  }
  if (positionals.length === 0) throw new CliError('no inputs: name image files, folders or globs (vitrine predict --help)', 2);
  const format = choice(values.format, 'format', ['jsonl', 'csv'] as const, 'jsonl');
  const tta = choice(values.tta, 'tta', ['none', 'flip'] as const, 'none');
  const onBad = choice(values['on-bad-image'], 'on-bad-image', ['skip', 'fail'] as const, 'skip');
  if (values.resume && values.overwrite) throw new CliError('give --resume or --overwrite, not both', 2);
  const asked = new Set(MAP_FLAGS.filter((k) => values[k] !== undefined));
  if (!values.maps && asked.size)
    throw new CliError(`--${[...asked][0]} applies to the maps: add --maps relevance|chefer|grad-input|combined|rollout|cls`, 2);
  if (values['maps-json'] && !values.maps)
    throw new CliError('--maps-json adds the map of --maps to each record: add --maps relevance|chefer|grad-input|combined|rollout|cls', 2);
  if (values['maps-json'] && format === 'csv')
    throw new CliError('--maps-json writes the map into JSON lines: with --format csv the maps are the PNG files', 2);
  const q = values.maps ? mapQuery(values) : null;
  const shard = shardOf(values.shard, values.shards, process.env);
  const inference = {
    device: choice(values.device, 'device', DEVICES, DEFAULTS.device),
    workers: intFlag(values.workers, 'workers', DEFAULTS.workers, 1),
    threads: intFlag(values.threads, 'threads', DEFAULTS.threads, 1),
    workerNice: DEFAULTS.workerNice,
    maxBatch: intFlag(values['max-batch'], 'max-batch', PREDICT_MAX_BATCH, 1),
  };
  const decoders = intFlag(values.decoders, 'decoders', PREDICT_DECODERS, 1);
  const maxPixels = intFlag(values['max-pixels'], 'max-pixels', DEFAULTS.maxPixels, 1);

  // The inputs first (a missing one is the error to hear, before any model is read), then the model.
  const { inputs, skipped } = await listInputs(positionals, shard);
  if (skipped.length)
    warn(
      `${count(skipped.length, 'file')} in the folders not taken, their ` +
        `names not an image's: ` +
        `${skipped.slice(0, 3).join(', ')}${skipped.length > 3 ? ', …' : ''}`,
    );
  const model = await findModel(values.model ?? DEFAULTS.defaultModel, values.models ?? (process.env.VITRINE_MODELS || undefined), warn);
  const labels = model.config.labels;
  const topk = Math.min(intFlag(values.topk, 'topk', 5, 1), labels.length);
  if (q) {
    try {
      checkMapQuery(model, q, asked);
    } catch (err) {
      throw new CliError((err as Error).message, 2);
    }
  }

  const out = values.out ?? 'results';
  await fs.mkdir(out, { recursive: true });
  const file = resultsFile(out, format, shard);
  const header = format === 'csv' ? csvHeader({ topk, labels, logits: values.logits === true, maps: q !== null }) : [];
  const existing = await fs.readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return '';
    throw new CliError(`cannot read ${file}: ${err.code ?? err.message}`);
  });
  let kept: WrittenRecord[] = [];
  if (existing !== '' && !values.resume && !values.overwrite)
    throw new CliError(`${file} exists: --resume continues that run (the inputs it holds are skipped), --overwrite starts again`, 2);
  if (values.resume && existing !== '') {
    const read = readRecords(existing, format, file, format === 'csv' ? header : null);
    const current = new Map(inputs.map((i) => [i.path, inputKey(i)]));
    const seen = new Set<string>();
    // a record of an input that has changed since (size or mtime) is done again, and an input twice is kept once
    kept = read.records.filter((r) => (current.get(r.path) ?? r.key) === r.key && !seen.has(r.key) && seen.add(r.key));
    const dropped = read.records.length - kept.length;
    if (read.cut || dropped > 0 || (format === 'csv' && !read.header)) {
      await replaceFile(file, (format === 'csv' ? csvLine(header) : '') + kept.map((r) => r.text).join(''));
      if (dropped)
        warn(
          `${count(dropped, 'result')} in ${file} dropped: their files have ` +
            `changed since (size or modification time), so they are done again`,
        );
    }
  } else await replaceFile(file, format === 'csv' ? csvLine(header) : '');
  const done = new Set(kept.map((r) => r.key));
  const todo = inputs.filter((i) => !done.has(inputKey(i)));
  const labelCounts = new Map<string, number>();
  const errorCounts = new Map<string, number>();
  const tally = (label: string | null, error: string | null) => {
    if (error) errorCounts.set(error, (errorCounts.get(error) ?? 0) + 1);
    else if (label !== null) labelCounts.set(label, (labelCounts.get(label) ?? 0) + 1);
  };
  for (const r of kept) tally(r.label, r.error);
  for (const r of kept) r.text = ''; // the texts were needed for the rewrite only
  const before = kept.length;
  process.stderr.write(
    `${count(inputs.length, 'input')}${shard && shard.count > 1 ? ` in shard ${shard.index}/${shard.count}` : ''}` +
      `${before ? `, ${before.toLocaleString('en-US')} already in ${file}` : ''}; ` +
      `model ${model.name} (${labels.length} classes)\n`,
  );

  const engine = await startInference(
    [model],
    { ...inference, maxDelayMs: DEFAULTS.maxDelayMs, maxQueue: Number.MAX_SAFE_INTEGER, timeoutMs: 600_000 },
    { info: (m) => process.stderr.write(`${m}\n`), error: (m) => process.stderr.write(`${m}\n`) },
  );
  if (engine.models.length === 0) {
    await engine.close();
    throw new CliError(`cannot load the model in ${model.dir}: ${engine.pool.skipped[model.name]}`);
  }
  const gate = new Gate(decoders, Number.MAX_SAFE_INTEGER);
  // heatmaps are drawn in worker threads, one a core, as the service draws them
  const drawers = q ? new Drawers(PREDICT_DECODERS, Number.MAX_SAFE_INTEGER, DEFAULTS.workerNice) : null;
  const spec = imageSpec(model.config);
  const appender = new Appender(file);
  const progress = new PredictProgress(todo.length);
  let finished = 0;
  let errors = 0;
  let stopping: NodeJS.Signals | null = null;
  let failed: CliError | null = null;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(130); // a second one: what is written is whole, so leave now
    stopping = signal;
    progress.line(`${signal}: finishing the images in flight, then stopping (again to stop at once)`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  /** Classify (and explain) one image, tried once more when a worker failed (not the image's fault). */
  const classify = async (input: ModelInput): Promise<Classified> => {
    const run = async () => (await classifyAndExplain(engine.batcher, model, [input], { tta, topk, map: q })).at(0)!;
    try {
      return await run();
    } catch (err) {
      if (err instanceof ServiceError && err.statusCode >= 500) return run();
      throw err;
    }
  };

  const predictOne = async (input: Input): Promise<PredictRecord> => {
    const record: PredictRecord = { path: input.path, size: input.size, mtime_ms: input.mtimeMs };
    const t0 = performance.now();
    try {
      const bytes = await readImageFile(input.path);
      const t1 = performance.now();
      const image = await decodeImage(bytes, spec, maxPixels, gate);
      const t2 = performance.now();
      const c = await classify(image.input);
      const r = c.result;
      record.predictions = c.predictions;
      if (values.logits) record.logits = Array.from(r.logits);
      const t3 = performance.now();
      if (q && c.map && model.grid) {
        const made = c.map;
        const grid = toGrid(made.values, model.grid[0], model.grid[1]);
        const png = await drawers!.draw(grid, image.view, { size: q.size, alpha: q.alpha, colormap: q.colormap });
        const name = mapFile(input.path, made.method);
        await fs.mkdir(path.join(out, path.dirname(name)), { recursive: true });
        await replaceFile(path.join(out, name), png);
        record.map = { method: made.method, ...made.made, file: name, ...(values['maps-json'] ? { grid: model.grid, values: grid } : {}) };
      }
      record.image = { format: image.format, width: image.original.width, height: image.original.height };
      const t4 = performance.now();
      const ms = (a: number, b: number) => +(b - a).toFixed(3);
      record.timings = {
        read_ms: ms(t0, t1),
        decode_ms: ms(t1, t2),
        queue_ms: +r.queueMs.toFixed(3),
        inference_ms: +r.inferenceMs.toFixed(3),
        ...(q ? { map_ms: ms(t3, t4) } : {}),
        total_ms: ms(t0, t4),
        batch_size: r.batchSize,
      };
    } catch (err) {
      record.error = failure(err);
    }
    return record;
  };

  // A window of images in flight: enough to keep every worker's batches full, few enough that memory stays flat.
  const window = Math.max(16, 2 * inference.workers * inference.maxBatch);
  let next = 0;
  const lane = async () => {
    while (!stopping && !failed && next < todo.length) {
      const input = todo[next++];
      const record = await predictOne(input);
      if (record.error && onBad === 'fail') {
        failed ??= new CliError(
          `${input.path}: ${record.error.message} (--on-bad-image fail; what was done is in ${file}, --resume continues)`,
        );
        return;
      }
      appender.write(formatRecord(record, format, header));
      tally(record.predictions?.[0]?.label ?? null, record.error?.code ?? null);
      finished++;
      if (record.error) {
        errors++;
        if (errors <= 5) progress.line(`${input.path}: ${record.error.message}`);
      }
      progress.update(finished, errors);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(window, Math.max(1, todo.length)) }, lane));
  } finally {
    appender.close();
    progress.end();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await engine.close();
    await drawers?.close();
  }
  if (failed) throw failed;

  const rate = progress.rate(finished);
  const total = [...labelCounts.values()].reduce((a, b) => a + b, 0) + [...errorCounts.values()].reduce((a, b) => a + b, 0);
  log(
    `${count(finished, 'image')} in ${progress.elapsedS().toFixed(1)} s ` +
      `(${Math.round(rate).toLocaleString('en-US')} ` +
      `images/s)${before ? `, ${before.toLocaleString('en-US')} done before` : ''}: ` +
      `${count(total, 'result')} in ${file}`,
  );
  const byLabel = [...labelCounts.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  if (byLabel.length) log(`predicted: ${byLabel.map(([l, n]) => `${l} ${n.toLocaleString('en-US')}`).join(', ')}`);
  if (errorCounts.size)
    log(`errors: ${[...errorCounts.entries()].map(([c, n]) => `${c} ${n.toLocaleString('en-US')}`).join(', ')} (their records say why)`);
  if (stopping) {
    log(`stopped by ${stopping}: ${count(todo.length - finished, 'input')} left; run the same command with --resume to continue`);
    return stopping === 'SIGTERM' ? 143 : 130;
  }
  return 0;
}
