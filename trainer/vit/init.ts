// Starting weights for a run or an export: a Hugging Face ViT/DeiT checkpoint folder, a vitrine model
// folder (its weights are onnx/model.onnx's initializers, under our names) or a weights.safetensors
// (a run's, with its config in the metadata). Every weight that fits is loaded; the classifier is made
// anew when the labels differ, and position embeddings are resized for another image size.

import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { CONFIG_FILE, type ModelConfig, modelFileIn } from '../../runtime/model-config.js';
import { decodeModel, readTensor } from '../autograd/onnx-proto.js';
import { type NamedTensor, readSafetensors } from '../io/safetensors.js';
import { type ViTConfig, parseViTConfig } from './config.js';
import { fitPositions, isHfCheckpoint, labelsOf, readHfCheckpoint, readJsonObject } from './hf.js';
import { ViT, isHeadParam } from './model.js';
import { modelTensors } from './weights.js';

export interface InitSource {
  kind: 'hugging face checkpoint' | 'vitrine model' | 'weights';
  path: string;
  vit: ViTConfig;
  /** The classes its classifier scores, in order; empty when unknown or headless. */
  labels: string[];
  /** Under our names, per-head attention tensors. */
  weights: Map<string, NamedTensor>;
  notes: string[];
  /** For Hugging Face checkpoints: the folder's preprocessing, carried into exports. */
  preprocessing?: ModelConfig | null;
  architecture?: string;
}

/** Config keys that may differ from the starting model's: they change no parameter's shape (the
 *  position embeddings are resized for image_size). */
export const FREE_KEYS = new Set<keyof ViTConfig>([
  'image_size',
  'num_classes',
  'hidden_dropout_prob',
  'attention_probs_dropout_prob',
  'drop_path_rate',
  'initializer_range',
  'mean',
  'std',
]);

/** Reads a starting point; throws one line naming the problem. */
export async function readInit(source: string): Promise<InitSource> {
  if (!existsSync(source))
    throw new Error(`${source}: not found (give a Hugging Face checkpoint folder, a vitrine model folder or a .safetensors file)`);
  if ((await fs.stat(source)).isFile()) {
    const { tensors, metadata } = await readSafetensors(source);
    if (!metadata.vit_config)
      throw new Error(
        `${source}: no vit_config in its metadata (a run's weights.safetensors ` +
          `or checkpoint has one); give --model with its architecture, or a ` +
          `model folder`,
      );
    const vit = parseViTConfig(JSON.parse(metadata.vit_config), `${source} (metadata vit_config)`);
    const labels = metadata.labels ? (JSON.parse(metadata.labels) as string[]) : [];
    const weights = modelTensors(tensors, vit, source);
    return { kind: 'weights', path: source, vit, labels, weights, notes: [] };
  }
  const configFile = path.join(source, CONFIG_FILE);
  const config = existsSync(configFile) ? await readJsonObject(configFile) : null;
  // transformers' config.json (model_type, no vitrine ViT config): a checkpoint, even when its weights
  // are not safetensors (readHfCheckpoint says what to do)
  if (isHfCheckpoint(source) || (config?.model_type !== undefined && config.vit === undefined)) {
    const ck = await readHfCheckpoint(source);
    return {
      kind: 'hugging face checkpoint',
      path: source,
      vit: ck.vit,
      labels: ck.labels,
      weights: ck.weights,
      notes: ck.notes,
      preprocessing: ck.preprocessing,
      architecture: ck.architecture,
    };
  }
  const modelFile = modelFileIn(source);
  if (!modelFile || !config)
    throw new Error(
      `${source}: neither a Hugging Face checkpoint (config.json + ` +
        `model.safetensors) nor a vitrine model folder (config.json + ` +
        `onnx/model.onnx)`,
    );
  if (typeof config.vit !== 'object' || config.vit === null)
    throw new Error(
      `${configFile}: no 'vit' config: only models vitrine trained or ` +
        `exported carry their architecture (an imported model cannot be ` +
        `fine-tuned)`,
    );
  const vit = parseViTConfig(config.vit, `${configFile} (vit)`);
  const graph = decodeModel(await fs.readFile(modelFile));
  const weights = new Map<string, NamedTensor>();
  const dir = path.dirname(modelFile);
  const params = new Set(new ViT(vit).namedParameters().map(([name]) => name)); // not the graph's constants
  for (const t of graph.graph?.initializer ?? []) {
    if (!t.name || !params.has(t.name)) continue;
    const r = readTensor(t, dir);
    if (r.kind === 'float') weights.set(t.name, { shape: (t.dims ?? []).map(Number), data: r.data });
  }
  return { kind: 'vitrine model', path: source, vit, labels: labelsOf(config), weights, notes: [] };
}

