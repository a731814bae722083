// The training loop, flat: data, model, optimizer, then per step prepare -> run the compiled step ->
// update, per epoch evaluate -> report -> checkpoint. Everything random is drawn from generators
// seeded by (seed, what, step or epoch), so a run resumed from any checkpoint replays exactly what the
// uninterrupted run would have done.

import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { AugmentOptions } from '../data/augment.js';
import { BatchLoader, type Batch } from '../data/loader.js';
import type { ImageDataset } from '../data/dataset.js';
import { exportModel } from '../export.js';
import { copyRunFiles, writeModelCard } from '../card.js';
import { readModelConfig, servedNameOf } from '../../runtime/model-config.js';
import { writeFileAtomic } from '../io/atomic.js';
import { Rng } from '../nn/random.js';
import type { ViTConfig } from '../vit/config.js';
import { ViT, isHeadParam } from '../vit/model.js';
import { type InitSource, initModel } from '../vit/init.js';
import { loadWeights, saveWeightsFile } from '../vit/weights.js';
import type { TrainConfig } from './config.js';
import { type RunState, loadCheckpoint, saveCheckpoint, trainingRecord } from './checkpoint.js';
import type { RunData } from './data.js';
import { type Evaluation, argmax, evaluate } from './evaluate.js';
import { AdamW, type Optimizer, type OptimizerParam, SGD, isNoDecayParam } from './optim.js';
import { type EpochMetrics, type ProgressBar, averageWins, formatDuration, renderCurves } from './report.js';
import { type Schedule, learningRate } from './schedule.js';
import { StepRunner } from './step.js';
import { WeightAverage } from './ema.js';
import { whiteningFilters } from '../vit/whiten.js';

export interface TrainOptions {
  config: TrainConfig;
  vit: ViTConfig;
  data: RunData;
  out: string;
  resume: boolean;
  log: (line: string) => void;
  progress: ProgressBar;
  /** Set to true (e.g. by SIGINT) to stop after the current step with a checkpoint. */
  stop: { requested: boolean };
  /** Starting weights (config.init, read): loaded into a fresh run; a resumed one has its checkpoint's. */
  init?: InitSource;
}

export interface TrainResult {
  state: RunState;
  interrupted: boolean;
  modelDir: string | null;
  checkpoint: string;
}

/** A generator for one purpose at one point of the run: independent of everything drawn before. */
export function streamRng(seed: number, stream: number, index: number): Rng {
  let h = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(stream + 1, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d) ^ index;
  h = Math.imul(h ^ (h >>> 13), 0x297a2d39);
  return new Rng((h ^ (h >>> 16)) >>> 0);
}
/** The weights of the epoch with the best held-out accuracy. */
export const BEST_WEIGHTS = 'best.safetensors';
const ORDER = 1;
const AUGMENT = 2;
const DROPOUT = 3;
const FLIPS = 4;

export function augmentOptions(c: TrainConfig): AugmentOptions {
  return {
    cropPadding: c.crop_padding,
    flip: c.flip,
    policy: c.auto_augment,
    randaugmentOps: c.randaugment_ops,
    randaugmentMagnitude: c.randaugment_magnitude,
    erasing: c.random_erasing,
    mixupAlpha: c.mixup_alpha,
    cutmixAlpha: c.cutmix_alpha,
    mixProb: c.mix_prob,
    mixSwitch: c.mix_switch_prob,
  };
}

function makeOptimizer(c: TrainConfig): Optimizer {
  return c.optimizer === 'adamw'
    ? new AdamW({ weightDecay: c.weight_decay, betas: c.betas, eps: c.eps })
    : new SGD({ weightDecay: c.weight_decay, momentum: c.momentum, nesterov: c.nesterov });
}

const freshState = (): RunState => ({ step: 0, epoch: 0, lossSum: 0, correct: 0, seen: 0, elapsedS: 0, history: [] });

