// The training step as one ONNX graph: forward, loss and the gradient of every parameter, compiled
// once (any batch size) and run by ONNX Runtime with the current parameter values fed in. Also the
// evaluation forward (logits only) with parameters fed in.

import type { Tensor } from '../autograd/graph.js';
import { grad } from '../autograd/grad.js';
import { crossEntropy, input } from '../autograd/ops.js';
import { OrtGraph } from '../autograd/ort-executor.js';
import { type DropoutMask, GraphContext, type Parameter } from '../nn/module.js';
import type { Rng } from '../nn/random.js';
import { BATCH, INPUT_NAME, type ViT, pixelDims, pixelInput } from '../vit/model.js';
import { type Device, type HostTensor, describeSession } from '../../runtime/ort.js';

export interface StepResult {
  loss: number;
  logits: Float32Array;
  grads: Float32Array[]; // in the order of StepRunner.params
}

export interface RunnerOptions {
  device: Device;
  threads: number;
  /** ONNX Runtime's intra-op threads spin between operators (its default) or sleep. */
  spin?: boolean;
  log?: (line: string) => void;
}

/** The training step's outputs (loss, logits, and grad.<name> for every parameter in the model's
 *  order) and the dropout masks it is fed. */
export function trainStepOutputs(model: ViT): { outputs: [string, Tensor][]; masks: DropoutMask[] } {
  const c = model.config;
  const params = model.namedParameters().map(([, p]) => p);
  const ctx = new GraphContext(true);
  // NOTE: the batch stays symbolic: measured here, ONNX Runtime ran this graph about 13% faster
  // with a symbolic batch than with the batch size fixed in the graph.
  const targets = input('targets', [BATCH, c.num_classes]);
  const { logits } = model.forward(ctx, pixelInput(c));
  const loss = crossEntropy(logits, targets);
  const nodes = new Map(ctx.parameters);
  const grads = grad(
    loss,
    params.map((p) => nodes.get(p) ?? ctx.p(p)),
  );
  const outputs: [string, Tensor][] = [
    ['loss', loss],
    ['logits', logits],
    ...grads.map((g, i): [string, Tensor] => [`grad.${params[i].name}`, g]),
  ];
  return { outputs, masks: ctx.masks };
}

export class StepRunner {
  readonly params: Parameter[];
  private train: { graph: OrtGraph; masks: DropoutMask[] } | null = null;
  private forward: OrtGraph | null = null;
  /** What the sessions say (the device fallback), said once though two sessions are made. */
  private readonly log: (line: string) => void;

  constructor(
    readonly model: ViT,
    readonly o: RunnerOptions,
  ) {
    this.params = model.namedParameters().map(([, p]) => p);
    const said = new Set<string>();
    this.log = (line) => {
      if (said.has(line)) return;
      said.add(line);
      o.log?.(line);
    };
  }

  get provider(): string {
    return this.train?.graph.provider ?? this.forward?.provider ?? 'none';
  }

  private async stepGraph() {
    if (!this.train) {
      const { outputs, masks } = trainStepOutputs(this.model);
      const graph = await OrtGraph.create({
        outputs,
        device: this.o.device,
        threads: this.o.threads || undefined,
        spin: this.o.spin,
        graphName: 'vit_train_step',
        log: this.log,
      });
      this.train = { graph, masks };
      if (this.o.device !== 'cpu') this.log(`the training step runs on ${describeSession(graph.session)}`);
    }
    return this.train;
  }

  private paramFeeds(): Record<string, HostTensor> {
    return Object.fromEntries(this.params.map((p) => [p.name, { data: p.data, dims: p.shape }]));
  }

  /** One forward + backward on a prepared batch. `dropoutRng` draws the dropout masks, if any. */
  async step(pixels: Float32Array, targets: Float32Array, batch: number, dropoutRng: Rng): Promise<StepResult> {
    const c = this.model.config;
    const { graph, masks } = await this.stepGraph();
    const feeds: Record<string, HostTensor> = {
      ...this.paramFeeds(),
      [INPUT_NAME]: { data: pixels, dims: pixelDims(c, batch) },
      targets: { data: targets, dims: [batch, c.num_classes] },
    };
    for (const m of masks) {
      const dims = m.shape.map((d) => (typeof d === 'number' ? d : batch));
      const keep = 1 - m.p;
      feeds[m.name] = {
        data: Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => (dropoutRng.next() < keep ? 1 / keep : 0)),
        dims,
      };
    }
    const out = await graph.run(feeds);
    return { loss: out.loss.data[0], logits: out.logits.data, grads: this.params.map((p) => out[`grad.${p.name}`].data) };
  }

  /** Logits for a normalized batch, with the current parameters. */
  async logits(pixels: Float32Array, n: number): Promise<Float32Array> {
    const c = this.model.config;
    if (!this.forward) {
      const ctx = new GraphContext(false);
      const { logits } = this.model.forward(ctx, pixelInput(c));
      this.forward = await OrtGraph.create({
        outputs: [['logits', logits]],
        device: this.o.device,
        threads: this.o.threads || undefined,
        spin: this.o.spin,
        log: this.log,
        graphName: 'vit_eval',
      });
    }
    const out = await this.forward.run({ ...this.paramFeeds(), [INPUT_NAME]: { data: pixels, dims: pixelDims(c, n) } });
    return out.logits.data;
  }
}
