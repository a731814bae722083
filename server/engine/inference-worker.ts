// An inference worker thread: owns one ONNX Runtime session per model (session.run blocks the thread it
// runs on, so it never runs on the event loop) and answers batches with logits, the default attention
// rollout and, when asked, every layer's attention probabilities.

import { parentPort, workerData } from 'node:worker_threads';
import { type Session, createSession, runSession } from '../../runtime/ort.js';
import type { GpuAdapter } from '../../runtime/gpu.js';
import { requireNames, requireShapes } from './model-checks.js';
import { lowerThreadPriority } from '../../runtime/thread-priority.js';
import { batchInput, own, rollouts } from './worker-arrays.js';
import { combinedRelevance, gradInputInto, lastLayerRelevanceInto, relevanceInto } from './relevance.js';
import {
  CRASH,
  type InferenceMessage,
  type RunReply,
  type RunRequest,
  type WorkerCommand,
  type WorkerInit,
  type WorkerModel,
} from './inference-protocol.js';

const init = workerData as WorkerInit & { control: SharedArrayBuffer };
const control = new Int32Array(init.control);
// before any session: ONNX Runtime's own threads start at this thread's priority
lowerThreadPriority(init.nice);
const send = (m: InferenceMessage, transfer: ArrayBuffer[] = []) => parentPort!.postMessage(m, transfer);
/** A model's sessions: the model's, and its full and light explanation graphs' where it has them; and
 *  the float array its batches are made in, kept from run to run so that its pages (600 KB an image
 *  at 224 px) are not faulted in afresh for every batch. */
type Sessions = { session: Session; model: WorkerModel; full: Session | null; light: Session | null; batch: Float32Array };
const sessions = new Map<string, Sessions>();

/** Opens a model's sessions and checks its names; a model that fails is skipped, with the reason. */
async function open(m: WorkerModel): Promise<void> {
  const load = async (file: string, log?: (l: string) => void) => {
    const s = await createSession(file, { device: init.device, threads: init.threads, log }).catch((err: Error) => {
      throw new Error(`model ${m.name}: ${file} cannot be loaded: ${err.message.split('\n')[0]}`);
    });
    if (s.cpuNodes.length > 0)
      send({
        type: 'log',
        message:
          `model ${m.name}: ${file} has ${s.cpuNodes.length} node(s) that the ` +
          `${s.provider} provider cannot run; they run on the CPU ` +
          `(${s.cpuNodes.join(', ')})`,
      });
    return s;
  };
  const session = await load(m.file, (l) => send({ type: 'log', message: l }));
  requireNames(m, m.file, session, [m.inputName], [m.logitsOutput, ...m.attentionOutputs, ...(m.rolloutOutput ? [m.rolloutOutput] : [])]);
  requireShapes(m, m.file, session);
  let full: Session | null = null;
  let light: Session | null = null;
  if (m.explanation) {
    const r = m.explanation;
    full = await load(r.file);
    requireNames(
      m,
      r.file,
      full,
      [m.inputName, r.classInput],
      [m.logitsOutput, ...m.attentionOutputs, ...r.gradientOutputs, ...(r.inputGradientOutput ? [r.inputGradientOutput] : [])],
    );
    requireShapes(m, r.file, full);
    if (r.lightFile) {
      light = await load(r.lightFile);
      requireNames(m, r.lightFile, light, [m.inputName, r.classInput], [m.logitsOutput, ...m.attentionOutputs, r.gradientOutputs.at(-1)!]);
    }
  }
  sessions.set(m.key, { session, model: m, full, light, batch: new Float32Array(0) });
  providers[m.name] = session.provider;
  adapters[m.name] = session.adapter;
}

const providers: Record<string, string> = {};
const adapters: Record<string, GpuAdapter | null> = {};

