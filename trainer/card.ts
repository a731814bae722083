// Model cards: README.md in Hugging Face's model-card form (YAML metadata, then prose and tables),
// generated from a model folder's own files: config.json (labels, the ViT config, the training
// record), train-config.json (the recipe as run), metrics.jsonl (one line per epoch), curves.svg, an
// evaluation on the images the run held out, and notes.md (what a person wrote about the model, kept
// as it is). A run writes one into model/; `vitrine card` regenerates it.

import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from './io/atomic.js';
import type { ModelConfig } from '../runtime/model-config.js';
import type { TrainConfig } from './train/config.js';
import type { Evaluation } from './train/evaluate.js';
import { type EpochMetrics, averageWins, formatDuration } from './train/report.js';
import type { ViTConfig } from './vit/config.js';

export const CARD_FILE = 'README.md';
/** What a model folder carries for its card to be regenerated. */
export const CARD_SOURCES = Object.freeze({
  train: 'train-config.json',
  metrics: 'metrics.jsonl',
  curves: 'curves.svg',
  notes: 'notes.md',
});

export interface CardInput {
  name: string;
  config: ModelConfig;
  parameters: number;
  train: TrainConfig | null;
  history: EpochMetrics[];
  /** The model on the images its run held out, and which images they were. */
  evaluation: { result: Evaluation; which: string } | null;
  hasCurves: boolean;
  notes: string | null;
}

const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
const yamlString = (s: string) => JSON.stringify(s);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? 0 : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

function dataName(c: ModelConfig): { name: string; cifar: boolean } {
  const data = c.training?.data;
  if (!data || data === 'cifar10' || /cifar-10-batches-bin/.test(data)) return { name: 'CIFAR-10', cifar: data !== undefined };
  return { name: path.basename(data), cifar: false };
}

function architecture(v: ViTConfig, parameters: number, labels: number): string[] {
  const tokens =
    v.tokenizer_layers > 0
      ? `a convolutional tokenizer of ${v.tokenizer_layers} stages ` +
        `(${v.tokenizer_kernel}x${v.tokenizer_kernel} convolutions, ` +
        `${v.tokenizer_channels} channels between them, ReLU, stride-2 ` +
        `max-pools), each token a ${v.patch_size}x${v.patch_size} square`
      : `${v.patch_size}x${v.patch_size} patches${v.shifted_patch_tokenization ? ' with Shifted Patch Tokenization' : ''}`;
  const grid = v.image_size / v.patch_size;
  const rows: [string, string][] = [
    [
      'input',
      `${v.image_size}x${v.image_size}, ${v.num_channels} channels, ` +
        `normalized with mean ${JSON.stringify(v.mean)} and std ` +
        `${JSON.stringify(v.std)}`,
    ],
    ['tokens', `${tokens}: a grid of ${grid}x${grid}, after [CLS]${v.distillation_token ? ' and a distillation token' : ''}`],
    [
      'blocks',
      `${v.num_hidden_layers}, width ${v.hidden_size}, ` +
        `${v.num_attention_heads} ` +
        `heads${v.locality_self_attention ? ' (Locality Self-Attention)' : ''}, ` +
        `MLP ${v.intermediate_size} ` +
        `(${v.hidden_act === 'gelu' ? 'exact GELU' : 'tanh GELU'}), pre-norm ` +
        `(epsilon ${v.layer_norm_eps})`,
    ],
    [
      'head',
      `${v.final_layernorm ? 'a final LayerNorm, then ' : ''}a linear ` +
        `classifier on ` +
        `[CLS]${v.distillation_classifier ? ' and one on the distillation token, the logits their mean' : ''}, ` +
        `${labels} classes`,
    ],
    ['parameters', parameters.toLocaleString('en-US')],
  ];
  if (v.drop_path_rate > 0 || v.hidden_dropout_prob > 0 || v.attention_probs_dropout_prob > 0)
    rows.push([
      'regularization in training',
      `drop path ${v.drop_path_rate}, dropout ${v.hidden_dropout_prob}, attention dropout ${v.attention_probs_dropout_prob}`,
    ]);
  return ['| | |', '| --- | --- |', ...rows.map(([k, v]) => `| ${k} | ${v} |`)];
}

