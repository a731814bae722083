// The layers the ViT needs, initialized as the seed does: linear weights normal(0, std), biases 0,
// layer norm weight 1 and bias 0.

import type { Tensor } from '../autograd/graph.js';
import { add, layerNorm, matmul, transpose } from '../autograd/ops.js';
import { type GraphContext, Module, type Parameter } from './module.js';
import type { Rng } from './random.js';

export const zeros = (n: number) => new Float32Array(n);
export const ones = (n: number) => new Float32Array(n).fill(1);
export const normal = (rng: Rng, std: number) => (n: number) => Float32Array.from({ length: n }, () => rng.normal(0, std));
export const truncNormal = (rng: Rng, std: number) => (n: number) => Float32Array.from({ length: n }, () => rng.truncNormal(0, std));

/** y = x W^T + b with W of shape [out, in] (PyTorch's layout). */
export class Linear extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter | null;

  constructor(inFeatures: number, outFeatures: number, rng: Rng, std: number, bias = true) {
    super();
    this.weight = this.addParam('weight', [outFeatures, inFeatures], normal(rng, std));
    this.bias = bias ? this.addParam('bias', [outFeatures], zeros) : null;
  }

  forward(ctx: GraphContext, x: Tensor): Tensor {
    const y = matmul(x, transpose(ctx.p(this.weight), [1, 0]));
    return this.bias ? add(y, ctx.p(this.bias)) : y;
  }
}

export class LayerNorm extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter;

  constructor(
    dim: number,
    readonly eps: number,
  ) {
    super();
    this.weight = this.addParam('weight', [dim], ones);
    this.bias = this.addParam('bias', [dim], zeros);
  }

  forward(ctx: GraphContext, x: Tensor): Tensor {
    return layerNorm(x, ctx.p(this.weight), ctx.p(this.bias), this.eps);
  }
}
