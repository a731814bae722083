// POST /classify: an image (multipart field `image`, or the raw body with an image/* type) ->
// predictions, logits, an attention map and timings.

import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Static } from '@sinclair/typebox';
import { clsAttention, toGrid } from '../../engine/attention.js';
import { Errors, Refusals } from '../../errors.js';
import { imageSpec } from '../../../runtime/pixels.js';
import { runClassification, topPredictions } from '../../engine/classify.js';
import { classMaps } from '../../engine/maps.js';
import { mapCache } from '../../results/store.js';
import { prepareImage } from '../../engine/preprocess.js';
import { ClassifyQuery, ClassifyResponse, errors } from '../schemas.js';

async function readImage(request: FastifyRequest, bodyLimit: number): Promise<Buffer> {
  if (request.isMultipart()) {
    let part;
    try {
      part = await request.file({ limits: { fileSize: bodyLimit, files: 1 } });
    } catch (err) {
      throw Errors.badRequest(`malformed multipart body: ${(err as Error).message}`);
    }
    if (!part) throw Errors.badRequest("the multipart body has no file; send the image in a field named 'image'");
    if (part.fieldname !== 'image') throw Errors.badRequest(`the file is in field '${part.fieldname}'; send it in a field named 'image'`);
    try {
      return await part.toBuffer();
    } catch (err) {
      if ((err as { code?: string }).code === 'FST_REQ_FILE_TOO_LARGE')
        throw Errors.tooLarge(`the image is larger than ${bodyLimit} bytes`);
      throw Errors.badRequest(`the upload broke off: ${(err as Error).message}`);
    }
  }
  const type = (request.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (type && !type.startsWith('image/') && type !== 'application/octet-stream') {
    throw Errors.unsupportedMedia(
      `unsupported content type '${type}': send multipart/form-data (field image) or the raw image with an image/* type`,
    );
  }
  const body = request.body;
  if (!Buffer.isBuffer(body) || body.length === 0)
    throw Errors.badRequest('no image: send multipart/form-data with a field named image, or the raw bytes with an image/* content type');
  return body;
}

/** attention=full sends every probability as JSON (about 9 bytes each): a ViT-B/16 image would be
 *  12 x 12 x 197 x 197 = 5.6 million, 50 MB. Past this many the request is refused, saying what to ask for. */
export const MAX_FULL_VALUES = 1_000_000;

export function refuseLargeFull(layers: number, heads: number, tokens: number): void {
  const n = layers * heads * tokens * tokens;
  if (n > MAX_FULL_VALUES) {
    throw Errors.badRequest(
      `attention=full would carry ${layers} layers x ${heads} heads x ${tokens} x ${tokens} tokens = ${n.toLocaleString('en-US')} values (about ${Math.round((n * 9) / 1e6)} MB of JSON), more than the ${MAX_FULL_VALUES.toLocaleString('en-US')} a response carries: ask for attention=rollout, cls or relevance, or GET /attention/:id?method=cls&layer=<l>&head=<h> for one layer and head`,
    );
  }
}

export async function classifyRoutes(app: FastifyInstance): Promise<void> {
  const ctx = app.vitrine;
  const { config, batcher, results } = ctx;
  app.post<{ Querystring: Static<typeof ClassifyQuery> }>(
    '/classify',
    {
      config: { auth: true },
      schema: {
        summary: 'Classify an image',
        description:
          'multipart/form-data with the image in field `image`, or the raw bytes with an image/* content type. The format is sniffed from the bytes.',
        querystring: ClassifyQuery,
        response: { 200: ClassifyResponse, ...errors(400, 401, 404, 413, 415, 422, 500, 503, 504) },
      },
    },
    async (request, reply) => {
      const started = performance.now();
      const model = ctx.model(request.query.model);
      const asked = request.query.attention;
      const attention = asked ?? 'rollout';
      if (asked && asked !== 'none' && !model.grid) throw Refusals.noMaps(model.name);
      if (asked === 'relevance' && !model.relevance) throw Refusals.noRelevance(model.name);
      const tokens = model.grid ? model.grid[0] * model.grid[1] + (model.config.prefix_tokens ?? 1) : 0;
      if (attention === 'full' && model.heads !== null) refuseLargeFull(model.config.attention_outputs.length, model.heads, tokens);
      const topk = Math.min(request.query.topk ?? 5, model.config.labels.length);

      const bytes = await readImage(request, config.bodyLimit);
      const image = await prepareImage(bytes, imageSpec(model.config), config.maxPixels, ctx.decoders, started + config.timeoutMs);
      const decoded = performance.now();

      const id = randomUUID();
      // A graph that explains its own top prediction classifies and explains in one run (the logits are
      // the model's); with flip TTA the class is the averaged logits', known only after.
      const topClass = model.config.relevance?.top_class;
      const oneRun = attention === 'relevance' && topClass !== undefined && request.query.tta !== 'flip';
      const r = oneRun
        ? await batcher.submit(model.name, image.pixels, { relevanceClass: topClass })
        : await runClassification(batcher, model, image.pixels, {
            tta: request.query.tta,
            attentions: model.grid !== null && (attention === 'cls' || attention === 'full'),
          });
      const predictions = topPredictions(r.logits, model.config.labels, topk);
      const order = predictions.map((p) => p.index);
      // Kept for GET /attention/:id; when a shared store is down the classification still answers.
      const kept = model.grid
        ? results.put({ id, model: model.name, createdAt: ctx.now(), view: image.view, pixels: image.pixels, top: order[0] })
        : results.noteUnkept(id, model.name);
      await kept.catch((err: Error) => {
        ctx.metrics.storeErrors.inc({ op: 'put' });
        request.log.warn(`result ${id} not kept: ${err.message}`);
      });
      let attentionBody: Static<typeof ClassifyResponse>['attention'];
      let fullLayers: string | null = null;
      if (model.grid && attention !== 'none') {
        const [rows, cols] = model.grid;
        if (attention === 'rollout') attentionBody = { method: 'rollout', grid: [rows, cols], values: toGrid(r.rollout!, rows, cols) };
        else if (attention === 'cls') {
          const stack = { layers: r.attentions!, heads: r.heads, tokens: r.tokens, prefix: r.prefix };
          attentionBody = { method: 'cls', grid: [rows, cols], values: toGrid(clsAttention(stack, r.attentions!.length - 1), rows, cols) };
        } else if (attention === 'relevance') {
          // else a second run, through the explanation graph, for the top prediction
          const rel = oneRun ? r : await batcher.submit(model.name, image.pixels, { relevanceClass: order[0] });
          // the run's maps kept with the result, so that GET /attention/:id does not make them again
          const cache = mapCache(results, id, () => ctx.metrics.storeErrors.inc({ op: 'put' }));
          await Promise.all(classMaps(rel, order[0]).map(([k, v]) => cache.put(k, v)));
          attentionBody = {
            method: 'relevance',
            class: model.config.labels[order[0]],
            grid: [rows, cols],
            values: toGrid(rel.relevance!, rows, cols),
          };
        } else {
          refuseLargeFull(r.attentions!.length, r.heads, r.tokens);
          // written as JSON text by a drawing worker: ~80 ms of CPU for the seed ViT, which on the
          // event loop held /healthz for seconds at 64 such requests at once
          fullLayers = await ctx.draws.attentionJson(r.attentions!, r.heads, r.tokens, started + config.timeoutMs);
          attentionBody = { method: 'full', grid: [rows, cols], layers: `\u0000layers:${id}` as unknown as number[][][][] };
        }
      }
      if (attentionBody) ctx.metrics.maps.inc({ model: model.name, method: attentionBody.method });
      const total = performance.now() - started;
      const body = {
        id,
        model: model.name,
        predictions,
        logits: Array.from(r.logits),
        ...(attentionBody ? { attention: attentionBody } : {}),
        image: { format: image.format, width: image.original.width, height: image.original.height },
        timings: {
          decode_ms: +(decoded - started).toFixed(3),
          queue_ms: +r.queueMs.toFixed(3),
          inference_ms: +r.inferenceMs.toFixed(3),
          total_ms: +total.toFixed(3),
          batch_size: r.batchSize,
        },
      };
      if (fullLayers === null) return body;
      // the layers' text goes in as the worker wrote it, in the place held for it (the schema's
      // serializer would write it again on the event loop)
      const text = JSON.stringify(body).replace(JSON.stringify(`\u0000layers:${id}`), () => fullLayers!);
      return reply.type('application/json; charset=utf-8').send(text);
    },
  );
}