async function start(): Promise<void> {
  const skipped: Record<string, string> = {};
  for (const m of init.models) await open(m).catch((err: Error) => (skipped[m.name] = err.message));
  if (sessions.size === 0) throw new Error(Object.values(skipped).join('; '));
  send({ type: 'ready', providers, adapters, skipped });
}

/** The batch's input, in the model's kept array (grown to the largest batch yet). The pool sends a
 *  worker one run at a time; should a second come while one is in flight, it gets an array of its own. */
function batchOf(s: Sessions, req: RunRequest): Float32Array {
  if (running > 1) return batchInput(s.model, req.images);
  const need = req.n * s.model.inputDims.reduce((a, b) => a * b, 1);
  if (s.batch.length < need) s.batch = new Float32Array(need);
  return batchInput(s.model, req.images, s.batch);
}

/** An explanation graph for each image's asked class: logits and the default explanation (the last
 *  block's gradient-weighted attention rolled out, relevance.ts lastLayerRelevanceInto), from the
 *  light graph when the model has one and the run asks for it; a full run adds Chefer's relevance,
 *  gradient x input when the graph gives the input's gradient, and with the rollout of the same
 *  attentions their combination. Computed here, off the event loop. */
async function runRelevance(req: RunRequest, s: Sessions): Promise<RunReply> {
  const { model } = s;
  if (!s.full || !model.explanation) throw new Error(`model ${model.name} has no explanation graph`);
  const r = model.explanation;
  const lastGradient = r.gradientOutputs.at(-1)!;
  const light = req.explain!.graph === 'light' && s.light ? s.light : null;
  const inputGrad = !light && r.inputGradientOutput && model.grid ? r.inputGradientOutput : null;
  const pixels = batchOf(s, req);
  const t0 = performance.now();
  const out = await runSession(
    light ?? s.full,
    {
      [model.inputName]: { data: pixels, dims: [req.n, ...model.inputDims] },
      [r.classInput]: { data: req.explain!.classes, dims: [req.n] },
    },
    [model.logitsOutput, ...model.attentionOutputs, ...(light ? [lastGradient] : r.gradientOutputs), ...(inputGrad ? [inputGrad] : [])],
  );
  const inferenceMs = performance.now() - t0;
  if (Atomics.load(control, 0) === CRASH) process.exit(1);
  const logits = own(out[model.logitsOutput].data);
  const [, heads, tokens] = out[model.attentionOutputs[0]].dims as number[];
  const layers = model.attentionOutputs.map((n) => out[n].data);
  const prefix = model.prefixTokens;
  const patches = tokens - prefix;
  const relevance = new Float32Array(req.n * patches);
  for (let i = 0; i < req.n; i++) lastLayerRelevanceInto(layers, out[lastGradient].data, i, heads, tokens, relevance, i * patches, prefix);
  const reply = {
    type: 'result',
    id: req.id,
    logits,
    rollout: null,
    relevance,
    attentions: null,
    heads,
    tokens,
    prefix,
    inferenceMs,
  } as const;
  if (light) return { ...reply, explanations: null };
  const grads = r.gradientOutputs.map((n) => out[n].data);
  const chefer = new Float32Array(req.n * patches);
  for (let i = 0; i < req.n; i++) relevanceInto(layers, grads, i, heads, tokens, chefer, i * patches, prefix);
  let gradInput: Float32Array | null = null;
  if (inputGrad) {
    gradInput = new Float32Array(req.n * patches);
    for (let i = 0; i < req.n; i++) gradInputInto(pixels, out[inputGrad].data, i, model.inputDims, model.grid!, gradInput, i * patches);
  }
  const combined = gradInput ? combinedRelevance(chefer, rollouts(layers, req.n, heads, tokens, prefix), gradInput, patches) : null;
  return { ...reply, explanations: { chefer, gradInput, combined } };
}

