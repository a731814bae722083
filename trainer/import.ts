// Import: a ViT that vitrine did not build (an ONNX graph from torch.onnx or optimum) becomes a vitrine
// model folder, the mirror of export.ts. The graph is read into the autograd core (autograd/onnx-import.ts);
// its attentions are found there (a Softmax over the last axis whose output is multiplied into the
// values); onnx/model.onnx is the original graph with those probabilities added as outputs
// attentions.l [batch, heads, tokens, tokens] (nothing else changed), and onnx/relevance.onnx is the
// autograd's gradient graph over the imported one, as for our own models. Both graphs read the same
// weights from one external data file, onnx/model.onnx_data.

import path from 'node:path';
import { type Dim, type Tensor, factorDim, shapeToString } from './autograd/graph.js';
import { grad } from './autograd/grad.js';
import { compileModel } from './autograd/onnx.js';
import { type ImportedGraph, importOnnx } from './autograd/onnx-import.js';
import {
  DataType,
  type ExternalPlace,
  type INodeProto,
  type ITensorProto,
  type ModelProto,
  decodeModel,
  dimsOf,
  externalTensor,
  int64Tensor,
  onnx,
  serializeModel,
} from './autograd/onnx-proto.js';
import { input, reshape } from './autograd/ops.js';
import { appendRolloutOutput, removeRolloutOutput } from './rollout-graph.js';
import {
  CLASS_INPUT,
  INPUT_GRAD_OUTPUT,
  LIGHT_RELEVANCE_FILE,
  RELEVANCE_FILE,
  TOP_CLASS,
  attentionGradOutput,
  attentionOutput,
  classScore,
} from './export.js';
import type { ModelConfig, Resample } from '../runtime/model-config.js';

/** Where both graphs' weights lie, beside them in onnx/. */
export const WEIGHTS_FILE = 'model.onnx_data';
const PASS_THROUGH = new Set(['Identity', 'Dropout', 'Cast']);

export interface FoundAttention {
  /** The ONNX value the Softmax writes. */
  softmaxOutput: string;
  node: string;
  /** The probabilities in the autograd graph, as the graph has them ([B*h, T, T] or [B, h, T, T]). */
  tensor: Tensor;
  heads: number;
  tokens: number;
}

/** Every attention of an imported graph, first layer first: a Softmax over the last axis of a
 *  [.., T, T] value that the next MatMul multiplies into the values (as its left operand). */
export function findAttentions(g: ImportedGraph, headsHint?: number): FoundAttention[] {
  const nodes = g.model.graph?.node ?? [];
  const consumers = new Map<string, INodeProto[]>();
  for (const n of nodes) for (const i of n.input ?? []) consumers.set(i, [...(consumers.get(i) ?? []), n]);
  const feedsValues = (value: string, depth = 0): boolean =>
    (consumers.get(value) ?? []).some(
      (n) =>
        (n.opType === 'MatMul' && n.input?.[0] === value) ||
        (depth < 4 && PASS_THROUGH.has(n.opType ?? '') && feedsValues(n.output![0], depth + 1)),
    );
  const found: FoundAttention[] = [];
  for (const n of nodes) {
    if (n.opType !== 'Softmax') continue;
    const out = n.output![0];
    const t = g.values.get(out) as Tensor | undefined;
    if (!t || !('op' in t)) continue;
    const s = t.shape;
    const axis = Number((n.attribute ?? []).find((a) => a.name === 'axis')?.i ?? -1);
    if (axis !== -1 && axis !== s.length - 1) continue;
    if (
      (s.length !== 3 && s.length !== 4) ||
      typeof s[s.length - 1] !== 'number' ||
      s[s.length - 1] !== s[s.length - 2] ||
      !feedsValues(out)
    )
      continue;
    const tokens = s[s.length - 1] as number;
    let heads: number | undefined;
    if (s.length === 4) heads = typeof s[1] === 'number' ? s[1] : undefined;
    else {
      // [batch * heads, T, T], as torch's nn.MultiheadAttention: the heads are the symbolic dim's factor
      const f = factorDim(s[0]);
      heads = f.symbols.length === 1 && f.symbols[0] === g.input.shape[0] ? f.coef : headsHint;
    }
    if (!heads)
      throw new Error(
        `the attention at node '${n.name}' is ${shapeToString(s)}: its head count cannot be read from the graph; give --heads`,
      );
    found.push({ softmaxOutput: out, node: n.name ?? out, tensor: t, heads, tokens });
  }
  return found;
}