function recipe(t: TrainConfig): string[] {
  const optimizer =
    t.optimizer === 'adamw' ? `AdamW (betas ${t.betas.join('/')})` : `SGD (momentum ${t.momentum}${t.nesterov ? ', Nesterov' : ''})`;
  const average = t.ema_horizon > 0 ? `over ${100 * t.ema_horizon}% of the steps` : `decay ${t.ema_decay}`;
  const frozen = t.freeze_epochs === 0 ? 'throughout' : `for ${t.freeze_epochs} epochs`;
  const lines = [
    `- ${t.epochs} epochs at batch ${t.batch_size}, ${optimizer}, ` +
      `learning rate ` +
      `${t.lr}${t.schedule === 'cosine' ? ` with a cosine to ${t.min_lr}` : ' constant'}` +
      `${t.warmup_epochs > 0 ? ` after ${t.warmup_epochs} warmup epochs` : ''}, ` +
      `weight decay ` +
      `${t.weight_decay}${t.decay_all ? '' : ' (not on biases, norms and embeddings)'}`,
  ];
  const aug = [
    t.crop_padding > 0 ? `random crops (${t.crop_padding} px padding)` : '',
    t.flip ? (t.alternate_flip ? 'horizontal flips (alternating: each image mirrored every other epoch)' : 'horizontal flips') : '',
    t.auto_augment !== 'none'
      ? t.auto_augment === 'randaugment'
        ? `RandAugment (${t.randaugment_ops} op at magnitude ${t.randaugment_magnitude})`
        : t.auto_augment
      : '',
    t.random_erasing > 0 ? `random erasing (${t.random_erasing})` : '',
    t.mixup_alpha > 0 ? `Mixup (alpha ${t.mixup_alpha})` : '',
    t.cutmix_alpha > 0 ? `CutMix (alpha ${t.cutmix_alpha})` : '',
    t.label_smoothing > 0 ? `label smoothing ${t.label_smoothing}` : '',
  ].filter(Boolean);
  lines.push(
    `- ` +
      `${aug.length > 0 ? aug.join(', ') : 'no augmentation'}` +
      `${t.ema_decay > 0 || t.ema_horizon > 0 ? `; an average of the weights (${average}), exported when it does better at the end` : ''}` +
      `${t.whiten_init ? '; the first convolution started as a whitening of the training patches' : ''}; ` +
      `seed ${t.seed}`,
  );
  if (t.init)
    lines.push(
      `- started from ` +
        `\`${t.init}` +
        `\`${t.freeze === 'encoder' ? `, the encoder frozen ${frozen}` : ''}` +
        `${t.layer_decay < 1 ? `, layer-wise lr decay ${t.layer_decay}` : ''}`,
    );
  return lines;
}

