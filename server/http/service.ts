// The service's state, built before any route exists: the models (those that load), the inference
// workers and their batcher, the kept-results store, the decode gate and the metrics, and how they
// close. plugin.ts wires it into a Fastify instance.

import { type ServeConfig, defaultServeConfig } from '../config.js';
import type { ServiceContext } from './context.js';
import { Errors } from '../errors.js';
import { Drawers } from '../drawing/draws.js';
import { Gate } from '../gate.js';
import { Metrics } from './metrics.js';
import { startInference } from '../engine/inference.js';
import { describeSources, discoverModels, resolveSources } from '../engine/models.js';
import { ModelRepository } from '../engine/repository.js';
import { FolderPoller } from '../engine/poller.js';
import { MemoryResults, type Results } from '../results/store.js';
import { RedisResults } from '../results/redis.js';

interface Log {
  info(m: string): void;
  warn(m: string): void;
  error(m: string): void;
}

export interface ServiceState {
  ctx: ServiceContext;
  /** From now on every answer closes its connection. */
  markClosing(): void;
  /** Waits for the queued work, then stops the workers and the store. */
  close(): Promise<void>;
}

export async function createServiceContext(config: ServeConfig, { now, log }: { now?: () => number; log: Log }): Promise<ServiceState> {
  // Models and workers. With --model-control explicit and --load-model, only those load at start.
  const sources = resolveSources(config);
  const found = await discoverModels(sources, (m) => log.warn(m));
  const asked = config.modelControl === 'explicit' && config.loadModel.length > 0 ? config.loadModel : null;
  for (const name of asked ?? [])
    if (!found.some((m) => m.name === name)) throw new Error(`--load-model ${name}: no such model under ${describeSources(sources)}`);
  const models = asked ? found.filter((m) => asked.includes(m.name)) : found;
  const metrics = new Metrics();
  const inference = await startInference(
    models,
    config,
    { info: (m) => log.info(m), error: (m) => log.error(m) },
    {
      batch: (model, size, ms) => {
        metrics.batchSize.observe({ model }, size);
        metrics.inference.observe({ model }, ms / 1000);
      },
      depth: (model, depth) => metrics.queueDepth.set({ model }, depth),
    },
  );
  const { pool, batcher } = inference;
  pool.on('lost', () => metrics.workerRestarts.inc());
  models.splice(0, models.length, ...inference.models);
  // model folders given one by one: the first is the default, unless --default-model names one served
  const named = Object.keys(sources.folders);
  const defaultAsked = config.defaultModel !== defaultServeConfig().defaultModel;
  let defaultModel =
    named.length > 0 && !(defaultAsked && models.some((m) => m.name === config.defaultModel)) ? named[0] : config.defaultModel;
  if (!models.some((m) => m.name === defaultModel)) {
    log.warn(
      `default model '${defaultModel}' is not under ` +
        `${describeSources(sources)}${pool.skipped[defaultModel] ? ' as a model that loads' : ''}; ` +
        `using '${models[0].name}'`,
    );
    defaultModel = models[0].name;
  }
  for (const m of models) {
    const { provider, adapter } = pool.deviceOf(m.name);
    metrics.provider.set({ model: m.name, provider, adapter: adapter?.name ?? '', software: adapter ? String(adapter.software) : '' }, 1);
  }
  const clock = now ?? Date.now;
  let results: Results;
  if (config.resultsStore === 'memory') results = new MemoryResults(config.resultsCapacity, config.resultsTtlS * 1000, clock);
  else {
    metrics.storeUp.set(0);
    results = new RedisResults(
      config.resultsStore,
      config.resultsTtlS * 1000,
      { warn: (m) => log.warn(m), info: (m) => log.info(m) },
      (state) => metrics.storeUp.set(state === 'ready' ? 1 : 0),
    );
  }
  const decoders = new Gate(config.decoders, config.maxQueue);
  metrics.decodeSource = decoders;
  const draws = new Drawers(config.drawers, config.maxQueue, config.workerNice);
  metrics.drawSource = draws;
  let closing = false;
  for (const m of models) metrics.modelVersion.set({ model: m.name }, m.version);
  const repository = new ModelRepository(sources, models, inference, log, config.timeoutMs, {
    changed: (name, result, serving) => {
      metrics.modelLoads.inc({ model: name, result });
      if (serving) metrics.modelVersion.set({ model: name }, serving.version);
      else metrics.modelVersion.remove({ model: name });
    },
  });
  const ctx: ServiceContext = {
    config,
    models,
    repository,
    defaultModel,
    pool,
    batcher,
    results,
    now: clock,
    decoders,
    draws,
    metrics,
    model: (name) => {
      const wanted = name ?? defaultModel;
      const m = models.find((x) => x.name === wanted);
      if (m) return m;
      const why = repository.whyNot(wanted);
      if (why) throw Errors.unknownModel(`model '${wanted}' is not served: ${why}`);
      throw Errors.unknownModel(`model '${wanted}' is not served (models: ${models.map((x) => x.name).join(', ')})`);
    },
    closing: () => closing,
    work: new Set(),
  };
  const poller = config.modelControl === 'poll' ? new FolderPoller(sources, repository, config.pollInterval * 1000, log) : null;
  await poller?.start();
  return {
    ctx,
    markClosing: () => {
      closing = true;
      batcher.flush(); // what waits for company leaves now
    },
    close: async () => {
      await Promise.allSettled([...ctx.work]);
      await poller?.stop();
      await inference.close();
      await draws.close();
      await results.close();
    },
  };
}
