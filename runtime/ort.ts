// The one module that talks to ONNX Runtime: creates sessions with a provider choice, runs them.
// Both the trainer (compiled training steps) and the server (exported models) go through here.

import { readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import { type GpuAdapter, type GpuProbe, describeAdapter, gpuProbe, whyNoHardwareAdapter } from './gpu.js';

export type Device = 'cpu' | 'webgpu' | 'cuda' | 'auto';
export type Provider = 'cpu' | 'webgpu' | 'cuda';
export const DEVICES: readonly Device[] = Object.freeze(['cpu', 'webgpu', 'cuda', 'auto']);

/** Which execution providers each device choice tries, in order. `auto` tries WebGPU only where the
 *  machine has a hardware adapter (runtime/gpu.ts), never a software one. */
const PROVIDERS: Readonly<Record<Device, readonly Provider[]>> = Object.freeze({
  cpu: Object.freeze(['cpu'] as const),
  webgpu: Object.freeze(['webgpu'] as const),
  cuda: Object.freeze(['cuda'] as const),
  auto: Object.freeze(['cuda', 'webgpu', 'cpu'] as const),
});

/** The part of onnxruntime-node that sessions are created with; passed in where a test needs one whose
 *  providers behave differently (CUDA listed but failing to load). */
export type OnnxRuntime = Pick<typeof ort, 'InferenceSession' | 'listSupportedBackends'>;

export interface SessionOptions {
  device?: Device;
  /** Threads for one operator (intra-op); defaults to ONNX Runtime's choice (one per core). */
  threads?: number;
  /** Told what `auto` chose and why. */
  log?: (message: string) => void;
  /** onnxruntime-node unless given. */
  runtime?: OnnxRuntime;
  /** This machine's Vulkan drivers and adapters unless given. */
  gpu?: GpuProbe;
  /** false: the intra-op threads sleep between operators instead of spinning (ONNX Runtime's
   *  session.intra_op.allow_spinning 0), leaving the cores to other threads of the process. */
  spin?: boolean;
}

export interface Session {
  readonly session: ort.InferenceSession;
  readonly provider: Provider;
  /** The GPU the WebGPU provider runs on, as far as the machine's drivers and devices say; null elsewhere. */
  readonly adapter: GpuAdapter | null;
  /** Nodes the provider refuses that run on the CPU instead (WebGPU and MaxPool's indices). */
  readonly cpuNodes: readonly string[];
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
}

export const CUDA_HINT =
  'the CUDA execution provider needs CUDA 12 and cuDNN 9 and ' +
  "onnxruntime-node's CUDA provider (ONNXRUNTIME_NODE_INSTALL=cuda12 " +
  'node node_modules/onnxruntime-node/script/install.js; see the CUDA ' +
  'image in docker/)';
export const WEBGPU_HINT =
  'the WebGPU execution provider needs a Vulkan loader (libvulkan1) and ' +
  "a Vulkan 1.1 driver: the GPU vendor's, or Mesa 23 or later (on Debian " +
  'bookworm, mesa-vulkan-drivers from bookworm-backports); see ' +
  'docs/gpu.md';

/** Nodes a provider takes and then fails on at run time, so they are placed on the CPU from the start. */
const REFUSED: Readonly<Partial<Record<Provider, (node: onnxProto.onnx.INodeProto) => boolean>>> = Object.freeze({
  // "MaxPool ... The Indices output is not supported yet" (onnxruntime 1.30's WebGPU pool kernel).
  webgpu: (n) => n.opType === 'MaxPool' && (n.output?.length ?? 0) > 1 && n.output![1] !== '',
});

/** The names of the nodes of a model that `provider` takes and then fails on (run on the CPU instead). */
export function refusedNodes(model: Uint8Array | string, provider: Provider): string[] {
  const refused = REFUSED[provider];
  if (!refused) return [];
  const bytes = typeof model === 'string' ? readFileSync(model) : model;
  const graph = onnxProto.onnx.ModelProto.decode(bytes).graph;
  const nodes = (graph?.node ?? []).filter(refused);
  const unnamed = nodes.filter((n) => !n.name);
  if (unnamed.length > 0)
    throw new Error(
      `${unnamed.length} ${unnamed[0].opType} node(s) that the ${provider} ` +
        `provider cannot run have no name, so they cannot be placed on the CPU`,
    );
  return nodes.map((n) => n.name!);
}

function isCudaInstalled(runtime: OnnxRuntime): boolean {
  return runtime.listSupportedBackends().some((b) => b.name === 'cuda' && b.bundled !== false);
}

function executionProvider(provider: Provider, cpuNodes: string[]): ort.InferenceSession.ExecutionProviderConfig {
  if (provider !== 'webgpu') return provider;
  // An empty forceCpuNodeNames is refused by the binding ("key/value cannot be empty").
  return cpuNodes.length > 0 ? { name: 'webgpu', forceCpuNodeNames: cpuNodes } : { name: 'webgpu' };
}

async function open(
  runtime: OnnxRuntime,
  model: Uint8Array | string,
  provider: Provider,
  cpuNodes: string[],
  threads: number | undefined,
  spin: boolean,
): Promise<ort.InferenceSession> {
  const options: ort.InferenceSession.SessionOptions = {
    executionProviders: [executionProvider(provider, cpuNodes)],
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    interOpNumThreads: 1,
    // The WebGPU provider warns on every session that shape ops stay on the CPU, as designed.
    ...(provider === 'webgpu' ? { logSeverityLevel: 3 as const } : {}),
    ...(threads ? { intraOpNumThreads: threads } : {}),
    ...(spin ? {} : { extra: { session: { intra_op: { allow_spinning: '0' } } } }),
  };
  return typeof model === 'string' ? runtime.InferenceSession.create(model, options) : runtime.InferenceSession.create(model, options);
}

const firstLine = (err: unknown) =>
  (err instanceof Error ? err.message : String(err)).split('\n')[0].replace(/^.*Failed to get a WebGPU adapter: /, 'no WebGPU adapter: ');

const webgpuError = (why: string) => new Error(`device webgpu: the WebGPU execution provider could not start (${why}); ${WEBGPU_HINT}`);

/** Why the WebGPU provider failed, with what the machine lacks where the probe can tell. */
function webgpuFailure(err: unknown, probe: GpuProbe): string {
  const reason = firstLine(err);
  if (probe.loaderMissing) return reason;
  const adapters =
    probe.adapters.length > 0
      ? `; the Vulkan adapters here: ${probe.adapters.map(describeAdapter).join(', ')}`
      : `; ${whyNoHardwareAdapter(probe)}`;
  return `${reason}${adapters}`;
}

export async function createSession(model: Uint8Array | string, opts: SessionOptions = {}): Promise<Session> {
  const device = opts.device ?? 'cpu';
  const runtime = opts.runtime ?? ort;
  const tries = PROVIDERS[device];
  if (!tries) throw new Error(`unknown device '${device}' (expected one of ${DEVICES.join(', ')})`);
  const passed: string[] = []; // auto: why each provider before the one taken was not
  const probe = () => opts.gpu ?? gpuProbe();
  for (const provider of tries) {
    let adapter: GpuAdapter | null = null;
    try {
      if (provider === 'cuda' && !isCudaInstalled(runtime)) throw new Error('onnxruntime-node was installed without it');
      if (provider === 'webgpu') {
        const p = probe();
        if (p.loaderMissing) throw new Error(`no Vulkan loader: ${p.loaderMissing}`);
        adapter = p.adapters.find((a) => !a.software) ?? null;
        if (device === 'auto' && !adapter) throw new Error(whyNoHardwareAdapter(p));
        adapter ??= p.adapters[0] ?? null;
      }
      const cpuNodes = refusedNodes(model, provider);
      const session = await open(runtime, model, provider, cpuNodes, opts.threads, opts.spin ?? true);
      if (device === 'auto')
        opts.log?.(
          `device auto: ${provider === 'cpu' ? 'the CPU' : provider === 'cuda' ? 'CUDA' : `WebGPU on ${describeAdapter(adapter!)}`}` +
            `${passed.length ? ` (${passed.join('; ')})` : ''}`,
        );
      return { session, provider, adapter, cpuNodes, inputNames: session.inputNames, outputNames: session.outputNames };
    } catch (err) {
      if (provider === 'cpu') throw err;
      if (provider === 'cuda') {
        if (device === 'cuda')
          throw new Error(`device cuda: the CUDA execution provider could not be loaded (${firstLine(err)}); ${CUDA_HINT}`);
        passed.push(`CUDA unavailable: ${firstLine(err)}`);
      } else {
        if (device === 'webgpu') throw webgpuError(webgpuFailure(err, probe()));
        passed.push(`WebGPU: ${adapter ? `${describeAdapter(adapter)} failed (${firstLine(err)})` : firstLine(err)}`);
      }
    }
  }
  throw new Error(`device ${device}: no provider could be opened`);
}

/** Throws the one line createSession would give every session where the device cannot work at all on
 *  this machine (WebGPU without a Vulkan loader), so that a caller opening many says it once. */
export function checkDevice(device: Device, opts: Pick<SessionOptions, 'gpu'> = {}): void {
  if (!DEVICES.includes(device)) throw new Error(`unknown device '${device}' (expected one of ${DEVICES.join(', ')})`);
  const p = device === 'webgpu' ? (opts.gpu ?? gpuProbe()) : null;
  if (p?.loaderMissing) throw webgpuError(`no Vulkan loader: ${p.loaderMissing}`);
}

/** Whether sessions opened with this device choice may run on WebGPU: onnxruntime-node keeps one WebGPU
 *  context per process, and two threads that create or run sessions on it at once crash the process
 *  (tried: a double free, a segfault, "compute_pipeline.has_value() was false"). So whoever starts
 *  several threads of sessions asks this first and keeps to one. */
export function mayUseWebGpu(device: Device, opts: Pick<SessionOptions, 'runtime' | 'gpu'> = {}): boolean {
  if (device === 'webgpu') return true;
  if (device !== 'auto' || isCudaInstalled(opts.runtime ?? ort)) return false;
  const p = opts.gpu ?? gpuProbe();
  return !p.loaderMissing && p.adapters.some((a) => !a.software);
}

/** What a session runs on, in a few words: `cpu`, `cuda`, `webgpu (NVIDIA H100 80GB HBM3)`. */
export function describeSession(s: Pick<Session, 'provider' | 'adapter'>): string {
  return s.adapter ? `${s.provider} (${describeAdapter(s.adapter)})` : s.provider;
}

export interface HostTensor {
  data: Float32Array;
  dims: readonly number[];
}

export async function runSession(
  s: Session,
  feeds: Readonly<Record<string, HostTensor>>,
  outputs?: readonly string[],
): Promise<Record<string, HostTensor>> {
  const ortFeeds: Record<string, ort.Tensor> = {};
  for (const [name, t] of Object.entries(feeds)) ortFeeds[name] = new ort.Tensor('float32', t.data, t.dims);
  const result = outputs ? await s.session.run(ortFeeds, outputs as string[]) : await s.session.run(ortFeeds);
  const out: Record<string, HostTensor> = {};
  for (const [name, t] of Object.entries(result)) {
    out[name] = { data: t.data as Float32Array, dims: t.dims };
  }
  return out;
}