const plural = (n: number, one: string) => `${n} ${one}${n === 1 ? '' : 's'}`;

/** The weight average's decay: ema_decay, or the one whose horizon 1 / (1 - decay) is ema_horizon of
 *  the run's steps. */
export function averageDecay(c: Pick<TrainConfig, 'ema_decay' | 'ema_horizon'>, totalSteps: number): number {
  if (c.ema_horizon > 0 && c.ema_decay > 0)
    throw new Error(`ema_decay ${c.ema_decay} and ema_horizon ${c.ema_horizon} both set the weight average's decay: set one`);
  return c.ema_horizon > 0 ? 1 - 1 / Math.max(1, c.ema_horizon * totalSteps) : c.ema_decay;
}

/** whiten_init: the tokenizer's first convolution set to whitening filters of the training patches. */
function whitenTokenizer(model: ViT, train: ImageDataset, vit: ViTConfig): { filters: number; k: number } {
  const first = model.namedParameters().find(([name]) => /conv_layers\.0\.weight$/.test(name))?.[1];
  if (!first)
    throw new Error(`whiten_init: the model has no convolutional tokenizer to start (tokenizer_layers is ${vit.tokenizer_layers})`);
  const [out, , k] = first.shape as number[];
  first.data.set(whiteningFilters(train, vit, k, out));
  return { filters: out, k };
}

/** Alternating flips: image i is mirrored in epoch e when its drawn side, flipped e times, says so. */
export function alternateFlips(seed: number, images: number): (indices: Uint32Array, epoch: number) => Uint8Array {
  const rng = streamRng(seed, FLIPS, 0);
  const side = Uint8Array.from({ length: images }, () => (rng.next() < 0.5 ? 1 : 0));
  return (indices, epoch) => Uint8Array.from(indices, (i) => side[i] ^ (epoch & 1));
}

