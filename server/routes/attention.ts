// GET /attention/:id: the attention map of a recent classification as a PNG heatmap over the image,
// or as JSON.

import type { FastifyInstance } from 'fastify';
import type { Static } from '@sinclair/typebox';
import { HeadFusion, clsAttention, rollout, toGrid } from '../attention.js';
import { Errors, Refusals } from '../errors.js';
import { renderHeatmap } from '../heatmap.js';
import { AttentionJson, AttentionParams, AttentionQuery, errors } from '../schemas.js';
import type { ServiceContext } from '../context.js';

/** A class given as a label or an index. */
export function classIndex(text: string, labels: readonly string[]): number {
  const byLabel = labels.indexOf(text);
  if (byLabel >= 0) return byLabel;
  if (/^[0-9]+$/.test(text) && Number(text) < labels.length) return Number(text);
  throw Errors.badRequest(`unknown class '${text}': a label (${labels.slice(0, 12).join(', ')}${labels.length > 12 ? ', …' : ''}) or an index 0-${labels.length - 1}`);
}

const storeFailed = (ctx: ServiceContext) => (err: Error): never => {
  ctx.metrics.storeErrors.inc({ op: 'get' });
  throw err;
};

export async function attentionRoutes(app: FastifyInstance): Promise<void> {
  const ctx = app.vitrine;
  app.get<{ Params: Static<typeof AttentionParams>; Querystring: Static<typeof AttentionQuery> }>(
    '/attention/:id',
    {
      config: { auth: true },
      schema: {
        summary: 'Attention heatmap of a recent classification',
        description: `rollout (Abnar & Zuidema; heads fused by \`head\`, lowest \`discard\` share dropped), cls (one layer's [CLS] attention), or relevance (Chefer, Gur & Wolf: every layer's attention weighted by the gradient of \`class\`'s logit, computed when asked; models with a relevance graph only). Results are kept for ${ctx.config.resultsTtlS} s, the ${ctx.config.resultsCapacity} most recent.`,
        params: AttentionParams,
        querystring: AttentionQuery,
        response: { 200: { content: { 'image/png': { schema: { type: 'string', format: 'binary' } }, 'application/json': { schema: AttentionJson } } }, ...errors(400, 401, 404, 422) },
      },
    },
    async (request, reply) => {
      const stored = await ctx.results.get(request.params.id).catch(storeFailed(ctx));
      const without = stored ? undefined : await ctx.results.unkeptModel(request.params.id).catch(storeFailed(ctx));
      if (without) throw Refusals.noMaps(without);
      if (!stored) throw Errors.unknownResult(`no result '${request.params.id}': unknown, or older than ${ctx.config.resultsTtlS} s, or pushed out by ${ctx.config.resultsCapacity} newer ones`);
      const model = ctx.models.find((m) => m.name === stored.model);
      if (!model?.grid) throw Refusals.noMaps(stored.model, 'is not served here with attention outputs');
      const q = request.query;
      const method = q.method ?? 'rollout';
      const headText = q.head ?? 'mean';
      const head: HeadFusion = /^[0-9]+$/.test(headText) ? Number(headText) : (headText as HeadFusion);
      // what was asked, before the schema's defaults filled in the rest
      const asked = new URLSearchParams(request.url.split('?')[1] ?? '');
      if (method === 'rollout' && asked.has('layer')) throw Errors.badRequest('layer applies to method=cls only: rollout combines every layer');
      if (method === 'cls' && asked.has('discard')) throw Errors.badRequest('discard applies to method=rollout only');
      if (method === 'relevance') {
        for (const k of ['layer', 'head', 'discard']) if (asked.has(k)) throw Errors.badRequest(`${k} does not apply to method=relevance: it weighs every head of every layer`);
        if (!model.relevance) throw Refusals.noRelevance(model.name);
      } else if (asked.has('class')) throw Errors.badRequest('class applies to method=relevance only: rollout and cls do not depend on the class');

      // The map, and what the JSON says of how it was made: the model runs again on the kept input, for
      // its attentions or (relevance) through the explanation graph for the class.
      const { id, view } = stored;
      let values: Float32Array;
      let made: Record<string, unknown>;
      if (method === 'relevance') {
        const labels = model.config.labels;
        const index = q.class === undefined ? stored.top : classIndex(q.class, labels);
        values = (await ctx.batcher.submit(model.name, stored.pixels, { relevanceClass: index })).relevance!;
        made = { class: labels[index], class_index: index };
      } else {
        const layers = model.config.attention_outputs.length;
        const layer = q.layer ?? layers - 1;
        if (layer >= layers) throw Errors.badRequest(`layer ${layer} does not exist: the model has ${layers} layers (0-${layers - 1})`);
        const discard = q.discard ?? 0;
        // The default map (rollout, heads averaged, nothing discarded) is what the worker computes
        // anyway; any other needs every layer's attention probabilities.
        const plain = method === 'rollout' && head === 'mean' && discard === 0;
        const checkHead = (heads: number) => {
          if (typeof head === 'number' && head >= heads) throw Errors.badRequest(`head ${head} does not exist: the model has ${heads} heads (0-${heads - 1})`);
        };
        // our models' configs carry the head count, so a bad head is refused before the model runs
        if (model.heads !== null) checkHead(model.heads);
        const r = await ctx.batcher.submit(model.name, stored.pixels, { attentions: !plain });
        checkHead(r.heads);
        if (plain) values = r.rollout!;
        else {
          const stack = { layers: r.attentions!, heads: r.heads, tokens: r.tokens, prefix: r.prefix };
          values = method === 'rollout' ? rollout(stack, head, discard) : clsAttention(stack, layer, head);
        }
        made = { ...(method === 'cls' ? { layer } : {}), head: headText, discard };
      }
      ctx.metrics.maps.inc({ model: model.name, method });
      const [rows, cols] = model.grid;
      const grid = toGrid(values, rows, cols);
      if ((q.format ?? 'png') === 'json') {
        return reply.type('application/json').send({ id, model: model.name, method, ...made, grid: [rows, cols], values: grid });
      }
      const png = await renderHeatmap(grid, view, { size: q.size ?? 256, alpha: q.alpha ?? 0.5, colormap: q.colormap ?? 'jet' });
      return reply.type('image/png').header('cache-control', 'private, max-age=60').send(png);
    },
  );
}
