// Runs a graph on ONNX Runtime: compiles it once to ONNX, opens a session, feeds float32 arrays.

import { type CompileOptions, compileToBytes } from './onnx.js';
import { type Device, type HostTensor, type Session, createSession, mayUseWebGpu, runSession } from '../../runtime/ort.js';

export interface OrtGraphOptions extends CompileOptions {
  device?: Device;
  threads?: number;
  spin?: boolean;
  log?: (message: string) => void;
}

export class OrtGraph {
  private constructor(
    readonly session: Session,
    readonly outputNames: readonly string[],
    readonly bytes: Uint8Array,
  ) {}

  static async create(opts: OrtGraphOptions): Promise<OrtGraph> {
    // A graph that may open on WebGPU is emitted as that provider runs it whole (runtime/ort.ts would
    // otherwise put the nodes it refuses on the CPU, with a copy each way).
    const bytes = compileToBytes({ ...opts, maxPoolIndices: opts.maxPoolIndices ?? !mayUseWebGpu(opts.device ?? 'cpu') });
    const session = await createSession(bytes, { device: opts.device, threads: opts.threads, spin: opts.spin, log: opts.log });
    return new OrtGraph(
      session,
      opts.outputs.map(([name]) => name),
      bytes,
    );
  }

  get provider() {
    return this.session.provider;
  }

  run(feeds: Readonly<Record<string, HostTensor>>, outputs?: readonly string[]): Promise<Record<string, HostTensor>> {
    // ONNX Runtime rejects feeds the graph does not take (e.g. a param folded away): pass only its inputs.
    const used: Record<string, HostTensor> = {};
    for (const name of this.session.inputNames) {
      const t = feeds[name];
      if (!t) throw new Error(`ort: no value fed for input '${name}'`);
      used[name] = t;
    }
    return runSession(this.session, used, outputs);
  }
}
