// The service as a Fastify app: buildApp() loads the models, starts the inference workers and
// registers the routes; it listens on no port (server.ts does), so tests drive it with inject().

import { timingSafeEqual } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify, { FastifyError, FastifyInstance, LogController } from 'fastify';
import cors from '@fastify/cors';
import multipart from '@fastify/multipart';
import fastifyStatic from '@fastify/static';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { Batcher } from './batcher.js';
import { Gate } from './gate.js';
import { ServeConfig } from './config.js';
import { Errors, ServiceError, errorBody } from './errors.js';
import { Metrics } from './metrics.js';
import { discoverModels } from './models.js';
import { WorkerPool } from './pool.js';
import { ResultStore } from './results.js';
import { RedisResults } from './results-redis.js';
import type { ServiceContext } from './context.js';
import { attentionRoutes } from './routes/attention.js';
import { classifyRoutes } from './routes/classify.js';
import { operationsRoutes } from './routes/operations.js';
import { v2Routes } from './routes/v2.js';

/** The web page's folder: beside this file in the sources, and found from the build output too. */
function webRoot(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [path.join(here, 'web'), path.join(here, '..', '..', 'server', 'web')];
  return candidates.find((p) => existsSync(path.join(p, 'index.html'))) ?? candidates[0];
}

const binary = { type: 'string', format: 'binary' };
const CLASSIFY_REQUEST_BODY = {
  required: true,
  description: 'The image: a multipart form with the file in field `image`, or the raw bytes (PNG, JPEG, WebP, GIF, AVIF, TIFF; the format is sniffed).',
  content: {
    'multipart/form-data': { schema: { type: 'object', properties: { image: { ...binary, description: 'the image file' } }, required: ['image'] } },
    'image/*': { schema: binary },
    'application/octet-stream': { schema: binary },
  },
};

function keyMatches(header: string | undefined, key: string): boolean {
  const m = /^Bearer (.+)$/i.exec(header ?? '');
  if (!m) return false;
  const a = Buffer.from(m[1]);
  const b = Buffer.from(key);
  return a.length === b.length && timingSafeEqual(a, b);
}

export interface BuildOptions {
  logger?: boolean | object;
  /** The clock results' TTLs are measured on (default Date.now): tests move it instead of waiting. */
  now?: () => number;
}

