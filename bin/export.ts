// vitrine export: weights (or a fresh seeded model) -> a model folder (onnx/model.onnx, onnx/relevance.onnx and relevance-light.onnx,
// config.json, preprocessor_config.json)

import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { PREPROCESSOR_FILE, type TrainingRecord } from '../runtime/model-config.js';
import { DEFAULT_TRAIN, mergeTrainConfig } from '../trainer/train/config.js';
import { trainingRecord } from '../trainer/train/checkpoint.js';
import { LIGHT_RELEVANCE_FILE, RELEVANCE_FILE, exportModel, defaultLabels } from '../trainer/export.js';
import { readSafetensors } from '../trainer/io/safetensors.js';
import { SEED_CONFIG, type ViTConfig, parseViTConfig } from '../trainer/vit/config.js';
import { ViT } from '../trainer/vit/model.js';
import { loadWeights } from '../trainer/vit/weights.js';
import { initConfig, initModel, readInit } from '../trainer/vit/init.js';
import { CliError, intFlag, parseFlags, parseLabels, readViTConfig, usageError } from './cli-util.js';
import { quantizeInPlace } from './quantize.js';
import { writeFolderCard } from './card.js';
import { copyRunFiles } from '../trainer/card.js';

export const EXPORT_USAGE = `usage: vitrine export [--checkpoint <weights.safetensors | Hugging Face checkpoint folder>]
    [--config <vit.json>] [--labels <a,b,…|labels.json>] [--seed <n>] [--quantize int8] --out <dir>
  Writes <dir>/onnx/model.onnx (input pixel_values, outputs logits, attentions.0… and
  attention_rollout, the default map),
  <dir>/onnx/relevance.onnx (the explanation graph: also target_class in, attention_grads.0… out),
  <dir>/onnx/relevance-light.onnx (the same with the last layer's attention gradient only: the default map's),
  <dir>/config.json and <dir>/preprocessor_config.json: a vitrine model and a Hugging Face model folder
  (transformers.js runs it as it is).
  Without --checkpoint a freshly initialized model (from --seed, default 0) is exported. --quantize int8 then
  runs the classification graph's large matrix products in int8, as vitrine quantize does.
  The config comes from --config, else from the checkpoint's metadata, else the seed config.
  A Hugging Face ViT or DeiT folder (config.json, model.safetensors or its sharded index,
  preprocessor_config.json, as save_pretrained writes them) brings its own architecture, labels and
  preprocessing.`;

/** The files an export wrote, as the closing line names them. */
const written = (out: string, modelFile: string, bytes: number, configFile: string) =>
  `${modelFile} (${(bytes / 1024).toFixed(0)} KiB), ` +
  `${path.join(out, RELEVANCE_FILE)} and ` +
  `${path.join(out, LIGHT_RELEVANCE_FILE)} (the explanation graphs), ` +
  `${configFile}, ${path.join(out, PREPROCESSOR_FILE)}`;

export async function exportCommand(argv: string[], log: (line: string) => void): Promise<void> {
  const flags = parseFlags(
    argv,
    {
      checkpoint: { type: 'string' },
      config: { type: 'string' },
      labels: { type: 'string' },
      seed: { type: 'string' },
      out: { type: 'string' },
      quantize: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    EXPORT_USAGE,
  );
  if (flags.help) {
    log(EXPORT_USAGE);
    return;
  }
  if (!flags.out) throw usageError(`--out is required`, EXPORT_USAGE);
  if (flags.quantize !== undefined && flags.quantize !== 'int8')
    throw usageError(`--quantize takes int8, got '${flags.quantize}'`, EXPORT_USAGE);
  const seed = intFlag(flags.seed, 'seed', 0);

  if (flags.checkpoint && existsSync(flags.checkpoint) && statSync(flags.checkpoint).isDirectory()) {
    if (flags.config) throw new CliError('--config cannot be given with a checkpoint folder: the folder brings its architecture', 2);
    const src = await readInit(flags.checkpoint);
    const labels = flags.labels ? await parseLabels(flags.labels) : src.labels;
    if (labels.length === 0)
      throw new CliError(
        `${flags.checkpoint}: a ${src.architecture ?? 'model'} without a classifier: give --labels to export it with a fresh one`,
      );
    const { model, said } = initModel(src, initConfig(src, labels.length), labels, seed);
    for (const line of said) log(line);
    const preprocessing = src.preprocessing ?? undefined;
    const { modelFile, configFile, bytes } = await exportModel(model, labels, flags.out, { preprocessing });
    log(
      `exported ${model.parameterCount()} parameters from ` +
        `${flags.checkpoint}${src.architecture ? ` (${src.architecture})` : ''}: ` +
        `${written(flags.out, modelFile, bytes, configFile)}`,
    );
    if (flags.quantize) await quantizeInPlace(flags.out, log);
    return;
  }
  const checkpoint = flags.checkpoint ? await readSafetensors(flags.checkpoint) : null;
  const meta = checkpoint?.metadata ?? {};
  let config: ViTConfig;
  if (flags.config) config = await readViTConfig(flags.config);
  else if (meta.vit_config) config = parseViTConfig(JSON.parse(meta.vit_config), `${flags.checkpoint} (metadata vit_config)`);
  else config = { ...SEED_CONFIG, mean: [...SEED_CONFIG.mean], std: [...SEED_CONFIG.std] };

  const model = new ViT(config, seed);
  if (checkpoint) loadWeights(model, checkpoint.tensors, flags.checkpoint!);

  const labels = flags.labels
    ? await parseLabels(flags.labels)
    : meta.labels
      ? (JSON.parse(meta.labels) as string[])
      : defaultLabels(config.num_classes);
  if (labels.length !== config.num_classes)
    throw new CliError(`${labels.length} labels given for a model of ${config.num_classes} classes`);
  // a run's weights (weights, best or checkpoint) carry the run's data and split: eval then holds out
  // what the run held out
  const training = meta.training
    ? (JSON.parse(meta.training) as TrainingRecord)
    : meta.vitrine_run
      ? trainingRecord(
          mergeTrainConfig(
            DEFAULT_TRAIN,
            (JSON.parse(meta.vitrine_run) as { config?: Record<string, unknown> }).config ?? {},
            `${flags.checkpoint} (vitrine_run)`,
          ),
        )
      : undefined;
  const { modelFile, configFile, bytes } = await exportModel(model, labels, flags.out, { training });
  // exported from a run: its recipe, epochs and curves come along, and the folder gets its card
  if (checkpoint && training && (await copyRunFiles(path.dirname(flags.checkpoint!), flags.out))) {
    log(`model card: ${await writeFolderCard(flags.out, { name: path.basename(path.resolve(flags.out)) })}`);
  }
  log(
    `exported ${model.parameterCount()} ` +
      `parameters${checkpoint ? ` from ${flags.checkpoint}` : ` (fresh, seed ${seed})`}: ` +
      `${written(flags.out, modelFile, bytes, configFile)}`,
  );
  if (flags.quantize) await quantizeInPlace(flags.out, log);
}
