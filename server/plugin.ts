// The service as a Fastify plugin: it loads the models, starts the inference workers and the batcher,
// decorates the instance with its context (`app.vitrine`, see context.ts) and registers the routes,
// which read that context from the instance. buildApp (app.ts) puts it in a Fastify instance of its
// own; another Fastify application can register it as well.

import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import cors from '@fastify/cors';
import multipart from '@fastify/multipart';
import fastifyStatic from '@fastify/static';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Batcher } from './batcher.js';
import type { ServeConfig } from './config.js';
import type { ServiceContext } from './context.js';
import { Errors } from './errors.js';
import { Gate } from './gate.js';
import { CLASSIFY_REQUEST_BODY, errorHandling, keyMatches } from './http.js';
import { Metrics } from './metrics.js';
import { discoverModels } from './models.js';
import { WorkerPool } from './pool.js';
import { MemoryResults, type Results } from './results.js';
import { RedisResults } from './results-redis.js';
import { attentionRoutes } from './routes/attention.js';
import { classifyRoutes } from './routes/classify.js';
import { operationsRoutes } from './routes/operations.js';
import { v2Routes } from './routes/v2.js';

export interface VitrineOptions {
  config: ServeConfig;
  /** The clock results' TTLs are measured on (default Date.now). */
  now?: () => number;
}

/** The web page's folder: beside this file in the sources, and found from the build output too. */
function webRoot(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [path.join(here, 'web'), path.join(here, '..', '..', 'server', 'web')];
  return candidates.find((p) => existsSync(path.join(p, 'index.html'))) ?? candidates[0];
}

async function service(app: FastifyInstance, { config, now }: VitrineOptions): Promise<void> {
  // Models and workers.
  const models = await discoverModels(config.models, (m) => app.log.warn(m));
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
        prefixTokens: m.config.prefix_tokens ?? 1,
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
  // A model the workers could not open is left out, with the reason; the others are served.
  for (const [name, why] of Object.entries(pool.skipped)) {
    app.log.error(`skipping model ${name}: ${why}`);
    models.splice(models.findIndex((m) => m.name === name), 1);
  }
  let defaultModel = config.defaultModel;
  if (!models.some((m) => m.name === defaultModel)) {
    app.log.warn(`default model '${defaultModel}' is not under ${config.models}${pool.skipped[defaultModel] ? ' as a model that loads' : ''}; using '${models[0].name}'`);
    defaultModel = models[0].name;
  }
  for (const m of models) metrics.provider.set({ model: m.name, provider: pool.providers[m.name] ?? 'unknown' }, 1);
  const batcher = new Batcher(pool, config, {
    batch: (model, size, ms) => {
      metrics.batchSize.observe({ model }, size);
      metrics.inference.observe({ model }, ms / 1000);
    },
    depth: (model, depth) => metrics.queueDepth.set({ model }, depth),
  });
  const clock = now ?? Date.now;
  let results: Results;
  if (config.resultsStore === 'memory') results = new MemoryResults(config.resultsCapacity, config.resultsTtlS * 1000, clock);
  else {
    metrics.storeUp.set(0);
    results = new RedisResults(config.resultsStore, config.resultsTtlS * 1000, { warn: (m) => app.log.warn(m), info: (m) => app.log.info(m) }, (state) => metrics.storeUp.set(state === 'ready' ? 1 : 0));
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
    results,
    now: clock,
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
    await results.close();
  });

  // While draining, every answer closes its connection, so keep-alive clients let the server close.
  app.addHook('onSend', async (_request, reply) => {
    if (closing) reply.header('connection', 'close');
  });

  errorHandling(app, config.bodyLimit);

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
    await classifyRoutes(api);
    await attentionRoutes(api);
    await operationsRoutes(api);
  });
  // Its own context: bodies read whole whatever their type, and the protocol's error shape.
  await app.register(v2Routes);
  await app.register(fastifyStatic, { root: webRoot(), prefix: '/', index: 'index.html', schemaHide: true });
}

export const vitrine = fp(service, { name: 'vitrine', fastify: '5.x' });
