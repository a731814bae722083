// The graphs the GPU check runs, written here (where the trainer is) so that the GPU machine needs
// only Node.js and onnxruntime-node: the training steps of the seed ViT (batch 256), cct-cifar10
// (batch 128) and a ViT at DeiT-tiny's size (224 px, patch 16, 192 wide, 12 blocks, batch 64), each
// as `vitrine train --device webgpu` compiles it, with a manifest of their inputs. The bundled
// models' inference and explanation graphs are read from models/ as they are.
//   npx tsx bench/gpu-check/graphs.ts [--out .gpu-check/graphs]

import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { compileToBytes } from '../../trainer/autograd/onnx.js';
import { trainStepOutputs } from '../../trainer/train/step.js';
import { recipeFile } from '../../trainer/train/recipes.js';
import { SEED_CONFIG, parseViTConfig, type ViTConfig } from '../../trainer/vit/config.js';
import { INPUT_NAME, ViT, pixelDims } from '../../trainer/vit/model.js';
import { refusedNodes } from '../../runtime/ort.js';

const { values } = parseArgs({ options: { out: { type: 'string', default: path.join('.gpu-check', 'graphs') } } });
const out = values.out!;

/** DeiT-tiny's dimensions with the seed's blocks (tanh GELU, no final norm), so that the PyTorch anchor
 *  (bench/torch_train.py, the seed's code) is the same model. */
export const DEIT_TINY = {
  image_size: 224,
  patch_size: 16,
  hidden_size: 192,
  num_hidden_layers: 12,
  num_attention_heads: 3,
  intermediate_size: 768,
  num_classes: 1000,
};

export interface GraphEntry {
  name: string;
  kind: 'step' | 'inference';
  file: string;
  batch: number;
  /** Inputs other than parameters, with their dims at this batch, and what to fill them with. */
  inputs: Record<string, { dims: number[]; fill: 'normal' | 'one-hot' | 'class' }>;
  /** Parameters (step graphs): name -> dims. */
  params: Record<string, number[]>;
  /** Nodes the WebGPU provider refuses, to be run on the CPU (runtime/ort.ts does the same). */
  cpuNodes: string[];
  /** The PyTorch anchor's --config (step graphs of the seed's architecture). */
  torchConfig?: Record<string, unknown>;
}

const recipeModel = async (name: string) => (JSON.parse(await readFile(recipeFile(name)!, 'utf8')).model ?? {}) as Record<string, unknown>;
const steps: [string, ViTConfig, number, Record<string, unknown>?][] = [
  ['seed-step', SEED_CONFIG, 256, {}],
  ['cct-cifar10-step', parseViTConfig({ ...SEED_CONFIG, ...(await recipeModel('cct-cifar10')) }), 128, await recipeModel('cct-cifar10')],
  ['deit-tiny-224-step', parseViTConfig({ ...SEED_CONFIG, ...DEIT_TINY, use_faster_attention: true }), 64, DEIT_TINY],
];

await mkdir(out, { recursive: true });
const manifest: GraphEntry[] = [];
for (const [name, config, batch, torchConfig] of steps) {
  const model = new ViT(config, 0);
  const { outputs, masks } = trainStepOutputs(model);
  if (masks.length > 0) throw new Error(`${name}: the check feeds no dropout masks`);
  // as the trainer compiles it for WebGPU: the max-pool gradient without MaxPool's indices
  await writeFile(path.join(out, `${name}.onnx`), compileToBytes({ outputs, graphName: name, maxPoolIndices: false }));
  manifest.push({
    name,
    kind: 'step',
    file: `${name}.onnx`,
    batch,
    inputs: {
      [INPUT_NAME]: { dims: pixelDims(config, batch), fill: 'normal' },
      targets: { dims: [batch, config.num_classes], fill: 'one-hot' },
    },
    params: Object.fromEntries(model.namedParameters().map(([n, p]) => [n, [...p.shape]])),
    cpuNodes: [],
    ...(torchConfig ? { torchConfig } : {}),
  });
  console.log(`${name}: ${model.parameterCount().toLocaleString('en-US')} parameters, batch ${batch}`);
}
for (const m of ['cct-cifar10', 'vit-cifar10']) {
  const targetClass: GraphEntry['inputs'] = { target_class: { dims: [64], fill: 'class' } };
  for (const [graph, extra] of [
    ['model', {}],
    ['relevance', targetClass],
    ['relevance-light', targetClass],
  ] as const) {
    const file = path.join('models', m, 'onnx', `${graph}.onnx`);
    manifest.push({
      name: `${m}-${graph}`,
      kind: 'inference',
      file: path.relative(out, file),
      batch: 64,
      inputs: { pixel_values: { dims: [64, 3, 32, 32], fill: 'normal' }, ...extra },
      params: {},
      cpuNodes: refusedNodes(file, 'webgpu'),
    });
  }
}
await writeFile(path.join(out, 'manifest.json'), JSON.stringify(manifest, null, 1));
console.log(`wrote ${manifest.length} entries to ${path.join(out, 'manifest.json')}`);
