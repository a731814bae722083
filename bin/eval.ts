// vitrine eval: an exported model folder on CIFAR-10's test set or a folder of class folders.

import path from 'node:path';
import type { ImageDataset } from '../trainer/data/dataset.js';
import { isCifarBinary, loadRunData } from '../trainer/train/data.js';
import { type Evaluation, type LogitsFn, TTAS, type Tta, evaluate, formatEvaluation } from '../trainer/train/evaluate.js';
import { MODEL_FILE, type ModelConfig, modelFileIn, readModelConfig } from '../runtime/model-config.js';
import { DEVICES, type Device, type Session, createSession, runSession } from '../runtime/ort.js';
import { CliError, findModelFolder, intFlag, parseFlags, progressPrinter, usageError } from './cli-util.js';

export const EVAL_USAGE = `usage: vitrine eval --model <dir or name> [--data cifar10|<folder>] [--data-dir data]
    [--device auto|cpu|webgpu|cuda] [--batch-size 500] [--limit N] [--tta none|flip] [--json]
  Prints accuracy, per-class accuracy and the confusion matrix of the model in <dir> (or a bundled model's name). For CIFAR-10 the
  10,000 test images; for a folder its val/ (or test/) images when it has train/ and val/; for the folder the
  model was trained on (recorded in its config.json), the images its seeded split held out; else all of it,
  with a warning. --tta flip averages the logits over each image and its mirror (one batch of both).`;

export async function evalCommand(argv: string[], log: (line: string) => void): Promise<void> {
  const flags = parseFlags(
    argv,
    {
      model: { type: 'string' },
      data: { type: 'string' },
      'data-dir': { type: 'string' },
      device: { type: 'string' },
      'batch-size': { type: 'string' },
      limit: { type: 'string' },
      tta: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    EVAL_USAGE,
  );
  if (flags.help) {
    log(EVAL_USAGE);
    return;
  }
  if (!flags.model) throw usageError(`--model is required`, EVAL_USAGE);
  const dir = findModelFolder(flags.model);
  const device = (flags.device ?? 'auto') as Device;
  if (!DEVICES.includes(device)) throw new CliError(`--device must be one of ${DEVICES.join(', ')}, got '${device}'`, 2);
  const tta = (flags.tta ?? 'none') as Tta;
  if (!TTAS.includes(tta)) throw new CliError(`--tta must be one of ${TTAS.join(', ')}, got '${tta}'`, 2);
  const config = await readModelConfig(dir);
  const file = modelFileIn(dir);
  if (!file) throw new CliError(`${dir} has no ONNX graph (${MODEL_FILE} or model.onnx)`);
  const session = await createSession(file, { device, log: (l) => process.stderr.write(l + '\n') });
  const { result, which, source, count } = await evaluateModel(
    dir,
    config,
    {
      data: flags.data ?? 'cifar10',
      dataDir: flags['data-dir'] ?? 'data',
      limit: intFlag(flags.limit, 'limit', 0),
      batchSize: intFlag(flags['batch-size'], 'batch-size', 500, 1),
      tta,
    },
    sessionLogits(session, config),
  );
  if (flags.json)
    log(
      JSON.stringify({
        model: dir,
        data: source,
        evaluated: which,
        tta,
        images: result.count,
        accuracy: result.accuracy,
        loss: result.loss,
        per_class: Object.fromEntries(config.labels.map((l, k) => [l, result.confusion[k].some((n) => n > 0) ? result.perClass[k] : null])),
        confusion: result.confusion,
      }),
    );
  else {
    const how = `${session.provider}${tta === 'flip' ? ', logits averaged with the mirror image' : ''}`;
    log(`${dir} on ${which} (${count} images, ${how}):\n${formatEvaluation(result, config.labels)}`);
  }
}

/** The logits of a model folder's session for a normalized batch, their shape checked. */
export function sessionLogits(session: Session, config: ModelConfig): LogitsFn {
  const [height, width] = config.image_size;
  const K = config.labels.length;
  return async (pixels, n) => {
    const out = await runSession(session, { [config.input_name]: { data: pixels, dims: [n, config.mean.length, height, width] } }, [
      config.logits_output,
    ]);
    const logits = out[config.logits_output];
    if (logits.dims.length !== 2 || logits.dims[1] !== K)
      throw new CliError(`${config.logits_output} has shape [${logits.dims}], expected [${n}, ${K}]`);
    return logits.data;
  };
}

export interface EvalData {
  /** cifar10, a cifar-10-batches-bin folder, or a folder of class folders. */
  data: string;
  dataDir: string;
  /** At most this many images (0: all). */
  limit: number;
  batchSize: number;
  tta?: Tta;
}

/**
 * The model in `dir` on the data: the images go through the service's pipeline (runtime/image.ts)
 * with the model's fit, resampling, rescale, mean and std, so that `logits` is given exactly the
 * tensors POST /classify would give the model for the same files.
 */
export async function evaluateModel(
  dir: string,
  config: ModelConfig,
  o: EvalData,
  logits: LogitsFn,
): Promise<{ result: Evaluation; which: string; source: string; count: number }> {
  const [height, width] = config.image_size;
  if (height !== width) throw new CliError(`${dir}: only square models are evaluated (image_size ${height}x${width})`);
  // The folder this model was trained on: hold out exactly what its run held out.
  const trained = config.training;
  const isFolder = o.data !== 'cifar10' && !isCifarBinary(o.data);
  const sameFolder = isFolder && trained !== undefined && trained.data === path.resolve(o.data);
  const data = await loadRunData({
    data: o.data,
    dataDir: o.dataDir,
    imageSize: height,
    fit: config.fit,
    resample: config.resample,
    valRatio: sameFolder ? trained.val_ratio : 0,
    seed: sameFolder ? trained.seed : 0,
    onBadImage: 'skip',
    limitTrain: o.limit,
    limitEval: o.limit,
    ...progressPrinter(),
  });
  let set: ImageDataset = data.eval ?? data.train;
  let which = data.evalDescription;
  if (!data.eval) {
    which = `all images of ${o.data}`;
    process.stderr.write(
      sameFolder
        ? `warning: this model was trained on all of ${o.data} (val_ratio 0): the accuracy below is on its training images\n`
        : `warning: ${o.data} has no val/ or test/ folder and is not the folder ` +
            `this model's config.json says it was trained on; evaluating all ` +
            `${set.count} images (if the model saw any of them in training, the ` +
            `accuracy is inflated)\n`,
    );
  }
  // Folder classes are matched to the model's labels by name.
  const remap = set.classes.map((c) => config.labels.indexOf(c));
  const stray = set.classes.find((_, i) => remap[i] < 0);
  if (stray !== undefined) throw new CliError(`class '${stray}' of the data is not among the model's labels (${config.labels.join(', ')})`);
  set = { ...set, labels: set.labels.map((l) => remap[l]), classes: config.labels };
  const result = await evaluate(logits, set, {
    mean: config.mean,
    std: config.std,
    rescale: config.rescale,
    batchSize: o.batchSize,
    tta: o.tta,
  });
  return { result, which, source: data.source, count: set.count };
}
