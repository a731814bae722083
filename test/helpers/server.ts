// A models folder with a freshly initialized seed ViT (and a copy without attention outputs, as a
// foreign model would be), and an app built on it.

import { cp, mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import type { FastifyInstance } from 'fastify';
import type { Test } from 'tap';
import { exportModel } from '../../trainer/export.js';
import { CIFAR10_CLASSES } from '../../trainer/data/cifar10.js';
import { SEED_CONFIG } from '../../trainer/vit/config.js';
import { ViT } from '../../trainer/vit/model.js';
import { buildApp } from '../../server/http/app.js';
import { readModelConfig } from '../../runtime/model-config.js';
import { type ServeConfig, defaultServeConfig } from '../../server/config.js';
import { tmpDir } from './data.js';

let modelsDir: Promise<string> | null = null;

/** models/vit-cifar10 (fresh seed ViT, seed 1) and models/plain (same graph, no attention outputs). */
export function testModels(): Promise<string> {
  modelsDir ??= (async () => {
    const root = await tmpDir('vitrine-models-');
    const vit = path.join(root, 'vit-cifar10');
    await exportModel(new ViT(SEED_CONFIG, 1), CIFAR10_CLASSES, vit);
    const plain = path.join(root, 'plain');
    await mkdir(plain);
    // laid out as earlier exports were: model.onnx at the top, labels, size, mean and std in config.json
    await cp(path.join(vit, 'onnx', 'model.onnx'), path.join(plain, 'model.onnx'));
    const c = await readModelConfig(vit);
    const legacy = {
      labels: c.labels,
      image_size: c.image_size,
      mean: c.mean,
      std: c.std,
      input_name: c.input_name,
      logits_output: c.logits_output,
      attention_outputs: [],
      patch_size: null,
    };
    await writeFile(path.join(plain, 'config.json'), JSON.stringify(legacy));
    return root;
  })();
  return modelsDir;
}

const GRAPH_FILES = ['config.json', 'preprocessor_config.json', 'onnx'];

/** Makes `dir` hold a bundled model's config and graphs (`from`: cct-cifar10 or vit-cifar10), replacing
 *  what it held: a model folder changed while served. */
export async function placeBundledModel(from: string, dir: string): Promise<void> {
  const bundled = path.join(import.meta.dirname, '..', '..', 'models', from);
  for (const f of GRAPH_FILES) await rm(path.join(dir, f), { recursive: true, force: true });
  for (const f of GRAPH_FILES) await cp(path.join(bundled, f), path.join(dir, f), { recursive: true });
}

/** A models folder of two copies of the bundled models: alpha (vit-cifar10's files), beta (cct-cifar10's). */
export async function twoModelsRoot(prefix: string): Promise<string> {
  const root = await tmpDir(prefix);
  await placeBundledModel('vit-cifar10', path.join(root, 'alpha'));
  await placeBundledModel('cct-cifar10', path.join(root, 'beta'));
  return root;
}

export async function testConfig(over: Partial<ServeConfig> = {}): Promise<ServeConfig> {
  return {
    ...defaultServeConfig(),
    models: await testModels(),
    defaultModel: 'vit-cifar10',
    workers: 1,
    threads: 1,
    workerNice: 0,
    logLevel: 'silent',
    ...over,
  };
}

export async function testApp(
  t: Test,
  over: Partial<ServeConfig> = {},
  opts: { now?: () => number; logger?: object } = {},
): Promise<FastifyInstance> {
  const app = await buildApp(await testConfig(over), { logger: false, ...opts });
  t.teardown(() => app.close());
  return app;
}

export async function png(width: number, height: number, rgb: [number, number, number], channels: 3 | 4 = 3): Promise<Buffer> {
  return sharp({
    create: {
      width,
      height,
      channels,
      background: channels === 4 ? { r: rgb[0], g: rgb[1], b: rgb[2], alpha: 0.5 } : { r: rgb[0], g: rgb[1], b: rgb[2] },
    },
  })
    .png()
    .toBuffer();
}

/** A 32x32 image with structure (a gradient and a square), so models give it non-uniform attention. */
export async function testImage(format: 'png' | 'jpeg' | 'webp' | 'gif' | 'tiff' | 'avif' = 'png', size = 32): Promise<Buffer> {
  const raw = Buffer.alloc(size * size * 3);
  for (let y = 0; y < size; y++)
    for (let x = 0; x < size; x++) {
      const inSquare = x > size / 4 && x < size / 2 && y > size / 3 && y < (2 * size) / 3;
      raw.set(inSquare ? [250, 240, 20] : [Math.round((x / size) * 200), 60, Math.round((y / size) * 220)], (y * size + x) * 3);
    }
  return sharp(raw, { raw: { width: size, height: size, channels: 3 } })
    .toFormat(format)
    .toBuffer();
}

export function multipart(
  field: string,
  data: Buffer,
  filename = 'image.png',
  type = 'image/png',
): { payload: Buffer; headers: Record<string, string> } {
  const boundary = '----vitrine' + Math.random().toString(16).slice(2);
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="${field}"; filename="${filename}"\r\nContent-Type: ${type}\r\n\r\n`,
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  return { payload: Buffer.concat([head, data, tail]), headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } };
}
