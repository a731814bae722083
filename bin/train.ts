// vitrine train: a recipe and flags -> a training run in --out (checkpoints, metrics, curves, model).

import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { CHECKPOINT_FILE, loadCheckpoint } from '../trainer/train/checkpoint.js';
import { DEFAULT_TRAIN, TRAIN_KEYS, type TrainConfig, TrainConfigSchema, flagValue, mergeTrainConfig } from '../trainer/train/config.js';
import { isCifarBinary, loadRunData } from '../trainer/train/data.js';
import { recipeFile, recipeNames } from '../trainer/train/recipes.js';
import { train } from '../trainer/train/loop.js';
import { ProgressBar } from '../trainer/train/report.js';
import { type ViTConfig, parseViTConfig } from '../trainer/vit/config.js';
import { type InitSource, initConfig, readInit } from '../trainer/vit/init.js';
import { flagOf, packLines, shownValue } from '../runtime/schema.js';
import { CliError, parseFlags, progressPrinter, readJsonFile } from './cli-util.js';

const KEYS = TRAIN_KEYS;
const flagName = flagOf;
const isBool = (k: keyof TrainConfig) => TrainConfigSchema.properties[k].type === 'boolean';
/** Keys that may differ from the checkpoint's when resuming. */
const RESUMABLE = new Set<keyof TrainConfig>(['epochs', 'threads', 'device', 'eval_every', 'checkpoint_every', 'data_dir', 'data']);

export const TRAIN_USAGE = `usage: vitrine train [--recipe <name|file.json>] [--out <dir>] [--resume] [--<key> <value> …]
  Trains a ViT and writes to --out: checkpoint.safetensors (+ .json), metrics.jsonl, curves.svg, and at the
  end weights.safetensors and model/ (onnx/model.onnx, the explanation graphs, config.json: ready to serve).
  Recipes: seed (the seed post's settings), cifar10, cifar10-aa (with AutoAugment), cifar10-ra (the bundled
  vit-cifar10's), cct-cifar10 (the bundled cct-cifar10's: a convolutional tokenizer), finetune (from --init:
  a linear probe first, then everything at a low rate with layer-wise decay; the default with --init),
  folder (the default for a folder of your own images: a compact transformer, the batch chosen for the
  folder's size), or a .json file of keys.
  --init <Hugging Face ViT/DeiT folder | model folder | weights.safetensors> starts from its weights and
  architecture; the classifier is made anew when the data's labels differ from the checkpoint's.
  Keys (flags use dashes):
    ${packLines(
      KEYS.map((k) =>
        isBool(k) ? `--${flagName(k)} / --no-${flagName(k)}` : `--${flagName(k)} ${shownValue(TrainConfigSchema.properties[k])}`,
      ),
      104,
      '  ',
    ).join('\n    ')}
  --resume continues the run in --out exactly where its checkpoint left it. Ctrl-C saves a checkpoint and
  exits 130. Exit status: 0 done, 1 failed, 2 a wrong flag or value, 130 interrupted.`;

function flagOptions() {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {
    recipe: { type: 'string' },
    out: { type: 'string' },
    resume: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  };
  for (const k of KEYS) {
    options[flagName(k)] = { type: isBool(k) ? 'boolean' : 'string' };
    if (isBool(k)) options[`no-${flagName(k)}`] = { type: 'boolean' };
  }
  return options;
}

async function readRecipe(name: string): Promise<Record<string, unknown>> {
  const file = name.endsWith('.json') ? name : recipeFile(name);
  if (file === null) throw new CliError(`unknown recipe '${name}' (known: ${(await recipeNames()).join(', ')}; or give a .json file)`, 2);
  const raw = await readJsonFile(file);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new CliError(`${file}: expected a JSON object`);
  return raw as Record<string, unknown>;
}

async function resolveVit(model: TrainConfig['model'], numClasses: number): Promise<ViTConfig> {
  const raw = typeof model === 'string' ? await readJsonFile(model) : model;
  const source = typeof model === 'string' ? model : 'model config';
  const given = raw as Record<string, unknown>;
  const vit = parseViTConfig({ ...given, num_classes: given.num_classes ?? numClasses }, source);
  if (vit.num_classes !== numClasses)
    throw new CliError(`${source}: num_classes is ${vit.num_classes} but the data has ${numClasses} classes`);
  return vit;
}

