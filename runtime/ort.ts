// The one module that talks to ONNX Runtime: creates sessions with a provider choice, runs them.
// Both the trainer (compiled training steps) and the server (exported models) go through here.

import * as ort from 'onnxruntime-node';

export type Device = 'cpu' | 'cuda' | 'auto';
export type Provider = 'cpu' | 'cuda';
export const DEVICES: readonly Device[] = Object.freeze(['cpu', 'cuda', 'auto']);

/** Which execution providers each device choice tries, in order. */
const PROVIDERS: Readonly<Record<Device, readonly Provider[]>> = Object.freeze({
  cpu: Object.freeze(['cpu'] as const),
  cuda: Object.freeze(['cuda'] as const),
  auto: Object.freeze(['cuda', 'cpu'] as const),
});

/** The part of onnxruntime-node that sessions are created with; passed in where a test needs one whose
 *  providers behave differently (CUDA listed but failing to load). */
export type OnnxRuntime = Pick<typeof ort, 'InferenceSession' | 'listSupportedBackends'>;

export interface SessionOptions {
  device?: Device;
  /** Threads for one operator (intra-op); defaults to ONNX Runtime's choice (one per core). */
  threads?: number;
  /** Told when `auto` falls back to the CPU. */
  log?: (message: string) => void;
  /** onnxruntime-node unless given. */
  runtime?: OnnxRuntime;
  /** false: the intra-op threads sleep between operators instead of spinning (ONNX Runtime's
   *  session.intra_op.allow_spinning 0), leaving the cores to other threads of the process. */
  spin?: boolean;
}

export interface Session {
  readonly session: ort.InferenceSession;
  readonly provider: Provider;
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
}

export const CUDA_HINT =
  'the CUDA execution provider needs CUDA 12 and cuDNN 9 and onnxruntime-node\'s CUDA provider (ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js; see the CUDA image in docker/)';

function isCudaInstalled(runtime: OnnxRuntime): boolean {
  return runtime.listSupportedBackends().some((b) => b.name === 'cuda' && b.bundled !== false);
}

async function open(runtime: OnnxRuntime, model: Uint8Array | string, provider: Provider, threads: number | undefined, spin: boolean): Promise<ort.InferenceSession> {
  const options: ort.InferenceSession.SessionOptions = {
    executionProviders: [provider],
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    interOpNumThreads: 1,
    ...(threads ? { intraOpNumThreads: threads } : {}),
    ...(spin ? {} : { extra: { session: { intra_op: { allow_spinning: '0' } } } }),
  };
  return typeof model === 'string' ? runtime.InferenceSession.create(model, options) : runtime.InferenceSession.create(model, options);
}

export async function createSession(model: Uint8Array | string, opts: SessionOptions = {}): Promise<Session> {
  const device = opts.device ?? 'cpu';
  const runtime = opts.runtime ?? ort;
  const tries = PROVIDERS[device];
  if (!tries) throw new Error(`unknown device '${device}' (expected one of ${DEVICES.join(', ')})`);
  let lastError: unknown;
  for (const provider of tries) {
    try {
      if (provider === 'cuda' && !isCudaInstalled(runtime)) throw new Error('onnxruntime-node was installed without it');
      const session = await open(runtime, model, provider, opts.threads, opts.spin ?? true);
      return { session, provider, inputNames: session.inputNames, outputNames: session.outputNames };
    } catch (err) {
      lastError = err;
      if (provider !== 'cuda') throw err;
      const reason = err instanceof Error ? err.message.split('\n')[0] : String(err);
      if (device === 'cuda') throw new Error(`device cuda: the CUDA execution provider could not be loaded (${reason}); ${CUDA_HINT}`);
      opts.log?.(`device auto: CUDA unavailable (${reason}); using the CPU`);
    }
  }
  throw lastError;
}

export interface HostTensor {
  data: Float32Array;
  dims: readonly number[];
}

export async function runSession(s: Session, feeds: Readonly<Record<string, HostTensor>>, outputs?: readonly string[]): Promise<Record<string, HostTensor>> {
  const ortFeeds: Record<string, ort.Tensor> = {};
  for (const [name, t] of Object.entries(feeds)) ortFeeds[name] = new ort.Tensor('float32', t.data, t.dims);
  const result = outputs ? await s.session.run(ortFeeds, outputs as string[]) : await s.session.run(ortFeeds);
  const out: Record<string, HostTensor> = {};
  for (const [name, t] of Object.entries(result)) {
    out[name] = { data: t.data as Float32Array, dims: t.dims };
  }
  return out;
}