/** Probabilities (or their gradients) as [batch, heads, T, T]. */
const perHead = (t: Tensor, a: FoundAttention) => (t.shape.length === 4 ? t : reshape(t, [-1, a.heads, a.tokens, a.tokens]));

export interface TokenLayout {
  patchSize: number;
  grid: [number, number];
  prefixTokens: number;
}

/** The patch grid from the patch embedding (a Conv with kernel = stride on the image), and the tokens
 *  before the patches ([CLS], DeiT's distillation token, registers) as the difference. */
export function tokenLayout(g: ImportedGraph, tokens: number, override: { patchSize?: number; prefixTokens?: number } = {}): TokenLayout {
  const [, , h, w] = g.input.shape as [Dim, number, number, number];
  let patch = override.patchSize;
  if (patch === undefined) {
    const conv = (g.model.graph?.node ?? []).find((n) => {
      if (n.opType !== 'Conv') return false;
      const attr = (name: string) => (n.attribute ?? []).find((a) => a.name === name)?.ints?.map(Number);
      const k = attr('kernel_shape');
      const s = attr('strides');
      return k && s && k[0] === k[1] && s[0] === k[0] && s[1] === k[1];
    });
    if (!conv)
      throw new Error('no patch embedding (a Conv whose stride is its kernel) was found to read the patch grid from; give --patch-size');
    patch = Number(conv.attribute!.find((a) => a.name === 'kernel_shape')!.ints![0]);
  }
  if (h % patch !== 0 || w % patch !== 0) throw new Error(`patches of ${patch} pixels do not tile the ${h}x${w} input`);
  const grid: [number, number] = [h / patch, w / patch];
  const prefixTokens = override.prefixTokens ?? tokens - grid[0] * grid[1];
  if (prefixTokens < 1 || prefixTokens + grid[0] * grid[1] !== tokens) {
    throw new Error(
      `the attention has ${tokens} tokens, the ${grid[0]}x${grid[1]} patch ` +
        `grid ${grid[0] * grid[1]}: ` +
        `${prefixTokens === 0 ? 'maps need a [CLS] token first' : 'give --prefix-tokens and --patch-size'}`,
    );
  }
  return { patchSize: patch, grid, prefixTokens };
}

/** The weights file both graphs read: every float32 initializer that became a param, 64-byte aligned. */
function layoutWeights(g: ImportedGraph): { places: Map<string, ExternalPlace>; bytes: Uint8Array } {
  const places = new Map<string, ExternalPlace>();
  let offset = 0;
  const float32 = new Set((g.model.graph?.initializer ?? []).filter((t) => t.dataType === DataType.FLOAT).map((t) => t.name!));
  for (const [name, data] of g.params) {
    if (!float32.has(name)) continue;
    places.set(name, { location: WEIGHTS_FILE, offset, length: data.byteLength });
    offset += Math.ceil(data.byteLength / 64) * 64;
  }
  const bytes = new Uint8Array(offset);
  for (const [name, place] of places)
    bytes.set(new Uint8Array(g.params.get(name)!.buffer, g.params.get(name)!.byteOffset, place.length), place.offset);
  return { places, bytes };
}