export async function buildApp(config: ServeConfig, opts: BuildOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: opts.logger ?? { level: config.logLevel },
    bodyLimit: config.bodyLimit,
    // One line per request comes from the onResponse hook below instead of two from Fastify.
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
    ajv: { customOptions: { coerceTypes: true, removeAdditional: false, useDefaults: true } },
  });

  // Models and workers.
  const models = await discoverModels(config.models, (m) => app.log.warn(m));
  let defaultModel = config.defaultModel;
  if (!models.some((m) => m.name === defaultModel)) {
    app.log.warn(`default model '${defaultModel}' is not under ${config.models}; using '${models[0].name}'`);
    defaultModel = models[0].name;
  }
  const metrics = new Metrics();
  const pool = new WorkerPool(
    {
      device: config.device,
      threads: config.threads,
      models: models.map((m) => ({
        name: m.name,
        file: m.file,
        inputName: m.config.input_name,
        logitsOutput: m.config.logits_output,
        attentionOutputs: m.grid ? m.config.attention_outputs : [],
        inputDims: [m.config.mean.length, m.config.image_size[0], m.config.image_size[1]],
        classes: m.config.labels.length,
        ...(m.relevance && m.config.relevance ? { relevance: { file: m.relevance, classInput: m.config.relevance.class_input, gradientOutputs: m.config.relevance.gradient_outputs } } : {}),
      })),
    },
    config.workers,
    { info: (m) => app.log.info(m), error: (m) => app.log.error(m) },
  );
  pool.on('lost', () => metrics.workerRestarts.inc());
  try {
    await pool.start();
  } catch (err) {
    await pool.close();
    throw err;
  }
  for (const m of models) metrics.provider.set({ model: m.name, provider: pool.providers[m.name] ?? 'unknown' }, 1);
  // Slots for the results of batches still running: each worker runs one batch at a time.
  const store = new ResultStore(config.resultsCapacity, config.resultsTtlS * 1000, config.workers * config.maxBatch, opts.now);
  const batcher = new Batcher(pool, config, {
    batch: (model, size, ms) => {
      metrics.batchSize.observe({ model }, size);
      metrics.inference.observe({ model }, ms / 1000);
    },
    depth: (model, depth) => metrics.queueDepth.set({ model }, depth),
  }, store);
  let remote: RedisResults | null = null;
  if (config.resultsStore !== 'memory') {
    metrics.storeUp.set(0);
    remote = new RedisResults(config.resultsStore, config.resultsTtlS * 1000, { warn: (m) => app.log.warn(m), info: (m) => app.log.info(m) }, (state) => metrics.storeUp.set(state === 'ready' ? 1 : 0));
  }
  const decoders = new Gate(config.decoders, config.maxQueue);
  metrics.decodeSource = decoders;
  let closing = false;
  const ctx: ServiceContext = {
    config,
    models,
    defaultModel,
    pool,
    batcher,
    store,
    remote,
    decoders,
    metrics,
    model: (name) => {
      const m = models.find((x) => x.name === (name ?? defaultModel));
      if (!m) throw Errors.unknownModel(`no model '${name}' (served: ${models.map((x) => x.name).join(', ')})`);
      return m;
    },
    closing: () => closing,
  };
  app.decorate('vitrine', ctx);
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onClose', async () => {
    await batcher.drained();
    batcher.close();
    await pool.close();
    await remote?.close();
  });

  // One error shape for everything.
  app.setErrorHandler((err: FastifyError | ServiceError, request, reply) => {
    let e: ServiceError;
    if (err instanceof ServiceError) e = err;
    else if (err.validation) {
      const v = err.validation[0];
      const params = v?.params as { allowedValues?: unknown[]; additionalProperty?: string } | undefined;
      const allowed = params?.allowedValues;
      if (v?.keyword === 'additionalProperties' && params?.additionalProperty) {
        // name the stray parameter and what this route takes
        const schema = request.routeOptions.schema?.[err.validationContext === 'querystring' ? 'querystring' : 'params'] as { properties?: Record<string, unknown> } | undefined;
        const known = Object.keys(schema?.properties ?? {});
        e = Errors.badRequest(`unknown ${err.validationContext === 'querystring' ? 'query parameter' : 'parameter'} '${params.additionalProperty}'${known.length ? ` (accepted: ${known.join(', ')})` : ''}`);
      } else e = Errors.badRequest(`${err.validationContext ?? 'request'} ${v?.instancePath ?? ''} ${v?.message ?? err.message}${allowed ? `: ${allowed.join(', ')}` : ''}`.replace(/\s+/g, ' ').trim());
    }
    else if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE' || err.statusCode === 413) e = Errors.tooLarge(`the body is larger than ${config.bodyLimit} bytes`);
    else if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' || err.statusCode === 415) e = Errors.unsupportedMedia(`unsupported content type '${request.headers['content-type'] ?? ''}': send multipart/form-data (field image) or the raw image with an image/* type`);
    else if (err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || (err.statusCode && err.statusCode >= 400 && err.statusCode < 500)) e = new ServiceError('VIT_BAD_REQUEST', err.message, err.statusCode ?? 400);
    else {
      request.log.error({ err }, 'unhandled error');
      e = Errors.internal('internal error');
    }
    if (e.statusCode >= 500) request.log.warn({ code: e.code, url: request.url }, e.message);
    return reply.code(e.statusCode).headers(e.headers).send(errorBody(e.statusCode, e.code, e.message));
  });
  app.setNotFoundHandler((request, reply) => {
    const url = request.url.split('?')[0];
    // a known path asked with the wrong method: 405 with the methods it takes
    const methods = (['GET', 'POST', 'PUT', 'DELETE', 'PATCH'] as const).filter((m) => m !== request.method && app.hasRoute({ method: m, url }));
    if (methods.length > 0) return reply.code(405).header('allow', methods.join(', ')).send(errorBody(405, 'VIT_METHOD_NOT_ALLOWED', `${request.method} ${url} is not served: use ${methods.join(' or ')}`));
    return reply.code(404).send(errorBody(404, 'VIT_NOT_FOUND', `no route ${request.method} ${url}`));
  });

  // While draining, every answer closes its connection, so keep-alive clients let the server close.
  app.addHook('onSend', async (_request, reply) => {
    if (closing) reply.header('connection', 'close');
  });

  // Request metrics and one log line per request.
  app.addHook('onRequest', async () => {
    metrics.inFlight.inc();
  });
  app.addHook('onResponse', async (request, reply) => {
    metrics.inFlight.dec();
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.requests.inc({ route, method: request.method, status: String(reply.statusCode) });
    metrics.latency.observe({ route }, reply.elapsedTime / 1000);
    request.log.info({ method: request.method, url: request.url, status: reply.statusCode, ms: +reply.elapsedTime.toFixed(2) }, 'request');
  });
  if (config.apiKey) {
    const key = config.apiKey;
    app.addHook('onRequest', async (request) => {
      if (request.routeOptions.config.auth && !keyMatches(request.headers.authorization, key)) throw Errors.unauthorized('missing or wrong API key: send Authorization: Bearer <key>');
    });
  }

  // Bodies: multipart, or raw image bytes.
  await app.register(multipart, { limits: { fileSize: config.bodyLimit, files: 1, fields: 10, parts: 12 } });
  app.addContentTypeParser(/^image\/.+/, { parseAs: 'buffer', bodyLimit: config.bodyLimit }, (_req, body, done) => done(null, body));
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer', bodyLimit: config.bodyLimit }, (_req, body, done) => done(null, body));
  if (config.corsOrigin.length > 0) await app.register(cors, { origin: config.corsOrigin.includes('*') ? '*' : config.corsOrigin });

  await app.register(swagger, {
    openapi: {
      info: { title: 'vitrine', description: 'Vision Transformer inference with attention maps', version: '0.1.0' },
      ...(config.apiKey ? { components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } }, security: [{ bearer: [] }] } : {}),
    },
    // POST /classify reads its body itself (multipart or raw bytes), so no body schema validates it;
    // the document still says what to send, so that "Try it out" can upload a file.
    transformObject: (doc) => {
      const spec = 'openapiObject' in doc ? doc.openapiObject : doc.swaggerObject;
      const post = (spec.paths as Record<string, Record<string, Record<string, unknown>>> | undefined)?.['/classify']?.post;
      if (post) post.requestBody = CLASSIFY_REQUEST_BODY;
      return spec;
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  await app.register(async (api) => {
    await classifyRoutes(api, ctx);
    await attentionRoutes(api, ctx);
    await operationsRoutes(api, ctx);
  });
  // Its own context: bodies read whole whatever their type, and the protocol's error shape.
  await app.register(async (v2) => v2Routes(v2, ctx));
  await app.register(fastifyStatic, { root: webRoot(), prefix: '/', index: 'index.html', schemaHide: true });
  await app.ready();
  return app;
}