export async function train(o: TrainOptions): Promise<TrainResult> {
  const { config: c, data, log } = o;
  if (c.alternate_flip && !c.flip) throw new Error('alternate_flip decides how images are flipped: it needs flip');
  if (c.whiten_init && c.init)
    throw new Error(`whiten_init starts a fresh tokenizer; it does not go with init (${c.init}), whose weights are the start`);
  await fs.mkdir(o.out, { recursive: true });
  const train: ImageDataset = data.train;
  const labels = data.classes;

  // Model and optimizer, fresh or from the checkpoint.
  let model = new ViT(o.vit, c.seed);
  if (o.init && !o.resume) {
    const started = initModel(o.init, o.vit, labels, c.seed);
    model = started.model;
    log(`starting from ${o.init.path} (${o.init.kind}${o.init.architecture ? `, ${o.init.architecture}` : ''})`);
    for (const line of started.said) log(line);
  }
  const optimizer = makeOptimizer(c);
  let state = freshState();
  let resumedOptimizer: ReadonlyMap<string, Float32Array> | null = null;
  if (o.resume) {
    const ck = await loadCheckpoint(o.out);
    loadWeights(model, ck.weights, path.join(o.out, 'checkpoint.safetensors'));
    optimizer.loadState(ck.optimizer, ck.state.step);
    resumedOptimizer = ck.optimizer;
    state = ck.state;
    log(`resuming from step ${state.step} (epoch ${state.epoch} done) in ${o.out}`);
  }
  const runner = new StepRunner(model, { device: c.device, threads: c.threads, log });
  const layerScale = layerDecayScales(o.vit.num_hidden_layers, c.layer_decay);
  const params: OptimizerParam[] = runner.params.map((p) => ({
    name: p.name,
    data: p.data,
    decay: c.decay_all || !isNoDecayParam(p.name, p.shape),
    lrScale: layerScale(p.name),
  }));
  const scales = params.map((p) => p.lrScale!);
  /** Frozen parameters take no update (the encoder under --freeze encoder, for freeze_epochs). */
  const freezeFor = (epoch: number) => {
    const frozen = c.freeze === 'encoder' && (c.freeze_epochs === 0 || epoch < c.freeze_epochs);
    params.forEach((p, i) => (p.lrScale = frozen && !isHeadParam(p.name) ? 0 : scales[i]));
  };
  if (c.freeze === 'encoder') {
    const span =
      c.freeze_epochs === 0
        ? 'for the whole run (a linear probe)'
        : `for the first ${c.freeze_epochs} epoch${c.freeze_epochs === 1 ? '' : 's'}`;
    const heads = params.filter((p) => isHeadParam(p.name)).map((p) => p.name);
    log(`the encoder is frozen ${span}: only ${heads.join(', ')} train${c.freeze_epochs === 0 ? '' : ' until then'}`);
  }
  if (c.layer_decay < 1)
    log(
      `layer-wise lr decay ${c.layer_decay}: the embeddings at ` +
        `${layerScale('embedding.cls_token').toPrecision(3)} x lr, the last ` +
        `block at ${c.layer_decay} x lr, the classifier at lr`,
    );

  // The plan: drop the last partial batch, so every step has the same shape.
  const batch = Math.min(c.batch_size, train.count);
  const stepsPerEpoch = Math.floor(train.count / batch);
  const totalSteps = stepsPerEpoch * c.epochs;

  // the starting weights complete (whitened) before the average copies them
  if (c.whiten_init && !o.resume) {
    const w = whitenTokenizer(model, train, o.vit);
    log(
      `whiten_init: the tokenizer's first convolution starts as ` +
        `${w.filters / 2} whitening directions of the training images' ` +
        `${w.k}x${w.k} patches, each with both signs`,
    );
  }
  const emaDecay = averageDecay(c, totalSteps);
  if (c.ema_horizon > 0)
    log(
      `the weight average spans ${(100 * c.ema_horizon).toFixed(1)}% of the ` +
        `run's ${plural(totalSteps, 'step')}: decay ${emaDecay.toPrecision(6)}`,
    );
  const ema = emaDecay > 0 ? new WeightAverage(emaDecay, params) : null;
  if (ema && resumedOptimizer && !ema.load(resumedOptimizer))
    log('the checkpoint holds no average of the weights: it starts from the current weights');
  const schedule: Schedule = {
    kind: c.schedule,
    baseLr: c.lr,
    warmupSteps: Math.round(c.warmup_epochs * stepsPerEpoch),
    totalSteps,
    minLr: c.min_lr,
  };
  const perms = new Map<number, Uint32Array>();
  const indicesOf = (step: number) => {
    const epoch = Math.floor(step / stepsPerEpoch);
    if (!perms.has(epoch)) {
      perms.set(epoch, streamRng(c.seed, ORDER, epoch).permutation(train.count));
      for (const e of perms.keys()) if (e < epoch - 1) perms.delete(e);
    }
    const s = step % stepsPerEpoch;
    return perms.get(epoch)!.slice(s * batch, (s + 1) * batch);
  };

  const loader = new BatchLoader(train, {
    mean: o.vit.mean,
    std: o.vit.std,
    numClasses: o.vit.num_classes,
    labelSmoothing: c.label_smoothing,
    augment: augmentOptions(c),
  });
  const flipsOf = c.alternate_flip ? alternateFlips(c.seed, train.count) : null;
  const request = (step: number): Promise<Batch> | null => {
    if (step >= totalSteps) return null;
    const indices = indicesOf(step);
    return loader.request(indices, streamRng(c.seed, AUGMENT, step).state, flipsOf?.(indices, Math.floor(step / stepsPerEpoch)));
  };

  const save = () => saveCheckpoint(o.out, model, new Map([...optimizer.state(), ...(ema?.state() ?? [])]), c, labels, state);
  const checkpointFile = path.join(o.out, 'checkpoint.safetensors');
  const K = o.vit.num_classes;
  let interrupted = false;
  let sessionStart = Date.now();
  const elapsed = () => state.elapsedS + (Date.now() - sessionStart) / 1000;
  const bank = () => {
    state.elapsedS = elapsed();
    sessionStart = Date.now();
  };

  const run: Run = { o, model, runner, params, ema, state, labels, elapsed };

  log(
    `training ${plural(model.parameterCount(), 'parameter')} on ` +
      `${plural(train.count, 'image')} ` +
      `(${plural(labels.length, 'class').replace(/classs$/, 'classes')}), ` +
      `${plural(c.epochs, 'epoch')} of ${plural(stepsPerEpoch, 'step')} at ` +
      `batch ${batch}`,
  );
  let pending: Promise<Batch> | null = null;
  try {
    pending = request(state.step);
    let epochStart = Date.now();
    let epochImages = 0;
    while (state.step < totalSteps) {
      // Prepare: the batch the worker made while the last step ran; ask for the next one.
      const b = await pending!;
      pending = request(state.step + 1);

      // Run: forward, loss and gradients in one ONNX Runtime call.
      const lr = learningRate(schedule, state.step);
      const r = await runner.step(b.pixels, b.targets, b.size, streamRng(c.seed, DROPOUT, state.step));
      if (!Number.isFinite(r.loss)) {
        throw new Error(
          `the loss became ${r.loss} at step ${state.step + 1} (epoch ${state.epoch + 1}); stopped without saving, ` +
            `the last good checkpoint is ${checkpointFile} (step ${state.history.at(-1)?.step ?? 0}); a lower --lr may help`,
        );
      }

      // Update: the optimizer over the parameter arrays.
      freezeFor(state.epoch);
      optimizer.step(params, r.grads, lr);
      ema?.update(params);
      state.step++;
      state.lossSum += r.loss * b.size;
      state.seen += b.size;
      for (let i = 0; i < b.size; i++)
        if (b.targets[i * K + argmax(r.logits, i * K, K)] === Math.max(...b.targets.subarray(i * K, (i + 1) * K))) state.correct++;
      epochImages += b.size;

      const inEpoch = state.step - state.epoch * stepsPerEpoch;
      const rate = epochImages / Math.max(1e-9, (Date.now() - epochStart) / 1000);
      o.progress.update({
        epoch: state.epoch + 1,
        epochs: c.epochs,
        step: inEpoch,
        steps: stepsPerEpoch,
        loss: state.lossSum / state.seen,
        accuracy: state.correct / state.seen,
        imagesPerS: rate,
        etaS: ((totalSteps - state.step) * batch) / rate,
      });

      if (inEpoch === stepsPerEpoch) {
        await endEpoch(run, lr, epochImages, (Date.now() - epochStart) / 1000);
        bank();
        if (state.epoch % c.checkpoint_every === 0 || state.epoch === c.epochs) await save();
        epochStart = Date.now();
        epochImages = 0;
      }

      if (o.stop.requested && state.step < totalSteps) {
        bank();
        await save();
        o.progress.line(`interrupted: checkpoint saved at step ${state.step} in ${checkpointFile}; continue with --resume`);
        interrupted = true;
        break;
      }
    }
  } finally {
    // A batch asked for ahead of a stop (Ctrl-C, NaN) is not wanted: closing the loader rejects it.
    pending?.catch(() => {});
    await loader.close();
  }
  if (interrupted) return { state, interrupted, modelDir: null, checkpoint: checkpointFile };

  const modelDir = await finishRun(run);
  return { state, interrupted, modelDir, checkpoint: checkpointFile };
}

