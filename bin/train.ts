// vitrine train: a recipe and flags -> a training run in --out (checkpoints, metrics, curves, model).

import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CHECKPOINT_FILE, loadCheckpoint } from '../trainer/train/checkpoint.js';
import { DEFAULT_TRAIN, TRAIN_CHECKS, TrainConfig, flagValue, mergeTrainConfig } from '../trainer/train/config.js';
import { loadRunData } from '../trainer/train/data.js';
import { train } from '../trainer/train/loop.js';
import { ProgressBar } from '../trainer/train/report.js';
import { ViTConfig, parseViTConfig } from '../trainer/vit/config.js';
import { CliError, parseFlags, readJsonFile } from './cli-util.js';

const RECIPES = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'trainer', 'recipes');
const KEYS = Object.keys(TRAIN_CHECKS) as (keyof TrainConfig)[];
const flagName = (k: string) => k.replace(/_/g, '-');
/** Keys that may differ from the checkpoint's when resuming. */
const RESUMABLE = new Set<keyof TrainConfig>(['epochs', 'threads', 'device', 'eval_every', 'checkpoint_every', 'data_dir', 'data']);

export const TRAIN_USAGE = `usage: vitrine train [--recipe <name|file.json>] [--out <dir>] [--resume] [--<key> <value> …]
  Trains a ViT and writes to --out: checkpoint.safetensors (+ .json), metrics.jsonl, curves.svg, and at the
  end weights.safetensors and model/ (model.onnx + config.json, ready to serve).
  Recipes: ${'seed'} (the seed post's settings), cifar10 (the bundled model's). Keys (flags use dashes):
    --data cifar10|<folder>   --data-dir data   --val-ratio 0.1   --on-bad-image skip|fail
    --model <vit.json>        --epochs N        --batch-size N    --optimizer adamw|sgd
    --lr X  --weight-decay X  --decay-all / --no-decay-all        --betas b1,b2  --eps X
    --momentum X  --nesterov  --schedule constant|cosine  --warmup-epochs X  --min-lr X
    --label-smoothing X  --crop-padding N  --flip / --no-flip  --seed N  --threads N
    --device cpu|cuda|auto  --eval-every N  --checkpoint-every N  --limit-train N  --limit-eval N
  --resume continues the run in --out exactly where its checkpoint left it. Ctrl-C saves a checkpoint.`;

function flagOptions() {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {
    recipe: { type: 'string' },
    out: { type: 'string' },
    resume: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  };
  for (const k of KEYS) {
    const isBool = typeof DEFAULT_TRAIN[k] === 'boolean';
    options[flagName(k)] = { type: isBool ? 'boolean' : 'string' };
    if (isBool) options[`no-${flagName(k)}`] = { type: 'boolean' };
  }
  return options;
}

async function readRecipe(name: string): Promise<Record<string, unknown>> {
  const file = name.endsWith('.json') ? name : path.join(RECIPES, `${name}.json`);
  if (!name.endsWith('.json') && !existsSync(file)) {
    const known = (await fs.readdir(RECIPES)).map((f) => f.replace(/\.json$/, ''));
    throw new CliError(`unknown recipe '${name}' (known: ${known.join(', ')}; or give a .json file)`, 2);
  }
  const raw = await readJsonFile(file);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new CliError(`${file}: expected a JSON object`);
  return raw as Record<string, unknown>;
}

async function resolveVit(model: TrainConfig['model'], numClasses: number): Promise<ViTConfig> {
  const raw = typeof model === 'string' ? await readJsonFile(model) : model;
  const source = typeof model === 'string' ? model : 'model config';
  const given = raw as Record<string, unknown>;
  const vit = parseViTConfig({ ...given, num_classes: given.num_classes ?? numClasses }, source);
  if (vit.num_classes !== numClasses) throw new CliError(`${source}: num_classes is ${vit.num_classes} but the data has ${numClasses} classes`);
  return vit;
}