async function run(req: RunRequest): Promise<RunReply> {
  const s = sessions.get(req.model);
  if (!s) throw new Error(`unknown model ${req.model}`);
  if (req.explain) return runRelevance(req, s);
  const { model } = s;
  const wantRollout = model.attentionOutputs.length > 0;
  // a graph that gives the rollout itself (config.json rollout_output) is asked for its attentions only
  // when the request needs them: the default map then costs no copy of every layer's attentions
  const given = wantRollout ? (model.rolloutOutput ?? null) : null;
  const attentionOutputs = wantRollout && (!given || req.attentions) ? model.attentionOutputs : [];
  const outputs = [model.logitsOutput, ...attentionOutputs, ...(given ? [given] : [])];
  const pixels = batchOf(s, req);
  const t0 = performance.now();
  const out = await runSession(s.session, { [model.inputName]: { data: pixels, dims: [req.n, ...model.inputDims] } }, outputs);
  const inferenceMs = performance.now() - t0;
  if (Atomics.load(control, 0) === CRASH) process.exit(1);
  const logits = own(out[model.logitsOutput].data);
  if (logits.length !== req.n * model.classes)
    throw new Error(
      `model ${model.name}: ${model.logitsOutput} has ${logits.length / req.n} values per image, config.json names ${model.classes} labels`,
    );
  if (!wantRollout)
    return { type: 'result', id: req.id, logits, rollout: null, attentions: null, heads: 0, tokens: 0, prefix: 0, inferenceMs };
  const prefix = model.prefixTokens;
  const layers = attentionOutputs.map((n) => out[n].data);
  const [, heads, tokens] = layers.length > 0 ? (out[attentionOutputs[0]].dims as number[]) : [0, 0, out[given!].dims[1] + prefix];
  return {
    type: 'result',
    id: req.id,
    logits,
    rollout: given ? own(out[given].data) : rollouts(layers, req.n, heads, tokens, prefix),
    attentions: req.attentions ? layers.map(own) : null,
    heads,
    tokens,
    prefix,
    inferenceMs,
  };
}

/** A version loaded while serving: its sessions opened beside the others (unload releases them). */
async function load(id: number, m: WorkerModel): Promise<void> {
  try {
    await open(m);
    send({ type: 'loaded', id, provider: providers[m.name], adapter: adapters[m.name] ?? null });
  } catch (err) {
    send({ type: 'load-failed', id, message: (err as Error).message });
  }
}

async function unload(key: string): Promise<void> {
  const s = sessions.get(key);
  sessions.delete(key);
  if (!s) return;
  for (const session of [s.session, s.full, s.light]) await session?.session.release().catch(() => {});
}

// session.run finishes on ONNX Runtime's side while this thread takes messages, so a stop waits for
// the runs in progress to be answered.
let running = 0;
let stopping = false;
parentPort!.on('message', (req: RunRequest | WorkerCommand) => {
  if (req.type === 'crash' && running === 0) process.exit(1);
  if (req.type === 'stop' || req.type === 'crash') {
    stopping = true;
    if (running === 0) process.exit(0);
    return;
  }
  if (req.type === 'load') return void load(req.id, req.model);
  if (req.type === 'unload') return void unload(req.key);
  running++;
  run(req)
    .then(
      (reply) =>
        send(reply, [
          reply.logits.buffer,
          ...(reply.rollout ? [reply.rollout.buffer] : []),
          ...(reply.relevance ? [reply.relevance.buffer] : []),
          ...(reply.explanations
            ? [reply.explanations.chefer, reply.explanations.gradInput, reply.explanations.combined].flatMap((a) => (a ? [a.buffer] : []))
            : []),
          ...(reply.attentions ?? []).map((a) => a.buffer),
        ] as ArrayBuffer[]),
      (err: Error) => send({ type: 'error', id: req.id, message: err.message }),
    )
    .catch((err: Error) => send({ type: 'error', id: req.id, message: `the result could not be sent: ${err.message}` }))
    .finally(() => {
      running--;
      if (stopping && running === 0) process.exit(0);
    });
});

start().catch((err: Error) => send({ type: 'fatal', message: err.message }));
