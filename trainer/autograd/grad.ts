// Reverse-mode differentiation on the symbolic graph: walks the graph from the loss back to the
// parameters and appends one gradient node per use. A value used twice receives the sum of both
// contributions, which is what makes shared subexpressions come out right.

import { type Tensor, sameShape, shapeToString, topoSort } from './graph.js';
import { OPS, add, concat, constant, expandAs, scalar } from './ops.js';

/** The sum of a value's gradient contributions. Where they are the zero-paddings of slices that tile
 *  one axis (the gradients of q, k and v cut from one projection), their concatenation instead: one
 *  Concat in place of three Pads and two Adds over the whole tensor (measured with ONNX Runtime's
 *  profiler on the CCT step, batch 128: ~1.5 ms a block). */
function total(parts: readonly Tensor[]): Tensor {
  if (parts.length > 1 && parts.every((p) => p.op === 'pad' && p.attrs.axis === parts[0].attrs.axis)) {
    const axis = parts[0].attrs.axis as number;
    const sorted = [...parts].sort((a, b) => (a.attrs.before as number) - (b.attrs.before as number));
    let at = 0;
    for (const p of sorted) {
      const size = p.inputs[0].shape[axis];
      if (p.attrs.before !== at || typeof size !== 'number') break;
      at += size;
    }
    if (at === parts[0].shape[axis] && sorted.at(-1)!.attrs.after === 0)
      return concat(
        sorted.map((p) => p.inputs[0]),
        axis,
      );
  }
  return parts.reduce((sum, p) => add(sum, p));
}

/** Gradients of a scalar `loss` with respect to each of `wrt`, as new graph nodes (same order). */
export function grad(loss: Tensor, wrt: readonly Tensor[]): Tensor[] {
  if (loss.shape.length !== 0) throw new Error(`grad: the loss must be a scalar, got shape ${shapeToString(loss.shape)}`);
  const order = topoSort([loss]);

  // Only nodes between the loss and a wanted input need gradients.
  const targets = new Set(wrt.map((t) => t.id));
  const needed = new Set<number>();
  for (const n of order) if (targets.has(n.id) || n.inputs.some((i) => needed.has(i.id))) needed.add(n.id);

  const grads = new Map<number, Tensor[]>([[loss.id, [scalar(1)]]]);
  for (let k = order.length - 1; k >= 0; k--) {
    const n = order[k];
    const parts = grads.get(n.id);
    if (!parts || n.inputs.length === 0) continue;
    const g = total(parts);
    const def = OPS[n.op];
    if (!def) throw new Error(`grad: no op '${n.op}' in the op table`);
    const inputGrads = def.vjp(g, n);
    if (inputGrads.length !== n.inputs.length)
      throw new Error(`grad: the rule of '${n.op}' returned ${inputGrads.length} gradients for ${n.inputs.length} inputs`);
    n.inputs.forEach((x, i) => {
      const gi = inputGrads[i];
      if (!gi || !needed.has(x.id)) return;
      if (!sameShape(gi.shape, x.shape))
        throw new Error(
          `grad: the rule of '${n.op}' gave input ${i} a gradient of shape ${shapeToString(gi.shape)}, not ${shapeToString(x.shape)}`,
        );
      const prev = grads.get(x.id);
      if (prev) prev.push(gi);
      else grads.set(x.id, [gi]);
    });
  }
  return wrt.map((t) => {
    const parts = grads.get(t.id);
    if (parts) return total(parts);
    // No path from the loss: a zero gradient of the right shape.
    const n = t.shape.every((d) => typeof d === 'number') ? (t.shape as number[]).reduce((a, b) => a * b, 1) : undefined;
    return n !== undefined ? constant(new Float64Array(n), t.shape as number[]) : expandAs(scalar(0), t);
  });
}
