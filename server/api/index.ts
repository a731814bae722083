// vitrine in a Node.js program's own process: the package's entry (`import { open } from 'vitrine'`).
// The same engine as the service and vitrine predict (worker threads that own the ONNX Runtime
// sessions, the batcher, classify-and-explain, the maps), with no HTTP between. docs/api.md shows it.

import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import type { DecodedImage } from '../../runtime/image.js';
import type { Device } from '../../runtime/ort.js';
import { imageSpec } from '../../runtime/pixels.js';
import { defaultServeConfig } from '../config.js';
import { Drawers } from '../drawing/draws.js';
import type { HeatmapOptions } from '../drawing/heatmap.js';
import { toGrid } from '../engine/attention.js';
import { type Prediction, classifyAndExplain } from '../engine/classify.js';
import type { ModelInput } from '../engine/job.js';
import { type Inference, startInference } from '../engine/inference.js';
import { type MapMethod, type MapQuery, checkMapQuery, methodsOf } from '../engine/maps.js';
import { type ServedModel, discoverModels, loadModelFolder } from '../engine/models.js';
import { decodeImage } from '../engine/preprocess.js';
import { Gate } from '../gate.js';

export type { HeatmapOptions } from '../drawing/heatmap.js';
export type { Prediction } from '../engine/classify.js';
export type { MapMethod, MapQuery } from '../engine/maps.js';
export type { Device } from '../../runtime/ort.js';
export { ServiceError } from '../errors.js';

export interface OpenOptions {
  /** ONNX Runtime's provider: auto (CUDA, then WebGPU on a hardware adapter, then the CPU), cpu, webgpu, cuda. */
  device?: Device;
  /** Inference worker threads (default 1), each with its own session of every model. */
  workers?: number;
  /** ONNX Runtime intra-op threads per worker (default 1). */
  threads?: number;
  /** The most images run as one batch (default 8). */
  maxBatch?: number;
  /** Heatmap drawing threads, started on the first heatmap (default 1). */
  drawers?: number;
  /** Images with more pixels are refused (default: the service's). */
  maxPixels?: number;
  /** Where the engine's notes go (a model skipped, the provider taken); default: nowhere. */
  log?: (message: string) => void;
}

/** An image: its encoded bytes (PNG, JPEG, WebP, GIF, AVIF, TIFF), a file's path, or the model's input
 *  as a normalized CHW tensor (channels x height x width of the model's size). */
export type ImageInput = Uint8Array | string | Float32Array;

export interface ClassifyOptions {
  /** The model's name (default: the only one, or the first by name). */
  model?: string;
  /** How many predictions (default 5). */
  topk?: number;
  /** 'flip': the mean of the image's and its mirror's logits. */
  tta?: 'none' | 'flip';
  /** A map to make: its method (rollout, cls, relevance, chefer, grad-input, combined) and parameters. */
  map?: MapQuery;
}

export interface ModelInfo {
  name: string;
  labels: readonly string[];
  /** [height, width] */
  imageSize: readonly number[];
  /** The map methods the model gives. */
  methods: MapMethod[];
}

export interface Classification {
  model: string;
  predictions: Prediction[];
  logits: Float32Array;
  /** The map asked for: rows x cols over the patches, and how it was made. */
  map?: { method: MapMethod; grid: [number, number]; values: number[][]; made: Record<string, unknown> };
  /** The map as a PNG heatmap over the image (an image given as bytes or a file; not a tensor). */
  heatmap?: (options?: Partial<HeatmapOptions>) => Promise<Buffer>;
}

export interface Vitrine {
  readonly models: ModelInfo[];
  classify(image: ImageInput, options?: ClassifyOptions): Promise<Classification>;
  /** Waits for the work under way, then stops the worker threads. */
  close(): Promise<void>;
}