/** The model card of the run's model/: its recipe, epochs and curves copied beside it (so that
 *  `vitrine card` can regenerate the card from the folder alone), the exported weights' evaluation on
 *  the held-out images for the per-class table. */
async function writeRunCard(run: Run, modelDir: string, averaged: boolean): Promise<void> {
  const { o, model, runner } = run;
  await copyRunFiles(o.out, modelDir);
  // the exported weights were evaluated at the last epoch's end (the average's when it was adopted);
  // a run resumed with nothing left to train is evaluated here
  const measured = run.lastEvaluation ? (averaged ? run.lastEvaluation.average : run.lastEvaluation.weights) : null;
  const result =
    measured ?? (o.data.eval ? await evaluate((px, n) => runner.logits(px, n), o.data.eval, { mean: o.vit.mean, std: o.vit.std }) : null);
  const evaluation = result ? { result, which: o.data.evalDescription } : null;
  await writeModelCard(modelDir, {
    name: path.basename(path.resolve(o.out)),
    config: await readModelConfig(modelDir),
    parameters: model.parameterCount(),
    evaluation,
  });
}

/** Layer-wise learning-rate decay (BEiT, Bao et al. 2021): layer ids 0 (embeddings), 1…L (blocks),
 *  L+1 (final norm, heads); a parameter of layer id takes decay^(L + 1 - id) of the rate. */
