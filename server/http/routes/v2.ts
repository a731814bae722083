// The Open Inference Protocol (KServe v2) over REST: health, server and model metadata, and infer
// with JSON tensors, Triton's binary tensor data and classification extensions, and encoded images as
// a BYTES input (each decoded and preprocessed as POST /classify does). Same workers and batcher as
// /classify; errors are {"error": "..."} as the protocol has them.

import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import { Errors, ServiceError } from '../../errors.js';
import type { ServedModel } from '../../engine/models.js';
import {
  type InferRequest,
  type InputTensor,
  type OutputTensor,
  classificationCount,
  classify,
  encodeInferResponse,
  parseInferRequest,
  wantsBinary,
} from '../../oip/bodies.js';
import { imageSpec } from '../../../runtime/pixels.js';
import { prepareImage } from '../../engine/preprocess.js';
import { classifyAndExplain } from '../../engine/classify.js';
import { repositoryRoutes } from './repository.js';
import { toServiceError } from '../conventions.js';
import { VITRINE_VERSION } from '../../../runtime/version.js';

const PLATFORM = 'onnxruntime_onnx';
const EXTENSIONS = ['binary_tensor_data', 'classification'];

interface ModelParams {
  name: string;
  version?: string;
}

function outputShapes(m: ServedModel): { name: string; shape: number[] }[] {
  const heads = m.heads ?? -1;
  const tokens = m.grid ? m.grid[0] * m.grid[1] + (m.config.prefix_tokens ?? 1) : -1;
  return [
    { name: m.config.logits_output, shape: [-1, m.config.labels.length] },
    ...(m.grid ? m.config.attention_outputs.map((name) => ({ name, shape: [-1, heads, tokens, tokens] })) : []),
  ];
}