export async function trainCommand(argv: string[], log: (line: string) => void): Promise<void> {
  const flags = parseFlags(argv, flagOptions(), TRAIN_USAGE) as Record<string, string | boolean | undefined>;
  if (flags.help) return log(TRAIN_USAGE);

  // Flags, typed and checked like recipe keys.
  const given: Record<string, unknown> = {};
  for (const k of KEYS) {
    const f = flags[flagName(k)];
    if (f !== undefined) given[k] = flagValue(k, f);
    if (flags[`no-${flagName(k)}`]) given[k] = false;
  }
  const flagConfig = () => mergeTrainConfig({ ...DEFAULT_TRAIN } as TrainConfig, given, 'flags');

  let config: TrainConfig;
  let out: string;
  let resumedVit: ViTConfig | null = null;
  if (flags.resume) {
    if (!flags.out) throw new CliError('--resume needs --out <the run folder>', 2);
    out = flags.out as string;
    if (flags.recipe) throw new CliError('--recipe cannot be given with --resume: the run keeps its own settings', 2);
    const ck = await loadCheckpoint(out);
    flagConfig();
    for (const [k, v] of Object.entries(given)) {
      const key = k as keyof TrainConfig;
      if (!RESUMABLE.has(key) && JSON.stringify(v) !== JSON.stringify(ck.train[key])) {
        throw new CliError(`--${flagName(k)} ${JSON.stringify(v)} does not match the checkpoint's ${JSON.stringify(ck.train[key])}; a resumed run keeps its settings`);
      }
    }
    config = mergeTrainConfig(ck.train, given, 'flags');
    resumedVit = ck.vit;
  } else {
    const recipe = flags.recipe ? await readRecipe(flags.recipe as string) : {};
    config = mergeTrainConfig(mergeTrainConfig({ ...DEFAULT_TRAIN } as TrainConfig, recipe, `recipe ${flags.recipe}`), given, 'flags');
    out = (flags.out as string | undefined) ?? path.join('runs', `${flags.recipe ? path.basename(flags.recipe as string, '.json') : 'train'}-${new Date().toISOString().replace(/[-:]/g, '').slice(0, 15)}`);
    if (existsSync(path.join(out, CHECKPOINT_FILE))) throw new CliError(`${out} already holds a run; pass --resume to continue it, or choose another --out`);
  }

  // The data decides the number of classes; the model config must agree.
  const progress = new ProgressBar(process.stderr);
  let lastShown = -1;
  const data = await loadRunData({
    data: config.data,
    dataDir: config.data_dir,
    imageSize: resumedVit?.image_size ?? (await modelImageSize(config.model)),
    valRatio: config.val_ratio,
    seed: config.seed,
    onBadImage: config.on_bad_image,
    limitTrain: config.limit_train,
    limitEval: config.limit_eval,
    warn: (line) => progress.line(`warning: ${line}`),
    progress: (line, done, total) => {
      const pct = total > 0 ? Math.floor((100 * done) / total) : -1;
      if (pct !== lastShown && (pct % 10 === 0 || process.stderr.isTTY)) {
        lastShown = pct;
        if (process.stderr.isTTY) process.stderr.write(`\r\x1b[2K${line} ${pct >= 0 ? `${pct}%` : `${(done / 1e6).toFixed(0)} MB`}${done === total ? '\n' : ''}`);
        else process.stderr.write(`${line} ${pct}%\n`);
      }
    },
  });
  const vit = resumedVit ?? (await resolveVit(config.model, data.classes.length));
  if (vit.num_classes !== data.classes.length) throw new CliError(`the checkpoint's model has ${vit.num_classes} classes but the data has ${data.classes.length}`);

  const stop = { requested: false };
  const onSigint = () => {
    if (stop.requested) process.exit(130);
    stop.requested = true;
    progress.line('stopping after this step (Ctrl-C again to quit without saving)…');
  };
  process.on('SIGINT', onSigint);
  try {
    await fs.mkdir(out, { recursive: true });
    await fs.writeFile(path.join(out, 'train-config.json'), JSON.stringify({ ...config, model: vit }, null, 2) + '\n');
    const result = await train({ config, vit, data, out, resume: !!flags.resume, log: (l) => progress.line(l), progress, stop });
    if (result.interrupted) process.exitCode = 130;
  } finally {
    process.off('SIGINT', onSigint);
  }
}

/** The image size the data must be decoded to, before the class count (from the data) is known. */
async function modelImageSize(model: TrainConfig['model']): Promise<number> {
  const raw = typeof model === 'string' ? await readJsonFile(model) : model;
  return parseViTConfig(raw, typeof model === 'string' ? model : 'model config').image_size;
}
