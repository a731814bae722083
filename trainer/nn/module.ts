// Modules own parameters (float32 arrays with a shape) and child modules; their dotted names form the
// state dict, e.g. `encoder.blocks.0.mlp.dense_1.weight`. A forward pass does not compute: it builds
// graph nodes through a GraphContext, which turns each parameter into a `param` node once.

import type { Shape, Tensor } from '../autograd/graph.js';
import { add, dropout, input, param as paramNode } from '../autograd/ops.js';

export class Parameter {
  name = '';
  constructor(
    readonly shape: readonly number[],
    public data: Float32Array,
  ) {
    const n = shape.reduce((a, b) => a * b, 1);
    if (data.length !== n) throw new Error(`parameter of shape [${shape}] given ${data.length} values`);
  }
}

export type StateDict = Map<string, { shape: readonly number[]; data: Float32Array }>;

export abstract class Module {
  private readonly ownParams: [string, Parameter][] = [];
  private readonly children: [string, Module][] = [];

  protected addParam(name: string, shape: readonly number[], init: (n: number) => Float32Array): Parameter {
    const p = new Parameter(shape, init(shape.reduce((a, b) => a * b, 1)));
    this.ownParams.push([name, p]);
    return p;
  }

  protected addChild<M extends Module>(name: string, child: M): M {
    this.children.push([name, child]);
    return child;
  }

  /** Every parameter with its dotted name, in definition order. */
  namedParameters(prefix = ''): [string, Parameter][] {
    const out: [string, Parameter][] = this.ownParams.map(([n, p]) => [prefix + n, p]);
    for (const [n, c] of this.children) out.push(...c.namedParameters(`${prefix}${n}.`));
    return out;
  }

  /** Gives each parameter its full dotted name; call once on the root module. */
  protected assignNames(): void {
    for (const [name, p] of this.namedParameters()) p.name = name;
  }

  parameterCount(): number {
    return this.namedParameters().reduce((s, [, p]) => s + p.data.length, 0);
  }

  stateDict(): StateDict {
    return new Map(this.namedParameters().map(([n, p]) => [n, { shape: p.shape, data: p.data }]));
  }

  /** Copies values in; every parameter must be present with its exact shape and nothing else may be. */
  loadStateDict(state: StateDict, source = 'state dict'): void {
    const params = new Map(this.namedParameters());
    for (const [name, p] of params) {
      const t = state.get(name);
      if (!t) throw new Error(`${source}: missing tensor '${name}'`);
      if (t.shape.length !== p.shape.length || t.shape.some((d, i) => d !== p.shape[i])) {
        throw new Error(`${source}: tensor '${name}' has shape [${t.shape.join(', ')}], expected [${p.shape.join(', ')}]`);
      }
    }
    const extra = [...state.keys()].filter((k) => !params.has(k));
    if (extra.length > 0)
      throw new Error(`${source}: unexpected tensor '${extra[0]}'${extra.length > 1 ? ` (and ${extra.length - 1} more)` : ''}`);
    for (const [name, p] of params) p.data = Float32Array.from(state.get(name)!.data);
  }
}

export interface DropoutMask {
  readonly name: string;
  readonly shape: Shape;
  readonly p: number;
}

/** Where a forward pass puts its nodes: parameter nodes (one per parameter) and dropout masks. */
export class GraphContext {
  private readonly nodes = new Map<Parameter, Tensor>();
  readonly masks: DropoutMask[] = [];

  /** Inputs added by tap(), for gradient checks: name -> node. */
  readonly taps = new Map<string, Tensor>();

  /** `tapped`: every tap() adds a fed input (zero when not perturbed), so that a test can move an intermediate value. */
  constructor(
    readonly training = false,
    readonly tapped = false,
  ) {}

  /** An intermediate value, made perturbable in a tapped context: x + input(`<prefix>.<n>`), n counting taps; else x itself. */
  tap(x: Tensor, prefix: string): Tensor {
    if (!this.tapped) return x;
    const name = `${prefix}.${this.taps.size}`;
    const offset = input(name, x.shape);
    this.taps.set(name, offset);
    return add(x, offset);
  }

  p(parameter: Parameter): Tensor {
    let n = this.nodes.get(parameter);
    if (!n) {
      if (!parameter.name) throw new Error('parameter has no name: the root module must assign names');
      n = paramNode(parameter.name, parameter.shape);
      this.nodes.set(parameter, n);
    }
    return n;
  }

  /** The parameter nodes this pass used, in first-use order. */
  get parameters(): [Parameter, Tensor][] {
    return [...this.nodes];
  }

  /** Drop path with probability p: per image, the whole of x is kept (scaled by 1/(1-p)) or zeroed; a
   *  fed mask of shape [batch, 1, …] in training, identity at inference. */
  dropPath(x: Tensor, p: number): Tensor {
    if (!this.training || p <= 0) return x;
    const mask = input(`dropout.${this.masks.length}`, [x.shape[0], ...x.shape.slice(1).map(() => 1)]);
    this.masks.push({ name: mask.attrs.name as string, shape: mask.shape, p });
    return dropout(x, mask);
  }

  /** Dropout with probability p: identity at inference, a multiplication by a fed mask in training. */
  dropout(x: Tensor, p: number): Tensor {
    if (!this.training || p <= 0) return x;
    const mask = input(`dropout.${this.masks.length}`, x.shape);
    this.masks.push({ name: mask.attrs.name as string, shape: x.shape, p });
    return dropout(x, mask);
  }
}

/** A module that only groups: a numbered list of children (PyTorch's ModuleList), or the holder of a
 *  layer's parameters when the computation is written elsewhere. */
export class Container extends Module {
  child<M extends Module>(name: string, m: M): M {
    return this.addChild(name, m);
  }

  parameter(name: string, shape: readonly number[], init: (n: number) => Float32Array): Parameter {
    return this.addParam(name, shape, init);
  }

  static list<M extends Module>(items: readonly M[]): Container {
    const c = new Container();
    items.forEach((m, i) => c.child(String(i), m));
    return c;
  }
}