/** The config a run starting from `src` trains: its architecture, the data's classes, and `overrides`
 *  of the keys that change no parameter's shape. */
export function initConfig(src: InitSource, numClasses: number, overrides: Record<string, unknown> = {}): ViTConfig {
  const fixed = Object.keys(overrides).filter(
    (k) => !FREE_KEYS.has(k as keyof ViTConfig) && JSON.stringify(overrides[k]) !== JSON.stringify(src.vit[k as keyof ViTConfig]),
  );
  if (fixed.length > 0) {
    throw new Error(
      `--model ` +
        `${fixed.map((k) => `${k} ${JSON.stringify(overrides[k])}`).join(', ')}: ` +
        `starting from ${src.path}, the architecture is its own ` +
        `(${fixed.map((k) => `${k} ${JSON.stringify(src.vit[k as keyof ViTConfig])}`).join(', ')}); ` +
        `only ${[...FREE_KEYS].join(', ')} may change`,
    );
  }
  return parseViTConfig({ ...src.vit, ...overrides, num_classes: numClasses }, `${src.path} with --model`);
}

/** A model of config `vit` for `labels`, with every weight of `src` that fits. The classifier (and
 *  DeiT's second head) is kept only when the labels are the same, in the same order. */
export function initModel(src: InitSource, vit: ViTConfig, labels: readonly string[], seed: number): { model: ViT; said: string[] } {
  const model = new ViT(vit, seed);
  const said = [...src.notes];
  const sameLabels = src.labels.length === labels.length && src.labels.every((l, i) => l === labels[i]);
  const state = new Map(src.weights);
  if (!sameLabels) {
    for (const k of [...state.keys()]) if (isHeadParam(k)) state.delete(k);
    const had = src.labels.length > 0 ? `its ${src.labels.length} classes (${shortList(src.labels)})` : 'no classes it names';
    said.push(
      `new classifier${vit.distillation_classifier ? 's' : ''} for the ` +
        `${labels.length} classes (${shortList(labels)}): the checkpoint has ` +
        `${had}`,
    );
  } else said.push(`kept the classifier: the checkpoint's classes are the data's`);
  const pos = 'embedding.position_embeddings';
  const positions = state.get(pos);
  if (positions) {
    const fitted = fitPositions(positions, vit, src.path);
    if (fitted) {
      state.set(pos, fitted.tensor);
      said.push(
        `position embeddings resized bicubically from a ` +
          `${fitted.from}x${fitted.from} to a ${fitted.to}x${fitted.to} patch ` +
          `grid (image_size ${vit.image_size})`,
      );
    }
  }
  const fresh = model.stateDict();
  const missing = [...fresh.keys()].filter((k) => !state.has(k) && !isHeadParam(k));
  if (missing.length > 0)
    throw new Error(
      `${src.path}: no tensor for ${missing.slice(0, 6).join(', ')}${missing.length > 6 ? ` (and ${missing.length - 6} more)` : ''}`,
    );
  for (const [k, t] of fresh) if (!state.has(k)) state.set(k, t);
  model.loadStateDict(state, src.path);
  return { model, said };
}

const shortList = (xs: readonly string[]) => (xs.length <= 4 ? xs.join(', ') : `${xs.slice(0, 3).join(', ')}, … ${xs.at(-1)}`);