/** The original graph, its attention probabilities added as outputs, its weights moved out. */
function inferenceModel(g: ImportedGraph, attentions: FoundAttention[], places: ReadonlyMap<string, ExternalPlace>): ModelProto {
  const model = decodeModel(serializeModel(g.model)); // a copy
  const graph = model.graph!;
  // a graph vitrine wrote, imported again: the attention outputs it added are made anew
  const added = new Set(graph.node!.filter((n) => n.name?.startsWith('vitrine_attentions.')).flatMap((n) => n.output ?? []));
  graph.output = graph.output!.filter((o) => !added.has(o.name!));
  graph.node = graph.node!.filter((n) => !n.name?.startsWith('vitrine_attentions.'));
  const [nodes, outputs] = [graph.node, graph.output];
  const batch = g.input.shape[0];
  const initializers: ITensorProto[] = graph
    .initializer!.filter((t) => !t.name!.startsWith('vitrine_attentions.'))
    .map((t) => {
      const place = places.get(t.name!);
      return place ? externalTensor(t.name!, dimsOf(t), place) : t;
    });
  attentions.forEach((a, l) => {
    const name = attentionOutput(l);
    if (a.tensor.shape.length === 4)
      nodes.push(onnx.NodeProto.create({ opType: 'Identity', name: `vitrine_${name}`, input: [a.softmaxOutput], output: [name] }));
    else {
      const shapeName = `vitrine_${name}_shape`;
      initializers.push(int64Tensor(shapeName, [-1, a.heads, a.tokens, a.tokens]));
      nodes.push(
        onnx.NodeProto.create({ opType: 'Reshape', name: `vitrine_${name}`, input: [a.softmaxOutput, shapeName], output: [name] }),
      );
    }
    const dims = [batch, a.heads, a.tokens, a.tokens].map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d }));
    outputs.push(onnx.ValueInfoProto.create({ name, type: { tensorType: { elemType: DataType.FLOAT, shape: { dim: dims } } } }));
  });
  graph.initializer = initializers.map((t) => onnx.TensorProto.create(t));
  return model;
}

/** The explanation graph over the imported one: logits, every attention as [B, h, T, T], the gradient
 *  of each image's target-class logit (-1: its top prediction) with respect to it and to the input
 *  pixels (the same contract as export.ts's); or the light one, with the last attention's gradient
 *  alone (a backward through the last block only; what the default map needs). */
function relevanceModel(
  g: ImportedGraph,
  logits: Tensor,
  attentions: FoundAttention[],
  places: ReadonlyMap<string, ExternalPlace>,
  logitsName: string,
  light = false,
): ModelProto {
  const classes = logits.shape[1] as number;
  const target = input(CLASS_INPUT, [g.input.shape[0]]);
  const score = classScore(logits, target, classes);
  const all = grad(score, [...attentions.map((a) => a.tensor), g.input]);
  const grads = all.slice(0, -1).map((d, l) => [attentionGradOutput(l), perHead(d, attentions[l])] as const);
  const inline = new Map([...g.params].filter(([name]) => !places.has(name)));
  return compileModel({
    outputs: [
      [logitsName, logits],
      ...attentions.map((a, l) => [attentionOutput(l), perHead(a.tensor, a)] as const),
      ...(light ? grads.slice(-1) : [...grads, [INPUT_GRAD_OUTPUT, all.at(-1)!] as const]),
    ],
    initializers: inline,
    external: places,
    inputOrder: [g.inputName, CLASS_INPUT],
    graphName: light ? 'imported_relevance_light' : 'imported_relevance',
    docString:
      `the imported graph with the gradient of the logit of ${CLASS_INPUT} ` +
      `(per image; -1: the top prediction) with respect to ` +
      `${light ? "the last attention's probabilities" : "every attention's probabilities and to the input"}`,
  });
}

export interface ImportSettings {
  /** One per class; none: class_0, class_1, … as many as the logits have. */
  labels: string[];
  mean: number[];
  std: number[];
  fit: 'cover' | 'fill';
  resample: Resample;
  rescale: number;
  logitsOutput?: string;
  heads?: number;
  patchSize?: number;
  prefixTokens?: number;
  /** [height, width] for a graph whose input size is symbolic. */
  size?: [number, number];
}

export interface ImportResult {
  config: ModelConfig;
  files: { model: Uint8Array; weights: Uint8Array; relevance: Uint8Array; light: Uint8Array };
  attentions: FoundAttention[];
  layout: TokenLayout;
  parameters: number;
  opset: number;
}

