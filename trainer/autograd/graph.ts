// The symbolic graph: a tensor is a node that records its op, its inputs, its attributes and its shape.
// Nothing is computed here. Executors (interpreter.ts, onnx.ts + ort-executor.ts) run a graph;
// grad.ts extends one with gradient nodes. The op table (ops.ts) says what each op means.

export type Dim = number | string; // a string is a symbolic dimension, e.g. 'batch'
export type Shape = readonly Dim[];
export type Attrs = Readonly<Record<string, unknown>>;

export interface Tensor {
  readonly id: number;
  readonly op: string;
  readonly inputs: readonly Tensor[];
  readonly attrs: Attrs;
  readonly shape: Shape;
  readonly dtype: 'float32';
}

let nextId = 0;

/** Creates a node; the op table validates inputs and infers the shape. Use the helpers in ops.ts. */
export function makeNode(op: string, inputs: readonly Tensor[], attrs: Attrs, shape: Shape): Tensor {
  return Object.freeze({
    id: nextId++,
    op,
    inputs: Object.freeze([...inputs]),
    attrs: Object.freeze({ ...attrs }),
    shape: Object.freeze([...shape]),
    dtype: 'float32' as const,
  });
}

export function shapeToString(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Number of elements when every dim is known, else undefined. */
export function staticSize(shape: Shape): number | undefined {
  let n = 1;
  for (const d of shape) {
    if (typeof d !== 'number') return undefined;
    n *= d;
  }
  return n;
}

/** Every node reachable from `roots`, inputs before the nodes that use them. */
export function topoSort(roots: readonly Tensor[]): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<number>();
  // Iterative DFS: graphs of a deep model with its gradients exceed the JS call stack otherwise.
  const stack: [Tensor, number][] = roots.map((r) => [r, 0]);
  stack.reverse();
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    const [node, next] = top;
    if (next === 0 && seen.has(node.id)) {
      stack.pop();
      continue;
    }
    if (next < node.inputs.length) {
      top[1] = next + 1;
      const child = node.inputs[next];
      if (!seen.has(child.id)) stack.push([child, 0]);
    } else {
      stack.pop();
      if (!seen.has(node.id)) {
        seen.add(node.id);
        order.push(node);
      }
    }
  }
  return order;
}

/** Broadcasts two shapes numpy-style; symbolic dims broadcast only against themselves or 1. */
export function broadcastShapes(a: Shape, b: Shape, what = 'broadcast'): Dim[] {
  const rank = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da === db || db === 1) out.push(da);
    else if (da === 1) out.push(db);
    else throw new Error(`${what}: shapes ${shapeToString(a)} and ${shapeToString(b)} do not broadcast`);
  }
  return out;
}

export function normalizeAxis(axis: number, rank: number, op: string): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) throw new Error(`${op}: axis ${axis} out of range for rank ${rank}`);
  return a;
}

/** A dim as a product: a whole-number coefficient times symbols ('2*batch' is 2 x [batch]). */
export interface DimProduct {
  coef: number;
  symbols: string[];
}

export function factorDim(d: Dim): DimProduct {
  if (typeof d === 'number') return { coef: d, symbols: [] };
  let coef = 1;
  const symbols: string[] = [];
  for (const part of d.split('*')) {
    if (/^\d+$/.test(part)) coef *= Number(part);
    else symbols.push(part);
  }
  return { coef, symbols: symbols.sort() };
}

/** The dim a product names, written one way: the coefficient first (when not 1), the symbols sorted. */
export function productDim(coef: number, symbols: readonly string[]): Dim {
  if (symbols.length === 0) return coef;
  return [...(coef === 1 ? [] : [String(coef)]), ...[...symbols].sort()].join('*');
}

/** The dim written one way, so that two spellings of one product compare equal. */
export const canonicalDim = (d: Dim): Dim => {
  const f = factorDim(d);
  return productDim(f.coef, f.symbols);
};

export function mulDims(a: Dim, b: Dim): Dim {
  const x = factorDim(a);
  const y = factorDim(b);
  return x.coef === 0 || y.coef === 0 ? 0 : productDim(x.coef * y.coef, [...x.symbols, ...y.symbols]);
}
