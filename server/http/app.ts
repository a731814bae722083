// The service as a Fastify app: buildApp() makes a Fastify instance with the service's settings and
// registers the service (plugin.ts) in it; it listens on no port (server.ts does), so tests drive it
// with inject().

import Fastify, { type FastifyInstance, LogController } from 'fastify';
import type { ServeConfig } from '../config.js';
import { vitrine } from './plugin.js';

export interface BuildOptions {
  logger?: boolean | object;
  /** The clock results' TTLs are measured on (default Date.now): tests move it instead of waiting. */
  now?: () => number;
}

export async function buildApp(config: ServeConfig, opts: BuildOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: opts.logger ?? { level: config.logLevel },
    bodyLimit: config.bodyLimit,
    requestTimeout: config.requestTimeoutMs,
    keepAliveTimeout: config.keepAliveTimeoutMs,
    // Node.js checks those deadlines every connectionsCheckingInterval (30 s by default); the headers
    // get at most 10 s of the request's time.
    http: {
      connectionsCheckingInterval: 1000,
      headersTimeout: Math.min(10_000, config.requestTimeoutMs || 10_000),
      requestTimeout: config.requestTimeoutMs,
    },
    // One line per request comes from the service's onResponse hook (plugin.ts) instead of two from Fastify.
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
    // The service's plugin loads every model and starts the workers before it is ready: a ViT-B/16
    // beside another model took over Fastify's default 10 s, which killed the start. Loading has its
    // own failures (a model that cannot load is skipped, with the reason), so no timeout here.
    pluginTimeout: 0,
    ajv: { customOptions: { coerceTypes: true, removeAdditional: false, useDefaults: true } },
  });

  await app.register(vitrine, { config, now: opts.now });
  await app.ready();
  return app;
}
