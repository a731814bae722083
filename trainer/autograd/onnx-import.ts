// Reads an ONNX graph back into the autograd core, the mirror of onnx.ts: node by node, each ONNX op
// type lowered onto the front-end helpers of ops.ts by its entry in onnx-lowerings.ts (as tinygrad's
// ONNX runner lowers each op onto its Tensor API). Values that are known before the graph runs (shape
// arithmetic, constants, integer initializers) are folded here (onnx-fold.ts) and never become nodes;
// float initializers become params under their ONNX names, so the imported graph can be
// differentiated (relevance) and exported again with the same weights.

import path from 'node:path';
import type { Dim, Tensor } from './graph.js';
import { DataType, type DecodedAttr, type ITensorProto, type ModelProto, decodeAttribute, dimsOf, readTensor } from './onnx-proto.js';
import { type Known, isKnown, known } from './onnx-fold.js';
import { constant, input, param } from './ops.js';
import { LOWERINGS, type LowerContext, type Value } from './onnx-lowerings.js';

export type { Value } from './onnx-lowerings.js';

/** The opsets whose semantics the lowerings follow (what PyTorch's exporter and optimum emit). */
export const IMPORT_OPSETS = [13, 18] as const;

export interface ImportedGraph {
  model: ModelProto;
  opset: number;
  /** The image input: [batch, channels, height, width]. */
  inputName: string;
  input: Tensor;
  /** The graph's outputs, in order. */
  outputs: [string, Tensor][];
  /** Values of the float initializers that became params. */
  params: Map<string, Float32Array>;
  /** Every ONNX value and what it became (a tensor, or a value known while importing). */
  values: ReadonlyMap<string, Value>;
}

function oneLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0];
}

export function modelOpset(model: ModelProto): number {
  const entry = (model.opsetImport ?? []).find((o) => !o.domain || o.domain === 'ai.onnx');
  return entry ? Number(entry.version) : 1;
}

/** Imports a decoded ModelProto; `dir` is where its external data lies; `size` fixes an input
 *  height and width the graph leaves symbolic. */
