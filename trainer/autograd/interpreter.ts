// The reference executor: runs a graph node by node with the op table's TypeScript kernels, in float64.
// Slow and plain on purpose: it is the definition the ONNX emission is tested against, and the place
// to read what each op does.

import { type Tensor, shapeToString, topoSort } from './graph.js';
import type { NDArray } from './ndarray.js';
import { OPS } from './ops.js';

export type Feeds = Readonly<Record<string, NDArray>>;

function leafValue(node: Tensor, feeds: Feeds): NDArray {
  if (node.op === 'const') return { data: node.attrs.value as Float64Array, shape: node.shape as number[] };
  const name = node.attrs.name as string;
  const fed = feeds[name];
  if (!fed) throw new Error(`interpreter: no value fed for ${node.op} '${name}'`);
  const expected = node.shape;
  if (fed.shape.length !== expected.length || expected.some((d, i) => typeof d === 'number' && d !== fed.shape[i])) {
    throw new Error(`interpreter: '${name}' was fed shape [${fed.shape.join(', ')}], expected ${shapeToString(expected)}`);
  }
  return fed;
}

/** Evaluates `outputs` given values for every input and param (by name). */
export function interpret(outputs: readonly Tensor[], feeds: Feeds): NDArray[] {
  const values = new Map<number, NDArray>();
  const symbols = new Map<string, number>();
  for (const n of topoSort(outputs)) {
    const def = OPS[n.op];
    const value =
      def.arity === 0
        ? leafValue(n, feeds)
        : def.kernel(
            n.inputs.map((i) => values.get(i.id)!),
            n.attrs,
          );
    // Symbolic dims must resolve to one number across the whole run.
    n.shape.forEach((d, i) => {
      if (typeof d === 'number') {
        if (d !== value.shape[i])
          throw new Error(`interpreter: ${n.op} produced [${value.shape}] where ${shapeToString(n.shape)} was inferred`);
      } else if (!d.includes('*')) {
        const seen = symbols.get(d);
        if (seen === undefined) symbols.set(d, value.shape[i]);
        else if (seen !== value.shape[i])
          throw new Error(`interpreter: dim '${d}' is ${seen} in one place and ${value.shape[i]} in another`);
      }
    });
    values.set(n.id, value);
  }
  return outputs.map((o) => values.get(o.id)!);
}
