// GET /attention/:id: the attention map of a recent classification as a PNG heatmap over the image,
// or as JSON.

import type { FastifyInstance } from 'fastify';
import type { Static } from '@sinclair/typebox';
import { HeadFusion, clsAttention, rollout, toGrid } from '../attention.js';
import { Errors } from '../errors.js';
import { renderHeatmap } from '../heatmap.js';
import type { StoredResult } from '../results.js';
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

/** A result from the shared store, its attentions computed again from the kept model input. */
async function fromRemote(ctx: ServiceContext, id: string): Promise<StoredResult | undefined> {
  const kept = await ctx.remote!.get(id).catch(storeFailed(ctx));
  if (!kept) return undefined;
  if (!ctx.models.some((m) => m.name === kept.model && m.grid)) throw Errors.noAttention(`model ${kept.model} is not served here with attention outputs`);
  const r = await ctx.batcher.submit(kept.model, kept.pixels, { attentions: true });
  return { ...kept, attentions: r.attentions!, heads: r.heads, tokens: r.tokens };
}

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
      const stored = ctx.remote ? await fromRemote(ctx, request.params.id) : ctx.store.get(request.params.id);
      const without = stored ? undefined : ctx.remote ? await ctx.remote.unkeptModel(request.params.id).catch(storeFailed(ctx)) : ctx.store.unkeptModel(request.params.id);
      if (without) throw Errors.noAttention(`model ${without} has no attention outputs: its results have no maps`);
      if (!stored) throw Errors.unknownResult(`no result '${request.params.id}': unknown, or older than ${ctx.config.resultsTtlS} s, or pushed out by ${ctx.config.resultsCapacity} newer ones`);
      const model = ctx.models.find((m) => m.name === stored.model);
      if (!model?.grid) throw Errors.noAttention(`model ${stored.model} has no attention outputs`);
      const q = request.query;
      const method = q.method ?? 'rollout';
      const headText = q.head ?? 'mean';
      const head: HeadFusion = /^[0-9]+$/.test(headText) ? Number(headText) : (headText as HeadFusion);
      if (typeof head === 'number' && head >= stored.heads) throw Errors.badRequest(`head ${head} does not exist: the model has ${stored.heads} heads (0-${stored.heads - 1})`);
      // what was asked, before the schema's defaults filled in the rest
      const asked = new URLSearchParams(request.url.split('?')[1] ?? '');
      if (method === 'rollout' && asked.has('layer')) throw Errors.badRequest('layer applies to method=cls only: rollout combines every layer');
      if (method === 'cls' && asked.has('discard')) throw Errors.badRequest('discard applies to method=rollout only');
      if (method === 'relevance') {
        for (const k of ['layer', 'head', 'discard']) if (asked.has(k)) throw Errors.badRequest(`${k} does not apply to method=relevance: it weighs every head of every layer`);
        if (!model.relevance) throw Errors.noAttention(`model ${model.name} has no relevance graph: its config.json declares no 'relevance' (a model exported by this version of vitrine export has relevance.onnx)`);
      } else if (asked.has('class')) throw Errors.badRequest('class applies to method=relevance only: rollout and cls do not depend on the class');

      // The map, and what the JSON says of how it was made. A relevance map is computed now (awaited):
      // what the result holds is read before, as its arrays may be reused once this handler yields.
      const { id, view } = stored;
      let values: Float32Array;
      let made: Record<string, unknown>;
      if (method === 'relevance') {
        const labels = model.config.labels;
        const index = q.class === undefined ? (stored.top ?? 0) : classIndex(q.class, labels);
        values = (await ctx.batcher.submit(model.name, stored.pixels!, { relevanceClass: index })).relevance!;
        made = { class: labels[index], class_index: index };
      } else {
        const layers = stored.attentions.length;
        const layer = q.layer ?? layers - 1;
        if (layer >= layers) throw Errors.badRequest(`layer ${layer} does not exist: the model has ${layers} layers (0-${layers - 1})`);
        const stack = { layers: stored.attentions, heads: stored.heads, tokens: stored.tokens };
        const discard = q.discard ?? 0;
        values = method === 'rollout' ? rollout(stack, head, discard) : clsAttention(stack, layer, head);
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
