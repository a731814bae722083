// The Open Inference Protocol (KServe v2) over REST: health, server and model metadata, and infer
// with JSON tensors, Triton's binary tensor data and classification extensions, and encoded images as
// a BYTES input (each decoded and preprocessed as POST /classify does). Same workers and batcher as
// /classify; errors are {"error": "..."} as the protocol has them.

import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import { Errors, type ServiceError } from '../../errors.js';
import type { ServedModel } from '../../engine/models.js';
import { type InferRequest, encodeInferResponse, parseInferRequest, wantsBinary } from '../../oip/bodies.js';
import { checkVersion, modelMetadata, runInfer } from '../../oip/infer.js';
import { repositoryRoutes } from './repository.js';
import { toServiceError } from '../conventions.js';
import { VITRINE_VERSION } from '../../../runtime/version.js';

const EXTENSIONS = ['binary_tensor_data', 'classification'];

interface ModelParams {
  name: string;
  version?: string;
}

export async function v2Routes(app: FastifyInstance): Promise<void> {
  const ctx = app.vitrine;
  const { config } = ctx;
  const ready = () => ctx.pool.ready && !ctx.closing();

  /** The model's version serving now (ctx.model: 404 saying why one is not); a version asked for must be it. */
  function model(params: ModelParams): ServedModel {
    return checkVersion(ctx.model(params.name), params.version);
  }

  // Bodies are read whole whatever their type: JSON alone, or a JSON header and binary tensors.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: config.bodyLimit }, (_req, body, done) => done(null, body));

  // The protocol's error shape: { error: message }.
  app.setErrorHandler((err: FastifyError | ServiceError, request, reply) => {
    const e = toServiceError(err, request, config.bodyLimit);
    return reply.code(e.statusCode).headers(e.headers).send({ error: e.message });
  });

  const ErrorBody = Type.Object({ error: Type.String() });
  const Params = Type.Object({ name: Type.String({ minLength: 1 }), version: Type.Optional(Type.String({ minLength: 1 })) });

  app.get('/v2', { schema: { summary: 'Open Inference Protocol: server metadata', tags: ['v2'] } }, async () => ({
    name: 'vitrine',
    version: VITRINE_VERSION,
    extensions: config.modelControl === 'none' ? EXTENSIONS : [...EXTENSIONS, 'model_repository'],
  }));
  app.get('/v2/health/live', { schema: { summary: 'Open Inference Protocol: liveness', tags: ['v2'] } }, async () => ({ live: true }));
  app.get(
    '/v2/health/ready',
    { schema: { summary: 'Open Inference Protocol: readiness (503 until every worker is up, and while draining)', tags: ['v2'] } },
    async (_req, reply) => reply.code(ready() ? 200 : 503).send({ ready: ready() }),
  );

  const metadata = async (request: FastifyRequest<{ Params: ModelParams }>) => {
    const m = model(request.params);
    return {
      ...modelMetadata(m),
      parameters: {
        labels: m.config.labels,
        image_input:
          `the input '${m.config.input_name}' also takes BYTES of shape [-1] (or ` +
          `[-1, 1]): encoded images, preprocessed as POST /classify does`,
        provider: ctx.pool.deviceOf(m.name).provider,
      },
    };
  };
  const modelReady = async (request: FastifyRequest<{ Params: ModelParams }>, reply: FastifyReply) => {
    const m = model(request.params);
    return reply.code(ready() ? 200 : 503).send({ name: m.name, ready: ready() });
  };
  for (const prefix of ['/v2/models/:name', '/v2/models/:name/versions/:version']) {
    app.get<{ Params: ModelParams }>(
      prefix,
      {
        config: { auth: true },
        schema: { summary: 'Open Inference Protocol: model metadata', tags: ['v2'], params: Params, response: { 404: ErrorBody } },
      },
      metadata,
    );
    app.get<{ Params: ModelParams }>(
      `${prefix}/ready`,
      { config: { auth: true }, schema: { summary: 'Open Inference Protocol: model readiness', tags: ['v2'], params: Params } },
      modelReady,
    );
    app.post<{ Params: ModelParams }>(
      `${prefix}/infer`,
      {
        config: { auth: true },
        schema: { summary: 'Open Inference Protocol: inference (JSON or binary tensors; BYTES images)', tags: ['v2'], params: Params },
      },
      (request, reply) => infer(request, reply),
    );
  }

  if (config.modelControl !== 'none') await repositoryRoutes(app);

  async function infer(request: FastifyRequest<{ Params: ModelParams }>, reply: FastifyReply) {
    const started = performance.now();
    const m = model(request.params);
    if (!ready()) throw Errors.notReady(ctx.closing() ? 'the server is shutting down' : 'the inference workers are starting');
    const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    if (body.length === 0) throw Errors.badRequest('no body: send a JSON inference request');
    const header = request.headers['inference-header-content-length'];
    const req: InferRequest = parseInferRequest(body, Array.isArray(header) ? header[0] : header);
    const outputs = await runInfer(ctx, m, req, { deadline: started + config.timeoutMs, binary: (o) => wantsBinary(o, req) });
    const encoded = encodeInferResponse(
      { model_name: m.name, model_version: String(m.version), ...(req.id !== undefined ? { id: req.id } : {}) },
      outputs,
    );
    if ('json' in encoded) return reply.type('application/json').send(encoded.json);
    return reply
      .header('inference-header-content-length', String(encoded.headerLength))
      .type('application/octet-stream')
      .send(encoded.body);
  }
}