/** Builds everything a model folder needs from a decoded graph (nothing written here). */
export function importGraph(model: ModelProto, dataDir: string, s: ImportSettings): ImportResult {
  const g = importOnnx(model, dataDir, { size: s.size });
  const logitsName = s.logitsOutput ?? g.outputs[0]?.[0];
  const logitsEntry = g.outputs.find(([n]) => n === logitsName);
  if (!logitsEntry) throw new Error(`the graph has no output '${logitsName}'; its outputs are ${g.outputs.map(([n]) => n).join(', ')}`);
  const logits = logitsEntry[1];
  if (logits.shape.length !== 2 || typeof logits.shape[1] !== 'number')
    throw new Error(`output '${logitsName}' is ${shapeToString(logits.shape)}, not [batch, classes]`);
  const classes = logits.shape[1];
  const labels = s.labels.length > 0 ? s.labels : Array.from({ length: classes }, (_, i) => `class_${i}`);
  if (labels.length !== classes) throw new Error(`${labels.length} labels for a model of ${classes} classes`);
  const attentions = findAttentions(g, s.heads);
  if (attentions.length === 0)
    throw new Error(
      'no attention was found (a Softmax over the last axis whose output is multiplied into the values); is this a transformer?',
    );
  const tokens = attentions[0].tokens;
  if (attentions.some((a) => a.tokens !== tokens || a.heads !== attentions[0].heads))
    throw new Error(
      `the attentions differ in tokens or heads ` +
        `(${attentions.map((a) => `${a.heads}x${a.tokens}`).join(', ')}); ` +
        `vitrine maps need one layout`,
    );
  const layout = tokenLayout(g, tokens, { patchSize: s.patchSize, prefixTokens: s.prefixTokens });
  const { places, bytes } = layoutWeights(g);
  const inference = inferenceModel(g, attentions, places);
  // the default map's rollout as an output of its own where the graph's opset allows (13 and later)
  removeRolloutOutput(inference);
  const rollout =
    g.opset >= 13
      ? appendRolloutOutput(inference, {
          attentionOutputs: attentions.map((_a, l) => attentionOutput(l)),
          tokens,
          prefix: layout.prefixTokens,
        })
      : null;
  const relevance = relevanceModel(g, logits, attentions, places, logitsName);
  const light = relevanceModel(g, logits, attentions, places, logitsName, true);
  const [, channels, h, w] = g.input.shape as [Dim, number, number, number];
  if (s.mean.length !== channels || s.std.length !== channels)
    throw new Error(`the mean and std need ${channels} values each (the input has ${channels} channels)`);
  const config: ModelConfig = {
    labels,
    image_size: [h, w],
    mean: s.mean,
    std: s.std,
    input_name: g.inputName,
    logits_output: logitsName,
    attention_outputs: attentions.map((_a, l) => attentionOutput(l)),
    ...(rollout ? { rollout_output: rollout } : {}),
    patch_size: layout.patchSize,
    prefix_tokens: layout.prefixTokens,
    attention_heads: attentions[0].heads,
    relevance: {
      file: RELEVANCE_FILE,
      class_input: CLASS_INPUT,
      gradient_outputs: attentions.map((_a, l) => attentionGradOutput(l)),
      input_gradient_output: INPUT_GRAD_OUTPUT,
      top_class: TOP_CLASS,
      light_file: LIGHT_RELEVANCE_FILE,
    },
    fit: s.fit,
    resample: s.resample,
    rescale: s.rescale,
  };
  const parameters = [...g.params.values()].reduce((n, p) => n + p.length, 0);
  return {
    config,
    files: { model: serializeModel(inference), weights: bytes, relevance: serializeModel(relevance), light: serializeModel(light) },
    attentions,
    layout,
    parameters,
    opset: g.opset,
  };
}

export const weightsFileIn = (dir: string) => path.join(dir, 'onnx', WEIGHTS_FILE);