export function renderModelCard(c: CardInput): string {
  const v = c.config.vit as ViTConfig | undefined;
  const { name: dataset, cifar } = dataName(c.config);
  const e = c.evaluation;
  const tags = [
    'image-classification',
    'vision-transformer',
    'onnx',
    'vitrine',
    ...(v?.tokenizer_layers ? ['compact-transformer'] : []),
    ...(v?.distillation_token ? ['deit'] : []),
    ...(c.config.relevance ? ['explainability'] : []),
  ];
  const meta = [
    '---',
    'library_name: vitrine',
    'pipeline_tag: image-classification',
    'tags:',
    ...tags.map((t) => `- ${t}`),
    ...(cifar ? ['datasets:', '- cifar10'] : []),
    'metrics:',
    '- accuracy',
    ...(e
      ? [
          'model-index:',
          `- name: ${yamlString(c.name)}`,
          '  results:',
          '  - task:',
          '      type: image-classification',
          '      name: Image Classification',
          '    dataset:',
          `      name: ${yamlString(dataset)}`,
          `      type: ${cifar ? 'cifar10' : 'imagefolder'}`,
          `      split: ${cifar ? 'test' : 'validation'}`,
          '    metrics:',
          '    - type: accuracy',
          `      value: ${+e.result.accuracy.toFixed(4)}`,
          `      name: ${yamlString(`accuracy on ${e.result.count} held-out images`)}`,
        ]
      : []),
    '---',
  ];
  const out = [...meta, '', `# ${c.name}`, ''];
  out.push(
    `${v ? `A Vision Transformer of ${c.parameters.toLocaleString('en-US')} parameters` : 'An image classifier'} ` +
      `trained with vitrine on ${dataset} (${c.config.labels.length} ` +
      `classes: ` +
      `${c.config.labels.join(', ')}` +
      `).${e ? ` **${pct(e.result.accuracy)}** on ${e.result.count.toLocaleString('en-US')} images: ${e.which}.` : ''}`,
  );
  out.push('', "This card is generated from the folder's files (`vitrine card --model <folder>` writes it again).");
  if (v) out.push('', '## Architecture', '', ...architecture(v, c.parameters, c.config.labels.length));
  if (c.train) {
    out.push('', '## Recipe', '', ...recipe(c.train));
  }
  out.push('', '## Data and split', '');
  const tr = c.config.training;
  if (tr)
    out.push(
      tr.data === 'cifar10'
        ? '- CIFAR-10: the 50,000 training images for training, the 10,000 test images held out'
        : `- the folder \`${tr.data}\`: ` +
            (tr.val_ratio > 0
              ? `a seeded per-class split (val_ratio ${tr.val_ratio}, seed ${tr.seed}) unless it has train/ and val/`
              : 'all of it for training'),
    );
  else out.push('- not recorded (an export without its run)');
  if (e) {
    out.push(
      '',
      '## Held-out accuracy',
      '',
      `${pct(e.result.accuracy)} on ${e.result.count} images, ${e.which}; mean cross-entropy ${e.result.loss.toFixed(4)}.`,
      '',
      '| class | accuracy | images |',
      '| --- | --- | --- |',
    );
    c.config.labels.forEach((l, k) => {
      const n = e.result.confusion[k].reduce((a, b) => a + b, 0);
      out.push(`| ${l} | ${n > 0 ? pct(e.result.perClass[k]) : '—'} | ${n} |`);
    });
  }
  if (c.history.length > 0) {
    const last = c.history.at(-1)!;
    const rates = c.history.map((h) => h.images_per_s);
    const evaluated = c.history.filter((h) => h.test_accuracy !== undefined);
    const best = evaluated.reduce<EpochMetrics | null>((b, h) => (b === null || h.test_accuracy! > b.test_accuracy! ? h : b), null);
    out.push('', '## Training', '');
    out.push(
      `- ${last.epoch} epoch${last.epoch === 1 ? '' : 's'} ` +
        `(${last.step.toLocaleString('en-US')} steps) in ` +
        `${formatDuration(last.elapsed_s)} of wall time, evaluations included; ` +
        `median ${Math.round(median(rates))} training images/s per epoch ` +
        `(${Math.min(...rates)} to ${Math.max(...rates)})`,
    );
    out.push(
      `- last epoch: train loss ${last.train_loss.toFixed(4)}, train ` +
        `accuracy ` +
        `${pct(last.train_accuracy)}` +
        `${last.test_accuracy !== undefined ? `, held-out accuracy ${pct(last.test_accuracy)}` : ''}` +
        `${last.ema_test_accuracy !== undefined ? ` (the average of the weights: ${pct(last.ema_test_accuracy)})` : ''}`,
    );
    const averaged = averageWins(last);
    if (best && last.test_accuracy !== undefined && best.test_accuracy! > last.test_accuracy)
      out.push(
        `- the held-out accuracy peaked at epoch ${best.epoch} ` +
          `(${pct(best.test_accuracy!)}); the last ` +
          `epoch${averaged ? "'s average of the weights" : ''} is what was ` +
          `exported`,
      );
  }
  if (c.hasCurves) out.push('', '## Curves', '', '![train and held-out loss and accuracy per epoch](curves.svg)');
  out.push('', '## Files', '', '| file | what |', '| --- | --- |');
  out.push(
    `| \`onnx/model.onnx\` | input \`${c.config.input_name}\` [batch, ` +
      `${c.config.mean.length}, ${c.config.image_size.join(', ')}]; outputs ` +
      `\`${c.config.logits_output}` +
      `\`${c.config.attention_outputs.length ? ` and ${c.config.attention_outputs.length} attention maps` : ''}` +
      ` ` +
      `|`,
  );
  if (c.config.relevance) out.push(`| \`${c.config.relevance.file}\` | the explanation graph (relevance maps) |`);
  if (c.config.relevance?.light_file)
    out.push(
      `| \`${c.config.relevance.light_file}\` | the light explanation graph (the last layer's attention gradient: the default map) |`,
    );
  out.push(
    "| `config.json`, `preprocessor_config.json` | transformers' keys and vitrine's (the folder runs in transformers.js as it is) |",
  );
  if (c.train) out.push(`| \`${CARD_SOURCES.train}\` | the recipe as run |`);
  if (c.history.length) out.push(`| \`${CARD_SOURCES.metrics}\` | one line per epoch |`);
  if (c.notes) out.push('', c.notes.trim());
  return out.join('\n') + '\n';
}

/** What a model folder holds for its card: the recipe, the epochs, the curves, the notes. */
export async function cardSources(dir: string): Promise<Pick<CardInput, 'train' | 'history' | 'hasCurves' | 'notes'>> {
  const file = (f: string) => path.join(dir, f);
  const read = async (f: string) => (existsSync(file(f)) ? fs.readFile(file(f), 'utf8') : null);
  const train = await read(CARD_SOURCES.train);
  const metrics = await read(CARD_SOURCES.metrics);
  return {
    train: train ? (JSON.parse(train) as TrainConfig) : null,
    history: metrics
      ? metrics
          .trim()
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as EpochMetrics)
      : [],
    hasCurves: existsSync(file(CARD_SOURCES.curves)),
    notes: await read(CARD_SOURCES.notes),
  };
}

/** Copies a run's recipe, epochs and curves beside a model trained or exported from it; false when
 *  the run folder holds none of them. */
export async function copyRunFiles(runDir: string, modelDir: string): Promise<boolean> {
  let copied = false;
  for (const f of [CARD_SOURCES.train, CARD_SOURCES.metrics, CARD_SOURCES.curves]) {
    if (!existsSync(path.join(runDir, f))) continue;
    await fs.copyFile(path.join(runDir, f), path.join(modelDir, f));
    copied = true;
  }
  return copied;
}

/** Writes <dir>/README.md from what the caller measured and the folder's own files; returns its path. */
export async function writeModelCard(dir: string, c: Omit<CardInput, keyof Awaited<ReturnType<typeof cardSources>>>): Promise<string> {
  const file = path.join(dir, CARD_FILE);
  await writeFileAtomic(file, renderModelCard({ ...c, ...(await cardSources(dir)) }));
  return file;
}
