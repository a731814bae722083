// vitrine import: a ViT's ONNX graph (a file, or a folder as optimum writes one) -> a vitrine model folder
// with attention outputs and the relevance graph (trainer/import.ts does the work).

import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import {
  CONFIG_FILE,
  MODEL_FILE,
  PREPROCESSOR_FILE,
  RESAMPLES,
  type Resample,
  modelFileIn,
  modelFolderFiles,
  parseModelConfig,
} from '../runtime/model-config.js';
import { decodeModel } from '../trainer/autograd/onnx-proto.js';
import { LIGHT_RELEVANCE_FILE, RELEVANCE_FILE } from '../trainer/export.js';
import { type ImportSettings, importGraph, weightsFileIn } from '../trainer/import.js';
import { dataDirOf } from '../trainer/autograd/onnx-import.js';
import { writeFilesAtomic } from '../trainer/io/atomic.js';
import { CliError, intFlag, parseLabels, parseSourceAndFlags, readJsonFile, usageError } from './cli-util.js';
import { quantizeInPlace } from './quantize.js';

export const IMPORT_USAGE = `usage: vitrine import <model.onnx | folder> --out <dir> [--labels <a,b,…|labels.json>]
    [--size <h>[x<w>]] [--mean r,g,b] [--std r,g,b] [--fit cover|fill]
    [--resample ${RESAMPLES.join('|')}] [--logits <output>] [--heads <n>] [--patch-size <n>]
    [--prefix-tokens <n>] [--quantize int8]
  Reads a ViT exported by torch.onnx or optimum (opsets 13-18) into vitrine's autograd, finds its
  attentions and writes <dir>/onnx/model.onnx (the graph unchanged, with attentions.0… added as
  outputs), <dir>/onnx/relevance.onnx (the explanation graph), <dir>/onnx/model.onnx_data (the
  weights both read), config.json and preprocessor_config.json; vitrine serve then serves it with
  rollout and relevance maps.
  A folder's config.json (id2label) and preprocessor_config.json give the labels and preprocessing;
  flags override them. Without either: labels class_0…, ImageNet's mean and std, cover-cropped.
  The image size is the graph's input size; the patch grid comes from the patch embedding and the
  tokens before the patches ([CLS], a distillation token, registers) from the attention's size.`;

