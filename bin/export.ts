// vitrine export: weights (or a fresh seeded model) -> a model folder (onnx/model.onnx, onnx/relevance.onnx,
// config.json, preprocessor_config.json)

import path from 'node:path';
import { PREPROCESSOR_FILE } from '../runtime/model-config.js';
import { RELEVANCE_FILE, exportModel, defaultLabels } from '../trainer/export.js';
import { readSafetensors } from '../trainer/io/safetensors.js';
import { SEED_CONFIG, ViTConfig, parseViTConfig } from '../trainer/vit/config.js';
import { ViT } from '../trainer/vit/model.js';
import { loadWeights } from '../trainer/vit/weights.js';
import { CliError, intFlag, parseFlags, parseLabels, readViTConfig } from './cli-util.js';

export const EXPORT_USAGE = `usage: vitrine export [--checkpoint <weights.safetensors>] [--config <vit.json>] [--labels <a,b,…|labels.json>] [--seed <n>] --out <dir>
  Writes <dir>/onnx/model.onnx (input pixel_values, outputs logits and attentions.0…),
  <dir>/onnx/relevance.onnx (the explanation graph: also target_class in, attention_grads.0… out),
  <dir>/config.json and <dir>/preprocessor_config.json: a vitrine model and a Hugging Face model folder
  (transformers.js runs it as it is).
  Without --checkpoint a freshly initialized model (from --seed, default 0) is exported.
  The config comes from --config, else from the checkpoint's metadata, else the seed config.`;

export async function exportCommand(argv: string[], log: (line: string) => void): Promise<void> {
  const flags = parseFlags(
    argv,
    {
      checkpoint: { type: 'string' },
      config: { type: 'string' },
      labels: { type: 'string' },
      seed: { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    EXPORT_USAGE,
  );
  if (flags.help) {
    log(EXPORT_USAGE);
    return;
  }
  if (!flags.out) throw new CliError(`--out is required\n${EXPORT_USAGE}`, 2);
  const seed = intFlag(flags.seed, 'seed', 0);

  const checkpoint = flags.checkpoint ? await readSafetensors(flags.checkpoint) : null;
  const meta = checkpoint?.metadata ?? {};
  let config: ViTConfig;
  if (flags.config) config = await readViTConfig(flags.config);
  else if (meta.vit_config) config = parseViTConfig(JSON.parse(meta.vit_config), `${flags.checkpoint} (metadata vit_config)`);
  else config = { ...SEED_CONFIG, mean: [...SEED_CONFIG.mean], std: [...SEED_CONFIG.std] };

  const model = new ViT(config, seed);
  if (checkpoint) loadWeights(model, checkpoint.tensors, flags.checkpoint!);

  const labels = flags.labels ? await parseLabels(flags.labels) : meta.labels ? (JSON.parse(meta.labels) as string[]) : defaultLabels(config.num_classes);
  if (labels.length !== config.num_classes) throw new CliError(`${labels.length} labels given for a model of ${config.num_classes} classes`);
  const { modelFile, configFile, bytes } = await exportModel(model, labels, flags.out);
  log(`exported ${model.parameterCount()} parameters${checkpoint ? ` from ${flags.checkpoint}` : ` (fresh, seed ${seed})`}: ${modelFile} (${(bytes / 1024).toFixed(0)} KiB), ${path.join(flags.out, RELEVANCE_FILE)} (the explanation graph), ${configFile}, ${path.join(flags.out, PREPROCESSOR_FILE)}`);
}
