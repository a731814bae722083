// The Open Inference Protocol's gRPC service, inference.GRPCInferenceService: health, metadata and
// ModelInfer on the same models, workers and batcher as REST (the model side is oip/infer.ts), and
// Triton's repository RPCs when models load while serving. Each RPC is a function of its request;
// server.ts adds the checks every call goes through (draining, keys) and answers.

import { Errors } from '../errors.js';
import type { Batcher } from '../engine/batcher.js';
import type { Gate } from '../gate.js';
import type { ServedModel } from '../engine/models.js';
import type { ModelRepository } from '../engine/repository.js';
import { checkVersion, modelMetadata, runInfer } from '../oip/infer.js';
import { type InferRequestMessage, toInferRequest, toInferResponse } from './messages.js';
import { VITRINE_VERSION } from '../../runtime/version.js';

/** What the gRPC service needs of the running service (http/context.ts's ServiceContext is one). */
export interface GrpcContext {
  config: {
    maxQueue: number;
    maxPixels: number;
    timeoutMs: number;
    modelControl: string;
    apiKey: string | null;
    adminToken: string | null;
  };
  pool: { ready: boolean };
  batcher: Batcher;
  decoders: Gate;
  repository: ModelRepository;
  /** The named model; 404 (NOT_FOUND here) for one not served, saying why. */
  model(name?: string): ServedModel;
  closing(): boolean;
  /** Work answered outside HTTP: the service waits for it before its workers stop. */
  work: Set<Promise<unknown>>;
}

/** Who may call an RPC: anyone, holders of the API key (when set), or the repository's admins. */
export type Access = 'open' | 'api' | 'admin';

export interface Rpc {
  access: Access;
  /** Answers while the server drains (health and metadata), where the others are UNAVAILABLE. */
  whileDraining?: boolean;
  run(request: never, deadline: number): Promise<object>;
}

const rpc = <T>(access: Access, run: (request: T, deadline: number) => Promise<object>, whileDraining = false): Rpc => ({
  access,
  whileDraining,
  run: run as Rpc['run'],
});

export function inferenceService(ctx: GrpcContext, draining: () => boolean): Record<string, Rpc> {
  const ready = () => ctx.pool.ready && !ctx.closing() && !draining();
  const model = (name: string, version: string) => {
    if (name === '') throw Errors.badRequest("no model name: set the request's name (model_name for ModelInfer)");
    return checkVersion(ctx.model(name), version);
  };
  const extensions = ctx.config.modelControl === 'none' ? ['classification'] : ['classification', 'model_repository'];
  const repository = () => {
    if (ctx.config.modelControl === 'none')
      throw Errors.notImplemented('the model repository RPCs need vitrine serve --model-control explicit (or poll)');
    return ctx.repository;
  };
  return {
    ServerLive: rpc('open', async () => ({ live: true }), true),
    ServerReady: rpc('open', async () => ({ ready: ready() }), true),
    ServerMetadata: rpc('open', async () => ({ name: 'vitrine', version: VITRINE_VERSION, extensions }), true),
    ModelReady: rpc<{ name: string; version: string }>(
      'api',
      async (r) => {
        model(r.name, r.version);
        return { ready: ready() };
      },
      true,
    ),
    ModelMetadata: rpc<{ name: string; version: string }>('api', async (r) => modelMetadata(model(r.name, r.version)), true),
    ModelInfer: rpc<InferRequestMessage>('api', async (msg, deadline) => {
      const m = model(msg.model_name, msg.model_version);
      if (!ready())
        throw Errors.notReady(ctx.closing() || draining() ? 'the server is shutting down' : 'the inference workers are starting');
      const { request, raw } = toInferRequest(msg);
      const outputs = await runInfer(ctx, m, request, { deadline, binary: () => raw });
      return toInferResponse({ model_name: m.name, model_version: String(m.version), id: msg.id }, outputs);
    }),
    RepositoryIndex: rpc<{ ready: boolean }>('admin', async (r) => {
      const entries = await repository().index();
      return { models: r.ready ? entries.filter((e) => e.state === 'READY') : entries };
    }),
    RepositoryModelLoad: rpc<{ model_name: string }>('admin', async (r) => {
      await repository().load(r.model_name);
      return {};
    }),
    RepositoryModelUnload: rpc<{ model_name: string }>('admin', async (r) => {
      await repository().unload(r.model_name);
      return {};
    }),
  };
}