/** Opens a model folder (config.json and its ONNX graph), or a folder of model folders. */
export async function open(folder: string, options: OpenOptions = {}): Promise<Vitrine> {
  const log = options.log ?? (() => {});
  const found = existsSync(path.join(folder, 'config.json'))
    ? [await loadModelFolder(folder, path.basename(path.resolve(folder)), log)]
    : await discoverModels(folder, log);
  if (found.length === 0) throw new Error(`no model in ${folder}: a model folder holds config.json and its ONNX graph`);
  const defaults = defaultServeConfig();
  const engine = await startInference(
    found,
    {
      device: options.device ?? 'auto',
      workers: options.workers ?? 1,
      threads: options.threads ?? 1,
      workerNice: 0,
      maxBatch: options.maxBatch ?? defaults.maxBatch,
      maxDelayMs: defaults.maxDelayMs,
      maxQueue: Number.MAX_SAFE_INTEGER,
      timeoutMs: 600_000,
    },
    { info: log, error: log },
  );
  if (engine.models.length === 0) {
    const why = Object.entries(engine.pool.skipped).map(([name, reason]) => `${name}: ${reason}`);
    await engine.close();
    throw new Error(`no model in ${folder} could be opened (${why.join('; ')})`);
  }
  return new InProcess(engine, options);
}

class InProcess implements Vitrine {
  readonly models: ModelInfo[];
  private readonly decoders = new Gate(1, Number.MAX_SAFE_INTEGER);
  private drawers: Drawers | null = null;
  private readonly maxPixels: number;

  constructor(
    private readonly engine: Inference,
    private readonly options: OpenOptions,
  ) {
    this.maxPixels = options.maxPixels ?? defaultServeConfig().maxPixels;
    this.models = engine.models.map((m) => ({
      name: m.name,
      labels: m.config.labels,
      imageSize: m.config.image_size,
      methods: methodsOf(m),
    }));
  }

  private model(name?: string): ServedModel {
    const models = this.engine.models;
    const m = name === undefined ? models[0] : models.find((x) => x.name === name);
    if (!m) throw new Error(`no model '${name}' (models: ${models.map((x) => x.name).join(', ')})`);
    return m;
  }

  private async input(model: ServedModel, image: ImageInput): Promise<{ input: ModelInput; view: DecodedImage['view'] | null }> {
    if (image instanceof Float32Array) {
      const [h, w] = model.config.image_size;
      const size = model.config.mean.length * h * w;
      if (image.length !== size) throw new Error(`a tensor for model ${model.name} has ${size} values (CHW), got ${image.length}`);
      return { input: image, view: null };
    }
    const bytes = typeof image === 'string' ? await fs.readFile(image) : Buffer.from(image.buffer, image.byteOffset, image.byteLength);
    const decoded = await decodeImage(bytes, imageSpec(model.config), this.maxPixels, this.decoders);
    return { input: decoded.input, view: decoded.view };
  }

  async classify(image: ImageInput, options: ClassifyOptions = {}): Promise<Classification> {
    const model = this.model(options.model);
    const map = options.map ?? null;
    if (map) checkMapQuery(model, map, new Set(Object.keys(map).filter((k) => (map as Record<string, unknown>)[k] !== undefined)));
    const { input, view } = await this.input(model, image);
    const [c] = await classifyAndExplain(this.engine.batcher, model, [input], { tta: options.tta, topk: options.topk ?? 5, map });
    const out: Classification = { model: model.name, predictions: c.predictions, logits: c.result.logits };
    if (c.map && model.grid) {
      const grid = toGrid(c.map.values, model.grid[0], model.grid[1]);
      out.map = { method: c.map.method, grid: [model.grid[0], model.grid[1]], values: grid, made: c.map.made };
      if (view) out.heatmap = (o = {}) => this.drawersOf().draw(grid, view, { size: 256, alpha: 0.5, colormap: 'jet', ...o });
    }
    return out;
  }

  private drawersOf(): Drawers {
    this.drawers ??= new Drawers(this.options.drawers ?? 1, Number.MAX_SAFE_INTEGER, 0);
    return this.drawers;
  }

  async close(): Promise<void> {
    await this.engine.close();
    await this.drawers?.close();
  }
}
