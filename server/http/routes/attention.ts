// GET /attention/:id: the attention map of a recent classification as a PNG heatmap over the image,
// or as JSON.

import type { FastifyInstance } from 'fastify';
import type { Static } from '@sinclair/typebox';
import { toGrid } from '../../engine/attention.js';
import { valueRange } from '../../drawing/heatmap.js';
import { Errors, Refusals } from '../../errors.js';
import { checkMapQuery, makeMap, mapKey } from '../../engine/maps.js';
import { mapCache, unusableKept } from '../../results/store.js';
import { AttentionJson, AttentionParams, AttentionQuery, errors } from '../schemas.js';
import type { ServiceContext } from '../context.js';

const storeFailed =
  (ctx: ServiceContext) =>
  (err: Error): never => {
    ctx.metrics.storeErrors.inc({ op: 'get' });
    throw err;
  };

/** The lowest and highest of a map's values, to four significant digits. */
function rangeOf(values: Float32Array): [number, number] {
  if (values.length === 0) return [0, 0];
  const [min, max] = valueRange(values);
  return [Number(min.toPrecision(4)), Number(max.toPrecision(4))];
}

export async function attentionRoutes(app: FastifyInstance): Promise<void> {
  const ctx = app.vitrine;
  const inflight = new Map<string, ReturnType<typeof makeMap>>();
  app.get<{ Params: Static<typeof AttentionParams>; Querystring: Static<typeof AttentionQuery> }>(
    '/attention/:id',
    {
      config: { auth: true },
      schema: {
        summary: 'Attention heatmap of a recent classification',
        description:
          `rollout (Abnar & Zuidema; heads fused by \`head\`, lowest \`discard\` ` +
          `share dropped), cls (one layer's [CLS] attention), or for \`class\` ` +
          `(default the top prediction; models with a relevance graph only): ` +
          `relevance (the default explanation: the last layer's attention ` +
          `weighted by the gradient of the class's logit, rolled out through the ` +
          `layers below; about the cost of a classification), chefer (Chefer, ` +
          `Gur & Wolf: every layer's attention weighted by the gradient of the ` +
          `class's logit), grad-input (gradient x input, per patch) or combined ` +
          `((chefer + rollout) x sqrt(grad-input)); the last three need a ` +
          `backward pass through the whole model. Each map is made once while ` +
          `its result is kept. Results are kept for ${ctx.config.resultsTtlS} s, ` +
          `the ${ctx.config.resultsCapacity} most recent.`,
        params: AttentionParams,
        querystring: AttentionQuery,
        response: {
          200: {
            content: { 'image/png': { schema: { type: 'string', format: 'binary' } }, 'application/json': { schema: AttentionJson } },
          },
          ...errors(400, 401, 404, 410, 422),
        },
      },
    },
    async (request, reply) => {
      const deadline = performance.now() + ctx.config.timeoutMs;
      const stored = await ctx.results.get(request.params.id).catch(storeFailed(ctx));
      const without = stored ? undefined : await ctx.results.unkeptModel(request.params.id).catch(storeFailed(ctx));
      if (without) throw Refusals.noMaps(without);
      if (!stored)
        throw Errors.unknownResult(
          `no result '${request.params.id}': unknown, or older than ` +
            `${ctx.config.resultsTtlS} s, or pushed out by ` +
            `${ctx.config.resultsCapacity} newer ones`,
        );
      const model = ctx.models.find((m) => m.name === stored.model);
      if (!model?.grid) throw Refusals.noMaps(stored.model, 'is not served here with attention outputs');
      if (stored.fingerprint !== undefined && stored.fingerprint !== model.fingerprint)
        throw Errors.resultGone(
          `result '${stored.id}' was classified by version ${stored.version} of model ${model.name}, which is not served ` +
            `any more (version ${model.version} is): classify the image again to explain it`,
        );
      const unusable = unusableKept(stored, model);
      if (unusable) throw Errors.unreadableResult(`result '${stored.id}' cannot be drawn: ${unusable}`);
      const q = request.query;
      // what was asked, before the schema's defaults filled in the rest
      checkMapQuery(model, q, new URLSearchParams(request.url.split('?')[1] ?? ''));
      const { id, view } = stored;
      // Each map of a result is made once while the result is kept: asked again, or asked while it is
      // being made, it is the same map.
      const key = `${id}\u0000${mapKey(model, stored.top, q)}`;
      let making = inflight.get(key);
      if (!making) {
        making = makeMap(
          ctx.batcher,
          model,
          stored.input,
          stored.top,
          q,
          undefined,
          mapCache(ctx.results, id, () => ctx.metrics.storeErrors.inc({ op: 'put' })),
        ).finally(() => inflight.delete(key));
        inflight.set(key, making);
      }
      const { method, values, made } = await making;
      ctx.metrics.maps.inc({ model: model.name, method });
      const [rows, cols] = model.grid;
      const grid = toGrid(values, rows, cols);
      // the map's own values, lowest and highest: the heatmap stretches its colours between them
      const range = rangeOf(values);
      if ((q.format ?? 'png') === 'json') {
        return reply.type('application/json').send({ id, model: model.name, method, ...made, grid: [rows, cols], range, values: grid });
      }
      const png = await ctx.draws.draw(grid, view, { size: q.size ?? 256, alpha: q.alpha ?? 0.5, colormap: q.colormap ?? 'jet' }, deadline);
      return reply
        .type('image/png')
        .header('cache-control', 'private, max-age=60')
        .header('x-vitrine-map-range', range.join(','))
        .send(png);
    },
  );
}
