// The default attention rollout as an output of the classification graph itself: per layer the heads'
// mean, half of it plus half the identity, rows normalized, multiplied from the last layer down, and
// the [CLS] row kept over the patches (Abnar & Zuidema 2020; the same arithmetic, in the same order, as
// server/engine/attention.ts rolloutMeanInto, in float32). A server that fetches this one small output
// instead of every layer's [batch, heads, tokens, tokens] attentions copies 196 values an image in place
// of megabytes (ViT-B/16: 22 MB) and makes no rollout of its own; the attentions stay outputs for the
// maps that need them (cls, a chosen head, discard, attention=full).

import { DataType, type IModelProto, type INodeProto, encodeAttribute, floatTensor, int64Tensor } from './autograd/onnx-proto.js';

/** The output's name in the graphs vitrine writes (config.json `rollout_output`). */
export const ROLLOUT_OUTPUT = 'attention_rollout';

export interface RolloutSpec {
  /** The attention outputs, first layer first: [batch, heads, tokens, tokens] each. */
  attentionOutputs: readonly string[];
  /** Tokens per image: the patches and the prefix tokens ([CLS], distillation, registers). */
  tokens: number;
  /** Tokens before the patches; the rollout of the first ([CLS]) is given over the patches. */
  prefix: number;
  name?: string;
}

/** Takes out a rollout output an earlier pass added (a graph vitrine wrote, imported again). */
export function removeRolloutOutput(model: IModelProto, name: string = ROLLOUT_OUTPUT): void {
  const graph = model.graph!;
  if (!(graph.output ?? []).some((o) => o.name === name)) return;
  const ours = (n: string | null | undefined) => n === name || (n ?? '').startsWith(`${name}/`);
  graph.output = graph.output!.filter((o) => o.name !== name);
  graph.node = (graph.node ?? []).filter((n) => !ours(n.name) && !(n.output ?? []).some(ours));
  graph.initializer = (graph.initializer ?? []).filter((t) => !ours(t.name));
}

/** Adds the rollout output ([batch, tokens - prefix]) to a graph in place; returns its name. */
export function appendRolloutOutput(model: IModelProto, spec: RolloutSpec): string {
  const graph = model.graph!;
  const name = spec.name ?? ROLLOUT_OUTPUT;
  if ((graph.output ?? []).some((o) => o.name === name)) throw new Error(`the graph has an output named ${name} already`);
  const produced = new Set((graph.node ?? []).flatMap((n) => n.output ?? []));
  for (const a of spec.attentionOutputs) if (!produced.has(a)) throw new Error(`no node makes the attention output ${a}`);
  const opset = Number((model.opsetImport ?? []).find((o) => !o.domain)?.version ?? 0);
  if (opset < 13) throw new Error(`opset ${opset}: the rollout output needs opset 13 or later`);
  const { tokens: T, prefix } = spec;
  const p = `${name}/`;
  const nodes: INodeProto[] = [];
  const node = (opType: string, input: string[], output: string, attrs: Record<string, number | number[]> = {}) => {
    nodes.push({
      name: output,
      opType,
      input,
      output: [output],
      attribute: Object.entries(attrs).map(([k, v]) => encodeAttribute(k, v)),
    });
    return output;
  };
  // ReduceMean takes its axes as an attribute before opset 18, as an input from 18 on
  const axes1 = `${p}axes1`;
  const mean = (x: string, out: string) =>
    opset >= 18 ? node('ReduceMean', [x, axes1], out, { keepdims: 0 }) : node('ReduceMean', [x], out, { axes: [1], keepdims: 0 });
  const axes2 = `${p}axes2`;
  const sum = (x: string, out: string) => node('ReduceSum', [x, axes2], out, { keepdims: 1 });
  const inits = [
    floatTensor(`${p}half`, [0.5], []),
    floatTensor(
      `${p}cls`,
      Array.from({ length: T }, (_, j) => (j === 0 ? 1 : 0)),
      [1, 1, T],
    ),
    ...(opset >= 18 ? [int64Tensor(axes1, [1])] : []),
    int64Tensor(axes2, [2]),
    int64Tensor(`${p}starts`, [prefix]),
    int64Tensor(`${p}ends`, [T]),
    int64Tensor(`${p}sliceAxes`, [2]),
    int64Tensor(`${p}squeezeAxes`, [1]),
  ];
  // v starts as the [CLS] row of the identity, [1, 1, T], and broadcasts over the batch
  let v = `${p}cls`;
  for (let l = spec.attentionOutputs.length - 1; l >= 0; l--) {
    const m = mean(spec.attentionOutputs[l], `${p}mean${l}`); // [B, T, T]
    const rows = sum(m, `${p}rows${l}`); // [B, T, 1]
    const d = node('Add', [node('Mul', [rows, `${p}half`], `${p}halfRows${l}`), `${p}half`], `${p}norm${l}`);
    const dT = node('Transpose', [d], `${p}normT${l}`, { perm: [0, 2, 1] }); // [B, 1, T]
    const w = node('Div', [v, dT], `${p}w${l}`); // v_i / (0.5 rowsum_i + 0.5)
    const flow = node('MatMul', [w, m], `${p}flow${l}`); // [B, 1, T]
    v = node('Mul', [node('Add', [flow, w], `${p}sum${l}`), `${p}half`], `${p}v${l}`);
  }
  const patches = node('Slice', [v, `${p}starts`, `${p}ends`, `${p}sliceAxes`], `${p}patches`);
  nodes.push({ name: `${p}out`, opType: 'Squeeze', input: [patches, `${p}squeezeAxes`], output: [name] });
  graph.node = [...(graph.node ?? []), ...nodes];
  graph.initializer = [...(graph.initializer ?? []), ...inits];
  graph.output = [
    ...(graph.output ?? []),
    {
      name,
      type: { tensorType: { elemType: DataType.FLOAT, shape: { dim: [{ dimParam: 'batch' }, { dimValue: T - prefix }] } } },
    },
  ];
  return name;
}
