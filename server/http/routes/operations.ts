// Operations: liveness, readiness, Prometheus metrics, the model list.

import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import { CLASS_METHODS, methodsOf } from '../../engine/maps.js';
import { bearerMatches } from '../../auth.js';
import { GpuAdapterSchema, ModelsResponse, errors } from '../schemas.js';

const Readiness = Type.Object({
  status: Type.String(),
  workers: Type.Integer(),
  ready_workers: Type.Integer(),
  models: Type.Optional(Type.Array(Type.String(), { description: 'with --api-key: only when the key is sent' })),
  devices: Type.Optional(
    Type.Record(Type.String(), Type.Object({ provider: Type.String(), adapter: Type.Union([GpuAdapterSchema, Type.Null()]) }), {
      description: 'what each model runs on (with --api-key: only when the key is sent)',
    }),
  ),
  results_store: Type.Object({
    kind: Type.String(),
    url: Type.Optional(Type.String()),
    state: Type.String({ description: 'memory: ready; redis: connecting, ready or down' }),
    error: Type.Optional(Type.String()),
  }),
});

export async function operationsRoutes(app: FastifyInstance): Promise<void> {
  const ctx = app.vitrine;
  app.get(
    '/healthz',
    { schema: { summary: 'Liveness: the process answers', response: { 200: Type.Object({ status: Type.Literal('ok') }) } } },
    async () => ({ status: 'ok' as const }),
  );

  app.get(
    '/readyz',
    {
      schema: {
        summary: 'Readiness: models loaded and every inference worker up',
        response: { 200: Readiness, 503: Readiness },
      },
    },
    async (request, reply) => {
      // A shared store that is down does not make the replica unready: classification goes on.
      const ready = ctx.pool.ready && !ctx.closing();
      const store = ctx.results.status();
      // Probes send no key: with one set, the answer names no model unless the key comes with it.
      const named = !ctx.config.apiKey || bearerMatches(request.headers.authorization, ctx.config.apiKey);
      const models = named
        ? { models: ctx.models.map((m) => m.name), devices: Object.fromEntries(ctx.models.map((m) => [m.name, ctx.pool.deviceOf(m.name)])) }
        : {};
      return reply.code(ready ? 200 : 503).send({
        status: ready ? 'ready' : ctx.closing() ? 'shutting down' : 'starting',
        workers: ctx.pool.size,
        ready_workers: ctx.pool.readyCount,
        ...models,
        results_store: store,
      });
    },
  );

  // The metrics name the models: with --api-key they need it (Prometheus: authorization credentials).
  app.get('/metrics', { config: { auth: true }, schema: { summary: 'Prometheus metrics', hide: false } }, async (_req, reply) => {
    ctx.metrics.workers.set(ctx.pool.readyCount);
    return reply.type(ctx.metrics.registry.contentType).send(await ctx.metrics.registry.metrics());
  });

  app.get(
    '/models',
    { config: { auth: true }, schema: { summary: 'The models served', response: { 200: ModelsResponse, ...errors(401) } } },
    async () => ({
      default: ctx.defaultModel,
      models: ctx.models.map((m) => ({
        name: m.name,
        labels: m.config.labels,
        input: {
          name: m.config.input_name,
          shape: ['batch', m.config.mean.length, ...m.config.image_size],
          mean: m.config.mean,
          std: m.config.std,
          fit: m.config.fit ?? 'cover',
          resample: m.config.resample ?? 'area',
          rescale: m.config.rescale ?? 1 / 255,
        },
        outputs: { logits: m.config.logits_output, attentions: m.config.attention_outputs },
        methods: methodsOf(m),
        class_methods: methodsOf(m).filter((method) => CLASS_METHODS.includes(method)),
        patch_size: m.config.patch_size,
        precision: { classification: m.config.quantization ? ('int8' as const) : ('float' as const), explanation: 'float' as const },
        ...ctx.pool.deviceOf(m.name),
      })),
    }),
  );
}