export function importOnnx(model: ModelProto, dir: string, opts: { size?: readonly [number, number] } = {}): ImportedGraph {
  const opset = modelOpset(model);
  const [lo, hi] = IMPORT_OPSETS;
  if (opset < lo || opset > hi)
    throw new Error(
      `onnx import: the graph is opset ${opset}; opsets ${lo} to ${hi} are ` +
        `imported (re-export with torch.onnx.export(..., opset_version=17))`,
    );
  const g = model.graph;
  if (!g) throw new Error('onnx import: the model has no graph');
  const inits = new Map<string, ITensorProto>((g.initializer ?? []).map((t) => [t.name!, t]));
  const values = new Map<string, Value>();
  const params = new Map<string, Float32Array>();
  const witnesses = new Map<string, { tensor: Tensor; axis: number }>();

  const realInputs = (g.input ?? []).filter((i) => !inits.has(i.name!));
  if (realInputs.length !== 1)
    throw new Error(
      `onnx import: an image classifier takes one input; this graph takes ` +
        `${realInputs.length} (${realInputs.map((i) => i.name).join(', ')})`,
    );
  const gi = realInputs[0];
  const tt = gi.type?.tensorType;
  if (!tt || tt.elemType !== DataType.FLOAT) throw new Error(`onnx import: input '${gi.name}' must be a float tensor`);
  const dims: Dim[] = (tt.shape?.dim ?? []).map((d, i) =>
    d.dimValue !== undefined && d.dimValue !== null && Number(d.dimValue) > 0
      ? Number(d.dimValue)
      : d.dimParam || (i === 0 ? 'batch' : `dim_${i}`),
  );
  if (opts.size && dims.length === 4) {
    opts.size.forEach((v, k) => {
      const d = dims[2 + k];
      if (typeof d === 'number' && d !== v)
        throw new Error(`onnx import: input '${gi.name}' is [${dims.join(', ')}]; it cannot take ${opts.size!.join('x')} images`);
      dims[2 + k] = v;
    });
  }
  if (dims.length !== 4 || dims.slice(1).some((d) => typeof d !== 'number'))
    throw new Error(
      `onnx import: input '${gi.name}' must be [batch, channels, height, width] with known channels and size, got [${dims.join(', ')}]`,
    );
  const pixels = input(gi.name!, dims);
  values.set(gi.name!, pixels);
  dims.forEach((d, axis) => {
    if (typeof d === 'string') witnesses.set(d, { tensor: pixels, axis });
  });

  const fromInitializer = (name: string): Value | undefined => {
    const t = inits.get(name);
    if (!t) return undefined;
    const v = readTensor(t, dir);
    const shape = dimsOf(t);
    if (v.kind === 'int') return known(t.dataType === DataType.BOOL ? 'bool' : 'int', shape, v.data);
    params.set(name, v.data);
    return param(name, shape);
  };
  const lookup = (name: string): Value => {
    let v = values.get(name);
    if (v === undefined) {
      v = fromInitializer(name);
      if (v === undefined) throw new Error(`uses '${name}', which nothing before it produces`);
      values.set(name, v);
    }
    return v;
  };
  const knownOf = (name: string): Known | undefined => {
    const v = values.get(name);
    if (v !== undefined) return isKnown(v) ? v : undefined;
    const t = inits.get(name);
    if (!t) return undefined;
    const r = readTensor(t, dir);
    return known(r.kind === 'float' ? 'float' : t.dataType === DataType.BOOL ? 'bool' : 'int', dimsOf(t), Array.from(r.data));
  };

  for (const node of g.node ?? []) {
    const op = node.opType ?? '';
    const where = `node '${node.name || node.output?.[0]}' (${op}, opset ${opset})`;
    if (node.domain && node.domain !== 'ai.onnx')
      throw new Error(`onnx import: ${where} is in domain '${node.domain}', which is not imported`);
    const lower = LOWERINGS[op];
    if (!lower)
      throw new Error(
        `onnx import: no lowering for op ${op} at ${where}; the ops imported are ${Object.keys(LOWERINGS).sort().join(', ')}`,
      );
    const ins = node.input ?? [];
    const attrs = new Map((node.attribute ?? []).map((a) => [a.name!, a]));
    const ctx: LowerContext = {
      node,
      op,
      opset,
      arity: ins.length,
      has: (i) => i < ins.length && ins[i] !== '',
      attr: <T extends DecodedAttr>(name: string, fallback?: T): T => {
        const a = attrs.get(name);
        if (!a) {
          if (fallback === undefined) throw new Error(`attribute '${name}' is missing`);
          return fallback;
        }
        return decodeAttribute(a) as T;
      },
      value: (i) => {
        if (!ctx.has(i)) throw new Error(`input ${i} is missing`);
        return lookup(ins[i]);
      },
      tensor: (i) => {
        const v = ctx.value(i);
        if (!isKnown(v)) return v;
        return constant(
          v.values.map((x) => {
            if (typeof x !== 'number') throw new Error(`input ${i} holds the symbolic dim ${x} where a tensor is needed`);
            return x;
          }),
          v.shape,
        );
      },
      known: (i, what) => {
        if (!ctx.has(i)) throw new Error(`input ${i} (${what}) is missing`);
        const k = knownOf(ins[i]);
        if (!k) throw new Error(`input ${i} (${what}) must be known while importing, but it is computed from the image`);
        return k;
      },
      witness: (symbol) => witnesses.get(symbol),
    };
    let out: Value | Value[];
    try {
      out = lower(ctx);
    } catch (err) {
      throw new Error(`onnx import: ${where}: ${oneLine(err)}`);
    }
    const outs = Array.isArray(out) ? out : [out];
    (node.output ?? []).forEach((name, i) => {
      if (name === '') return;
      if (i >= outs.length) throw new Error(`onnx import: ${where}: output ${i} ('${name}') is not produced by the lowering`);
      values.set(name, outs[i]);
    });
  }

  const outputs: [string, Tensor][] = (g.output ?? []).map((o) => {
    const v = values.get(o.name!) ?? lookup(o.name!);
    if (isKnown(v)) throw new Error(`onnx import: output '${o.name}' does not depend on the input`);
    return [o.name!, v];
  });
  return { model, opset, inputName: gi.name!, input: pixels, outputs, params, values };
}

/** Where a model file's external data is looked for. */
export const dataDirOf = (modelFile: string) => path.dirname(path.resolve(modelFile));