export async function trainCommand(argv: string[], log: (line: string) => void): Promise<number | void> {
  const flags = parseFlags(argv, flagOptions(), TRAIN_USAGE) as Record<string, string | boolean | undefined>;
  if (flags.help) {
    log(TRAIN_USAGE);
    return 0;
  }

  // Flags, typed and checked like recipe keys; a bad one is a usage error (exit 2).
  const usage = <T>(f: () => T): T => {
    try {
      return f();
    } catch (err) {
      throw new CliError((err as Error).message, 2);
    }
  };
  const given: Record<string, unknown> = {};
  for (const k of KEYS) {
    const f = flags[flagName(k)];
    if (f !== undefined) given[k] = usage(() => flagValue(k, f));
    if (flags[`no-${flagName(k)}`]) given[k] = false;
  }
  const flagConfig = () => usage(() => mergeTrainConfig({ ...DEFAULT_TRAIN } as TrainConfig, given, 'flags'));

  let config: TrainConfig;
  let out: string;
  let resumedVit: ViTConfig | null = null;
  let implied: 'folder' | 'finetune' | null = null;
  if (flags.resume) {
    if (!flags.out) throw new CliError('--resume needs --out <the run folder>', 2);
    out = flags.out as string;
    if (flags.recipe) throw new CliError('--recipe cannot be given with --resume: the run keeps its own settings', 2);
    const ck = await loadCheckpoint(out);
    flagConfig();
    for (const [k, v] of Object.entries(given)) {
      const key = k as keyof TrainConfig;
      if (key === 'model') {
        // the architecture is compared, not how it was named: an edited file is a different model
        const asked = await resolveVit(v as TrainConfig['model'], ck.vit.num_classes);
        const differ = Object.keys({ ...asked, ...ck.vit }).filter(
          (x) => JSON.stringify(asked[x as keyof ViTConfig]) !== JSON.stringify(ck.vit[x as keyof ViTConfig]),
        );
        if (differ.length > 0) {
          const show = differ
            .map((x) => `${x} ${JSON.stringify(asked[x as keyof ViTConfig])} vs ${JSON.stringify(ck.vit[x as keyof ViTConfig])}`)
            .join(', ');
          throw new CliError(
            `--model ${typeof v === 'string' ? v : JSON.stringify(v)} is not the ` +
              `checkpoint's model (${show}); a resumed run keeps its settings`,
          );
        }
        delete given[k];
        continue;
      }
      if (!RESUMABLE.has(key) && JSON.stringify(v) !== JSON.stringify(ck.train[key])) {
        throw new CliError(
          `--${flagName(k)} ${JSON.stringify(v)} does not match the checkpoint's ` +
            `${JSON.stringify(ck.train[key])}; a resumed run keeps its settings`,
        );
      }
    }
    config = mergeTrainConfig(ck.train, given, 'flags');
    resumedVit = ck.vit;
  } else {
    // No recipe named: a folder of one's own images gets the folder recipe (its batch size chosen for
    // the folder once it is read), a run from --init the finetune recipe; CIFAR-10 the defaults.
    const initGiven = given.init !== undefined;
    const dataGiven = (given.data as string | undefined) ?? 'cifar10';
    const ownFolder = dataGiven !== 'cifar10' && !isCifarBinary(dataGiven);
    implied = flags.recipe ? null : initGiven ? 'finetune' : ownFolder ? 'folder' : null;
    const recipe = flags.recipe ? await readRecipe(flags.recipe as string) : implied ? await readRecipe(implied) : {};
    const fromRecipe = usage(() => mergeTrainConfig({ ...DEFAULT_TRAIN } as TrainConfig, recipe, `recipe ${flags.recipe}`));
    config = usage(() => mergeTrainConfig(fromRecipe, given, 'flags'));
    out =
      (flags.out as string | undefined) ??
      path.join(
        'runs',
        `${flags.recipe ? path.basename(flags.recipe as string, '.json') : 'train'}-` +
          new Date().toISOString().replace(/[-:]/g, '').slice(0, 15),
      );
    if (existsSync(path.join(out, CHECKPOINT_FILE)))
      throw new CliError(`${out} already holds a run; pass --resume to continue it, or choose another --out`);
  }

  // Starting weights (a fresh run only: a resumed one has its checkpoint's): their architecture, with
  // what --model may change.
  let init: InitSource | undefined;
  let overrides: Record<string, unknown> = {};
  if (config.init && !resumedVit) {
    try {
      init = await readInit(config.init);
      overrides = (typeof config.model === 'string' ? await readJsonFile(config.model) : config.model) as Record<string, unknown>;
      initConfig(init, init.vit.num_classes, overrides); // refuses what --model may not change, before the data is read
    } catch (err) {
      throw new CliError(`--init: ${(err as Error).message}`);
    }
  }

  // The data decides the number of classes; the model config must agree.
  const progress = new ProgressBar(process.stderr);
  const data = await loadRunData({
    data: config.data,
    dataDir: config.data_dir,
    imageSize:
      resumedVit?.image_size ??
      (init ? ((overrides.image_size as number | undefined) ?? init.vit.image_size) : await modelImageSize(config.model)),
    valRatio: config.val_ratio,
    seed: config.seed,
    onBadImage: config.on_bad_image,
    limitTrain: config.limit_train,
    limitEval: config.limit_eval,
    ...progressPrinter(),
  });
  if (implied === 'folder') {
    const chosen = given.batch_size === undefined;
    if (chosen) config = { ...config, batch_size: folderBatch(data.train.count) };
    const batch = Math.min(config.batch_size, data.train.count);
    const steps = Math.floor(data.train.count / batch);
    progress.line(
      `a folder of ${data.train.count} training images and no --recipe: the ` +
        `folder recipe (a compact transformer with a convolutional tokenizer; ` +
        `${config.epochs} epochs of AdamW at lr ${config.lr}, warmup and ` +
        `cosine, flips, crops, RandAugment) at batch ` +
        `${batch}${chosen ? ", chosen for the folder's size" : ''}, ` +
        `${steps} step${steps === 1 ? '' : 's'} an epoch; --recipe or ` +
        `flags change it`,
    );
  } else if (implied)
    progress.line(
      `no --recipe: the ${implied} recipe (a linear probe first, then everything with layer-wise decay); --recipe or flags change it`,
    );
  if (data.classes.length < 2)
    throw new CliError(
      `${config.data}: a classifier needs at least two classes, found ${data.classes.length} (${data.classes.join(', ')})`,
    );
  const vit = resumedVit ?? (init ? initConfig(init, data.classes.length, overrides) : await resolveVit(config.model, data.classes.length));
  if (vit.num_classes !== data.classes.length)
    throw new CliError(`the checkpoint's model has ${vit.num_classes} classes but the data has ${data.classes.length}`);

  const stop = { requested: false };
  const onSigint = interruptHandler(stop, (l) => progress.line(l));
  process.on('SIGINT', onSigint);
  try {
    await fs.mkdir(out, { recursive: true });
    await fs.writeFile(path.join(out, 'train-config.json'), JSON.stringify({ ...config, model: vit }, null, 2) + '\n');
    const result = await train({ config, vit, data, out, resume: !!flags.resume, log: (l) => progress.line(l), progress, stop, init });
    if (result.interrupted) return 130; // as any interrupted program, though the checkpoint is saved
  } finally {
    process.off('SIGINT', onSigint);
  }
}

/** The folder recipe's batch: a power of two near an eighth of the training images, 8 to 128, so a
 *  small folder gets several steps an epoch (and a large one the batch CIFAR-10's recipes use). */
export function folderBatch(images: number): number {
  return Math.min(128, Math.max(8, 2 ** Math.floor(Math.log2(Math.max(1, images / 8)))));
}

/** Ctrl-C: the first asks the run to stop after its step and save; the second quits at once, without
 *  saving (exit 130). */
export function interruptHandler(
  stop: { requested: boolean },
  say: (line: string) => void,
  quit: (code: number) => void = (code) => process.exit(code),
): () => void {
  return () => {
    if (stop.requested) return quit(130);
    stop.requested = true;
    say('stopping after this step (Ctrl-C again to quit without saving)…');
  };
}

/** The image size the data must be decoded to, before the class count (from the data) is known. */
async function modelImageSize(model: TrainConfig['model']): Promise<number> {
  const raw = typeof model === 'string' ? await readJsonFile(model) : model;
  return parseViTConfig(raw, typeof model === 'string' ? model : 'model config').image_size;
}