export async function v2Routes(app: FastifyInstance): Promise<void> {
  const ctx = app.vitrine;
  const { config, batcher } = ctx;
  const ready = () => ctx.pool.ready && !ctx.closing();

  /** The model's version serving now (ctx.model: 404 saying why one is not); a version asked for must be it. */
  function model(params: ModelParams): ServedModel {
    const m = ctx.model(params.name);
    if (params.version !== undefined && params.version !== String(m.version))
      throw Errors.unknownModel(`model '${m.name}' has no version '${params.version}' serving (versions: ${m.version})`);
    return m;
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
    const [h, w] = m.config.image_size;
    return {
      name: m.name,
      versions: [String(m.version)],
      platform: PLATFORM,
      inputs: [{ name: m.config.input_name, datatype: 'FP32', shape: [-1, m.config.mean.length, h, w] }],
      outputs: outputShapes(m).map((o) => ({ ...o, datatype: 'FP32' })),
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

  /** The images of the one input as normalized CHW tensors. */
  async function images(m: ServedModel, t: InputTensor, deadline: number): Promise<Float32Array[]> {
    const c = m.config;
    const [h, w] = c.image_size;
    const chw = [c.mean.length, h, w];
    const expect = `FP32 [-1, ${chw.join(', ')}] or BYTES [-1] image files`;
    const count = t.shape[0] ?? 0;
    if (count > config.maxQueue)
      throw Errors.badRequest(`input '${t.name}': ${count} images in one request; at most ${config.maxQueue} (--max-queue)`);
    if (t.datatype === 'FP32') {
      if (t.shape.length !== 4 || t.shape.slice(1).some((d, i) => d !== chw[i]))
        throw Errors.badRequest(`input '${t.name}': shape [${t.shape.join(', ')}] does not match the model's [-1, ${chw.join(', ')}]`);
      const per = chw[0] * chw[1] * chw[2];
      const data = t.numbers as Float32Array;
      return Array.from({ length: count }, (_, i) => data.slice(i * per, (i + 1) * per));
    }
    if (t.datatype === 'BYTES') {
      if (!(t.shape.length === 1 || (t.shape.length === 2 && t.shape[1] === 1)))
        throw Errors.badRequest(`input '${t.name}': BYTES images take shape [-1] or [-1, 1], got [${t.shape.join(', ')}]`);
      return Promise.all(
        t.bytes!.map(async (bytes, i) => {
          try {
            return (await prepareImage(bytes, imageSpec(c), config.maxPixels, ctx.decoders, deadline)).pixels;
          } catch (err) {
            if (err instanceof ServiceError && err.statusCode < 500)
              throw new ServiceError(
                err.code,
                `input '${t.name}' element ${i}: ${err.message}`,
                err.statusCode === 415 ? 400 : err.statusCode,
                err.headers,
              );
            throw err;
          }
        }),
      );
    }
    throw Errors.badRequest(`input '${t.name}' is ${t.datatype}; model '${m.name}' takes ${expect}`);
  }

  async function infer(request: FastifyRequest<{ Params: ModelParams }>, reply: FastifyReply) {
    const started = performance.now();
    const m = model(request.params);
    if (!ready()) throw Errors.notReady(ctx.closing() ? 'the server is shutting down' : 'the inference workers are starting');
    const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    if (body.length === 0) throw Errors.badRequest('no body: send a JSON inference request');
    const header = request.headers['inference-header-content-length'];
    const req: InferRequest = parseInferRequest(body, Array.isArray(header) ? header[0] : header);
    const inputName = m.config.input_name;
    // the parser refuses an empty 'inputs' and a name given twice: with no stray name, the one input is the model's
    const stray = req.inputs.find((t) => t.name !== inputName);
    if (stray) throw Errors.badRequest(`model '${m.name}' has no input '${stray.name}' (inputs: ${inputName})`);
    const input = req.inputs[0];
    const pixels = await images(m, input, started + config.timeoutMs);

    const available = outputShapes(m).map((o) => o.name);
    const requested = req.outputs ?? available.map((name) => ({ name, parameters: {} }));
    const seen = new Set<string>();
    for (const o of requested) {
      if (!available.includes(o.name))
        throw Errors.badRequest(`model '${m.name}' has no output '${o.name}' (outputs: ${available.join(', ')})`);
      if (seen.has(o.name)) throw Errors.badRequest(`output '${o.name}' asked twice`);
      seen.add(o.name);
    }
    const plan = requested.map((o) => ({ name: o.name, binary: wantsBinary(o, req), k: classificationCount(o) }));
    const attentions = plan.some((o) => o.name !== m.config.logits_output);

    const results = (await classifyAndExplain(batcher, m, pixels, { attentions, topk: 1 })).map((c) => c.result);
    const n = results.length;
    const outputs = plan.map(({ name, binary, k }): OutputTensor => {
      let values: Float32Array;
      let shape: number[];
      if (name === m.config.logits_output) {
        const classes = m.config.labels.length;
        values = new Float32Array(n * classes);
        results.forEach((r, i) => values.set(r.logits, i * classes));
        shape = [n, classes];
      } else {
        const layer = m.config.attention_outputs.indexOf(name);
        // with no images the shape is the declared one (a foreign model's unknown head count as 0)
        const [, heads, tokens] =
          n > 0
            ? [n, results[0].heads, results[0].tokens]
            : outputShapes(m)
                .find((o) => o.name === name)!
                .shape.map((d) => Math.max(0, d));
        const per = heads * tokens * tokens;
        values = new Float32Array(n * per);
        results.forEach((r, i) => values.set(r.attentions![layer], i * per));
        shape = [n, heads, tokens, tokens];
      }
      if (k > 0) {
        const perRow = shape.slice(1).reduce((a, b) => a * b, 1);
        const kept = Math.min(k, perRow);
        return {
          name,
          datatype: 'BYTES',
          shape: [n, kept],
          data: classify(values, n, kept, name === m.config.logits_output ? m.config.labels : []),
          binary,
        };
      }
      return { name, datatype: 'FP32', shape, data: values, binary };
    });
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
