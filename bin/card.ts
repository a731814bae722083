// vitrine card: (re)writes a model folder's README.md, a Hugging Face model card, from the folder's
// files (config.json, train-config.json, metrics.jsonl, curves.svg, notes.md), with the model evaluated
// on the images its run held out (as `vitrine eval` picks them).

import path from 'node:path';
import { CARD_SOURCES, writeModelCard } from '../trainer/card.js';
import { parseViTConfig } from '../trainer/vit/config.js';
import { ViT } from '../trainer/vit/model.js';
import { MODEL_FILE, modelFileIn, readModelConfig } from '../runtime/model-config.js';
import { createSession } from '../runtime/ort.js';
import { CliError, parseFlags, usageError } from './cli-util.js';
import { evaluateModel, sessionLogits } from './eval.js';

export const CARD_USAGE = `usage: vitrine card --model <dir> [--name <name>] [--data cifar10|<folder>] [--data-dir data]
  Writes <dir>/README.md, a Hugging Face model card (YAML metadata, then architecture, recipe, data and
  split, held-out accuracy per class, training time and images/s, curves), from the folder's own files:
  config.json, ${CARD_SOURCES.train}, ${CARD_SOURCES.metrics}, ${CARD_SOURCES.curves} and ${CARD_SOURCES.notes} (kept as written).
  The accuracy is measured on the images the run held out (config.json's training record), or --data.`;

/** Writes <dir>/README.md; returns its path. */
export async function writeFolderCard(
  dir: string,
  o: { name?: string; data?: string; dataDir?: string; log?: (l: string) => void } = {},
): Promise<string> {
  const config = await readModelConfig(dir);
  const file = modelFileIn(dir);
  if (!file) throw new CliError(`${dir} has no ONNX graph (${MODEL_FILE} or model.onnx)`);
  const data = o.data ?? config.training?.data;
  let evaluation = null;
  if (data) {
    const session = await createSession(file, { device: 'cpu' });
    const { result, which } = await evaluateModel(
      dir,
      config,
      { data, dataDir: o.dataDir ?? 'data', limit: 0, batchSize: 500 },
      sessionLogits(session, config),
    );
    evaluation = { result, which };
  } else o.log?.(`${dir}: no training record and no --data: the card has no accuracy`);
  const parameters = config.vit ? new ViT(parseViTConfig(config.vit, `${dir} (vit)`)).parameterCount() : 0;
  return writeModelCard(dir, { name: o.name ?? path.basename(path.resolve(dir)), config, parameters, evaluation });
}

export async function cardCommand(argv: string[], log: (line: string) => void): Promise<void> {
  const flags = parseFlags(
    argv,
    {
      model: { type: 'string' },
      name: { type: 'string' },
      data: { type: 'string' },
      'data-dir': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    CARD_USAGE,
  );
  if (flags.help) {
    log(CARD_USAGE);
    return;
  }
  if (!flags.model) throw usageError(`--model is required`, CARD_USAGE);
  const out = await writeFolderCard(flags.model, {
    name: flags.name,
    data: flags.data,
    dataDir: flags['data-dir'],
    log: (l) => process.stderr.write(`warning: ${l}\n`),
  });
  log(`wrote ${out}`);
}
