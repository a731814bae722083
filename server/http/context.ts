// What the routes share: the configuration, the models, the workers and their batcher, the results
// stores, the decode gate and the metrics. Its own module, so that app.ts (which builds it) and the
// routes (which read it) do not import each other.

import type { Batcher } from '../engine/batcher.js';
import type { ServeConfig } from '../config.js';
import type { Drawers } from '../drawing/draws.js';
import type { Gate } from '../gate.js';
import type { Metrics } from './metrics.js';
import type { ServedModel } from '../engine/models.js';
import type { WorkerPool } from '../engine/pool.js';
import type { ModelRepository } from '../engine/repository.js';
import type { Results } from '../results/store.js';

export interface ServiceContext {
  config: ServeConfig;
  /** The versions serving now (changed in place as models load and unload). */
  models: ServedModel[];
  /** Every model folder and its state; loads, reloads and unloads while serving. */
  repository: ModelRepository;
  defaultModel: string;
  pool: WorkerPool;
  batcher: Batcher;
  /** Kept results for GET /attention/:id: in the process, or Redis (--results-store). */
  results: Results;
  /** Decodes with sharp go through this (config.decoders at once). */
  decoders: Gate;
  /** Heatmaps are drawn by these worker threads (config.drawers at once). */
  draws: Drawers;
  metrics: Metrics;
  /** The clock kept results are dated by (injectable through buildApp, so that tests need not wait). */
  now: () => number;
  /** The named model, or the default; 404 for an unknown name, or one not served now (and why). */
  model(name?: string): ServedModel;
  closing(): boolean;
  /** Work answered outside Fastify (gRPC calls): closing waits for it before the workers stop. */
  work: Set<Promise<unknown>>;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    auth?: boolean;
  }
  interface FastifyInstance {
    vitrine: ServiceContext;
  }
}