const IMAGENET = { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

function numberList(value: string, name: string): number[] {
  const v = value.split(',').map((x) => Number(x.trim()));
  if (v.length === 0 || v.some((x) => !Number.isFinite(x)))
    throw new CliError(`--${name} must be numbers separated by commas, got '${value}'`, 2);
  return v;
}

/** The model file and the folder its config files would be in. */
async function locate(source: string): Promise<{ file: string; folder: string }> {
  let stat;
  try {
    stat = await fs.stat(source);
  } catch {
    throw new CliError(`${source} does not exist`);
  }
  if (stat.isDirectory()) {
    const file = modelFileIn(source);
    if (!file) throw new CliError(`${source} holds no ${MODEL_FILE} or model.onnx`);
    return { file, folder: source };
  }
  const dir = path.dirname(source);
  const folder = path.basename(dir) === 'onnx' && existsSync(path.join(dir, '..', CONFIG_FILE)) ? path.dirname(dir) : dir;
  return { file: source, folder };
}

export async function importCommand(argv: string[], log: (line: string) => void): Promise<void> {
  const { source, flags } = parseSourceAndFlags(
    argv,
    {
      out: { type: 'string' },
      quantize: { type: 'string' },
      labels: { type: 'string' },
      size: { type: 'string' },
      mean: { type: 'string' },
      std: { type: 'string' },
      fit: { type: 'string' },
      resample: { type: 'string' },
      logits: { type: 'string' },
      heads: { type: 'string' },
      'patch-size': { type: 'string' },
      'prefix-tokens': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    IMPORT_USAGE,
  );
  if (flags.help) {
    log(IMPORT_USAGE);
    return;
  }
  if (!source) throw usageError(`name the model to import first: vitrine import <model.onnx | folder> --out <dir>`, IMPORT_USAGE);
  if (!flags.out) throw usageError(`--out is required`, IMPORT_USAGE);
  if (flags.quantize !== undefined && flags.quantize !== 'int8')
    throw usageError(`--quantize takes int8, got '${flags.quantize}'`, IMPORT_USAGE);
  if (flags.fit !== undefined && flags.fit !== 'cover' && flags.fit !== 'fill')
    throw new CliError(`--fit must be cover or fill, got '${flags.fit}'`, 2);
  if (flags.resample !== undefined && !RESAMPLES.includes(flags.resample as Resample))
    throw new CliError(`--resample must be one of ${RESAMPLES.join(', ')}, got '${flags.resample}'`, 2);
  const heads = flags.heads === undefined ? undefined : intFlag(flags.heads, 'heads', 0, 1);
  const patchSize = flags['patch-size'] === undefined ? undefined : intFlag(flags['patch-size'], 'patch-size', 0, 1);
  const size = flags.size === undefined ? undefined : parseSize(flags.size);
  const prefixTokens = flags['prefix-tokens'] === undefined ? undefined : intFlag(flags['prefix-tokens'], 'prefix-tokens', 0, 1);

  const { file, folder } = await locate(source);
  const t0 = performance.now();
  let bytes: Buffer;
  try {
    bytes = await fs.readFile(file);
  } catch (err) {
    throw new CliError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let model;
  try {
    model = decodeModel(bytes);
  } catch (err) {
    throw new CliError(`${file} is not an ONNX model (${(err as Error).message.split('\n')[0]})`);
  }

  // What the folder says (a Hugging Face config and processor), then what the flags say.
  const configFile = path.join(folder, CONFIG_FILE);
  const processorFile = path.join(folder, PREPROCESSOR_FILE);
  const rawConfig = existsSync(configFile) ? ((await readJsonFile(configFile)) as Record<string, unknown>) : undefined;
  const rawProcessor = existsSync(processorFile) ? await readJsonFile(processorFile) : undefined;
  const said =
    rawConfig && rawProcessor
      ? parseModelConfig({ ...rawConfig, input_name: undefined, labels: undefined }, configFile, rawProcessor, processorFile)
      : undefined;
  const fromFolder =
    rawConfig?.id2label !== undefined
      ? parseModelConfig({ id2label: rawConfig.id2label }, configFile, rawProcessor ?? { size: 1 }).labels
      : undefined;
  const labels = flags.labels ? await parseLabels(flags.labels) : fromFolder;
  const assumed: string[] = [];
  const settings: ImportSettings = {
    labels: labels ?? [],
    mean: flags.mean ? numberList(flags.mean, 'mean') : (said?.mean ?? IMAGENET.mean),
    std: flags.std ? numberList(flags.std, 'std') : (said?.std ?? IMAGENET.std),
    fit: (flags.fit as 'cover' | 'fill' | undefined) ?? (said ? 'fill' : 'cover'),
    resample: (flags.resample as Resample | undefined) ?? said?.resample ?? (said ? 'linear' : 'area'),
    rescale: said?.rescale ?? 1 / 255,
    logitsOutput: flags.logits,
    heads,
    patchSize,
    prefixTokens,
    size,
  };
  if (!said && !flags.mean) assumed.push("ImageNet's mean and std (--mean, --std)");
  if (!said && !flags.fit) assumed.push('cover-crop (--fit)');

  let result;
  try {
    result = importGraph(model, dataDirOf(file), settings);
  } catch (err) {
    throw new CliError(`${file}: ${(err as Error).message.replace(/^onnx import: /, '')}`);
  }
  if (!labels) assumed.push(`labels class_0…class_${result.config.labels.length - 1} (--labels)`);
  if (said && (said.image_size[0] !== result.config.image_size[0] || said.image_size[1] !== result.config.image_size[1])) {
    throw new CliError(
      `${processorFile} resizes to ${said.image_size.join('x')}, but the graph takes ${result.config.image_size.join('x')}`,
    );
  }

  const out = flags.out;
  const files = modelFolderFiles(result.config);
  const config = {
    ...(rawConfig ?? {}),
    ...files.config,
    ...(rawConfig?.model_type ? { model_type: rawConfig.model_type, architectures: rawConfig.architectures } : {}),
  };
  try {
    await fs.mkdir(path.join(out, 'onnx'), { recursive: true });
    await writeFilesAtomic([
      [weightsFileIn(out), result.files.weights],
      [path.join(out, MODEL_FILE), result.files.model],
      [path.join(out, RELEVANCE_FILE), result.files.relevance],
      [path.join(out, LIGHT_RELEVANCE_FILE), result.files.light],
      [path.join(out, PREPROCESSOR_FILE), JSON.stringify(files.preprocessor, null, 2) + '\n'],
      [path.join(out, CONFIG_FILE), JSON.stringify(config, null, 2) + '\n'],
    ]);
  } catch (err) {
    throw new CliError(`cannot write to ${out}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const { layout, attentions } = result;
  const mb = (n: number) => `${(n / 1e6).toFixed(n < 1e6 ? 2 : 0)} MB`;
  log(
    `imported ${file} (opset ${result.opset}, ` +
      `${result.parameters.toLocaleString('en-US')} parameters) in ` +
      `${((performance.now() - t0) / 1000).toFixed(1)} s: ` +
      `${attentions.length} attentions of ${attentions[0].heads} heads over ` +
      `${attentions[0].tokens} tokens (${layout.prefixTokens} before a ` +
      `${layout.grid.join('x')} grid of ${layout.patchSize}-pixel patches)`,
  );
  log(
    `wrote ${out}: ${MODEL_FILE} (${mb(result.files.model.length)}), ` +
      `${RELEVANCE_FILE} (${mb(result.files.relevance.length)}), ` +
      `${LIGHT_RELEVANCE_FILE} (${mb(result.files.light.length)}), ` +
      `onnx/model.onnx_data (${mb(result.files.weights.length)}), ` +
      `${CONFIG_FILE}, ${PREPROCESSOR_FILE}`,
  );
  if (assumed.length > 0) log(`assumed ${assumed.join('; ')}: nothing in ${folder} said otherwise`);
  if (flags.quantize) await quantizeInPlace(out, log);
}

function parseSize(value: string): [number, number] {
  const m = /^(\d+)(?:x(\d+))?$/.exec(value);
  if (!m || Number(m[1]) < 1 || (m[2] !== undefined && Number(m[2]) < 1))
    throw new CliError(`--size must be <height>[x<width>] in pixels, got '${value}'`, 2);
  return [Number(m[1]), Number(m[2] ?? m[1])];
}
