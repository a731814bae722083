// The messages between the inference worker pool (pool.ts) and its workers (inference-worker.ts).
//
// Stopping an inference worker: terminate() while ONNX Runtime runs aborts the whole process (the
// run returns into a torn-down environment; measured with onnxruntime-node here), so the pool asks
// instead and the worker leaves between runs. control[0] = CRASH makes it exit (code 1) before it
// answers the run in progress, as a crash would; the 'stop' and 'crash' messages end an idle worker.
//
// Models come and go while serving: 'load' opens a version's sessions beside the others (answered
// 'loaded' or 'load-failed'), 'unload' releases them once the pool has nothing more for that version.

import type { GpuAdapter } from '../../runtime/gpu.js';
import type { Device } from '../../runtime/ort.js';
import type { ModelInput, Normalization } from '../../runtime/pixels.js';

export type { ModelInput } from '../../runtime/pixels.js';

export interface WorkerModel {
  name: string;
  /** The version's sessions in the worker, as runs name them (serving.ts sessionKey): the model's name
   *  for the version loaded at start, `<name>/v<n>` for one loaded while serving. */
  key: string;
  file: string;
  inputName: string;
  logitsOutput: string;
  attentionOutputs: string[];
  /** The [batch, patches] default rollout the graph gives itself (config.json rollout_output), if it does. */
  rolloutOutput?: string;
  /** [channels, height, width] */
  inputDims: [number, number, number];
  /** How an image given as bytes becomes the input (job.ts ModelInput). */
  normalization: Normalization;
  classes: number;
  /** Tokens before the patches ([CLS] first): the maps cover the tokens after them. */
  prefixTokens: number;
  /** The patch grid [rows, cols] the maps cover, when the model gives maps. */
  grid?: [number, number];
  /** The explanation graphs beside the model (config.json `relevance`), when it has them; graphs written
   *  since it was added also give the input's gradient and explain the top prediction for class -1. */
  explanation?: {
    file: string;
    classInput: string;
    gradientOutputs: string[];
    inputGradientOutput?: string;
    topClass?: number;
    lightFile?: string;
  };
}

/** The maps of a run of the full explanation graph besides the default, n * (tokens - prefix) each. */
export interface Explanations {
  chefer: Float32Array;
  gradInput: Float32Array | null;
  combined: Float32Array | null;
}

/** Which of a model's explanation graphs runs: `full` gives every block's attention gradient and the
 *  input's, which the chefer, grad-input and combined maps need; the default map, relevance, needs only
 *  the last block's, which `light` gives (the light graph where the model has one, else the full one). */
export type ExplanationGraph = 'light' | 'full';

export interface WorkerInit {
  models: WorkerModel[];
  device: Device;
  threads: number;
  /** The workers' nice value (runtime/thread-priority.ts); 0 leaves them at the event loop's. */
  nice: number;
}

export const CRASH = 1;
export type WorkerCommand =
  | { type: 'stop' }
  | { type: 'crash' }
  | { type: 'load'; id: number; model: WorkerModel }
  | { type: 'unload'; key: string };

export interface RunRequest {
  type: 'run';
  id: number;
  /** The version's session key (WorkerModel.key). */
  model: string;
  /** The batch's n images, each as floats or bytes (job.ts ModelInput). */
  images: ModelInput[];
  n: number;
  /** Also return every layer's attention probabilities (attention=cls|full, or a kept result's map). */
  attentions: boolean;
  /** Run an explanation graph for a class index per image, and answer with each
   *  image's maps instead of a rollout. */
  explain?: { classes: Float32Array; graph: ExplanationGraph };
}

export interface RunReply {
  type: 'result';
  id: number;
  logits: Float32Array; // n * classes
  rollout: Float32Array | null; // n * (tokens - prefix), heads averaged
  relevance?: Float32Array | null; // n * (tokens - prefix), for the asked classes: the default explanation
  /** The explanation methods a relevance run gives (server/engine/relevance.ts), each n * (tokens - prefix). */
  explanations?: Explanations | null;
  attentions: Float32Array[] | null; // per layer, n * heads * tokens * tokens
  heads: number;
  tokens: number;
  /** Tokens before the patches. */
  prefix: number;
  inferenceMs: number;
}

/** What an inference worker sends: its start, its log lines, and an answer (or failure) per run. */
export type InferenceMessage =
  | RunReply
  | { type: 'ready'; providers: Record<string, string>; adapters: Record<string, GpuAdapter | null>; skipped: Record<string, string> }
  | { type: 'fatal'; message: string }
  | { type: 'log'; message: string }
  | { type: 'error'; id: number; message: string }
  | { type: 'loaded'; id: number; provider: string; adapter: GpuAdapter | null }
  | { type: 'load-failed'; id: number; message: string };