export function layerDecayScales(layers: number, decay: number): (name: string) => number {
  return (name) => {
    if (decay === 1) return 1;
    const block = /^encoder\.blocks\.(\d+)\./.exec(name);
    const id = name.startsWith('embedding.') ? 0 : block ? Number(block[1]) + 1 : layers + 1;
    return decay ** (layers + 1 - id);
  };
}

/** What the epoch's end and the run's end work on. */
interface Run {
  o: TrainOptions;
  model: ViT;
  runner: StepRunner;
  params: OptimizerParam[];
  ema: WeightAverage | null;
  state: RunState;
  labels: readonly string[];
  elapsed: () => number;
  /** The last epoch's evaluations (of the weights, and of their average), for the model card. */
  lastEvaluation?: { weights: Evaluation; average: Evaluation | null };
}

/** The epoch's end: evaluate (the weight average too), keep the best epoch's weights, report, and
 *  rewrite metrics.jsonl and curves.svg. */
async function endEpoch(run: Run, lr: number, epochImages: number, epochS: number): Promise<void> {
  const { o, state, runner, ema, params } = run;
  const { config: c, data } = o;
  state.epoch++;
  const last = state.epoch === c.epochs;
  const m: EpochMetrics = {
    epoch: state.epoch,
    step: state.step,
    lr,
    train_loss: state.lossSum / state.seen,
    train_accuracy: state.correct / state.seen,
    images_per_s: Math.round(epochImages / epochS),
    epoch_s: +epochS.toFixed(2),
    elapsed_s: 0,
  };
  if (data.eval && (state.epoch % c.eval_every === 0 || last)) {
    const e = await evaluate((px, n) => runner.logits(px, n), data.eval, { mean: o.vit.mean, std: o.vit.std });
    m.test_loss = +e.loss.toFixed(5);
    m.test_accuracy = e.accuracy;
    let a: Evaluation | null = null;
    if (ema) {
      a = await ema.swapped(params, () => evaluate((px, n) => runner.logits(px, n), data.eval!, { mean: o.vit.mean, std: o.vit.std }));
      m.ema_test_loss = +a.loss.toFixed(5);
      m.ema_test_accuracy = a.accuracy;
    }
    if (last) run.lastEvaluation = { weights: e, average: a };
  }
  m.elapsed_s = +run.elapsed().toFixed(1);
  const bestSoFar = Math.max(-1, ...state.history.map((h) => h.test_accuracy ?? -1));
  if (m.test_accuracy !== undefined && m.test_accuracy > bestSoFar) {
    // the best epoch's weights on the held-out images, kept beside the last ones
    await saveWeightsFile(run.model, path.join(o.out, BEST_WEIGHTS), {
      vit_config: JSON.stringify(o.vit),
      labels: JSON.stringify(run.labels),
      training: JSON.stringify(trainingRecord(c)),
      epoch: String(m.epoch),
      accuracy: String(m.test_accuracy),
    });
  }
  state.history.push(m);
  state.lossSum = state.correct = state.seen = 0;
  o.progress.line(
    `epoch ${m.epoch}/${c.epochs}: train loss ${m.train_loss.toFixed(4)} acc ${(100 * m.train_accuracy).toFixed(2)}%` +
      (m.test_accuracy !== undefined
        ? `, ${data.evalName} loss ${m.test_loss!.toFixed(4)} acc ${(100 * m.test_accuracy).toFixed(2)}%`
        : '') +
      (m.ema_test_accuracy !== undefined ? ` (average of weights ${(100 * m.ema_test_accuracy).toFixed(2)}%)` : '') +
      `, ${m.images_per_s} img/s, ${formatDuration(m.elapsed_s)} elapsed`,
  );
  await writeFileAtomic(path.join(o.out, 'metrics.jsonl'), state.history.map((h) => JSON.stringify(h)).join('\n') + '\n');
  await writeFileAtomic(path.join(o.out, 'curves.svg'), renderCurves(state.history, `ViT on ${data.source}`, data.evalName));
}

