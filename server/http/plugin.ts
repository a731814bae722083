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
import type { ServeConfig } from '../config.js';
import { Errors } from '../errors.js';
import { CLASSIFY_REQUEST_BODY, errorHandling } from './conventions.js';
import { bearerMatches } from '../auth.js';
import { attentionRoutes } from './routes/attention.js';
import { classifyRoutes } from './routes/classify.js';
import { operationsRoutes } from './routes/operations.js';
import { v2Routes } from './routes/v2.js';
import { createServiceContext } from './service.js';
import { VITRINE_VERSION } from '../../runtime/version.js';

export interface VitrineOptions {
  config: ServeConfig;
  /** The clock results' TTLs are measured on (default Date.now). */
  now?: () => number;
}

/** The web page's folder, server/web: found from the sources and from the build output (dist/server/http). */
function webRoot(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [path.join(here, '..', 'web'), path.join(here, '..', '..', '..', 'server', 'web')];
  return candidates.find((p) => existsSync(path.join(p, 'index.html'))) ?? candidates[0];
}

/** Requests a connection may have pending (pipelined, their answers not yet flushed) before it is closed. */
export const MAX_PIPELINED = 64;

async function service(app: FastifyInstance, { config, now }: VitrineOptions): Promise<void> {
  const { ctx, markClosing, close } = await createServiceContext(config, { now, log: app.log });
  const { metrics } = ctx;
  app.decorate('vitrine', ctx);
  app.addHook('preClose', async () => markClosing());
  app.addHook('onClose', close);

  // While draining, every answer closes its connection, so keep-alive clients let the server close.
  app.addHook('onSend', async (_request, reply) => {
    if (ctx.closing()) reply.header('connection', 'close');
  });

  errorHandling(app, config.bodyLimit);

  // A budget for the bodies being received at once: a request whose body would take the total past it
  // is answered 503 before its body is read (it declares its length; without one it counts as the
  // body limit), and its share comes back when its answer is sent or its connection closes.
  let bodiesInFlight = 0;
  app.addHook('onRequest', async (request, reply) => {
    const declared = Number(request.headers['content-length']);
    const hasBody = request.headers['transfer-encoding'] !== undefined || declared > 0;
    if (!hasBody) return;
    const share = Math.min(Number.isFinite(declared) && declared > 0 ? declared : config.bodyLimit, config.bodyLimit);
    if (bodiesInFlight + share > config.maxBodyBytesInFlight) {
      throw Errors.overloaded(
        `the request bodies in flight would exceed ${config.maxBodyBytesInFlight} bytes (--max-body-bytes-in-flight); retry shortly`,
        { 'retry-after': '1' },
      );
    }
    bodiesInFlight += share;
    // the answer's close: sent, or its connection gone (a timeout included)
    reply.raw.once('close', () => (bodiesInFlight -= share));
  });

  // A client that pipelines requests and never reads the answers would have them all made and held
  // (Node.js queues each answer until the one before it is flushed; 8 such connections held ~600 MB,
  // kept after they closed): a connection with more answers pending than this is closed instead.
  const pending = new WeakMap<object, number>();
  app.addHook('onRequest', async (request, reply) => {
    const socket = request.raw.socket;
    const n = (pending.get(socket) ?? 0) + 1;
    pending.set(socket, n);
    if (n > MAX_PIPELINED) {
      if (!socket.destroyed)
        request.log.warn(`closing a connection with ${n} requests pending: its client sends without reading the answers`);
      socket.destroy();
      // the requests already parsed from what it sent are not handled either
      reply.hijack();
    }
  });
  app.addHook('onResponse', async (request) => {
    const socket = request.raw.socket;
    pending.set(socket, Math.max(0, (pending.get(socket) ?? 1) - 1));
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
      if (request.routeOptions.config.auth && !bearerMatches(request.headers.authorization, key))
        throw Errors.unauthorized('missing or wrong API key: send Authorization: Bearer <key>');
    });
  }

  // Bodies: multipart, or raw image bytes.
  await app.register(multipart, { limits: { fileSize: config.bodyLimit, files: 1, fields: 10, parts: 12 } });
  app.addContentTypeParser(/^image\/.+/, { parseAs: 'buffer', bodyLimit: config.bodyLimit }, (_req, body, done) => done(null, body));
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer', bodyLimit: config.bodyLimit }, (_req, body, done) =>
    done(null, body),
  );
  if (config.corsOrigin.length > 0) await app.register(cors, { origin: config.corsOrigin.includes('*') ? '*' : config.corsOrigin });

  await app.register(swagger, {
    openapi: {
      info: { title: 'vitrine', description: 'Vision Transformer inference with attention maps', version: VITRINE_VERSION },
      ...(config.apiKey ? { components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } } } : {}),
    },
    // With a key, the routes that need it say so, and only those.
    transform: ({ schema, url, route }) => ({
      schema: config.apiKey && (route.config as { auth?: boolean } | undefined)?.auth ? { ...schema, security: [{ bearer: [] }] } : schema,
      url,
    }),
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
