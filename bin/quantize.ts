// vitrine quantize: a model folder -> a folder whose classification graph has its large matrix
// products in int8 (trainer/quantize.ts), the explanation graphs and everything else as they were.
// With --check, the two graphs' accuracy is measured on the data and a fall of more than one point
// is refused (unless --force); the figures are printed either way.

import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { CONFIG_FILE, MODEL_FILE, modelFileIn, readModelConfig } from '../runtime/model-config.js';
import { createSession } from '../runtime/ort.js';
import { QUANTIZE, type QuantizeReport, quantizeModelFile } from '../trainer/quantize.js';
import { CliError, findModelFolder, intFlag, parseSourceAndFlags, usageError } from './cli-util.js';
import { evaluateModel, sessionLogits } from './eval.js';

export const QUANTIZE_USAGE = `usage: vitrine quantize <model folder or name> --out <dir>
    [--check cifar10|<folder>] [--limit 2000] [--data-dir data] [--force]
  Writes a model folder whose classification graph runs its matrix products of ${QUANTIZE.minWeights} weights or more in int8
  (weights per output column, activations per tensor at run time: ONNX Runtime's ${QUANTIZE.op}); LayerNorm, Softmax,
  GELU, the residual adds and the attention products stay float, so the attention maps still come from it. The explanation
  graphs stay float. --check measures both graphs' accuracy on the data (CIFAR-10's test images or a folder of class
  folders, at most --limit images) and refuses a fall of more than one point unless --force.`;

/**
 * Rewrites a model folder's classification graph in int8 where it stands and records it in its
 * config.json (vitrine quantize on a copy; export and import with --quantize int8 on what they wrote).
 */
export async function quantizeInPlace(dir: string, log: (line: string) => void): Promise<QuantizeReport> {
  const file = modelFileIn(dir);
  if (!file) throw new CliError(`${dir} has no ONNX graph (${MODEL_FILE} or model.onnx)`);
  let report: QuantizeReport;
  try {
    report = await quantizeModelFile(file, `${file}.int8`);
  } catch (err) {
    await fs.rm(`${file}.int8`, { force: true });
    throw new CliError(`cannot quantize ${file}: ${(err as Error).message}`);
  }
  if (report.products.length === 0) {
    await fs.rm(`${file}.int8`, { force: true });
    throw new CliError(`${dir}: no matrix product of ${QUANTIZE.minWeights} weights or more to quantize; the model stays float`);
  }
  await fs.rename(`${file}.int8`, file);
  const raw = JSON.parse(await fs.readFile(path.join(dir, CONFIG_FILE), 'utf8')) as Record<string, unknown>;
  raw.quantization = {
    weights: 'int8',
    activations: 'uint8, per tensor, at run time',
    products: report.products.length,
    kept_float: report.kept.length,
    op: `${QUANTIZE.domain}.${QUANTIZE.op}`,
    explanation: 'float',
  };
  await fs.writeFile(path.join(dir, CONFIG_FILE), `${JSON.stringify(raw, null, 2)}\n`);
  const mb = (b: number) => (b / 1e6).toFixed(2);
  log(
    `${report.products.length} matrix products in int8 (${mb(report.floatBytes)} MB of float weights as ${mb(report.int8Bytes)} MB), ` +
      `${report.kept.length} kept float (under ${QUANTIZE.minWeights} weights); largest weight error ` +
      `${(100 * Math.max(...report.products.map((p) => p.maxRelativeError))).toFixed(2)}% of its column's largest`,
  );
  return report;
}

/** The largest fall in accuracy, in points, accepted without --force. */
export const MAX_FALL_POINTS = 1;

/** A folder's classification accuracy on a data set, through the image pipeline /classify uses. */
export type AccuracyOf = (
  folder: string,
  data: { data: string; dataDir: string; limit: number },
) => Promise<{ accuracy: number; count: number }>;

const measureAccuracy: AccuracyOf = async (folder, data) => {
  const session = await createSession(modelFileIn(folder)!, { device: 'cpu' });
  const c = await readModelConfig(folder);
  return (await evaluateModel(folder, c, { ...data, batchSize: 250 }, sessionLogits(session, c))).result;
};

export async function quantizeCommand(
  argv: string[],
  log: (line: string) => void,
  accuracyOf: AccuracyOf = measureAccuracy,
): Promise<void> {
  const { source, flags } = parseSourceAndFlags(
    argv,
    {
      out: { type: 'string' },
      check: { type: 'string' },
      limit: { type: 'string' },
      'data-dir': { type: 'string' },
      force: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    QUANTIZE_USAGE,
  );
  if (flags.help) {
    log(QUANTIZE_USAGE);
    return;
  }
  if (!source) throw usageError('name the model folder to quantize first: vitrine quantize <dir> --out <dir>', QUANTIZE_USAGE);
  if (!flags.out) throw usageError('--out is required', QUANTIZE_USAGE);
  const dir = findModelFolder(source);
  const out = flags.out;
  if (path.resolve(out) === path.resolve(dir)) throw new CliError('--out must be another folder than the model (it is written anew)');
  if (existsSync(path.join(out, CONFIG_FILE))) throw new CliError(`${out} already holds a model folder; choose another --out`);
  const limit = intFlag(flags.limit, 'limit', 2000, 1);
  const config = await readModelConfig(dir);
  if (config.quantization) throw new CliError(`${dir} is quantized already`);
  const file = modelFileIn(dir);
  if (!file) throw new CliError(`${dir} has no ONNX graph (${MODEL_FILE} or model.onnx)`);

  // the folder as it is (the explanation graphs and their external data included), then the new graph
  await fs.mkdir(path.dirname(out), { recursive: true });
  await fs.cp(dir, out, { recursive: true, errorOnExist: true });
  try {
    await quantizeInPlace(out, log);
  } catch (err) {
    await fs.rm(out, { recursive: true, force: true });
    throw err;
  }

  if (flags.check) {
    const measure = (folder: string) => accuracyOf(folder, { data: flags.check!, dataDir: flags['data-dir'] ?? 'data', limit });
    const float = await measure(dir);
    const int8 = await measure(out);
    const fall = 100 * (float.accuracy - int8.accuracy);
    log(
      `accuracy on ${float.count} images of ${flags.check}: float ${(100 * float.accuracy).toFixed(2)}%, ` +
        `int8 ${(100 * int8.accuracy).toFixed(2)}% (${fall > 0 ? '-' : fall < 0 ? '+' : '±'}${Math.abs(fall).toFixed(2)} points)`,
    );
    if (fall > MAX_FALL_POINTS && !flags.force) {
      await fs.rm(out, { recursive: true, force: true });
      throw new CliError(
        `int8 loses ${fall.toFixed(2)} points of accuracy (more than ${MAX_FALL_POINTS}): not written; --force writes it anyway`,
      );
    }
  } else log('accuracy not checked: --check cifar10 (or a folder of class folders) measures it and refuses a fall over one point');
  log(`written ${out}: serve it with npx vitrine serve ${out}`);
}