/** The run's end: the weight average replaces the weights when it does better on the held-out images;
 *  the weights and the exported model are written; the run says where the best epoch was. Returns
 *  the model folder. */
async function finishRun(run: Run): Promise<string> {
  const { o, state, ema, params, model, labels } = run;
  const { config: c, data, log } = o;
  const final = state.history.at(-1);
  let adopted = false;
  if (ema && averageWins(final)) {
    ema.adopt(params);
    adopted = true;
    log(
      `exporting the average of the weights (decay ` +
        `${ema.decay.toPrecision(6)}): ` +
        `${(100 * final.ema_test_accuracy).toFixed(2)}% against ` +
        `${(100 * final.test_accuracy).toFixed(2)}% for the last weights`,
    );
  }
  // The trained model: weights alone, and the export the server serves.
  const training = trainingRecord(c);
  await saveWeightsFile(model, path.join(o.out, 'weights.safetensors'), {
    vit_config: JSON.stringify(o.vit),
    labels: JSON.stringify(labels),
    training: JSON.stringify(training),
  });
  const modelDir = path.join(o.out, 'model');
  await exportModel(model, labels, modelDir, { training });
  await writeRunCard(run, modelDir, adopted);
  log(`done in ${formatDuration(state.elapsedS)}: weights ${path.join(o.out, 'weights.safetensors')}, model ${modelDir}`);
  log(`serve it (as '${servedNameOf(modelDir)}', with the page and maps): npx vitrine serve ${modelDir}`);
  log(`label a folder with it: npx vitrine predict <images> --model ${modelDir}`);
  const evaluated = state.history.filter((h) => h.test_accuracy !== undefined);
  // the latest of the best: an epoch that scored as the best did is no peak passed
  const best = evaluated.reduce<EpochMetrics | null>((b, h) => (b === null || h.test_accuracy! >= b.test_accuracy! ? h : b), null);
  const last = evaluated.at(-1);
  if (best && last && best.epoch !== last.epoch) {
    // The last epoch is exported: choosing by the held-out images would make their accuracy an
    // optimistic figure (on CIFAR-10 they are the test set). The best is kept for whoever wants it.
    log(
      `note: ${data.evalName === 'val' ? 'validation' : 'test'} accuracy ` +
        `peaked at epoch ${best.epoch} ` +
        `(${(100 * best.test_accuracy!).toFixed(2)}%, last ` +
        `${(100 * last.test_accuracy!).toFixed(2)}%); ` +
        `the model exported is the last ` +
        `epoch's${adopted ? ' average of the weights' : ''}; the best epoch's ` +
        `weights are ${path.join(o.out, BEST_WEIGHTS)} (vitrine export ` +
        `--checkpoint ${path.join(o.out, BEST_WEIGHTS)} --out <dir>)`,
    );
  }
  return modelDir;
}
